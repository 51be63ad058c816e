"""Held-out-format models of `diffuse reproduce formats --scale standard` trained for another number of passes,
for some formats only (two side by side, one thread each, cached under OUT/adapters), each measured on the
evaluation subjects in its held-out format as that experiment measures it; OUT/cells.json. `--settings JSON`
merges training-config keys into the recipe's (a dict merges into its block: '{"lora": {"r": 32, "alpha": 64}}');
`--seed N` trains another run of the same recipe.

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
from diffuse_lm.tasks import load_tasks

parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("passes", type=int)
parser.add_argument("formats", nargs="+", choices=formats.FORMATS)
parser.add_argument("--settings", type=json.loads, default={}, help="training-config keys (JSON object)")
parser.add_argument("--seed", type=int, default=0, help="training seed (another run of the same recipe)")
args = parser.parse_args()
if args.passes < 1 or not isinstance(args.settings, dict):
    parser.error("PASSES must be a positive integer and --settings a JSON object")
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
