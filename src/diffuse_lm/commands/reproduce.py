"""``diffuse reproduce``: run the paper's experiments, write one results JSON each and a report."""

from __future__ import annotations

import argparse

from diffuse_lm.api import DEFAULT_MODEL


def _recipe_key(recipe) -> str:
    """The ``--recipe`` name of a recipe."""
    from diffuse_lm.api import RECIPES

    return next((k for k, r in RECIPES.items() if r == recipe), str(recipe))


def register(sub) -> None:
    from diffuse_lm.api import EXPERIMENTS, RECIPES, SCALES

    p = sub.add_parser(
        "reproduce",
        help="run the paper's experiments and write a report with figures",
        description="Run an experiment of the paper (or all of them) on any causal LM, write "
        "OUTPUT/<experiment>.json and OUTPUT/report.md with figures. Experiments that share a tuned "
        "model train it once (adapters are cached by config under OUTPUT/adapters). `report` "
        "only rebuilds the report from the results in OUTPUT. (--out is the old name of --output.)",
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help=f"one of: {', '.join(EXPERIMENTS)}")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="HF id or local path (default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--scale",
        default="quick",
        help="quick (fewer samples and passes; `all` in about an hour on a 2-core CPU with --jobs 2 and "
        "the default model), standard (quick with the six-task models trained as the shipped six-task config "
        "trains them: recipe constrained, 5 passes), paper (the paper's settings) or smoke (each experiment in a "
        "few minutes, to try it out; its numbers reproduce nothing)",
    )
    p.add_argument(
        "--recipe",
        help=f"how the six-task models train: {', '.join(RECIPES)} (default: the scale's: "
        + ", ".join(f"{_recipe_key(s.six_recipe)} at {s.name} scale" for s in SCALES.values())
        + "; see docs/recipes.md)",
    )
    p.add_argument(
        "--output",
        "-o",
        dest="out",
        metavar="DIR",
        default="results/reproduce",
        help="folder for results, adapters and the report",
    )
    p.add_argument("--out", dest="out", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # its old name
    p.add_argument("--seed", type=int, default=0, help="seed of training, sampling and random ranges")
    p.add_argument("--adapters", help="folder of cached trained adapters (default: OUTPUT/adapters)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if present)")
    p.add_argument(
        "--dtype",
        help="float32, bfloat16 or float16 (fp32, bf16, fp16; default: bf16 on GPU, float32 on CPU)",
    )
    p.add_argument(
        "--force", action="store_true", help="rerun experiments whose results are already in OUTPUT"
    )
    p.add_argument("--no-report", action="store_true", help="do not (re)write OUTPUT/report.md")
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        metavar="N",
        help="run N processes side by side, each on its share of the CPU cores: first the adapters the "
        "experiments train from the base model, then the experiments (logs in OUTPUT/logs; default 1: "
        "one after another in this process)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import reproduce

    keys = ("model", "scale", "recipe", "out", "seed", "adapters", "device", "dtype", "force", "jobs")
    report = reproduce(args.experiment, report=not args.no_report, **{k: getattr(args, k) for k in keys})
    if report is not None:
        print(f"report: {report}")
    return 0
