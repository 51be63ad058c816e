"""What made a result: the model, the adapter (its path and a sha256 of its weights), dtype, device, package
versions and the sha256 of every task file. Every measure JSON carries it, so two results can be told apart."""

from __future__ import annotations

import functools
import hashlib
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from diffuse_lm.files import sha256_file
from diffuse_lm.task_model import Task

PACKAGES = ("diffuse-lm", "torch", "transformers", "peft", "accelerate", "safetensors", "numpy", "datasets")


def provenance(model, tasks: Iterable[Task] = ()) -> dict:
    """``{"adapter", "dtype", "device", "versions", "task_files"}`` for results of ``model`` on ``tasks``."""
    weights = model.get_input_embeddings().weight if hasattr(model, "get_input_embeddings") else None
    return {
        "adapter": adapter_provenance(model),
        "dtype": str(weights.dtype).removeprefix("torch.") if weights is not None else None,
        "device": str(weights.device) if weights is not None else None,
        "versions": package_versions(),
        "task_files": task_file_hashes(tasks),
    }


def adapter_provenance(model) -> dict | None:
    """``{"path", "sha256"}`` of the adapter file a model was loaded with (the hash ``sha256sum`` prints for
    its ``adapter_model.safetensors``); for an adapter changed since (training) or made in memory,
    ``{"path": None, "lora_sha256"}``, a hash of its LoRA weights as they are now; ``None`` without one."""
    from diffuse_lm.model_info import model_info

    saved = model_info(model)
    if saved is not None and saved.adapter is not None:  # set by models.attach_adapter, weights as saved
        return dict(saved.adapter)
    if not hasattr(model, "peft_config"):
        return None
    return {"path": None, "lora_sha256": weights_sha256(model, "adapter")}


def weights_sha256(model, part: str = "adapter", every: int = 1) -> str:
    """The one hash of a model's weights: sha256 of the names and float32 values of its LoRA parameters
    (``part="adapter"``) or of all the others (``"base"``), sorted by name; ``every`` keeps every k-th value of
    each parameter, for a cheap check of a large base (retention keys its cached answers so)."""
    if part not in ("adapter", "base"):
        raise ValueError(f"part is 'adapter' or 'base', not {part!r}")
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        if ("lora_" in name) == (part == "adapter"):
            h.update(name.encode())
            h.update(p.detach().float().flatten()[::every].cpu().numpy().tobytes())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Python's version and those of the packages a result depends on (the ones installed): the one list,
    recorded by every measure JSON and every experiment record."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    """Asked once a process (the installed packages do not change under it)."""
    versions = [("python", platform.python_version())]
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            pass
    return tuple(versions)


def task_file_hashes(tasks: Iterable[Task]) -> dict[str, str]:
    """sha256 of every file the tasks were read from (task files, a dataset mapping's data files), by path."""
    paths = dict.fromkeys(p for t in tasks for p in [t.path, *t.sources] if p)
    out = {}
    for p in paths:
        try:
            stat = Path(p).stat()
        except OSError:  # a task made in code: its "path" names it, no file
            continue
        if Path(p).is_file():
            out[p] = _cached_sha256(str(Path(p).resolve()), stat.st_size, stat.st_mtime_ns)
    return out


@functools.lru_cache(maxsize=1024)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    """A file's sha256, hashed again only when its size or mtime changes (evals during training ask often)."""
    return sha256_file(path)
