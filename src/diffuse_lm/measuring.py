"""Exact measurement of tasks: score every target, renormalise, compute the metrics, build the JSON."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from diffuse_lm.encoding import encode_tasks
from diffuse_lm.metrics import distribution_metrics, ordered_metrics, renormalize
from diffuse_lm.model_info import model_label
from diffuse_lm.provenance import provenance
from diffuse_lm.scoring import check_fits, score_task
from diffuse_lm.task_model import Task


@dataclass
class Measurement:
    """Exact metrics of each task under one model (the ``diffuse measure`` JSON): mass on the valid answers,
    KL to the wanted distribution, entropy, … and every target's probability; ``provenance`` names the
    adapter (path and sha256), dtype, device, package versions and the task files' hashes."""

    model: str
    tasks: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict | str | os.PathLike) -> Measurement:
        """A measure JSON (what ``diffuse measure --output`` writes) as a record: the parsed dict, or its path."""
        if isinstance(data, str | os.PathLike):
            return cls.load(data)
        return cls(data["model"], data["tasks"], data.get("provenance") or {})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Measurement:
        """Read ``diffuse measure -o m.json`` (or a train run's before.json / after.json) from its path."""
        from diffuse_lm.strict_json import loads

        return cls.from_json(loads(Path(path).read_text()))

    def to_json(self) -> dict:
        return {"model": self.model, "provenance": self.provenance, "tasks": self.tasks}

    def to_pandas(self, *, targets: bool = False):
        """One row a task (``targets=False``) or one row a target (the table ``measure --rows`` writes), as a
        pandas DataFrame."""
        import pandas as pd

        if targets:
            return pd.DataFrame(target_rows(self.to_json()))
        return pd.DataFrame([{k: v for k, v in t.items() if k != "targets"} for t in self.tasks])

    def __getitem__(self, name: str) -> dict:
        """The result of the task called ``name``."""
        for t in self.tasks:
            if t["name"] == name:
                return t
        raise KeyError(name)


@torch.no_grad()
def measure_tasks(
    model, tokenizer, tasks: list[Task], *, progress: bool = False, coverage_n: int = 1000, **score_kw
) -> dict:
    """The ``diffuse measure`` result: ``{"model", "provenance" (adapter and its hash, dtype, device, versions,
    task file hashes: :mod:`diffuse_lm.provenance`), "tasks": [per-task metrics and targets]}``; each task's
    ``expected_coverage_<coverage_n>`` is the expected Coverage of that many samples."""
    from tqdm.auto import tqdm

    encoded = encode_tasks(tokenizer, [with_valid(t) for t in tasks])
    for enc in encoded:
        check_fits(model, enc)  # every task before the first is scored: a refusal comes before any work
    rows = []
    label = model_label(model, short=True)
    # by targets (valid answers included), not tasks: one task of 100,000 targets shows its progress too
    total = sum(e.n_targets for e in encoded)
    bar = tqdm(total=total, desc=f"measure {label}", unit="target", disable=not progress)
    for task, enc in zip(tasks, encoded, strict=True):
        bar.set_description(f"measure {label}: {task.name}")
        tick = {"on_batch": lambda batch, _: bar.update(len(batch))} if progress else {}
        logprobs = score_task(model, enc, **tick, **score_kw).double().cpu().numpy()
        n = len(task.targets)
        rows.append(
            task_result(task, logprobs[:n], logprobs[n:] if task.valid else None, coverage_n=coverage_n)
        )
    bar.close()
    return {"model": model_label(model), "provenance": provenance(model, tasks), "tasks": rows}


def measure_task_sets(model, tokenizer, task_sets: list[list[Task]], **kw) -> list[dict]:
    """One :func:`measure_tasks` result for each list of ``task_sets``, each task that several lists share
    scored once (a training run's test tasks are often among its training tasks)."""
    unique: dict[tuple, Task] = {}
    for tasks in task_sets:
        for t in tasks:
            unique.setdefault(task_key(t), t)
    whole = measure_tasks(model, tokenizer, list(unique.values()), **kw)
    rows = {k: row for k, row in zip(unique, whole["tasks"], strict=True)}
    out = []
    for tasks in task_sets:
        keys = [task_key(t) for t in tasks]
        # the provenance names the set's own task files; the union's serves the set that is the union
        prov = whole["provenance"] if keys == list(unique) else provenance(model, tasks)
        out.append({**whole, "provenance": prov, "tasks": [rows[k] for k in keys]})
    return out


def task_key(task: Task) -> tuple:
    """What makes two tasks measure the same: their name, chat turns, targets with weights, valid answers."""
    turns = (task.system, task.request, task.responses, task.eos)
    return (task.name, turns, task.targets, task.weights.tobytes(), task.valid, task.values, task.path)


def with_valid(task: Task) -> Task:
    """``task`` with its broader valid answers appended to the targets (weight 0), so that one scoring pass
    gives the targets' and the valid answers' log-probabilities, the first ``len(task.targets)`` the targets';
    encoding checks that the whole set is prefix-free."""
    if not task.valid:
        return task
    weights = np.concatenate([task.weights, np.zeros(len(task.valid))])
    return replace(task, targets=task.valid_set, weights=weights)


def task_result(
    task: Task, logprobs: np.ndarray, valid_logprobs: np.ndarray | None = None, *, coverage_n: int = 1000
) -> dict:
    """One task's entry of the measure JSON from its targets' raw log-probabilities (and those of its
    broader valid answers, which count in ``valid_mass`` and the yields)."""
    metrics = distribution_metrics(
        logprobs, task.weights, coverage_n=coverage_n, valid_logprobs=valid_logprobs
    )
    probs = renormalize(logprobs)
    if task.values is not None:  # an ordered numeric support: KS, W1, mean and sd too
        metrics.update(ordered_metrics(np.array(task.values), probs, task.weights))
    return {
        "name": task.name,
        "path": task.path,
        **metrics,
        "targets": [
            {"target": t, "weight": float(w), "logprob": float(lp), "prob": float(p)}
            for t, w, lp, p in zip(task.targets, task.weights, logprobs, probs, strict=True)
        ],
    }


def measure_task(model, tokenizer, task: Task) -> dict:
    """The ``measure`` row of one task (exact probabilities of its targets at temperature 1)."""
    return measure_tasks(model, tokenizer, [task])["tasks"][0]


def top_answers(task_row: dict, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable targets with their renormalised probabilities."""
    ranked = sorted(task_row["targets"], key=lambda t: -t["prob"])[:k]
    return [(t["target"], t["prob"]) for t in ranked]


def target_rows(result: dict) -> list[dict]:
    """The measure result as a flat table, one row a target (for pandas, Parquet): the model and adapter on
    every row, so that the rows of many results concatenate."""
    adapter = (result.get("provenance") or {}).get("adapter") or {}
    head = {
        "model": result["model"],
        "adapter": adapter.get("path"),
        "adapter_sha256": adapter.get("sha256") or adapter.get("lora_sha256"),
    }
    return [
        {**head, "task": t["name"], "task_path": t.get("path"), "target_index": i, **target}
        for t in result["tasks"]
        for i, target in enumerate(t["targets"])
    ]


def describe_provenance(result: dict) -> str:
    """One line for a table title: the model, its adapter (path and hash), dtype and device."""
    prov = result.get("provenance") or {}
    parts = [f"model: {result['model']}"]
    adapter = prov.get("adapter")
    if adapter:
        digest = adapter.get("sha256") or adapter.get("lora_sha256")
        parts.append(f"adapter: {adapter.get('path') or '(in memory)'} (sha256 {digest[:12]})")
    if prov.get("dtype"):
        parts.append(f"{prov['dtype']} on {prov.get('device')}")
    return " · ".join(parts)
