"""diffuse-lm: measure and fix how far a language model's distribution over valid answers is from the
wanted one (Zhang et al., "Forcing Diffuse Distributions out of Language Models").

The public API is imported lazily, so ``import diffuse_lm`` stays fast (no torch until it is used)::

    from diffuse_lm import load_model, make_task, measure, sample, train
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from diffuse_lm.errors import DiffuseError

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "diffuse_lm.models",
    "default_model_path": "diffuse_lm.models",
    "Task": "diffuse_lm.task_model",
    "load_tasks": "diffuse_lm.tasks",
    "tasks_from_dataset": "diffuse_lm.dataset_tasks",
    "make_task": "diffuse_lm.api",
    "measure": "diffuse_lm.api",
    "Measurement": "diffuse_lm.measuring",
    "sample": "diffuse_lm.api",
    "train": "diffuse_lm.api",
    "TrainResult": "diffuse_lm.training",
    "TrainConfig": "diffuse_lm.config",
    "model_label": "diffuse_lm.model_info",
    "distribution_matching_loss": "diffuse_lm.training_step",
    "kl_divergence": "diffuse_lm.metrics",
    "entropy": "diffuse_lm.metrics",
    "expected_coverage": "diffuse_lm.metrics",
    "renormalize": "diffuse_lm.metrics",
    "mass": "diffuse_lm.metrics",
    "distribution_metrics": "diffuse_lm.metrics",
    "wilson_interval": "diffuse_lm.metrics",
}
__all__ = ["DiffuseError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'diffuse_lm' has no attribute {name!r}")
