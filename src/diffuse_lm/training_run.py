"""Where a training run keeps what it records, behind one small protocol: :class:`DiskRun` (``output_dir``:
claimed, resumable, every file written whole; :mod:`diffuse_lm.run_dir` holds its files) and :class:`MemoryRun`
(no files: the log and the summary kept in memory). The training loop calls the same methods on either, and
keeps its pass and early-stopping bookkeeping in :class:`Progress`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from diffuse_lm import run_dir
from diffuse_lm.checkpoints import load_checkpoint, save_checkpoint
from diffuse_lm.config import TrainConfig
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import sha256_file, write_json_atomic
from diffuse_lm.model_info import set_model_info
from diffuse_lm.retention import load_states, save_states
from diffuse_lm.run_dir import (
    ADAPTER_DIR,
    ADAPTER_FILE,
    RETAIN_FILE,
    RETAIN_STATES,
    check_inputs_kept,
    claim,
    clear_run_files,
    open_output_dir,
    read_log,
    removed_if_left_empty,
    stage_adapter,
    swap_in_adapter,
    truncate_log,
    writing,
)
from diffuse_lm.run_guards import check_tasks_unchanged
from diffuse_lm.strict_json import loads


@dataclass
class Progress:
    """Where the run is: the step, the loss summed over the pass so far, the last whole pass's loss, and whether
    early stopping ended it. What a checkpoint's ``state.json`` keeps (with the lr schedule's state)."""

    step: int = 0
    pass_loss: float = 0.0
    last_pass_loss: float | None = None
    stopped: bool = False
    scheduler: dict | None = None

    @classmethod
    def from_state(cls, state: dict | None) -> Progress:
        return cls(**{k: v for k, v in (state or {}).items() if k in cls.__dataclass_fields__})

    def state(self) -> dict:
        """The checkpoint's scalars, in the order ``state.json`` has always had them."""
        keys = ("step", "pass_loss", "last_pass_loss", "stopped")
        kept = {k: getattr(self, k) for k in keys}
        return kept if self.scheduler is None else {**kept, "scheduler": self.scheduler}

    def add(self, loss: float, n_prompts: int) -> None:
        """One step done: its loss (a mean over its prompts) joins the pass's sum."""
        self.step += 1
        self.pass_loss += loss * n_prompts

    def end_pass(self, floor: float, cfg: TrainConfig) -> float:
        """The pass ends: returns its loss; early stopping (the original study's test) ends the run once the
        pass's loss is within ``gamma`` of its floor."""
        loss, self.last_pass_loss, self.pass_loss = self.pass_loss, self.pass_loss, 0.0
        alg = cfg.alg_config
        self.stopped = alg.early_stop and loss <= floor * (1 + alg.gamma)
        return loss

    def done(self, total: int) -> bool:
        return self.step >= total or self.stopped


class Run(Protocol):
    """What the training loop asks of a run's record. ``writing`` wraps every write; the main process writes,
    every process resumes and reads the retention answers."""

    log: list[dict]
    finished: dict | None  # the summary of this run, found finished
    kept: str  # what is kept should the run fail: for its error message
    caches: bool  # whether the base model's retention answers are kept across runs (the model cache)

    def loading(self) -> AbstractContextManager[None]: ...
    def accelerator_options(self) -> dict: ...
    def join(self, world: int, main: bool) -> None: ...
    def writing(self) -> AbstractContextManager[None]: ...
    def claim(self) -> None: ...
    def retain_answers(self, prompts: list[str]) -> dict | None: ...
    def keep_answers(self, saved: dict) -> None: ...
    def resume(self, model, opt) -> dict | None: ...
    def begin(self, step: int, names: list[str]) -> dict[str, dict | None]: ...
    def keep_before(self, results: dict[str, dict]) -> dict: ...
    def record(self, entry: dict) -> None: ...
    def checkpoint(self, model, opt, state: dict) -> None: ...
    def staging(self, model) -> AbstractContextManager[dict]: ...
    def finish(self, summary: dict) -> None: ...
    def tuned_label(self, label: str) -> str: ...
    def outcome(self, summary: dict | None) -> tuple[dict, list[dict]]: ...


class MemoryRun:
    """A run without ``output_dir``: nothing is written; the log and the summary stay in memory."""

    finished = None
    kept = "nothing was kept"
    caches = False

    def __init__(self, cfg: TrainConfig) -> None:
        if cfg.report_to != "none":
            raise DiffuseError(f"report_to: {cfg.report_to} writes its files to output_dir: give one")
        self.log: list[dict] = []

    def loading(self) -> AbstractContextManager[None]:
        return nullcontext()

    def accelerator_options(self) -> dict:
        return {}

    def join(self, world: int, main: bool) -> None:
        if world > 1:
            raise DiffuseError("output_dir: a run of several processes needs one (they share its files)")

    def writing(self) -> AbstractContextManager[None]:
        return nullcontext()

    def claim(self) -> None:
        pass

    def retain_answers(self, prompts: list[str]) -> dict | None:
        return None

    def keep_answers(self, saved: dict) -> None:
        pass

    def resume(self, model, opt) -> dict | None:
        return None

    def begin(self, step: int, names: list[str]) -> dict[str, dict | None]:
        return dict.fromkeys(names)

    def keep_before(self, results: dict[str, dict]) -> dict:
        return results

    def record(self, entry: dict) -> None:
        self.log.append(entry)

    def checkpoint(self, model, opt, state: dict) -> None:
        pass

    @contextmanager
    def staging(self, model) -> Iterator[dict]:
        yield {"output_dir": None, "adapter_dir": None}

    def finish(self, summary: dict) -> None:
        if summary["after"] is not None:
            self.record(_after_row(summary))

    def tuned_label(self, label: str) -> str:
        return f"{label} + LoRA"

    def outcome(self, summary: dict | None) -> tuple[dict, list[dict]]:
        return summary, self.log


class DiskRun:
    """A run that lives in ``out`` (today's run folder): opened (resume, refuse, or clear with ``overwrite``),
    claimed by ``config.yaml``, logged to ``train_log.jsonl``, checkpointed, finished by ``summary.json``."""

    def __init__(
        self,
        out: Path,
        cfg: TrainConfig,
        pass_len: int,
        tasks: Sequence,
        *,
        overwrite: bool = False,
        inputs: Sequence[str | Path] = (),
    ) -> None:
        self.out, self.cfg, self.log, self.main = out, cfg, [], True
        self.kept = f"the last good checkpoint in {out} is kept"
        self.caches = True
        self.made = [d for d in (out, *out.parents) if not d.exists()]  # removed if the run cannot start
        self.finished, self.clear = open_output_dir(out, cfg, pass_len, overwrite)
        if self.clear:
            retain = cfg.retain
            retain_file = (
                [retain.prompts] if retain and retain.weight > 0 and isinstance(retain.prompts, str) else []
            )
            check_inputs_kept(out, [t.path for t in tasks if t.path] + retain_file + list(inputs))
        else:
            check_tasks_unchanged(out, tasks)

    def loading(self) -> AbstractContextManager[None]:
        return removed_if_left_empty(self.made)

    def accelerator_options(self) -> dict:
        tracking = self.cfg.report_to != "none"
        return {"log_with": self.cfg.report_to, "project_dir": str(self.out)} if tracking else {}

    def join(self, world: int, main: bool) -> None:
        """This process joins the run: the main one clears an earlier run's files (``overwrite``)."""
        self.main = main
        if self.clear and main:
            with self.writing():
                clear_run_files(self.out)

    def writing(self) -> AbstractContextManager[None]:
        return writing(self.out)

    def claim(self) -> None:
        """The main process marks the folder as this run's (a rerun resumes it)."""
        if self.main:
            claim(self.out, self.cfg)

    def retain_answers(self, prompts: list[str]) -> dict | None:
        """The retention answers ``retain.json`` keeps for ``prompts``, so that a resumed run (and every
        process) uses the same ones, or None: the main process computes them; the others read its file."""
        path, saved = self.out / RETAIN_FILE, None
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except ValueError:
                saved = None
        if saved is not None and saved.get("prompts") == prompts:
            states = load_states(self.out / RETAIN_STATES, prompts, saved.get("responses") or [])
            return {**saved, "states": states}
        if not self.main:
            raise DiffuseError(f"{path}: missing (the main process writes it)")
        return None

    def keep_answers(self, saved: dict) -> None:
        path = self.out / RETAIN_FILE
        states = saved.get("states")
        if states is not None:  # first: a kill between the two leaves answers whose states are recomputed
            prompts, responses = saved["prompts"], saved["responses"]
            save_states(
                self.out / RETAIN_STATES, prompts, responses, states, same_as=saved.get("states_file")
            )
        write_json_atomic(path, {k: v for k, v in saved.items() if k not in ("states", "states_file")})

    def resume(self, model, opt) -> dict | None:
        return load_checkpoint(self.out, model, opt, warn=self.main)

    def begin(self, step: int, names: list[str]) -> dict[str, dict | None]:
        """Cut the log back to ``step``; the 'before' measurements ``names`` as this run saved them (measured
        once a run), None for each still to take. A run resumed with ``measure`` newly on has no untrained model
        to measure: none then."""
        truncate_log(self.out, step)
        if step > 0 and not (self.out / "before.json").exists():
            return {}
        return {name: self._saved(name) for name in names}

    def _saved(self, name: str) -> dict | None:
        path = self.out / f"{name}.json"
        return loads(path.read_text()) if path.exists() else None

    def keep_before(self, results: dict[str, dict]) -> dict:
        """Save the 'before' measurements not saved yet; all of them as saved (strict JSON, read back)."""
        for name, result in results.items():
            if not (self.out / f"{name}.json").exists():
                write_json_atomic(self.out / f"{name}.json", result)
        return {name: self._saved(name) for name in results}

    def record(self, entry: dict) -> None:
        self.log.append(entry)
        run_dir.append_log(self.out, entry)  # by the module's name: tests stand in for it

    def checkpoint(self, model, opt, state: dict) -> None:
        save_checkpoint(self.out, model, opt, state)

    @contextmanager
    def staging(self, model) -> Iterator[dict]:
        """``model``'s adapter written beside ``out/adapter`` while its 'after' results are taken (they name it
        as ``diffuse measure --adapter`` does); removed if they fail. Gives the summary's folders."""
        self.staged = stage_adapter(self.out, model)
        try:
            set_model_info(
                model,
                adapter={
                    "path": str(self.out / ADAPTER_DIR),
                    "sha256": sha256_file(self.staged / ADAPTER_FILE),
                },
            )
            yield {"output_dir": str(self.out), "adapter_dir": str(self.out / ADAPTER_DIR)}
        except BaseException:
            shutil.rmtree(self.staged, ignore_errors=True)
            raise

    def finish(self, summary: dict) -> None:
        """Publish the staged adapter, the 'after' results, their log row and ``summary.json``, last: its
        presence marks a finished run."""
        swap_in_adapter(self.out, self.staged)
        for name in ("after", "after_train"):
            if summary[name] is not None:
                write_json_atomic(self.out / f"{name}.json", summary[name])
        if summary["after"] is not None:
            self.record(_after_row(summary))
        write_json_atomic(self.out / "summary.json", summary)

    def tuned_label(self, label: str) -> str:
        return f"{label} + LoRA ({self.out.name})"

    def outcome(self, summary: dict | None) -> tuple[dict, list[dict]]:
        """What every process returns: the run as its folder holds it."""
        return loads((self.out / "summary.json").read_text()), read_log(self.out)


def _after_row(summary: dict) -> dict:
    from diffuse_lm.run_dir import eval_row

    return {"kind": "eval", "step": summary["steps"], "eval": eval_row(summary["after"])}


def open_run(
    cfg: TrainConfig, pass_len: int, tasks: Sequence, *, overwrite: bool = False, inputs: Sequence = ()
) -> Run:
    """The record of ``cfg``'s run: its folder when it has an ``output_dir``, else memory."""
    if cfg.output_dir is None:
        return MemoryRun(cfg)
    return DiskRun(Path(cfg.output_dir), cfg, pass_len, tasks, overwrite=overwrite, inputs=inputs)
