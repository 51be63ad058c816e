"""What names a model, without importing torch: the default-model sentinel and its one check, the dtype names
every option accepts, and the record of a loaded model (its label for tables, the name it was loaded by, its
saved adapter), kept beside the model object rather than patched onto it."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

DEFAULT_MODEL = "default"  # the sentinel: ``--model default``, ``model: default`` in a config
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # the embedded default model, as tables name it
DEFAULT_MODEL_HUB_ID = (
    "HuggingFaceTB/SmolLM2-135M-Instruct"  # what adapters of the default model name as base
)

# Every dtype name an option or config accepts -> torch's name for it.
DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}


def is_default_model(model: str | None) -> bool:
    """Does ``model`` (a ``--model`` value or config ``model``) name the embedded default model?"""
    return model in (None, "", DEFAULT_MODEL, DEFAULT_MODEL_NAME)


def display_name(model: str | None) -> str:
    """The label tables and results use for ``--model``: the default model's short name, else ``model``."""
    return DEFAULT_MODEL_NAME if model in (None, "", DEFAULT_MODEL) else str(model)


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`diffuse_lm.load_model` (or training) knows of a model that the model object does not say:
    ``label``, its short name in tables and results; ``name``, the ``--model`` value it was loaded by (what a
    config records); ``adapter``, ``{"path", "sha256"}`` of a saved adapter attached unchanged (provenance)."""

    label: str
    name: str | None = None
    adapter: dict | None = None


_INFO: weakref.WeakKeyDictionary[Any, ModelInfo] = weakref.WeakKeyDictionary()


def set_model_info(model: Any, info: ModelInfo | None = None, **changes: Any) -> Any:
    """Record ``info`` for ``model`` (or change fields of what it already has); returns ``model``."""
    current = info or model_info(model) or ModelInfo(label=_fallback_label(model))
    _INFO[model] = replace(current, **changes)
    return model


def model_info(model: Any) -> ModelInfo | None:
    """The record of ``model``; a PEFT model without one of its own has its base model's."""
    info = _INFO.get(model)
    if info is None and hasattr(model, "get_base_model"):
        info = _INFO.get(model.get_base_model())
    return info


def model_label(model: Any, *, short: bool = False, adapter: bool = True) -> str:
    """A short name for tables and results files: the recorded label, else the model's ``name_or_path``.
    ``short``: as progress bars name it, the last part of its path or hub id and ``+ <adapter>`` when a LoRA
    adapter is on (named by its folder, or by its run's folder for ``<run>/adapter``), without it when not
    ``adapter`` (the caller has turned it off)."""
    engine_label = getattr(model, "label", None)  # a vLLM engine's (no record: it is not hashable)
    if isinstance(engine_label, str):
        info, label = None, engine_label
    else:
        info = model_info(model)
        label = info.label if info is not None else _fallback_label(model)
    if not short:
        return label
    base, _, extra = label.partition(" + ")
    name = base.rstrip("/").rsplit("/", 1)[-1] or base
    if not adapter:
        return name
    path = (info.adapter or {}).get("path") if info is not None else getattr(model, "adapter", None)
    if isinstance(path, str | PurePath) and str(path):
        p = PurePath(path)
        return f"{name} + {p.parent.name if p.name == 'adapter' else p.name}"
    if extra:
        return f"{name} + {extra}"
    return f"{name} + adapter" if hasattr(model, "peft_config") else name


def _fallback_label(model: Any) -> str:
    return getattr(model, "name_or_path", None) or "model"
