"""The Python API: what the ``diffuse`` commands do, as calls on objects you hold (a model, tasks), returning
records you can turn into JSON or a pandas DataFrame. Import it from the package: ``from diffuse_lm import
measure, sample, train, load_model, make_task``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffuse_lm.tasks import Task, load_tasks, task_from_dict


def make_task(
    request: str,
    targets: Sequence[str],
    weights: Sequence[float] | None = None,
    *,
    name: str = "task",
    system: str | None = None,
    eos: bool = True,
) -> Task:
    """A task built in code: the prompt, its valid answers and the wanted weights (uniform by default),
    validated exactly as a task file is."""
    data: dict[str, Any] = {"request": request, "targets": list(targets), "eos": eos, "name": name}
    if weights is not None:
        data["weights"] = [float(w) for w in weights]
    if system is not None:
        data["system"] = system
    return task_from_dict(data, source=f"task {name!r}", name=name)


def _tasks(tasks: Task | str | Sequence[Task | str]) -> list[Task]:
    """Tasks from Task objects, built-in names, files or folders (or a mix)."""
    items = [tasks] if isinstance(tasks, Task | str) else list(tasks)
    out: list[Task] = []
    for t in items:
        out.extend([t] if isinstance(t, Task) else load_tasks([t]))
    return out


@dataclass
class Measurement:
    """Exact metrics of each task under one model (the ``diffuse measure`` JSON): mass on the valid answers,
    KL to the wanted distribution, entropy, … and every target's probability; ``provenance`` names the
    adapter (path and sha256), dtype, device, package versions and the task files' hashes."""

    model: str
    tasks: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"model": self.model, "provenance": self.provenance, "tasks": self.tasks}

    def to_pandas(self, *, targets: bool = False):
        """One row a task (``targets=False``) or one row a target (the table ``measure --rows`` writes), as a
        pandas DataFrame."""
        import pandas as pd

        from diffuse_lm.measuring import target_rows

        if targets:
            return pd.DataFrame(target_rows(self.to_json()))
        return pd.DataFrame([{k: v for k, v in t.items() if k != "targets"} for t in self.tasks])

    def __getitem__(self, name: str) -> dict:
        return next(t for t in self.tasks if t["name"] == name)


def measure(
    model, tokenizer, tasks: Task | str | Sequence[Task | str], *, progress: bool = False
) -> Measurement:
    """Score every target of every task by teacher forcing (no sampling) and compute the metrics."""
    from diffuse_lm.measuring import measure_tasks

    result = measure_tasks(model, tokenizer, _tasks(tasks), progress=progress)
    return Measurement(result["model"], result["tasks"], result["provenance"])


def sample(model, tokenizer, task: Task | str, n: int, **settings: Any) -> list[dict]:
    """``n`` generations for ``task`` (pure sampling by default, as in the paper), each with its parsed
    answer and whether it is one of the task's targets: ``{"index", "text", "answer", "valid"}``.
    ``settings`` are those of :func:`diffuse_lm.sampling.generate_records` (temperature, top_p, top_k,
    min_p, max_new_tokens, seed, batch_size, progress)."""
    from diffuse_lm.parsing import answer_of, task_answers
    from diffuse_lm.sampling import generate

    (task,) = _tasks(task)[:1]
    texts = generate(model, tokenizer, task.messages(), n, responses=task.responses, **settings)
    valid, braces = task_answers(task)
    valid = set(valid)
    answers = [answer_of(t, braces=braces) for t in texts]
    return [
        {"index": i, "text": t, "answer": a, "valid": a in valid}
        for i, (t, a) in enumerate(zip(texts, answers, strict=True))
    ]


def train(config: Any = None, /, *, progress: bool = False, **keys: Any) -> dict:
    """Tune a LoRA adapter with the distribution-matching loss (and the retention term, if configured).
    ``config`` is a :class:`TrainConfig`, a dict of config keys or a YAML file; ``keys`` set (dotted) keys
    on top, e.g. ``train(train_prompts=["rng/1-10"], output_dir="run", lr=1e-3)``. Returns the run's
    summary (``adapter_dir``, steps, loss, before/after measurements)."""
    from pathlib import Path

    from diffuse_lm.config import TrainConfig, config_from_dict, load_config
    from diffuse_lm.training import train as run

    for key in ("train_prompts", "test_prompts"):  # tasks built in code go into the run as task files
        if key in keys:
            keys[key] = _task_specs(keys[key])
    overrides = [f"{k}={_yaml(v)}" for k, v in keys.items()]
    if isinstance(config, TrainConfig):
        cfg = config_from_dict(config.model_dump(mode="json"), overrides=overrides)
    elif isinstance(config, str | Path):
        cfg = load_config(config, overrides)
    else:
        cfg = config_from_dict(dict(config or {}), source="train()", overrides=overrides)
    return run(cfg, progress=progress)


def task_to_dict(task: Task) -> dict:
    """A task as task-file data (what ``task_from_dict`` reads back to an equal task)."""
    data = {"name": task.name, "request": task.request, "targets": list(task.targets)}
    data["weights"] = [float(w) for w in task.weights]
    data["response"] = list(task.responses)
    data["eos"] = task.eos
    for key in ("system", "family", "description"):
        if getattr(task, key) is not None:
            data[key] = getattr(task, key)
    return data


def _task_specs(items: Any) -> list[str]:
    """Task specs for a config: names and paths as they are, each run of Task objects as one JSONL task file
    named by its content under ``$DIFFUSE_CACHE/tasks/`` (written once, never changed, so a run can resume
    from it; a dataset of thousands of rows is one file)."""
    import hashlib
    import json
    from itertools import groupby

    from diffuse_lm.files import write_text_atomic
    from diffuse_lm.models import cache_dir

    specs = []
    items = [items] if isinstance(items, Task | str) else list(items)
    for is_task, run in groupby(items, key=lambda item: isinstance(item, Task)):
        if not is_task:
            specs += list(run)
            continue
        text = "".join(json.dumps(task_to_dict(t), sort_keys=True) + "\n" for t in run)
        path = cache_dir() / "tasks" / f"tasks-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
        if not path.exists():
            write_text_atomic(path, text)
        specs.append(str(path))
    return specs


def _yaml(value: Any) -> str:
    import json

    return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value)
