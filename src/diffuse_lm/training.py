"""Distribution-matching LoRA fine-tuning (the paper's Section 3 and Appendix A): the training loop.

A run tunes a fresh LoRA adapter (or continues ``ckpt_dir``'s) on a model loaded by name, or on one the caller
holds. One step is :func:`diffuse_lm.training_step.train_step`. With ``output_dir`` a run lives there: the final
adapter in ``adapter/`` (PEFT, safetensors), ``config.yaml``, ``train_log.jsonl``, before/after measurements,
``summary.json`` and the last two checkpoints, from which a rerun resumes (:mod:`diffuse_lm.run_dir`). Without
``output_dir`` nothing is written: the tuned model comes back in memory.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffuse_lm.checkpoints import load_checkpoint
from diffuse_lm.config import TrainConfig
from diffuse_lm.encoding import encode_tasks
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_json_atomic
from diffuse_lm.measuring import Measurement, measure_tasks
from diffuse_lm.model_info import model_info, model_label, set_model_info
from diffuse_lm.retention import RetainExample, base_responses, encode_examples, load_retain_prompts
from diffuse_lm.run_dir import (
    RETAIN_FILE,
    check_inputs_kept,
    claim,
    clear_run_files,
    count_steps,
    eval_row,
    finish,
    open_output_dir,
    read_log,
    removed_if_left_empty,
    write_before,
    write_step,
    writing,
)
from diffuse_lm.run_guards import check_tasks_unchanged, holding_output_dir
from diffuse_lm.scoring import check_fits
from diffuse_lm.strict_json import loads
from diffuse_lm.tasks import Task, load_tasks, task_family
from diffuse_lm.training_setup import (
    TRACKER_DIR,
    check_4bit,
    check_report_to,
    enable_gradient_checkpointing,
    quantization_config,
    scheduler,
    scheduler_state,
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


def _setup_model(cfg: TrainConfig, device: str, held=None):
    """Base model + a fresh LoRA adapter (or the one in ``ckpt_dir`` when ``load_model``), trainable. ``held``
    is a model the caller passed: wrapped where it is (peft injects the LoRA layers in place), not loaded."""
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.models import attach_adapter, load_model, peft_wrapping

    tokenizer = None
    if held is None:
        model, tokenizer = load_model(
            cfg.model,
            device=device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            adapter=cfg.ckpt_dir if cfg.load_model else None,
            trainable_adapter=True,
            quantization_config=quantization_config(cfg) if cfg.load_in_4bit else None,
        )
    else:
        model = attach_adapter(held, cfg.ckpt_dir, trainable=True) if cfg.load_model else held
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if not cfg.load_model:
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        try:
            with peft_wrapping():  # peft reads a deprecated transformers property (a FutureWarning)
                model = get_peft_model(model, lora)
        except ValueError as e:
            raise DiffuseError(f"lora.target_modules: {str(e).splitlines()[0]}") from None
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model, tokenizer


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
    model.eval()
    result = measure_tasks(model, tokenizer, tasks, max_batch_tokens=cfg.max_batch_tokens)
    result["model"] = label
    return result


def _retain_examples(
    out: Path | None, model, tokenizer, cfg: TrainConfig, prompts: list[str], main: bool, progress: bool
) -> list[RetainExample]:
    """The retention examples of this run: the base model's answers, kept in ``out/retain.json`` so a
    resumed run (and every process) uses the same ones; the main process computes them once (cached by
    weights and prompts across runs), the others read its file. Without ``out``, computed and not kept."""
    path = out / RETAIN_FILE if out else None
    saved = None
    if path is not None and path.exists():
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            saved = None
    if saved is None or saved.get("prompts") != prompts:
        if not main:
            raise DiffuseError(f"{path}: missing (the main process writes it)")
        responses = _base_answers(model, tokenizer, cfg, prompts, cached=out is not None, progress=progress)
        saved = {"max_new_tokens": cfg.retain.max_new_tokens, "prompts": prompts, "responses": responses}
        if path is not None:
            write_json_atomic(path, saved)
    return encode_examples(tokenizer, saved["prompts"], saved["responses"])


def _base_answers(
    model, tokenizer, cfg: TrainConfig, prompts: list[str], *, cached: bool, progress: bool
) -> list[str]:
    """The base model's answers to the retention prompts; with ``cached``, kept across runs in the model
    cache (keyed by the weights, the prompts and the answer length)."""
    from diffuse_lm.models import cache_dir

    cache = cache_dir() / "retain" if cached else None
    return base_responses(
        model, tokenizer, prompts, cfg.retain.max_new_tokens, cache=cache, progress=progress
    )


def prepare_retention(cfg: TrainConfig, progress: bool = False) -> None:
    """Compute and cache the base model's answers to ``cfg``'s retention prompts as a run of ``cfg`` does,
    so that runs started side by side find them rather than each computing them."""
    if cfg.retain is None or cfg.retain.weight <= 0:
        return
    model, tokenizer = _setup_model(cfg, cfg.device)  # the run's model: its weights' fingerprint is the key
    _base_answers(
        model, tokenizer, cfg, load_retain_prompts(cfg.retain.prompts), cached=True, progress=progress
    )


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


def _finished_result(out: Path, summary: dict, model, tokenizer) -> TrainResult:
    """This run, found finished in ``out``: its adapter attached to the caller's model, when one was passed."""
    if model is not None:
        from diffuse_lm.models import attach_adapter

        model = attach_adapter(model, summary["adapter_dir"])
    return _result(summary, model, tokenizer, read_log(out))


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
    from tqdm.auto import tqdm

    out = Path(cfg.output_dir) if cfg.output_dir else None
    cfg = _check_held(cfg, model, tokenizer)
    train_tasks = list(tasks) if tasks is not None else load_tasks(cfg.train_prompts)  # before the model
    if eval_tasks is None:
        eval_tasks = load_tasks(cfg.test_prompts) if cfg.test_prompts else train_tasks
    retaining = cfg.retain is not None and cfg.retain.weight > 0
    retain_prompts = load_retain_prompts(cfg.retain.prompts) if retaining else []
    check_report_to(cfg.report_to)
    check_4bit(cfg)
    tracking = cfg.report_to != "none"
    if out is None and tracking:
        raise DiffuseError(f"report_to: {cfg.report_to} writes its files to output_dir: give one")
    made = [d for d in (out, *out.parents) if not d.exists()] if out is not None else []  # removed on failure
    families = [task_family(t) for t in train_tasks] if cfg.alg_config.balance == "families" else None
    pass_len = pass_length(len(train_tasks), families)
    done, clear = open_output_dir(out, cfg, pass_len, overwrite) if out else (None, False)
    if out is not None and not clear:
        check_tasks_unchanged(out, [*train_tasks, *eval_tasks])
    if clear:
        retain_file = [cfg.retain.prompts] if retaining and isinstance(cfg.retain.prompts, str) else []
        files = [t.path for t in [*train_tasks, *eval_tasks] if t.path] + retain_file + list(inputs)
        check_inputs_kept(out, files)
    if done is not None:
        return _finished_result(out, done, model, tokenizer)
    acc = Accelerator(
        cpu=cfg.device == "cpu" or not torch.cuda.is_available(),
        **({"log_with": cfg.report_to, "project_dir": str(out)} if tracking else {}),
    )
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    if out is None and world > 1:
        raise DiffuseError("output_dir: a run of several processes needs one (they share its files)")
    if clear and main:
        with writing(out):
            clear_run_files(out)
    torch.manual_seed(cfg.seed)
    held = model is not None
    with removed_if_left_empty(made):
        model, loaded_tokenizer = _setup_model(cfg, cfg.device if world == 1 else str(acc.device), model)
    tokenizer = tokenizer if held else loaded_tokenizer
    label = model_label(model)
    train_enc = encode_tasks(tokenizer, train_tasks)
    for enc in [*train_enc, *encode_tasks(tokenizer, eval_tasks)]:
        check_fits(model, enc)  # before the folder is claimed: a task past the context is refused up front
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    total_steps = count_steps(cfg, pass_len)
    sched = scheduler(cfg, opt, total_steps)
    steps_per_pass = math.ceil(pass_len / cfg.alg_config.prompts_per_step)
    floors = [loss_floor(e.weights) for e in train_enc]

    def evaluate() -> dict:  # the eval row logged every eval_every steps
        return eval_row(_measure(model, tokenizer, eval_tasks, label, cfg))

    def measurements(name: str) -> dict:  # file-name suffix -> measuring function
        if not cfg.measure:
            return {}
        fns = {"": lambda: _measure(model, tokenizer, eval_tasks, name, cfg)}
        if cfg.test_prompts and sorted(cfg.test_prompts) != sorted(cfg.train_prompts):
            fns["_train"] = lambda: _measure(model, tokenizer, train_tasks, name, cfg)
        return fns

    if main and out is not None:
        with writing(out):
            claim(out, cfg)
    acc.wait_for_everyone()
    retain: list[RetainExample] = []
    if retaining and main:
        with writing(out):
            retain = _retain_examples(out, model, tokenizer, cfg, retain_prompts, main, progress)
    acc.wait_for_everyone()
    if retaining and not main:
        retain = _retain_examples(out, model, tokenizer, cfg, retain_prompts, main, progress)
    state = load_checkpoint(out, model, opt, warn=main) if out is not None else None
    state = state or {"step": 0, "pass_loss": 0.0, "last_pass_loss": None, "stopped": False}
    if sched is not None and "scheduler" in state:
        sched.load_state_dict(state["scheduler"])
    if tracking:
        with writing(out):
            acc.init_trackers(TRACKER_DIR, config=tracker_config(cfg))
    before: dict = {}
    if main:
        with writing(out):
            # 'before' is the untrained model: a run resumed with measure newly on has none to measure
            fresh = state["step"] == 0 or out is None or (out / "before.json").exists()
            before = write_before(
                out, state["step"], {f"before{k}": f for k, f in measurements(label).items()} if fresh else {}
            )
    acc.wait_for_everyone()

    short = model_label(model, short=True, adapter=False)
    bar = tqdm(
        total=total_steps,
        initial=state["step"],
        desc=f"train {short}: {len(train_enc)} task{'s' * (len(train_enc) != 1)}",
        unit="step",
        disable=not (progress and main),
    )
    log: list[dict] = []
    t_start, step = time.time(), state["step"]
    while step < total_steps and not state["stopped"]:
        model.train()
        idx = step_prompts(len(train_enc), cfg.alg_config.prompts_per_step, cfg.seed, step, families)
        bar.set_description(step_description(short, train_enc, idx), refresh=False)
        t0 = time.time()
        batch = (
            [retain[i] for i in step_prompts(len(retain), cfg.retain.per_step, cfg.seed, step)]
            if retain
            else []
        )
        lr = opt.param_groups[0]["lr"]  # this step's
        loss, norm, kl = train_step(
            model,
            opt,
            params,
            [train_enc[i] for i in idx],
            cfg,
            rank=rank,
            world=world,
            retain=batch,
            mass_weight=mass_weight_at(cfg, step, total_steps),
        )
        if not (math.isfinite(loss) and math.isfinite(norm) and (kl is None or math.isfinite(kl))):
            kept = f"the last good checkpoint in {out} is kept" if out else "nothing was kept"
            raise DiffuseError(
                f"step {step + 1}: the loss or its gradient is not finite (loss {loss}, grad norm {norm}); "
                f"stopped before saving it: {kept} (too high an lr, or lora.alpha / lora.r?)"
            )
        if sched is not None:
            sched.step()
        step += 1
        floor = float(np.mean([floors[i] for i in idx]))
        state["pass_loss"] += loss * len(idx)
        entry = {
            "kind": "train",
            "step": step,
            "pass": (step - 1) // steps_per_pass + 1,
            "loss": loss,
            "floor": floor,
            "grad_norm": norm,
            "lr": lr,
            "seconds": time.time() - t0,
            **({"retain_kl": kl} if kl is not None else {}),
        }
        if step % steps_per_pass == 0:  # end of a pass: the original study's early-stopping test
            # the floor of the prompts this pass visited (each once, unless families are balanced)
            visited = pass_order(len(train_enc), cfg.seed, (step - 1) // steps_per_pass, families)
            pass_floor = sum(floors) if families is None else sum(floors[i] for i in visited)
            entry["pass_loss"], entry["pass_floor"] = state["pass_loss"], pass_floor
            state["last_pass_loss"], state["pass_loss"] = state["pass_loss"], 0.0
            gamma = cfg.alg_config.gamma
            state["stopped"] = cfg.alg_config.early_stop and entry["pass_loss"] <= pass_floor * (1 + gamma)
        state["step"] = step
        if sched is not None:
            state["scheduler"] = scheduler_state(sched)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", floor=f"{floor:.3f}")
        row = None
        if main:
            with writing(out):
                row = write_step(out, model, opt, state, entry, cfg, total_steps, evaluate, log)
        if tracking:
            _track(acc, entry, row if main else None)
    bar.close()

    tuned = f"{label} + LoRA ({out.name})" if out is not None else f"{label} + LoRA"
    set_model_info(model, label=tuned)  # measure(result.model) names it so
    summary = None
    if main:
        info = {
            "steps": step,
            "total_steps": total_steps,
            "passes": math.ceil(step / steps_per_pass),
            "early_stopped": bool(state["stopped"]),
            "final_loss": state["last_pass_loss"],
            "floor": sum(floors),
            "train_seconds": time.time() - t_start,
            "world_size": world,
        }
        with writing(out):
            summary = finish(out, model, before, measurements(tuned), info, log)
        if tracking and summary["after"] is not None:
            _track(acc, {"step": step}, eval_row(summary["after"]))
    if tracking:
        acc.end_training()
    acc.wait_for_everyone()
    model.eval()
    if out is None:
        return _result(summary, model, tokenizer, log)
    return _result(loads((out / "summary.json").read_text()), model, tokenizer, read_log(out))
