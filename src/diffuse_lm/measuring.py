"""Exact measurement of tasks: score every target, renormalise, compute the metrics, build the JSON."""

from __future__ import annotations

import numpy as np
import torch

from diffuse_lm.encoding import encode_tasks
from diffuse_lm.metrics import distribution_metrics
from diffuse_lm.models import model_label
from diffuse_lm.scoring import score_task
from diffuse_lm.tasks import Task


@torch.no_grad()
def measure_tasks(model, tokenizer, tasks: list[Task], *, progress: bool = False, **score_kw) -> dict:
    """The ``diffuse measure`` result: ``{"model": ..., "tasks": [per-task metrics and targets]}``."""
    from tqdm.auto import tqdm

    encoded = encode_tasks(tokenizer, tasks)
    rows = []
    for enc in tqdm(encoded, desc="measuring", unit="task", disable=not progress or len(encoded) < 2):
        logprobs = score_task(model, enc, **score_kw).double().cpu().numpy()
        rows.append(task_result(enc.task, logprobs))
    return {"model": model_label(model), "tasks": rows}


def task_result(task: Task, logprobs: np.ndarray) -> dict:
    """One task's entry of the measure JSON from its targets' raw log-probabilities."""
    metrics = distribution_metrics(logprobs, task.weights)
    probs = np.exp(logprobs - logprobs.max())
    probs /= probs.sum()
    return {
        "name": task.name,
        "path": task.path,
        **metrics,
        "targets": [
            {"target": t, "weight": float(w), "logprob": float(lp), "prob": float(p)}
            for t, w, lp, p in zip(task.targets, task.weights, logprobs, probs, strict=True)
        ],
    }


def top_answers(task_row: dict, k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable targets with their renormalised probabilities."""
    ranked = sorted(task_row["targets"], key=lambda t: -t["prob"])[:k]
    return [(t["target"], t["prob"]) for t in ranked]
