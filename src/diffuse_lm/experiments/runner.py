"""Running one experiment into the record ``diffuse reproduce`` writes: its result with what it depends on."""

from __future__ import annotations

import json
import time
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import NAMES, experiment
from diffuse_lm.experiments.common import Context
from diffuse_lm.experiments.scales import choices
from diffuse_lm.provenance import package_versions
from diffuse_lm.strict_json import loads


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
        "versions": package_versions(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
        "wall_s": round(time.time() - t0, 1),
        "choices": choices(ctx.scale, exp.uses),
        "adapters": ctx.trained,
        "result": result.to_json(),
    }


# What every results record holds (the report's header and sections read them).
RECORD_KEYS = {"model", "scale", "seed", "versions", "wall_s", "result"}


def load_results(out: str | Path) -> dict[str, dict]:
    """Experiment name -> its results record (as written), for each results file present in ``out``."""
    found = {}
    for name in NAMES:
        path = Path(out) / f"{name}.json"
        if path.exists():
            try:
                record = loads(path.read_text())
            except ValueError:
                raise DiffuseError(f"{path}: not a valid results file (malformed JSON)") from None
            missing = sorted(RECORD_KEYS - set(record)) if isinstance(record, dict) else ["a JSON object"]
            if missing or record.get("experiment", name) != name:
                why = f"no {', '.join(missing)}" if missing else f"experiment {record['experiment']!r}"
                raise DiffuseError(f"{path}: not a `diffuse reproduce {name}` results file ({why})")
            found[name] = record
    return found


# --- side by side (--jobs) ---------------------------------------------------------------------------

# Minutes each experiment took at quick scale with its adapters trained (`all --jobs 2`, one thread each):
# the longest start first.
COST = {
    "utility": 11.4,
    "biographies": 10.2,
    "leave-one-out": 5.3,
    "fig2": 4.0,
    "table1": 3.6,
    "temperature": 1.9,
    "fig1": 1.3,
}


def planned_adapters(names: list[str], ctx: Context) -> list[tuple[str, Path, object]]:
    """(name, run folder, training config) of each adapter the experiments ``names`` train from the base
    model and that is not trained yet, each once, the most steps first."""
    plan = Context(**{**ctx.__dict__, "planned": [], "trained": {}, "loaded": None})
    for name in names:
        if experiment(name).adapters is not None:
            experiment(name).adapters(plan)
    todo = {
        folder: (n, folder, cfg) for n, folder, cfg in plan.planned if not (folder / "summary.json").exists()
    }
    return sorted(todo.values(), key=lambda j: -j[2].alg_config.n_iters * len(j[2].train_prompts))


def side_by_side(commands: list[tuple[str, list[str]]], jobs: int, logs: Path) -> None:
    """Run ``(label, diffuse arguments)`` commands as ``jobs`` processes at a time, each on its share of the
    CPU cores (torch threads), its output in ``logs/<label>.log``; one line as each ends. A command that fails
    is a one-line error naming its log, once the others have ended.

    Processes, not calls of the API in threads: each needs its own torch thread count (set before torch
    loads), its own copy of the model, and its own log and exit status, so that one that fails or is killed
    leaves the others and the results already written alone; ``--jobs 1`` calls the experiments directly."""
    import os
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor, as_completed

    logs.mkdir(parents=True, exist_ok=True)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
    }

    def one(label: str, argv: list[str]) -> tuple[int, float]:
        t0 = time.time()
        with open(logs / f"{label}.log", "w") as log:
            rc = subprocess.run(
                [sys.executable, "-m", "diffuse_lm.cli", *argv], stdout=log, stderr=subprocess.STDOUT, env=env
            ).returncode
        return rc, time.time() - t0

    failed = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        running = {pool.submit(one, label, argv): label for label, argv in commands}
        for k, done in enumerate(as_completed(running), 1):
            label, (rc, seconds) = running[done], done.result()
            state = "done" if rc == 0 else f"FAILED (exit {rc})"
            print(f"[{k}/{len(commands)}] {label}: {state} in {seconds:.0f} s", flush=True)
            if rc:
                failed.append(label)
    if failed:
        raise DiffuseError(f"{', '.join(failed)} failed: see {logs / (failed[0] + '.log')}")


def train_side_by_side(names: list[str], ctx: Context, jobs: int, logs: Path) -> None:
    """Train the adapters the experiments ``names`` need from the base model, ``jobs`` at a time, each as a
    `diffuse train` process (its config in ``logs``); the experiments then find them trained."""
    from diffuse_lm.config import config_to_yaml
    from diffuse_lm.files import write_text_atomic

    todo = planned_adapters(names, ctx)
    if not todo:
        return
    from diffuse_lm.experiments.common import base, release

    base(ctx)  # the model loaded (and its cache written) once, not by each process at once
    release(ctx)
    from diffuse_lm.training import prepare_retention

    retained = {}
    for _, _, cfg in todo:  # the base model's retention answers, once for the runs that share them
        if cfg.retain is not None and not cfg.load_model:
            retained.setdefault(json.dumps([cfg.model, cfg.dtype, cfg.retain.model_dump(mode="json")]), cfg)
    for cfg in retained.values():
        prepare_retention(cfg, progress=ctx.progress)
    logs.mkdir(parents=True, exist_ok=True)
    commands = []
    for _, folder, cfg in todo:
        path = logs / f"{folder.name}.yaml"
        write_text_atomic(path, config_to_yaml(cfg))  # a kill mid-write leaves no half config to train
        commands.append((folder.name, ["train", str(path), "-q", "--no-plot"]))
    print(f"== training {len(todo)} adapters, {jobs} at a time", flush=True)
    side_by_side(commands, jobs, logs)
