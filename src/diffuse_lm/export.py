"""Export a tuned adapter for use elsewhere: merged into its base model as a plain safetensors model folder
(``AutoModelForCausalLM.from_pretrained`` and vLLM load it) or as the adapter alone, each with its tokenizer and a
model card (README.md) that states the base model, the tasks, the settings and the measured before/after metrics
of the training run the adapter comes from."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData
from safetensors import SafetensorError

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import folder_atomic, held_lock, within
from diffuse_lm.model_info import (
    BASE_RECORD,
    DEFAULT_MODEL,
    DEFAULT_MODEL_HUB_ID,
    DEFAULT_MODEL_NAME,
    base_record,
    hub_base,
)

CARD_METRICS = ("mass", "kl", "normalized_entropy")


def run_files(adapter: Path) -> dict:
    """What the training run beside ``adapter`` recorded: its config and before/after measurements (empty
    when the adapter was copied out of its run folder)."""
    run, found = adapter.parent, {}
    for name in ("config.yaml", "before.json", "after.json", "summary.json"):
        try:
            if not (run / name).is_file():
                continue
            text = (run / name).read_text()
            data = yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(data, dict):  # anything else is no record of a run: left out of the card
            found[name] = data
    return found


def base_model_of(adapter: Path, run: dict) -> str:
    """The base model to merge into: the run's ``model``, else the adapter's ``diffuse_base.json``, else its
    ``base_model_name_or_path`` (the default model's cache folder, or its hub id in adapters made before the
    record, both mean the embedded model)."""
    if isinstance(run.get("config.yaml"), dict) and run["config.yaml"].get("model"):
        return str(run["config.yaml"]["model"])
    try:
        record = json.loads((adapter / BASE_RECORD).read_text())
        if isinstance(record, dict) and record.get("model"):
            return str(record["model"])
    except (OSError, ValueError):
        pass
    base = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base or not isinstance(base, str):
        raise DiffuseError(f"{adapter}: names no base model; give it with --model")
    if base == DEFAULT_MODEL_HUB_ID or Path(base).name == f"{DEFAULT_MODEL_NAME}-float32":
        return DEFAULT_MODEL
    return base


def model_card(base: str, run: dict, merged: bool) -> ModelCard:
    """README.md of an exported model: the hub's metadata (``huggingface_hub.ModelCardData``), then base model,
    tasks, settings, metrics. The default model is named as what it is, the Q4_1 GGUF de-quantized to float32,
    not as the full-precision model it was quantized from."""
    cfg = run.get("config.yaml") or {}
    hub = hub_base(base)
    record = base_record(base)
    meta = ModelCardData(
        base_model=hub,
        base_model_relation="finetune" if merged else "adapter",
        library_name="transformers" if merged else "peft",
        tags=["diffuse-lm", "lora", "distribution-matching"] + ([] if merged else ["peft"]),
        diffuse_lm={"base": record},
    )
    lines = ["---", meta.to_yaml(), "---", ""]
    kind = "merged into the base weights" if merged else "a PEFT LoRA adapter"
    lines += [
        f"# {record.get('name', hub)} tuned for diffuse answers",
        "",
        f"A LoRA fine-tune of [{hub}](https://huggingface.co/{hub}) ({kind}) made with "
        "diffuse-lm to spread its answers over each task's valid targets as wanted "
        "(the distribution-matching loss of Zhang et al., *Forcing Diffuse Distributions out of Language "
        "Models*, Eq. 5).",
        "",
        f"- **Base model:** `{hub}`",
    ]
    if record.get("weights"):
        lines += [
            f"- **Base weights:** `{record['gguf_file']}` (revision `{record['gguf_revision']}`), "
            f"{record['weights']}; quantized from `{record['quantized_from']}`, whose full-precision weights "
            "differ from these",
        ]
    if cfg:
        lines += [
            f"- **Trained on:** {', '.join(f'`{t}`' for t in _list(cfg.get('train_prompts')))}",
            f"- **Measured on:** {', '.join(f'`{t}`' for t in _list(cfg.get('test_prompts') or cfg.get('train_prompts')))}",
            "",
            "## Settings",
            "",
            "```yaml",
            yaml.safe_dump(
                {k: v for k, v in cfg.items() if k not in ("output_dir", "ckpt_dir", "load_model")},
                sort_keys=False,
            ).strip(),
            "```",
        ]
    before, after = run.get("before.json"), run.get("after.json")
    if before and after:
        lines += [
            "",
            "## Measured before and after tuning",
            "",
            "Exact probabilities by teacher forcing (no sampling): mass on the valid targets, KL(p* ‖ p) on "
            "them, and the entropy of p over them as a share of the uniform's.",
            "",
            "| task | " + " | ".join(f"{m} before | {m} after" for m in CARD_METRICS) + " |",
            "| --- |" + " ---: |" * (2 * len(CARD_METRICS)),
        ]
        pairs = zip(_dicts(before.get("tasks")), _dicts(after.get("tasks")), strict=False)
        for b, a in pairs:
            cells = [f"{_num(b.get(m))} | {_num(a.get(m))}" for m in CARD_METRICS]
            lines.append(f"| {b.get('name')} | " + " | ".join(cells) + " |")
    summary = run.get("summary.json")
    if summary:
        lines += [
            "",
            f"{summary.get('steps')} optimizer steps; final pass loss {_num(summary.get('final_loss'))}.",
        ]
    return ModelCard("\n".join(lines) + "\n")


def _num(x) -> str:
    """A metric as the card shows it; a value that is no finite number (a hand-edited file) as n/a."""
    ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
    return f"{x:.4g}" if ok else "n/a"


def _list(items) -> list:
    return items if isinstance(items, list) else []


def _dicts(items) -> list[dict]:
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def export(
    adapter: str | Path,
    output: str | Path,
    *,
    merge: bool = True,
    model: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``output``: the base model with ``adapter`` merged (safetensors) or the adapter alone, the tokenizer,
    and a model card. Returns ``output``."""
    from diffuse_lm.models import _check_adapter, load_model, resolve_model_path, write_base_record

    adapter, output = Path(adapter), Path(output).absolute()  # absolute: "." has no name to stage beside
    _check_adapter(adapter)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise DiffuseError(f"--output {output}: exists and is not empty (--overwrite to replace it)")
    if output.exists() and not output.is_dir():
        raise DiffuseError(f"--output {output}: is a file, not a folder (--overwrite replaces only a folder)")
    if _overlap(output, adapter):
        raise DiffuseError(
            f"--output {output}: holds or is inside the adapter being exported ({adapter}); "
            "choose a folder outside its training run"
        )
    run = run_files(adapter)
    base = model or base_model_of(adapter, run)
    base_dir = Path(resolve_model_path(base)).expanduser()
    if base_dir.exists() and _overlap(output, base_dir):
        raise DiffuseError(
            f"--output {output}: holds or is inside the base model being read ({base_dir}); "
            "choose a folder outside it"
        )
    card = model_card(base, run, merge)  # before the slow merge: a malformed record fails now, not after it
    with _export_lock(output):
        lm, tokenizer = load_model(base, adapter=str(adapter), device=device or "cpu", dtype=dtype)
        try:
            with folder_atomic(output, f".{output.name}.export-") as tmp:
                if merge:
                    plain = lm.merge_and_unload()
                    _clear_quantization_marker(plain)
                    plain.config._name_or_path = hub_base(base)
                    plain.save_pretrained(tmp, safe_serialization=True)
                else:
                    lm.save_pretrained(tmp, save_embedding_layers=False)
                    write_base_record(lm, tmp)
                tokenizer.save_pretrained(tmp)
                card.save(tmp / "README.md")
                _readable(tmp)
        except (OSError, SafetensorError) as e:
            why = getattr(e, "strerror", None) or _first_line(e)
            raise DiffuseError(f"--output {output}: cannot write ({why}); nothing written there") from None
    return output


@contextmanager
def _export_lock(output: Path) -> Iterator[None]:
    """One export into ``output`` at a time: a second is refused at once (two merges into one folder would
    delete each other's files); the leftovers of a killed export into it are removed under the lock."""
    with held_lock(output.parent / f".{output.name}.export-lock", f"--output {output}", "diffuse export"):
        for stale in output.parent.glob(f".{glob.escape(output.name)}.export-*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
        yield


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:120] if text else e.__class__.__name__


def _overlap(a: Path, b: Path) -> bool:
    """Is ``a`` the folder ``b``, inside it, or around it (after links)?"""
    return within(a, b) or within(b, a)


def _readable(folder: Path) -> None:
    """Give every written file the mode a plain ``open`` would (some writers stage in private 0600 files)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~mask)


def _clear_quantization_marker(model) -> None:
    """A model de-quantized on load (GGUF) keeps the quantizer's marker, which makes save_pretrained refuse;
    its weights are plain floats, so dropping the marker saves them as such (models.py does the same)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and "gguf" in type(quantizer).__name__.lower():
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def check_hub(repo: str) -> None:
    """Fail before the export when the hub cannot be reached (offline, or ``HF_HUB_OFFLINE`` set)."""
    from diffuse_lm.models import _hub_reachable, _offline

    if _offline() or not _hub_reachable():
        raise DiffuseError(f"--push-to-hub {repo}: the Hugging Face hub is not reachable (offline)")


def push_to_hub(folder: Path, repo: str) -> str:
    """Upload ``folder`` to the hub repository ``repo`` (created if missing); one line when offline."""
    check_hub(repo)
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        return str(api.upload_folder(repo_id=repo, folder_path=str(folder)))
    except Exception as e:  # auth, permissions, network: one line
        raise DiffuseError(
            f"--push-to-hub {repo}: {e.__class__.__name__}: {str(e).splitlines()[0]}"
        ) from None
