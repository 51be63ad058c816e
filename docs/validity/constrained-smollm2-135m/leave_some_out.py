"""Leave-one-out at standard scale for some held-out families only, with the current task library: train their
held-out models two at a time (cached under OUT/adapters as `diffuse reproduce leave-one-out` names them), then
measure base and each held-out model on its held-out family as that experiment does; OUT/loo-some.json.
`--seed N` trains another run of the same recipe, `--recipe NAME` another recipe; `--extra DIR` adds the task files
DIR/<format>/*.json (more_subjects.py writes them) to every held-out model's training tasks; `--passes N` trains
N passes instead of the standard scale's 5.

    python docs/validity/constrained-smollm2-135m/leave_some_out.py OUT OCCUPATIONS COUNTRIES
    python docs/validity/constrained-smollm2-135m/leave_some_out.py --seed 1 OUT OCCUPATIONS
    python docs/validity/constrained-smollm2-135m/leave_some_out.py --recipe wide OUT OCCUPATIONS
    python docs/validity/constrained-smollm2-135m/leave_some_out.py --extra MORE/tasks OUT OCCUPATIONS
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from diffuse_lm.experiments import leave_one_out as loo
from diffuse_lm.experiments import runner
from diffuse_lm.experiments.common import Context, using
from diffuse_lm.experiments.scales import RECIPES, STANDARD

parser = argparse.ArgumentParser()
parser.add_argument("out", type=Path)
parser.add_argument("families", nargs="+")
parser.add_argument("--seed", type=int, default=0, help="training seed (another run of the same recipe)")
parser.add_argument(
    "--recipe",
    choices=RECIPES,
    default="constrained",
    help="the six-task recipe (default: constrained, the standard scale's)",
)
parser.add_argument("--extra", type=Path, help="folder of more training tasks, DIR/<format>/*.json")
parser.add_argument("--passes", type=int, default=STANDARD.passes["six"], help="training passes (default: 5)")
args = parser.parse_args()
if args.passes < 1:
    parser.error("--passes must be a positive integer")
out, keep = args.out, tuple(args.families)
recipe = RECIPES[args.recipe]
if args.extra is not None:
    extra = [str(p.resolve()) for p in sorted(args.extra.glob("*/*.json"))]
    if not extra:
        parser.error(f"--extra {args.extra}: no task files DIR/<format>/*.json")

    class WithExtra(type(recipe)):
        def extra_tasks(self) -> list[str]:
            """The recipe's mixed-in tasks and the --extra ones."""
            return super().extra_tasks() + extra

    recipe = WithExtra(**{f.name: getattr(recipe, f.name) for f in dataclasses.fields(recipe)})
scale = dataclasses.replace(STANDARD, six_recipe=recipe, passes={**STANDARD.passes, "six": args.passes})
ctx = Context(model="default", scale=scale, seed=args.seed, out=out)
groups = loo.families(loo.six_tasks(ctx))
if unknown := [f for f in keep if f not in groups]:
    print(f"error: unknown families {unknown}; the six are {list(groups)}", file=sys.stderr)
    sys.exit(2)
plan = runner.planned_adapters
runner.planned_adapters = lambda names, c: [
    j for j in plan(names, c) if any(j[0].endswith(k.lower().replace(" ", "-")) for k in keep)
]
runner.train_side_by_side(["leave-one-out"], ctx, 2, out / "logs")
res = {}
for f in keep:
    others = [t for g, ts in groups.items() if g != f for t in ts]
    path = loo.tuned(ctx, f"paper-six-without-{f.lower().replace(' ', '-')}", others)
    res[f] = {}
    for label, p in (("baseline", None), ("OOD", path)):
        with using(ctx, p) as (model, tokenizer):
            s = loo.summarize(ctx, model, tokenizer, groups[f])
            res[f][label] = {k: v for k, v in s.model_dump().items() if k != "prompts"}
    print(f, json.dumps(res[f]), flush=True)
(out / "loo-some.json").write_text(json.dumps(res, indent=1))
