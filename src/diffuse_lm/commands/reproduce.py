"""``diffuse reproduce``: run the paper's experiments, write one results JSON each and a report."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import NAMES, in_all
from diffuse_lm.files import write_json_atomic
from diffuse_lm.model_info import DEFAULT_MODEL

CHOICES = [*NAMES, "all", "report"]


def _recipe_key(recipe) -> str:
    """The ``--recipe`` name of a recipe."""
    from diffuse_lm.experiments.scales import RECIPES

    return next((k for k, r in RECIPES.items() if r == recipe), str(recipe))


def register(sub) -> None:
    from diffuse_lm.experiments.scales import RECIPES, SCALES

    p = sub.add_parser(
        "reproduce",
        help="run the paper's experiments and write a report with figures",
        description="Run an experiment of the paper (or all of them) on any causal LM, write "
        "OUTPUT/<experiment>.json and OUTPUT/report.md with figures. Experiments that share a tuned "
        "model train it once (adapters are cached by config under OUTPUT/adapters). `report` "
        "only rebuilds the report from the results in OUTPUT. (--out is the old name of --output.)",
    )
    p.add_argument("experiment", metavar="EXPERIMENT", help=f"one of: {', '.join(CHOICES)}")
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="HF id or local path (default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--scale",
        default="quick",
        help="quick (fewer samples and passes; `all` in about an hour on a 2-core CPU with --jobs 2 and "
        "the default model), paper (the paper's settings) or smoke (each experiment in a few minutes, to try "
        "it out; its numbers reproduce nothing)",
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


def check_args(args: argparse.Namespace) -> list[str]:
    """Validate the flags before anything slow; returns the experiments to run."""
    from diffuse_lm.experiments.scales import SCALES

    if args.experiment not in CHOICES:
        raise DiffuseError(f"unknown experiment {args.experiment!r} (choose from: {', '.join(CHOICES)})")
    if args.scale not in SCALES:
        raise DiffuseError(f"--scale {args.scale}: expected one of {', '.join(SCALES)}")
    from diffuse_lm.experiments.scales import RECIPES

    if args.recipe is not None and args.recipe not in RECIPES:
        raise DiffuseError(f"--recipe {args.recipe}: expected one of {', '.join(RECIPES)}")
    if args.seed < 0:
        raise DiffuseError(f"--seed {args.seed}: must be >= 0")
    if args.jobs < 1:
        raise DiffuseError(f"--jobs {args.jobs}: must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DiffuseError(f"--output {out}: exists and is not a folder")
    if args.adapters and Path(args.adapters).exists() and not Path(args.adapters).is_dir():
        raise DiffuseError(f"--adapters {args.adapters}: exists and is not a folder")
    from diffuse_lm.models import pick_device, pick_dtype

    pick_dtype(args.dtype, pick_device(args.device))
    if args.experiment == "report":
        return []
    return in_all() if args.experiment == "all" else [args.experiment]


def _same_run(path: Path, ctx) -> bool:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    now = (ctx.model, ctx.scale.name, ctx.seed, str(ctx.scale.six_recipe))
    return (old.get("model"), old.get("scale"), old.get("seed"), old.get("recipe")) == now


def _side_by_side(args: argparse.Namespace, ctx, names: list[str]) -> list[str]:
    """``--jobs``: train the experiments' adapters side by side, then run the experiments side by side
    (one alone runs here); returns those left to run in this process."""
    from diffuse_lm.experiments.runner import COST, side_by_side, train_side_by_side

    logs = Path(args.out) / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiffuseError(f"--output {args.out}: cannot write {logs} ({e.strerror or e})") from None
    train_side_by_side(names, ctx, args.jobs, logs)
    if len(names) < 2:
        return names
    common = ["--model", args.model, "--scale", args.scale, "--output", args.out, "--seed", str(args.seed)]
    for flag in ("recipe", "adapters", "device", "dtype"):
        if getattr(args, flag) is not None:
            common += [f"--{flag}", str(getattr(args, flag))]
    common += ["--no-report"] + ["--force"] * args.force
    ordered = sorted(names, key=lambda n: -COST.get(n, 0))
    print(f"== {len(names)} experiments, {args.jobs} at a time", flush=True)
    side_by_side([(n, ["reproduce", n, *common]) for n in ordered], args.jobs, logs)
    return []


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.experiments.common import Context
    from diffuse_lm.experiments.runner import run_experiment
    from diffuse_lm.experiments.scales import RECIPES, SCALES

    names = check_args(args)
    out = Path(args.out)
    ctx = Context(
        model=args.model,
        scale=SCALES[args.scale]
        if args.recipe is None
        else replace(SCALES[args.scale], six_recipe=RECIPES[args.recipe]),
        seed=args.seed,
        out=out,
        adapters=Path(args.adapters) if args.adapters else None,
        device=args.device,
        dtype=args.dtype,
    )
    done = [n for n in names if not args.force and _same_run(out / f"{n}.json", ctx)]
    if args.jobs > 1:
        names = _side_by_side(args, ctx, [n for n in names if n not in done]) + done
    for name in names:
        path = out / f"{name}.json"
        if name in done:
            print(f"{name}: results already in {path} (--force to rerun)")
            continue
        print(f"== {name} ({ctx.scale.name} scale, model {ctx.model}, seed {ctx.seed})", flush=True)
        record = run_experiment(name, ctx)
        write_json_atomic(path, record)
        print(f"{name}: done in {record['wall_s']:.0f} s -> {path}", flush=True)
    if not args.no_report:
        from diffuse_lm.experiments.report import write_report

        report = write_report(out)
        print(f"report: {report}")
    return 0
