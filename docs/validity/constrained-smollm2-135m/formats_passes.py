"""Held-out-format models of `diffuse reproduce formats --scale standard` trained for another number of passes,
for some formats only (two side by side, one thread each, cached under OUT/adapters), each measured on the
evaluation subjects in its held-out format as that experiment measures it; OUT/cells.json. `--settings JSON`
merges training-config keys into the recipe's (a dict merges into its block: '{"lora": {"r": 32, "alpha": 64}}');
`--seed N` trains another run of the same recipe; `--per-subject K` replaces the format mix (each training subject
in two formats) with each subject in K formats spread evenly over the sixteen; `--extra DIR` adds the task files
DIR/<format>/*.json (more_subjects.py writes them) to the training tasks, those in the held-out format left out.

    python docs/validity/constrained-smollm2-135m/formats_passes.py OUT 8 braces answer
    python docs/validity/constrained-smollm2-135m/formats_passes.py OUT 4 braces answer --settings '{"lr": 1.6e-3}'
"""

import argparse
import dataclasses
import json
from pathlib import Path

from diffuse_lm.config import config_from_dict
from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import formats, runner
from diffuse_lm.experiments.common import Context, adapter, exact, using
from diffuse_lm.experiments.leave_one_out import recipe_settings
from diffuse_lm.experiments.scales import STANDARD
from diffuse_lm.tasks import builtin_tasks, load_tasks

parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("passes", type=int)
parser.add_argument("formats", nargs="+", choices=formats.FORMATS)
parser.add_argument("--settings", type=json.loads, default={}, help="training-config keys (JSON object)")
parser.add_argument("--seed", type=int, default=0, help="training seed (another run of the same recipe)")
parser.add_argument(
    "--per-subject", type=int, default=0, help="formats per training subject (0: the shipped mix)"
)
parser.add_argument("--extra", type=Path, help="folder of more training tasks, DIR/<format>/*.json")
args = parser.parse_args()
if args.passes < 1 or not isinstance(args.settings, dict) or not 0 <= args.per_subject <= 16:
    parser.error("PASSES must be a positive integer, --settings a JSON object and --per-subject 0 to 16")
extra_files = sorted(args.extra.glob("*/*.json")) if args.extra is not None else []
if args.extra is not None and not extra_files:
    parser.error(f"--extra {args.extra}: no task files DIR/<format>/*.json")
trained = {n.split("/")[2] for n in builtin_tasks() if n.startswith("formats/train/")}
if odd := sorted({p.parent.name for p in extra_files} - trained):
    parser.error(f"--extra {args.extra}: {', '.join(odd)}: not a trained format's folder")
scale = dataclasses.replace(STANDARD, passes={**STANDARD.passes, "formats": args.passes})
ctx = Context(model="default", scale=scale, seed=args.seed, out=args.out)


def settings_with_overrides(c: Context, recipe) -> dict:
    """The recipe's training-config keys with --settings merged in."""
    out = recipe_settings(c, recipe)
    for key, value in args.settings.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


try:  # a bad key or value: one line before anything trains
    config_from_dict(
        {
            **settings_with_overrides(ctx, scale.six_recipe),
            "train_prompts": ["formats-mix"],
            "output_dir": "x",
        },
        source="--settings",
    )
except DiffuseError as e:
    parser.error(str(e))
formats.recipe_settings = settings_with_overrides  # the held-out models train with the overrides


def wider_mix(c: Context, without: str) -> list[str]:
    """Each training subject in ``--per-subject`` formats (spread evenly, rotating with the subject; the next
    format where a weighted subject has no task in one), none in ``without``; and the constrained tasks as
    `formats` takes them."""
    have = {n for n in builtin_tasks() if n.startswith("formats/train/")}
    fmts = sorted({n.split("/")[2] for n in have})
    subjects = sorted({n.split("/")[3] for n in have})
    out = []
    for i, subject in enumerate(subjects):
        for j in range(args.per_subject):
            for step in range(len(fmts)):
                name = f"formats/train/{fmts[(i + j * len(fmts) // args.per_subject + step) % len(fmts)]}/{subject}"
                if name in have and name not in out:
                    out.append(name)
                    break
    keep = [n for n in out if n.split("/")[2] != without]
    return keep + [n for n in shipped_tasks(c, without) if not n.startswith("formats/")]


if args.per_subject:
    shipped_tasks, formats.training_tasks = formats.training_tasks, wider_mix
if args.extra is not None:
    mix_tasks = formats.training_tasks

    def with_extra(c: Context, without: str) -> list[str]:
        """The mix without ``without``, and the --extra tasks not asked in it."""
        extra = [str(p.resolve()) for p in extra_files if p.parent.name != without]
        return mix_tasks(c, without) + extra

    formats.training_tasks = with_extra
names = {f"formats-without-{f}" for f in args.formats}
plan = runner.planned_adapters
runner.planned_adapters = lambda experiments, c: [j for j in plan(experiments, c) if j[0] in names]
runner.train_side_by_side(["formats"], ctx, 2, args.out / "logs")
settings = settings_with_overrides(ctx, scale.six_recipe)
cells = {}
for f in args.formats:
    path = adapter(
        ctx, f"formats-without-{f}", formats.training_tasks(ctx, f), args.passes, settings=settings
    )
    with using(ctx, path) as (model, tokenizer):
        cells[f] = formats.cell(exact(model, tokenizer, load_tasks([f"formats/eval/{f}"]), scale.coverage_n))
    print(f, args.passes, round(cells[f].mass, 4), round(cells[f].normalized_entropy, 4), flush=True)
(args.out / "cells.json").write_text(json.dumps({f: c.model_dump() for f, c in cells.items()}, indent=1))
