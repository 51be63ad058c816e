"""Held-out-format models of `diffuse reproduce formats --scale standard` trained for another number of passes,
for some formats only (two side by side, one thread each, cached under OUT/adapters), each measured on the
evaluation subjects in its held-out format as that experiment measures it; OUT/cells.json.

    python docs/validity/constrained-smollm2-135m/formats_passes.py OUT 8 braces answer
"""

import dataclasses
import json
import sys
from pathlib import Path

from diffuse_lm.experiments import formats, runner
from diffuse_lm.experiments.common import Context, adapter, exact, using
from diffuse_lm.experiments.leave_one_out import recipe_settings
from diffuse_lm.experiments.scales import STANDARD
from diffuse_lm.tasks import load_tasks

if len(sys.argv) < 4 or not sys.argv[2].isdigit() or int(sys.argv[2]) < 1:
    print("usage: formats_passes.py OUT PASSES FORMAT [FORMAT ...] (PASSES a positive integer)", file=sys.stderr)
    sys.exit(2)
out, passes, keep = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
if unknown := [f for f in keep if f not in formats.FORMATS]:
    print(f"error: unknown formats {unknown}; the held-out ones are {list(formats.FORMATS)}", file=sys.stderr)
    sys.exit(2)
scale = dataclasses.replace(STANDARD, passes={**STANDARD.passes, "formats": passes})
ctx = Context(model="default", scale=scale, seed=0, out=out)
names = {f"formats-without-{f}" for f in keep}
plan = runner.planned_adapters
runner.planned_adapters = lambda experiments, c: [j for j in plan(experiments, c) if j[0] in names]
runner.train_side_by_side(["formats"], ctx, 2, out / "logs")
settings = recipe_settings(ctx, scale.six_recipe)
cells = {}
for f in keep:
    path = adapter(ctx, f"formats-without-{f}", formats.training_tasks(ctx, f), passes, settings=settings)
    with using(ctx, path) as (model, tokenizer):
        cells[f] = formats.cell(exact(model, tokenizer, load_tasks([f"formats/eval/{f}"]), scale.coverage_n))
    print(f, passes, round(cells[f].mass, 4), round(cells[f].normalized_entropy, 4), flush=True)
(out / "cells.json").write_text(json.dumps({f: c.model_dump() for f, c in cells.items()}, indent=1))
