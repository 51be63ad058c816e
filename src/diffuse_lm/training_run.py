"""Where a training run keeps what it records, behind one small protocol: :class:`DiskRun` (``output_dir``:
claimed, resumable, every file written whole; :mod:`diffuse_lm.run_dir` holds its files) and :class:`MemoryRun`
(no files: the log and the summary kept in memory). The training loop calls the same methods on either, and
keeps its pass and early-stopping bookkeeping in :class:`Progress`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from diffuse_lm import run_dir
from diffuse_lm.checkpoints import load_checkpoint, save_checkpoint
from diffuse_lm.config import TrainConfig
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_json_atomic
from diffuse_lm.run_dir import (
    RETAIN_FILE,
    check_inputs_kept,
    claim,
    clear_run_files,
    finish,
    open_output_dir,
    read_log,
    removed_if_left_empty,
    summarize,
    truncate_log,
    writing,
)
from diffuse_lm.run_guards import check_tasks_unchanged
from diffuse_lm.strict_json import loads

Measures = dict[str, Callable[[], dict]]  # file-name stem ("before", "after_train", …) -> its measurement


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

    def loading(self) -> AbstractContextManager[None]: ...
    def accelerator_options(self) -> dict: ...
    def join(self, world: int, main: bool) -> None: ...
    def writing(self) -> AbstractContextManager[None]: ...
    def claim(self) -> None: ...
    def retain_answers(self, prompts: list[str], answer: Callable[[bool], list[str]]) -> dict: ...
    def resume(self, model, opt) -> dict | None: ...
    def begin(self, step: int, before: Measures) -> dict: ...
    def record(self, entry: dict) -> None: ...
    def checkpoint(self, model, opt, state: dict) -> None: ...
    def finish(self, model, before: dict, after: Measures, info: dict) -> dict: ...
    def tuned_label(self, label: str) -> str: ...
    def outcome(self, summary: dict | None) -> tuple[dict, list[dict]]: ...


class MemoryRun:
    """A run without ``output_dir``: nothing is written; the log and the summary stay in memory."""

    finished = None
    kept = "nothing was kept"

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

    def retain_answers(self, prompts: list[str], answer: Callable[[bool], list[str]]) -> dict:
        return {"prompts": prompts, "responses": answer(False)}  # not kept across runs either

    def resume(self, model, opt) -> dict | None:
        return None

    def begin(self, step: int, before: Measures) -> dict:
        return {name: fn() for name, fn in before.items()}

    def record(self, entry: dict) -> None:
        self.log.append(entry)

    def checkpoint(self, model, opt, state: dict) -> None:
        pass

    def finish(self, model, before: dict, after: Measures, info: dict) -> dict:
        summary = summarize(None, None, before, after, info)
        if summary["after"] is not None:
            self.record(_after_row(summary))
        return summary

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

    def retain_answers(self, prompts: list[str], answer: Callable[[bool], list[str]]) -> dict:
        """The retention answers kept in ``retain.json``, so a resumed run (and every process) uses the same
        ones; the main process computes them once (cached across runs), the others read its file."""
        path, saved = self.out / RETAIN_FILE, None
        if path.exists():
            try:
                saved = json.loads(path.read_text())
            except ValueError:
                saved = None
        if saved is None or saved.get("prompts") != prompts:
            if not self.main:
                raise DiffuseError(f"{path}: missing (the main process writes it)")
            saved = {
                "max_new_tokens": self.cfg.retain.max_new_tokens,
                "prompts": prompts,
                "responses": answer(True),
            }
            write_json_atomic(path, saved)
        return saved

    def resume(self, model, opt) -> dict | None:
        return load_checkpoint(self.out, model, opt, warn=self.main)

    def begin(self, step: int, before: Measures) -> dict:
        """The log cut back to ``step``, and the 'before' measurements: measured once a run, read back after.
        A run resumed with ``measure`` newly on has no untrained model to measure: none then."""
        truncate_log(self.out, step)
        if step > 0 and not (self.out / "before.json").exists():
            before = {}
        for name, fn in before.items():
            if not (self.out / f"{name}.json").exists():
                write_json_atomic(self.out / f"{name}.json", fn())
        return {name: loads((self.out / f"{name}.json").read_text()) for name in before}

    def record(self, entry: dict) -> None:
        self.log.append(entry)
        run_dir.append_log(self.out, entry)  # by the module's name: tests stand in for it

    def checkpoint(self, model, opt, state: dict) -> None:
        save_checkpoint(self.out, model, opt, state)

    def finish(self, model, before: dict, after: Measures, info: dict) -> dict:
        return finish(self.out, model, before, after, info, lambda summary: self.record(_after_row(summary)))

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
