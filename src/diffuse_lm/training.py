"""Distribution-matching LoRA fine-tuning (the paper's Section 3 and Appendix A).

One optimizer step = ``prompts_per_step`` prompts (the paper: one). For each prompt, ``score_task`` scores
micro-batches of at most ``batch_size`` targets (a task that fits one packed row is a single forward and
backward) and backpropagates each micro-batch's loss at once; the step's gradient is clipped and AdamW
takes one step. Under ``torchrun`` every process takes a share of
each prompt's targets and the LoRA gradients are summed across processes before clipping, so the loss
curve is the single-process one. A run lives in ``output_dir``: the final adapter in ``adapter/`` (PEFT,
safetensors), ``config.yaml``, ``train_log.jsonl``, before/after measurements, ``summary.json`` and the
last two checkpoints (``checkpoint-NNNNNN/``, named with their checksums by ``checkpoint.json``), from which a
rerun resumes. A run deletes only files it writes, and a folder holding other files but no ``config.yaml`` of a
run is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist

from diffuse_lm.checkpoints import (
    CHECKPOINT_DIR,
    POINTER,
    latest_state,
    latest_step,
    load_checkpoint,
    private_dir,
    save_checkpoint,
)
from diffuse_lm.config import TrainConfig, config_to_yaml
from diffuse_lm.encoding import EncodedTask, encode_tasks
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_json_atomic
from diffuse_lm.measuring import measure_tasks
from diffuse_lm.metrics import entropy
from diffuse_lm.retention import (
    RetainExample,
    base_responses,
    encode_examples,
    load_retain_prompts,
    retention_kl,
)
from diffuse_lm.scoring import score_task
from diffuse_lm.tasks import load_tasks
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

ADAPTER_DIR = "adapter"
RETAIN_FILE = "retain.json"  # the general prompts and the base model's answers of the retention term
# The files a run writes (bar its checkpoints): all that ``overwrite`` ever deletes of an earlier run.
RUN_FILES = (
    "config.yaml",
    "train_log.jsonl",
    "summary.json",
    POINTER,
    RETAIN_FILE,
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
    "alg_config.early_stop",
    "alg_config.gamma",
    "eval_every",
    "checkpoint_every",
    "device",
    "output_dir",
    "report_to",
    "gradient_checkpointing",
}


def distribution_matching_loss(logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 5 of the paper: L = −Σ_y p*(y | x) · log p_θ(y | x) = KL(p* ‖ p_θ) + Entropy(p*).

    ``logprobs`` are sequence log-probabilities of (some of) a prompt's targets, ``weights`` their p*.
    The sum splits over any partition of the targets, so micro-batches and processes add up to it.
    """
    return -(weights.to(logprobs.dtype) * logprobs).sum()


def loss_floor(weights: np.ndarray) -> float:
    """The minimum of the loss over one prompt: Entropy(p*), reached when p_θ = p* on the targets."""
    return entropy(weights)


# --- one step ------------------------------------------------------------------------------------


def _shard(enc: EncodedTask, rank: int, world: int) -> EncodedTask | None:
    """This process's share of a prompt's targets: length-sorted, dealt round-robin (balanced work)."""
    if world == 1:
        return enc
    order = sorted(range(enc.n_targets), key=lambda i: (len(enc.target_ids[i]), i))[rank::world]
    if not order:
        return None
    return EncodedTask(
        enc.task,
        enc.prompt_ids,
        [enc.target_ids[i] for i in order],
        [enc.starts[i] for i in order],
        enc.weights[order],
    )


def _all_reduce_grads(params: list[torch.nn.Parameter], *scalars: torch.Tensor) -> torch.Tensor:
    """Sum the gradients (and ``scalars``) over processes in one flat buffer; returns the summed scalars."""
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params]
        + [x.reshape(1).float() for x in scalars]
    )
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype)
        offset += p.numel()
    return flat[offset:]


class Step(NamedTuple):
    loss: float  # Eq. 5, averaged over the step's prompts
    grad_norm: float
    retain_kl: float | None  # mean KL(base ‖ tuned) per answer token of the step's general prompts


def train_step(
    model,
    opt,
    params,
    prompts: list[EncodedTask],
    cfg: TrainConfig,
    *,
    rank: int = 0,
    world: int = 1,
    retain: Sequence[RetainExample] = (),
) -> Step:
    """One optimizer step on ``prompts`` (Eq. 5 averaged over them) plus, given ``retain`` examples, the
    retention term ``cfg.retain.weight`` × their mean KL(base ‖ tuned) per answer token."""
    device = params[0].device
    total = torch.zeros((), device=device)
    bf16 = cfg.mixed_precision == "bf16"
    for enc in prompts:
        mine = _shard(enc, rank, world)
        if mine is None:
            continue
        weights = torch.tensor(mine.weights, dtype=torch.float32, device=device)

        def on_batch(idx: list[int], logprobs: torch.Tensor, weights=weights) -> torch.Tensor:
            nonlocal total
            loss = distribution_matching_loss(logprobs, weights[idx]) / len(prompts)
            total = total + loss.detach()
            return loss

        with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
            score_task(
                model,
                mine,
                max_batch_tokens=cfg.max_batch_tokens,
                max_batch_targets=cfg.alg_config.batch_size,
                on_batch=on_batch,
                prompt_per_batch=cfg.gradient_checkpointing,
            )
    kl = torch.zeros((), device=device)
    if retain:
        mine = list(retain)[rank::world]
        n_tokens = sum(len(e.response_ids) for e in retain)  # over all processes: their sum is the mean
        if mine:
            with torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext():
                kl_sum, _ = retention_kl(model, mine)
            (cfg.retain.weight * kl_sum / n_tokens).backward()
            kl = kl_sum.detach() / n_tokens
    if world > 1:
        total = _all_reduce_grads(params, total, kl)
        total, kl = total[0], total[1]
    norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm or math.inf)  # inf: no clipping
    opt.step()
    opt.zero_grad(set_to_none=True)
    return Step(float(total), float(norm), float(kl) if retain else None)


def step_prompts(n_prompts: int, per_step: int, seed: int, step: int) -> list[int]:
    """Indices of the prompts of global ``step``: each pass visits all prompts in an order drawn from
    (seed, pass), so a resumed run replays exactly the steps an uninterrupted one would take."""
    steps_per_pass = math.ceil(n_prompts / per_step)
    order = np.random.default_rng([seed, step // steps_per_pass]).permutation(n_prompts)
    k = step % steps_per_pass
    return [int(i) for i in order[k * per_step : (k + 1) * per_step]]


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
        if key not in RESUMABLE and saved.get(key) != now.get(key):
            raise DiffuseError(
                f"{out}: holds a run with {key}={saved.get(key)!r}, not {now.get(key)!r}; "
                "use another output_dir, or --overwrite to replace that run"
            )


# --- the run -------------------------------------------------------------------------------------


def _retain_examples(
    out: Path, model, tokenizer, cfg: TrainConfig, prompts: list[str], main: bool, progress: bool
) -> list[RetainExample]:
    """The retention examples of this run: the base model's answers, kept in ``out/retain.json`` so a
    resumed run (and every process) uses the same ones; the main process computes them once (cached by
    weights and prompts across runs), the others read its file."""
    from diffuse_lm.models import cache_dir

    path = out / RETAIN_FILE
    saved = None
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except ValueError:
            saved = None
    if saved is None or saved.get("prompts") != prompts:
        if not main:
            raise DiffuseError(f"{path}: missing (the main process writes it)")
        responses = base_responses(
            model,
            tokenizer,
            prompts,
            cfg.retain.max_new_tokens,
            cache=cache_dir() / "retain",
            progress=progress,
        )
        saved = {"max_new_tokens": cfg.retain.max_new_tokens, "prompts": prompts, "responses": responses}
        write_json_atomic(path, saved)
    return encode_examples(tokenizer, saved["prompts"], saved["responses"])


def _setup_model(cfg: TrainConfig, device: str):
    """Base model + a fresh LoRA adapter (or the one in ``ckpt_dir`` when ``load_model``), trainable."""
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.models import load_model

    model, tokenizer = load_model(
        cfg.model,
        device=device,
        dtype=cfg.dtype,
        trust_remote_code=cfg.trust_remote_code,
        adapter=cfg.ckpt_dir if cfg.load_model else None,
        trainable_adapter=True,
        quantization_config=quantization_config(cfg) if cfg.load_in_4bit else None,
    )
    label = model.name_or_path_display
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
            model = get_peft_model(model, lora)
        except ValueError as e:
            raise DiffuseError(f"lora.target_modules: {str(e).splitlines()[0]}") from None
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    model.name_or_path_display = label
    return model, tokenizer


def _measure(model, tokenizer, tasks, label: str, cfg: TrainConfig) -> dict:
    model.eval()
    result = measure_tasks(model, tokenizer, tasks, max_batch_tokens=cfg.max_batch_tokens)
    result["model"] = label
    return result


def _eval_row(result: dict) -> dict:
    keys = ("mass", "kl", "entropy", "normalized_entropy")
    return {t["name"]: {k: t[k] for k in keys} for t in result["tasks"]}


def _strict(value):
    """``value`` with every non-finite float as null, so every line is JSON that strict readers accept."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _log(out: Path, entry: dict) -> None:
    with open(out / "train_log.jsonl", "a") as f:
        f.write(json.dumps(_strict(entry), allow_nan=False) + "\n")


def _truncate_log(out: Path, step: int) -> None:
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
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(s + "\n" for s in keep))
    os.replace(tmp, path)


def _write_step(
    out: Path, model, opt, state: dict, entry: dict, cfg: TrainConfig, total_steps: int, evaluate
) -> dict | None:
    """Main process, after a step: its log line, an evaluation every ``eval_every`` steps (``evaluate()``
    gives its row, returned) and a checkpoint every ``checkpoint_every`` steps and at the end."""
    step, row = state["step"], None
    _log(out, entry)
    if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
        row = evaluate()
        _log(out, {"kind": "eval", "step": step, "eval": row})
    if step == total_steps or state["stopped"] or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
        save_checkpoint(out, model, opt, state)
    return row


def _track(acc, entry: dict, row: dict | None) -> None:
    """A step's numbers (and an eval row) to the trackers: ``train/loss``, ``eval/<task>/kl`` …"""
    keys = ("loss", "floor", "grad_norm", "lr", "retain_kl", "pass_loss")
    values = {f"train/{k}": entry[k] for k in keys if k in entry}
    for task, metrics in (row or {}).items():
        values.update({f"eval/{task}/{k}": v for k, v in metrics.items() if v is not None})
    if values:
        acc.log(values, step=entry["step"])


def _finished(out: Path, total_steps: int) -> dict | None:
    """The summary of a finished run in ``out`` (all steps done, or stopped early), if there is one."""
    try:
        summary = json.loads((out / "summary.json").read_text())
        state = latest_state(out)
    except (OSError, ValueError, KeyError):
        return None
    return summary if state.get("stopped") or state.get("step", 0) >= total_steps else None


def _total_steps(cfg: TrainConfig, n_prompts: int) -> int:
    return cfg.alg_config.n_iters * math.ceil(n_prompts / cfg.alg_config.prompts_per_step)


def _is_run_file(path: Path) -> bool:
    """Is ``path`` a file or folder that a training run writes into its output_dir?"""
    name = path.name
    return name in RUN_FILES or bool(CHECKPOINT_DIR.fullmatch(name)) or name.startswith(TEMP_PREFIXES)


def _foreign(out: Path) -> list[str]:
    """Names in ``out`` that no run writes (and temporary leftovers are not): files of someone else."""
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(TEMP_PREFIXES))


def _clear_run_files(out: Path) -> None:
    """``overwrite``: delete what an earlier run wrote in ``out`` (only those names), so none of it is reused."""
    for path in out.iterdir():
        if _is_run_file(path):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def _open_output_dir(
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
        return _finished(out, _total_steps(cfg, n_prompts)), False
    foreign = _foreign(out)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DiffuseError(
            f"output_dir {out}: holds files of no run of this config ({shown}); use an empty or new "
            "folder, or --overwrite to train there anyway (it replaces only a run's own files)"
        )
    return None, bool(foreign)


@contextmanager
def _writing(out: Path) -> Iterator[None]:
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


def _claim(out: Path, cfg: TrainConfig) -> None:
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


def _start(out: Path, step: int, measure: dict) -> None:
    """Main process, before the first step: the log, and the 'before' measurements (once a run)."""
    _truncate_log(out, step)
    for name, fn in measure.items():
        if not (out / f"{name}.json").exists():
            write_json_atomic(out / f"{name}.json", fn())


def _finish(out: Path, model, measure: dict, info: dict) -> dict:
    """Main process, after the last step: the adapter, the 'after' measurements and the summary."""
    adapter = out / ADAPTER_DIR
    tmp = private_dir(out, ".adapter-tmp-")
    model.save_pretrained(tmp, save_embedding_layers=False)  # LoRA only: no hub lookup of the base
    shutil.rmtree(adapter, ignore_errors=True)
    os.replace(tmp, adapter)
    summary = {
        "output_dir": str(out),
        "adapter_dir": str(adapter),
        **info,
        "before": None,
        "after": None,
        "before_train": None,
        "after_train": None,
    }
    for name, fn in measure.items():
        summary[f"after{name}"] = fn()
        summary[f"before{name}"] = json.loads((out / f"before{name}.json").read_text())
        write_json_atomic(out / f"after{name}.json", summary[f"after{name}"])
    _log(out, {"kind": "eval", "step": info["steps"], "eval": _eval_row(summary["after"])})
    write_json_atomic(out / "summary.json", summary)  # last: its presence marks a finished run
    return summary


def train(cfg: TrainConfig, *, progress: bool = True, overwrite: bool = False) -> dict:
    """Run (or resume, or return the finished) training run of ``cfg`` in ``cfg.output_dir``; returns
    the summary: output_dir, adapter_dir, steps, final_loss, floor, before/after measurements and more.
    ``overwrite`` trains in a folder that holds other files or another config's run, replacing that run's
    files (other files are left alone); without it such a folder is refused."""
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out = Path(cfg.output_dir)
    train_tasks = load_tasks(cfg.train_prompts)  # bad task specs fail before the model loads
    eval_tasks = load_tasks(cfg.eval_prompts)
    retaining = cfg.retain is not None and cfg.retain.weight > 0
    retain_prompts = load_retain_prompts(cfg.retain.prompts) if retaining else []
    check_report_to(cfg.report_to)
    check_4bit(cfg)
    done, clear = _open_output_dir(out, cfg, len(train_tasks), overwrite)
    if done is not None:
        return done
    tracking = cfg.report_to != "none"
    acc = Accelerator(
        cpu=cfg.device == "cpu" or not torch.cuda.is_available(),
        **({"log_with": cfg.report_to, "project_dir": str(out)} if tracking else {}),
    )
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    if clear and main:
        with _writing(out):
            _clear_run_files(out)
    torch.manual_seed(cfg.seed)
    model, tokenizer = _setup_model(cfg, cfg.device if world == 1 else str(acc.device))
    label = model.name_or_path_display
    train_enc = encode_tasks(tokenizer, train_tasks)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    total_steps = _total_steps(cfg, len(train_enc))
    sched = scheduler(cfg, opt, total_steps)
    steps_per_pass = math.ceil(len(train_enc) / cfg.alg_config.prompts_per_step)
    floors = [loss_floor(e.weights) for e in train_enc]

    def evaluate() -> dict:  # the eval row logged every eval_every steps
        return _eval_row(_measure(model, tokenizer, eval_tasks, label, cfg))

    def measurements(name: str) -> dict:  # file-name suffix -> measuring function
        fns = {"": lambda: _measure(model, tokenizer, eval_tasks, name, cfg)}
        if cfg.test_prompts and sorted(cfg.test_prompts) != sorted(cfg.train_prompts):
            fns["_train"] = lambda: _measure(model, tokenizer, train_tasks, name, cfg)
        return fns

    if main:
        with _writing(out):
            _claim(out, cfg)
    acc.wait_for_everyone()
    retain: list[RetainExample] = []
    if retaining and main:
        with _writing(out):
            retain = _retain_examples(out, model, tokenizer, cfg, retain_prompts, main, progress)
    acc.wait_for_everyone()
    if retaining and not main:
        retain = _retain_examples(out, model, tokenizer, cfg, retain_prompts, main, progress)
    state = load_checkpoint(out, model, opt, warn=main)
    state = state or {"step": 0, "pass_loss": 0.0, "last_pass_loss": None, "stopped": False}
    if sched is not None and "scheduler" in state:
        sched.load_state_dict(state["scheduler"])
    if tracking:
        with _writing(out):
            acc.init_trackers(TRACKER_DIR, config=tracker_config(cfg))
    if main:
        with _writing(out):
            _start(out, state["step"], {f"before{k}": f for k, f in measurements(label).items()})
    acc.wait_for_everyone()

    bar = tqdm(
        total=total_steps,
        initial=state["step"],
        desc=f"training {label} on {len(train_enc)} task{'s' * (len(train_enc) != 1)}",
        unit="step",
        disable=not (progress and main),
    )
    t_start, step = time.time(), state["step"]
    while step < total_steps and not state["stopped"]:
        model.train()
        idx = step_prompts(len(train_enc), cfg.alg_config.prompts_per_step, cfg.seed, step)
        t0 = time.time()
        batch = (
            [retain[i] for i in step_prompts(len(retain), cfg.retain.per_step, cfg.seed, step)]
            if retain
            else []
        )
        lr = opt.param_groups[0]["lr"]  # this step's
        loss, norm, kl = train_step(
            model, opt, params, [train_enc[i] for i in idx], cfg, rank=rank, world=world, retain=batch
        )
        if not (math.isfinite(loss) and math.isfinite(norm) and (kl is None or math.isfinite(kl))):
            raise DiffuseError(
                f"step {step + 1}: the loss or its gradient is not finite (loss {loss}, grad norm {norm}); "
                f"stopped before saving it: the last good checkpoint in {out} is kept (try a lower lr)"
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
            entry["pass_loss"], entry["pass_floor"] = state["pass_loss"], sum(floors)
            state["last_pass_loss"], state["pass_loss"] = state["pass_loss"], 0.0
            gamma = cfg.alg_config.gamma
            state["stopped"] = cfg.alg_config.early_stop and entry["pass_loss"] <= sum(floors) * (1 + gamma)
        state["step"] = step
        if sched is not None:
            state["scheduler"] = scheduler_state(sched)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", floor=f"{floor:.3f}")
        if main:
            with _writing(out):
                row = _write_step(out, model, opt, state, entry, cfg, total_steps, evaluate)
        if tracking:
            _track(acc, entry, row if main else None)
    bar.close()

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
        with _writing(out):
            summary = _finish(out, model, measurements(f"{label} + LoRA ({out.name})"), info)
        if tracking:
            _track(acc, {"step": step}, _eval_row(summary["after"]))
    if tracking:
        acc.end_training()
    acc.wait_for_everyone()
    return json.loads((out / "summary.json").read_text())
