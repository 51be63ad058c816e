"""Running one experiment into the record ``diffuse reproduce`` writes: its result with what it depends on."""

from __future__ import annotations

import json
import time
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import NAMES, experiment
from diffuse_lm.experiments.common import Context, versions
from diffuse_lm.experiments.scales import choices


def run_experiment(name: str, ctx: Context) -> dict:
    """Run one experiment and wrap its result with what it depends on: model, scale, seed, versions,
    wall time, adapters trained or reused, and every place the scale departs from the paper."""
    exp = experiment(name)
    ctx.trained = {}
    t0 = time.time()
    result = exp.run(ctx)
    return {
        "experiment": name,
        "model": ctx.model,
        "scale": ctx.scale.name,
        "recipe": str(ctx.scale.six_recipe),
        "seed": ctx.seed,
        "device": ctx.device,
        "dtype": ctx.dtype,
        "versions": versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
        "wall_s": round(time.time() - t0, 1),
        "choices": choices(ctx.scale, exp.uses),
        "adapters": ctx.trained,
        "result": result.to_json(),
    }


def load_results(out: str | Path) -> dict[str, dict]:
    """Experiment name -> its results record (as written), for each results file present in ``out``."""
    found = {}
    for name in NAMES:
        path = Path(out) / f"{name}.json"
        if path.exists():
            try:
                found[name] = json.loads(path.read_text())
            except ValueError:
                raise DiffuseError(f"{path}: not a valid results file (malformed JSON)") from None
    return found
