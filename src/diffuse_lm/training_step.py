"""One optimizer step of distribution-matching fine-tuning: the loss (the paper's Eq. 5), the share of a prompt's
targets each process scores, the gradient sum across processes, and which prompts each step takes.

A step takes ``prompts_per_step`` prompts (the paper: one). For each, ``score_task`` scores micro-batches of at
most ``batch_size`` targets (a task that fits one packed row is a single forward and backward) and
backpropagates each micro-batch's loss at once; the step's gradient is clipped and AdamW takes one step. Under
``torchrun`` every process takes a share of each prompt's targets and the LoRA gradients are summed across
processes before clipping, so the loss curve is the single-process one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist

from diffuse_lm.config import TrainConfig
from diffuse_lm.encoding import EncodedTask
from diffuse_lm.metrics import entropy
from diffuse_lm.retention import RetainExample, retention_kl
from diffuse_lm.scoring import score_task


def distribution_matching_loss(logprobs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 5 of the paper: L = −Σ_y p*(y | x) · log p_θ(y | x) = KL(p* ‖ p_θ) + Entropy(p*).

    ``logprobs`` are sequence log-probabilities of (some of) a prompt's targets, ``weights`` their p*.
    The sum splits over any partition of the targets, so micro-batches and processes add up to it.
    """
    return -(weights.to(logprobs.dtype) * logprobs).sum()


def loss_floor(weights: np.ndarray) -> float:
    """The minimum of the loss over one prompt: Entropy(p*), reached when p_θ = p* on the targets."""
    return entropy(weights)


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


def step_description(model_name: str, encoded: Sequence[EncodedTask], idx: list[int]) -> str:
    """The progress bar's text during a step: ``train <model>: <the step's first task> (+<more>)``."""
    more = f" (+{len(idx) - 1})" if len(idx) > 1 else ""
    return f"train {model_name}: {encoded[idx[0]].task.name}{more}"
