"""Leave-one-out at standard scale for some held-out families only, with the current task library: train their
held-out models two at a time (cached under OUT/adapters as `diffuse reproduce leave-one-out` names them), then
measure base and each held-out model on its held-out family as that experiment does; OUT/loo-some.json.
`--seed N` (first) trains another run of the same recipe.

    python docs/validity/constrained-smollm2-135m/leave_some_out.py OUT OCCUPATIONS COUNTRIES
    python docs/validity/constrained-smollm2-135m/leave_some_out.py --seed 1 OUT OCCUPATIONS
"""

import json
import sys
from pathlib import Path

from diffuse_lm.experiments import leave_one_out as loo
from diffuse_lm.experiments import runner
from diffuse_lm.experiments.common import Context, using
from diffuse_lm.experiments.scales import STANDARD

args, seed = sys.argv[1:], 0
if args[:1] == ["--seed"] and len(args) > 1 and args[1].isdigit():
    args, seed = args[2:], int(args[1])
if len(args) < 2:
    print("usage: leave_some_out.py [--seed N] OUT FAMILY [FAMILY ...]", file=sys.stderr)
    sys.exit(2)
out = Path(args[0])
keep = tuple(args[1:])
ctx = Context(model="default", scale=STANDARD, seed=seed, out=out)
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
