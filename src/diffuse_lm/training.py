"""Distribution-matching LoRA fine-tuning (the paper's Section 3 and Appendix A): the training recipe.

A run tunes a fresh LoRA adapter (or continues ``ckpt_dir``'s) on a model loaded by name, or on one the caller
holds: setup steps (:mod:`diffuse_lm.training_setup`: model, data, optimizer), then a loop whose step is
:func:`diffuse_lm.training_step.train_step`, measured by an :class:`Evaluation`. What a run records goes to a
:class:`~diffuse_lm.training_run.Run`: with ``output_dir`` its folder, holding the final adapter in ``adapter/``
(PEFT, safetensors), ``config.yaml``, ``train_log.jsonl``, before/after measurements, ``summary.json`` and the
last two checkpoints, from which a rerun resumes (:mod:`diffuse_lm.run_dir`); without ``output_dir`` memory:
nothing is written, and the tuned model comes back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffuse_lm.config import TrainConfig
from diffuse_lm.errors import DiffuseError
from diffuse_lm.measuring import Measurement, measure_task_sets
from diffuse_lm.model_info import model_info, model_label, set_model_info
from diffuse_lm.run_dir import count_steps, eval_row, read_log, summarize
from diffuse_lm.run_guards import holding_output_dir
from diffuse_lm.tasks import Task
from diffuse_lm.training_run import Progress, Run, open_run
from diffuse_lm.training_setup import (  # noqa: F401  (prepare_retention: imported from here)
    TRACKER_DIR,
    TrainData,
    check_4bit,
    check_report_to,
    load_data,
    prepare_retention,
    scheduler_state,
    setup_data,
    setup_model,
    setup_optimizer,
    setup_retention,
    shard_model,
    tracker_config,
)
from diffuse_lm.training_step import (  # noqa: F401  (the loss and the step: imported from here)
    Step,
    _shard,
    distribution_matching_loss,
    loss_floor,
    mass_weight_at,
    pass_length,
    pass_order,
    step_description,
    step_prompts,
    train_step,
)


@dataclass
class TrainResult:
    """What a training run gives back. ``model`` is the tuned PEFT model (``None`` only when ``output_dir``
    held this run finished and no model was passed); ``adapter_dir`` is the saved adapter (``None`` without
    ``output_dir``); ``losses`` the loss of every step (Eq. 5); ``before``/``after`` the measurements of the
    test tasks; ``summary`` what ``summary.json`` holds (the CLI prints it)."""

    model: Any
    tokenizer: Any
    adapter_dir: Path | None
    steps: int
    losses: list[float]
    before: Measurement | None  # None: run with measure off
    after: Measurement | None
    summary: dict
    log: list[dict] = field(default_factory=list, repr=False)  # train_log.jsonl's entries


# --- the model and what the run measures ---------------------------------------------------------


def _check_held(cfg: TrainConfig, model, tokenizer) -> TrainConfig:
    """A model the caller holds: it needs its tokenizer, cannot be re-loaded in 4 bit, and names the run's
    ``model`` (what ``config.yaml`` records) by the name it was loaded with."""
    if model is None:
        return cfg
    if tokenizer is None:
        raise DiffuseError("train(model=...): pass the model's tokenizer too (tokenizer=...)")
    if cfg.load_in_4bit:
        raise DiffuseError("load_in_4bit: loads the model by name; pass a model loaded in 4 bit instead")
    if hasattr(model, "peft_config"):
        raise DiffuseError(
            "train(model=...): the model already has a PEFT adapter; pass its base model "
            "(model.unload()), or continue a saved adapter with load_model=true, ckpt_dir=..."
        )
    info = model_info(model)
    return cfg.model_copy(update={"model": (info and info.name) or model_label(model)})


def _measure(model, tokenizer, tasks, label: str, cfg: TrainConfig) -> dict:
    return _measure_sets(model, tokenizer, [tasks], label, cfg)[0]


def _measure_sets(
    model, tokenizer, task_sets: list[list[Task]], label: str, cfg: TrainConfig, progress: bool = False
) -> list[dict]:
    model.eval()
    results = measure_task_sets(
        model, tokenizer, task_sets, max_batch_tokens=cfg.max_batch_tokens, progress=progress
    )
    return [{**r, "model": label} for r in results]


@dataclass
class Evaluation:
    """What a run measures, and when: the test tasks (and the training tasks, when the test tasks differ)
    before and after training, and the test tasks' headline metrics every ``eval_every`` steps."""

    cfg: TrainConfig
    model: Any
    tokenizer: Any
    train_tasks: list[Task]
    eval_tasks: list[Task]
    everywhere: bool = False  # every process measures (FSDP: a forward needs them all), the main one keeps it
    progress: bool = False  # a progress bar on the before/after measurements

    def due(self, step: int, total: int) -> bool:
        return bool(self.cfg.eval_every) and step % self.cfg.eval_every == 0 and step < total

    def row(self, label: str) -> dict:
        """The eval row logged every ``eval_every`` steps."""
        return eval_row(_measure(self.model, self.tokenizer, self.eval_tasks, label, self.cfg))

    def suffixes(self) -> list[str]:
        """The before/after measurements by file-name suffix: ``""`` the test tasks, ``"_train"`` the training
        tasks (when they differ); none with ``measure`` off."""
        cfg = self.cfg
        if not cfg.measure:
            return []
        differ = cfg.test_prompts and sorted(cfg.test_prompts) != sorted(cfg.train_prompts)
        return ["", "_train"] if differ else [""]

    def measure(self, suffixes: list[str], label: str) -> dict[str, dict]:
        """The before/after measurements of ``suffixes`` (:meth:`suffixes`) by suffix, its model named ``label``;
        a task both sets hold is scored once."""
        sets = [self.train_tasks if suffix == "_train" else self.eval_tasks for suffix in suffixes]
        results = (
            _measure_sets(self.model, self.tokenizer, sets, label, self.cfg, self.progress) if sets else []
        )
        return dict(zip(suffixes, results, strict=True))

    def before(self, saved: dict[str, dict | None], label: str) -> dict:
        """The 'before' measurements by name (``before``, ``before_train``): as the run saved them, or taken now."""
        missing = [n.removeprefix("before") for n, r in saved.items() if r is None]
        taken = self.measure(missing, label)
        return {n: r if r is not None else taken[n.removeprefix("before")] for n, r in saved.items()}

    def after(self, label: str) -> dict:
        """The 'after' measurements, by suffix; under FSDP every process takes them (the main one keeps them)."""
        return self.measure(self.suffixes(), label)


def _track(acc, entry: dict, row: dict | None) -> None:
    """A step's numbers (and an eval row) to the trackers: ``train/loss``, ``eval/<task>/kl`` …"""
    keys = ("loss", "floor", "grad_norm", "lr", "retain_kl", "pass_loss")
    values = {f"train/{k}": entry[k] for k in keys if k in entry}
    for task, metrics in (row or {}).items():
        values.update({f"eval/{task}/{k}": v for k, v in metrics.items() if v is not None})
    if values:
        acc.log(values, step=entry["step"])


def _result(summary: dict, model, tokenizer, log: list[dict]) -> TrainResult:
    adapter = summary.get("adapter_dir")
    return TrainResult(
        model=model,
        tokenizer=tokenizer,
        adapter_dir=Path(adapter) if adapter else None,
        steps=summary["steps"],
        losses=[e["loss"] for e in log if e.get("kind") == "train"],
        before=Measurement.from_json(summary["before"]) if summary.get("before") else None,
        after=Measurement.from_json(summary["after"]) if summary.get("after") else None,
        summary=summary,
        log=log,
    )


def _finished_result(summary: dict, model, tokenizer) -> TrainResult:
    """This run, found finished in its folder: its adapter attached to the caller's model, when one was passed."""
    if model is not None:
        from diffuse_lm.models import attach_adapter

        model = attach_adapter(model, summary["adapter_dir"])
    return _result(summary, model, tokenizer, read_log(Path(summary["output_dir"])))


def _check_step(step: int, loss: float, norm: float, kl: float | None, run: Run) -> None:
    if not (math.isfinite(loss) and math.isfinite(norm) and (kl is None or math.isfinite(kl))):
        raise DiffuseError(
            f"step {step + 1}: the loss or its gradient is not finite (loss {loss}, grad norm {norm}); "
            f"stopped before saving it: {run.kept} (too high an lr, or lora.alpha / lora.r?)"
        )


def _pass_floor(data: TrainData, cfg: TrainConfig, pass_index: int) -> float:
    """The floor of the prompts a pass visited (each once, unless families are balanced)."""
    if data.families is None:
        return sum(data.floors)
    return sum(
        data.floors[i]
        for i in pass_order(len(data.encoded), cfg.seed, pass_index, data.families, data.family_weights)
    )


def _final_floor(data: TrainData, cfg: TrainConfig, done: Progress) -> float:
    """The floor ``final_loss`` is read against: that of the last whole pass (with families balanced a pass
    visits some prompts more than once and others not at all), else of every prompt once."""
    if done.step < data.steps_per_pass:  # no whole pass yet: final_loss is None
        return sum(data.floors)
    return _pass_floor(data, cfg, done.step // data.steps_per_pass - 1)


def _record_step(run: Run, done: Progress, entry: dict, row: dict | None, total: int, model, opt, every: int):
    """Main process, after a step: its log line, its eval row (if one was due), and a checkpoint every
    ``every`` steps and at the end."""
    run.record(entry)
    if row is not None:
        run.record({"kind": "eval", "step": done.step, "eval": row})
    if done.done(total) or (every and done.step % every == 0):
        run.checkpoint(model, opt, done.state())


# --- the run ---------------------------------------------------------------------------------------


@holding_output_dir  # its lock, throughout: no second run writes the same folder at the same time
def train(
    cfg: TrainConfig,
    *,
    model=None,
    tokenizer=None,
    tasks: Sequence[Task] | None = None,
    eval_tasks: Sequence[Task] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    inputs: Sequence[str | Path] = (),
) -> TrainResult:
    """Run (or resume, or return the finished) training run of ``cfg``. ``model``/``tokenizer``: tune this
    model rather than load ``cfg.model``; ``tasks``/``eval_tasks``: train on and measure these rather than
    load ``cfg.train_prompts``/``cfg.test_prompts``. With ``cfg.output_dir`` the run lives there (resumable);
    ``overwrite`` trains in a folder that holds other files or another config's run, replacing that run's files
    (other files are left alone, and a run's file that is one of its inputs, such as ``inputs``' config file,
    is refused); without it such a folder is refused. Without ``output_dir`` nothing is written."""
    from accelerate import Accelerator

    cfg = _check_held(cfg, model, tokenizer)
    data = load_data(cfg, tasks, eval_tasks)  # before the model: a bad task fails at once
    check_report_to(cfg.report_to)
    check_4bit(cfg)
    run = open_run(
        cfg, data.pass_len, [*data.train_tasks, *data.eval_tasks], overwrite=overwrite, inputs=inputs
    )
    if run.finished is not None:
        return _finished_result(run.finished, model, tokenizer)
    acc = Accelerator(cpu=cfg.device == "cpu" or not torch.cuda.is_available(), **run.accelerator_options())
    run.join(acc.num_processes, acc.is_main_process)
    torch.manual_seed(cfg.seed)
    with run.loading():
        device = cfg.device if acc.num_processes == 1 else str(acc.device)
        held, (model, loaded) = model is not None, setup_model(cfg, device, model)
    tokenizer = tokenizer if held else loaded
    setup_data(data, model, tokenizer)  # before the folder is claimed
    total = count_steps(cfg, data.pass_len)
    params, opt, sched = setup_optimizer(cfg, model, total)
    with acc.main_process_first(), run.writing():  # the main process claims the folder, and answers first
        run.claim()
        setup_retention(data, run, model, tokenizer, cfg, progress)
    done = Progress.from_state(run.resume(model, opt))
    if sched is not None and done.scheduler is not None:
        sched.load_state_dict(done.scheduler)
    if cfg.report_to != "none":
        with run.writing():
            acc.init_trackers(TRACKER_DIR, config=tracker_config(cfg))
    sharded = cfg.fsdp and acc.num_processes > 1
    shows = progress and acc.is_main_process
    evaluation = Evaluation(
        cfg, model, tokenizer, data.train_tasks, data.eval_tasks, everywhere=sharded, progress=shows
    )
    label, before, t_start = model_label(model), {}, time.time()
    if acc.is_main_process:  # 'before': the model whole, measured by the main process alone
        with run.writing():
            saved = run.begin(done.step, [f"before{s}" for s in evaluation.suffixes()])
            before = run.keep_before(evaluation.before(saved, label))
    acc.wait_for_everyone()
    if sharded:
        shard_model(model)
    share = (0, 1) if sharded else (acc.process_index, acc.num_processes)  # this process's share of targets
    _loop(cfg, run, acc, model, opt, sched, params, data, evaluation, done, total, progress, share)
    return _finish(cfg, run, acc, model, tokenizer, data, evaluation, done, total, before, t_start)


def _loop(
    cfg, run, acc, model, opt, sched, params, data, evaluation, done: Progress, total, progress, share
) -> None:
    """The optimizer steps from ``done.step`` to the last (or an early stop): each logged, and measured and
    checkpointed when due, by the main process."""
    short = model_label(model, short=True, adapter=False)
    bar = _progress_bar(short, data, done.step, total, progress and acc.is_main_process)
    while not done.done(total):
        model.train()
        step, t0 = done.step, time.time()
        idx = step_prompts(
            len(data.encoded),
            cfg.alg_config.prompts_per_step,
            cfg.seed,
            step,
            data.families,
            data.family_weights,
        )
        bar.set_description(step_description(short, data.encoded, idx), refresh=False)
        lr = opt.param_groups[0]["lr"]  # this step's
        loss, norm, kl = train_step(
            model,
            opt,
            params,
            [data.encoded[i] for i in idx],
            cfg,
            rank=share[0],
            world=share[1],
            retain=_retain_batch(data, cfg, step),
            mass_weight=mass_weight_at(cfg, step, total),
        )
        _check_step(step, loss, norm, kl, run)
        if sched is not None:
            sched.step()
        done.add(loss, len(idx))
        entry = {
            "kind": "train",
            "step": done.step,
            "pass": step // data.steps_per_pass + 1,
            "loss": loss,
            "floor": float(np.mean([data.floors[i] for i in idx])),
            "grad_norm": norm,
            "lr": lr,
            "seconds": time.time() - t0,
            **({"retain_kl": kl} if kl is not None else {}),
        }
        if done.step % data.steps_per_pass == 0:  # end of a pass: the original study's early-stopping test
            pass_floor = _pass_floor(data, cfg, step // data.steps_per_pass)
            entry["pass_loss"], entry["pass_floor"] = done.end_pass(pass_floor, cfg), pass_floor
        if sched is not None:
            done.scheduler = scheduler_state(sched)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", floor=f"{entry['floor']:.3f}")
        row = None
        if evaluation.due(done.step, total) and (acc.is_main_process or evaluation.everywhere):
            row = evaluation.row(model_label(model))
        if acc.is_main_process:
            with run.writing():
                _record_step(run, done, entry, row, total, model, opt, cfg.checkpoint_every)
        if cfg.report_to != "none":
            _track(acc, entry, row)
    bar.close()


def _progress_bar(short: str, data: TrainData, step: int, total: int, shown: bool):
    from tqdm.auto import tqdm

    n = len(data.encoded)
    desc = f"train {short}: {n} task{'s' * (n != 1)}"
    return tqdm(total=total, initial=step, desc=desc, unit="step", disable=not shown)


def _retain_batch(data: TrainData, cfg: TrainConfig, step: int) -> list:
    """The retention examples of ``step`` (``retain.per_step`` of them, in a seeded order), or none."""
    if not data.retain:
        return []
    return [data.retain[i] for i in step_prompts(len(data.retain), cfg.retain.per_step, cfg.seed, step)]


def _finish(
    cfg, run, acc, model, tokenizer, data, evaluation, done: Progress, total, before, t_start
) -> TrainResult:
    """The main process measures the tuned model and records the run's summary; every process returns it."""
    tuned = run.tuned_label(model_label(model))
    set_model_info(model, label=tuned)  # measure(result.model) names it so
    summary = None
    if acc.is_main_process:
        info = {
            "steps": done.step,
            "total_steps": total,
            "passes": math.ceil(done.step / data.steps_per_pass),
            "early_stopped": bool(done.stopped),
            "final_loss": done.last_pass_loss,
            "floor": _final_floor(data, cfg, done),
            "train_seconds": time.time() - t_start,
            "world_size": acc.num_processes,
            "fsdp": evaluation.everywhere,  # the decoder layers were sharded across the processes
        }
        with run.writing():
            with run.staging(model) as head:  # the adapter, staged: the 'after' results name it
                summary = summarize(head, info, before, evaluation.after(tuned))
            run.finish(summary)
        if cfg.report_to != "none" and summary["after"] is not None:
            _track(acc, {"step": done.step}, eval_row(summary["after"]))
    elif evaluation.everywhere:
        evaluation.after(tuned)  # FSDP: the main process's measurements need this one's forwards
    if cfg.report_to != "none":
        acc.end_training()
    acc.wait_for_everyone()
    model.eval()
    summary, log = run.outcome(summary)
    return _result(summary, model, tokenizer, log)
