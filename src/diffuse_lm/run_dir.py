"""A training run's folder (``output_dir``): which files a run writes and deletes, whether a folder holds this
run (resume), another (refused unless ``overwrite``) or someone else's files (refused), the log, the claim
(``config.yaml``) and the published adapter. Every file here is written whole or not at all."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from diffuse_lm.checkpoints import (
    CHECKPOINT_DIR,
    POINTER,
    latest_state,
    latest_step,
    private_dir,
)
from diffuse_lm.config import TrainConfig, config_to_yaml
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import within, write_text_atomic
from diffuse_lm.models import write_base_record
from diffuse_lm.run_guards import LOCK_FILE, check_finite_results
from diffuse_lm.strict_json import dumps, loads
from diffuse_lm.training_setup import TRACKER_DIR

ADAPTER_DIR = "adapter"
ADAPTER_FILE = "adapter_model.safetensors"  # what PEFT's save_pretrained writes (safetensors)
RETAIN_FILE = "retain.json"  # the general prompts and the base model's answers of the retention term
RETAIN_STATES = "retain.safetensors"  # the base decoder's states along those answers (retention.save_states)
# The files a run writes (bar its checkpoints): all that ``overwrite`` ever deletes of an earlier run.
RUN_FILES = (
    "config.yaml",
    "train_log.jsonl",
    "summary.json",
    POINTER,
    RETAIN_FILE,
    RETAIN_STATES,
    "before.json",
    "before_train.json",
    "after.json",
    "after_train.json",
    "before_after.png",
    ADAPTER_DIR,
    TRACKER_DIR,
)
TEMP_PREFIXES = (".probe-tmp-", ".config-tmp-", ".adapter-tmp-", ".checkpoint-tmp-")  # left only by a kill
# Keys a resumed run may change; any other difference from the saved config is an error.
RESUMABLE = {
    "alg_config.n_iters",
    "alg_config.max_steps",
    "alg_config.early_stop",
    "alg_config.gamma",
    "eval_every",
    "measure",
    "checkpoint_every",
    "device",
    "output_dir",
    "report_to",
    "gradient_checkpointing",
    "fsdp",
}


def _check_same_run(out: Path, cfg: TrainConfig) -> None:
    """A run folder may only be resumed with the config it was started with (bar RESUMABLE keys)."""
    import yaml

    def flat(d: dict, pre: str = "") -> dict:
        return {
            k2: v2
            for k, v in d.items()
            for k2, v2 in (flat(v, f"{pre}{k}.") if isinstance(v, dict) else {f"{pre}{k}": v}).items()
        }

    try:
        saved = yaml.safe_load((out / "config.yaml").read_text()) or {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise DiffuseError(f"{out / 'config.yaml'}: unreadable ({e.__class__.__name__})") from None
    if not isinstance(saved, dict):
        raise DiffuseError(f"{out / 'config.yaml'}: not a run's config")
    saved, now = flat(saved), flat(cfg.model_dump(mode="json"))
    for key in sorted(set(saved) | set(now)):
        field = TrainConfig.model_fields.get(key)
        if key not in saved and field is not None and now[key] == field.default:
            continue  # a key added since that run was saved, at its default: the same run
        top = key.split(".")[0]
        written = any(k == top or k.startswith(f"{top}.") for k in saved)  # every run writes every block
        if field is None and not written:
            raise DiffuseError(
                f"{out}: its config.yaml has no {key}, so it is not a run of this config (a file of yours, or "
                "a run of an older diffuse-lm); use another output_dir, or --overwrite to replace a run there"
            )
        if key not in RESUMABLE and saved.get(key) != now.get(key):
            raise DiffuseError(
                f"{out}: holds a run with {key}={saved.get(key)!r}, not {now.get(key)!r}; "
                "use another output_dir, or --overwrite to replace that run"
            )


def append_log(out: Path, entry: dict) -> None:
    with open(out / "train_log.jsonl", "a") as f:
        f.write(dumps(entry) + "\n")


def truncate_log(out: Path, step: int) -> None:
    """Keep only log entries of steps a resumed run will not redo (drops a torn last line too)."""
    path, keep = out / "train_log.jsonl", []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("step", 0) <= step:
                keep.append(line)
    write_text_atomic(path, "".join(s + "\n" for s in keep))


def read_log(out: Path) -> list[dict]:
    """The entries of ``out/train_log.jsonl``, in order (a torn last line is skipped)."""
    entries = []
    for line in (out / "train_log.jsonl").read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue
    return entries


def _finished(out: Path, total_steps: int) -> dict | None:
    """The summary of a finished run in ``out`` (all steps done, or stopped early), if there is one."""
    try:
        summary = loads((out / "summary.json").read_text())
        state = latest_state(out)
    except (OSError, ValueError, KeyError):
        return None
    if not isinstance(summary, dict) or not (state.get("stopped") or state.get("step", 0) >= total_steps):
        return None
    # where the run is now, not where it was written (a copied or moved run folder)
    adapter = str(out / ADAPTER_DIR) if summary.get("adapter_dir") is not None else None
    return {**summary, "output_dir": str(out), "adapter_dir": adapter}


def count_steps(cfg: TrainConfig, n_prompts: int) -> int:
    """The run's optimizer steps: ``n_iters`` passes over ``n_prompts``, ``prompts_per_step`` a step, at most
    ``max_steps`` (the step budget)."""
    alg = cfg.alg_config
    steps = alg.n_iters * math.ceil(n_prompts / alg.prompts_per_step)
    return steps if alg.max_steps is None else min(steps, alg.max_steps)


def _is_run_file(path: Path) -> bool:
    """Is ``path`` a file or folder that a training run writes into its output_dir?"""
    name = path.name
    return name in RUN_FILES or bool(CHECKPOINT_DIR.fullmatch(name)) or name.startswith(TEMP_PREFIXES)


def _foreign(out: Path) -> list[str]:
    """Names in ``out`` that no run writes (and temporary leftovers are not): files of someone else."""
    return sorted(
        p.name for p in out.iterdir() if not p.name.startswith(TEMP_PREFIXES) and p.name != LOCK_FILE
    )


def clear_run_files(out: Path) -> None:
    """``overwrite``: delete what an earlier run wrote in ``out`` (only those names), so none of it is reused."""
    for path in out.iterdir():
        if _is_run_file(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def check_inputs_kept(out: Path, inputs: Sequence[str | Path]) -> None:
    """Refuse an ``overwrite`` that would delete one of the run's own inputs (a config or task file kept
    under a name a run writes, such as ``out/config.yaml``)."""
    for given in inputs:
        if any(within(given, out / name) for name in RUN_FILES):
            raise DiffuseError(
                f"output_dir {out}: --overwrite would delete {given}, an input of this run; "
                "choose another output_dir"
            )


def open_output_dir(
    out: Path, cfg: TrainConfig, n_prompts: int, overwrite: bool = False
) -> tuple[dict | None, bool]:
    """Check ``out`` can hold this run. Returns the summary if it already holds this run, finished, and
    whether an earlier run's files there must be cleared first (``overwrite`` of another run, or of a folder
    holding other files: without ``overwrite`` both are refused, so a run never deletes what it did not write)."""
    if out.exists() and not out.is_dir():
        raise DiffuseError(f"output_dir {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".probe-tmp-")
        probe.close()
    except OSError as e:
        raise DiffuseError(f"output_dir {out}: cannot write there ({e.strerror or e})") from None
    if (out / "config.yaml").exists():
        try:
            _check_same_run(out, cfg)
        except DiffuseError:
            if not overwrite:
                raise
            return None, True
        return _finished(out, count_steps(cfg, n_prompts)), False
    foreign = _foreign(out)
    named = [name for name in foreign if _is_run_file(out / name)]
    if named and overwrite:  # no run ever claimed this folder (no config.yaml): its summary.json is someone's
        raise DiffuseError(
            f"output_dir {out}: holds {named[0]} but no config.yaml, so no run wrote it; --overwrite replaces "
            "only a run's own files: use another output_dir, or move it"
        )
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DiffuseError(
            f"output_dir {out}: holds files of no run of this config ({shown}); use an empty or new "
            "folder, or --overwrite to train there anyway (it replaces only a run's own files)"
        )
    return None, bool(foreign)


@contextmanager
def removed_if_left_empty(made: Sequence[Path]) -> Iterator[None]:
    """When the block fails, remove the folders ``made`` (deepest first, as a run's ``mkdir`` created them)
    that are still empty: a run that could not start (a model path that does not exist) leaves no empty
    output folder behind."""
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()  # only an empty folder
            except FileNotFoundError:  # another process of the run removed it already
                continue
            except OSError:
                break
        raise


@contextmanager
def writing(out: Path) -> Iterator[None]:
    """A full disk or a folder turned read-only while the run writes: one line, not a traceback; the last
    checkpoint is intact (a checkpoint is published only once written whole)."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, SafetensorError) as e:
        why = getattr(e, "strerror", None) or str(e).strip().splitlines()[0][:80] or e.__class__.__name__
        step = latest_step(out)
        kept = f"the checkpoint of step {step} is intact" if step else "no checkpoint was written yet"
        raise DiffuseError(f"output_dir {out}: cannot write ({why}); {kept}, rerun to resume") from None


def claim(out: Path, cfg: TrainConfig) -> None:
    """Main process, once the model has loaded and before any other file is written: ``config.yaml``, which
    marks the folder as this run's (so a rerun resumes it), and the removal of temporary leftovers of a kill."""
    for stale in out.iterdir():
        if stale.name.startswith(TEMP_PREFIXES) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        elif stale.name.startswith(TEMP_PREFIXES):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config-tmp-", dir=out)  # whole or absent: other processes read it
    with os.fdopen(fd, "w") as f:
        f.write(config_to_yaml(cfg))
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "config.yaml")


def publish_adapter(out: Path, model) -> Path:
    """Save ``model``'s LoRA adapter as ``out/adapter`` (written beside it, then swapped in)."""
    return swap_in_adapter(out, stage_adapter(out, model))


def stage_adapter(out: Path, model) -> Path:
    """``model``'s LoRA adapter written to a temporary folder in ``out``, to swap in once its results are in."""
    tmp = private_dir(out, ".adapter-tmp-")
    model.save_pretrained(tmp, save_embedding_layers=False)  # LoRA only: no hub lookup of the base
    write_base_record(model, tmp)
    return tmp


def swap_in_adapter(out: Path, staged: Path) -> Path:
    adapter = out / ADAPTER_DIR
    shutil.rmtree(adapter, ignore_errors=True)
    os.replace(staged, adapter)
    return adapter


# --- what a run records at the end ---------------------------------------------------------------


def eval_row(result: dict) -> dict:
    """A measure result as a log's eval row: the four headline metrics of each task, by name."""
    keys = ("mass", "kl", "entropy", "normalized_entropy")
    return {t["name"]: {k: t[k] for k in keys} for t in result["tasks"]}


def summarize(head: dict, info: dict, before: dict, after: dict) -> dict:
    """The summary of a finished run: its folders (``head``), ``info``, and the 'after' measurements (by
    suffix: ``""``, ``"_train"``) beside the 'before' ones; refused when a result is not finite."""
    summary = {**head, **info, "before": None, "after": None, "before_train": None, "after_train": None}
    for suffix, result in after.items():
        summary[f"after{suffix}"] = result
        summary[f"before{suffix}"] = before.get(f"before{suffix}")
    check_finite_results(after, info["steps"])
    return summary
