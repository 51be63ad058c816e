"""``diffuse reproduce`` as a call: check the settings, run the experiments (one after another here, or
``jobs`` processes side by side: :mod:`diffuse_lm.experiments.runner`), write one results file each and the
report. Experiments whose results for the same model, scale, seed and recipe are on file are skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import NAMES, in_all
from diffuse_lm.model_info import DEFAULT_MODEL

CHOICES = [*NAMES, "all", "report"]


@dataclass(frozen=True)
class Reproduction:
    """What one ``diffuse reproduce`` run is asked to do (its flags)."""

    experiment: str  # a name of CHOICES
    model: str = DEFAULT_MODEL
    scale: str = "quick"
    recipe: str | None = None
    out: str = "results/reproduce"
    seed: int = 0
    adapters: str | None = None
    device: str | None = None
    dtype: str | None = None
    force: bool = False
    report: bool = True
    jobs: int = 1


def check(r: Reproduction) -> list[str]:
    """Validate the settings before anything slow; returns the experiments to run."""
    from diffuse_lm.experiments.scales import RECIPES, SCALES
    from diffuse_lm.models import pick_device, pick_dtype

    if r.experiment not in CHOICES:
        raise DiffuseError(f"unknown experiment {r.experiment!r} (choose from: {', '.join(CHOICES)})")
    if r.scale not in SCALES:
        raise DiffuseError(f"--scale {r.scale}: expected one of {', '.join(SCALES)}")
    if r.recipe is not None and r.recipe not in RECIPES:
        raise DiffuseError(f"--recipe {r.recipe}: expected one of {', '.join(RECIPES)}")
    if r.seed < 0:
        raise DiffuseError(f"--seed {r.seed}: must be >= 0")
    if r.jobs < 1:
        raise DiffuseError(f"--jobs {r.jobs}: must be >= 1")
    out = Path(r.out)
    if out.exists() and not out.is_dir():
        raise DiffuseError(f"--output {out}: exists and is not a folder")
    if r.adapters and Path(r.adapters).exists() and not Path(r.adapters).is_dir():
        raise DiffuseError(f"--adapters {r.adapters}: exists and is not a folder")
    pick_dtype(r.dtype, pick_device(r.device))
    if r.experiment == "report":
        return []
    return in_all() if r.experiment == "all" else [r.experiment]


def _same_run(path: Path, ctx) -> bool:
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    now = (ctx.model, ctx.scale.name, ctx.seed, str(ctx.scale.six_recipe))
    return (old.get("model"), old.get("scale"), old.get("seed"), old.get("recipe")) == now


def _side_by_side(r: Reproduction, ctx, names: list[str]) -> list[str]:
    """``jobs`` > 1: train the experiments' adapters side by side, then run the experiments side by side, each
    a ``diffuse reproduce`` process of its own (its own threads and log; one alone runs here); returns those
    left to run in this process."""
    from diffuse_lm.experiments.runner import COST, side_by_side, train_side_by_side

    logs = Path(r.out) / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiffuseError(f"--output {r.out}: cannot write {logs} ({e.strerror or e})") from None
    train_side_by_side(names, ctx, r.jobs, logs)
    if len(names) < 2:
        return names
    common = ["--model", r.model, "--scale", r.scale, "--output", r.out, "--seed", str(r.seed)]
    for flag in ("recipe", "adapters", "device", "dtype"):
        if getattr(r, flag) is not None:
            common += [f"--{flag}", str(getattr(r, flag))]
    common += ["--no-report"] + ["--force"] * r.force
    ordered = sorted(names, key=lambda n: -COST.get(n, 0))
    print(f"== {len(names)} experiments, {r.jobs} at a time", flush=True)
    side_by_side([(n, ["reproduce", n, *common]) for n in ordered], r.jobs, logs)
    return []


def reproduce(r: Reproduction) -> Path | None:
    """Run ``r``'s experiments into ``r.out`` (a line as each starts and ends) and write the report; returns
    the report's path (``None`` without one)."""
    from diffuse_lm.experiments.common import Context
    from diffuse_lm.experiments.runner import run_experiment
    from diffuse_lm.experiments.scales import RECIPES, SCALES
    from diffuse_lm.files import write_json_atomic

    names = check(r)
    out = Path(r.out)
    scale = SCALES[r.scale] if r.recipe is None else replace(SCALES[r.scale], six_recipe=RECIPES[r.recipe])
    ctx = Context(
        model=r.model,
        scale=scale,
        seed=r.seed,
        out=out,
        adapters=Path(r.adapters) if r.adapters else None,
        device=r.device,
        dtype=r.dtype,
    )
    done = [n for n in names if not r.force and _same_run(out / f"{n}.json", ctx)]
    if r.jobs > 1:
        names = _side_by_side(r, ctx, [n for n in names if n not in done]) + done
    for name in names:
        path = out / f"{name}.json"
        if name in done:
            print(f"{name}: results already in {path} (--force to rerun)")
            continue
        print(f"== {name} ({ctx.scale.name} scale, model {ctx.model}, seed {ctx.seed})", flush=True)
        record = run_experiment(name, ctx)
        write_json_atomic(path, record)
        print(f"{name}: done in {record['wall_s']:.0f} s -> {path}", flush=True)
    if not r.report:
        return None
    from diffuse_lm.experiments.report import write_report

    return write_report(out)
