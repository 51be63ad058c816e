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
from collections.abc import Mapping, Sequence
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


def mass_weighted_surrogate(
    logprobs: torch.Tensor, weights: torch.Tensor, log_mass: torch.Tensor, mass_weight: float
) -> torch.Tensor:
    """A loss whose gradient is that of Eq. 5 with its mass part weighed by α = ``mass_weight``:
    L_α = −α·log M + KL(p* ‖ p_θ / M) + H(p*) = Eq. 5 + (1 − α)·log M, with M = Σ_y p_θ(y | x) over all the
    prompt's targets (``log_mass``, detached: it may come from other micro-batches and processes). Its gradient
    in log p_θ(y | x) is −p*(y) + (1 − α)·p_θ(y | x)/M, which splits over targets like Eq. 5's does.

    Why: −log M raises each valid answer in proportion to how much the model already prefers it, which on tasks
    it was not tuned on sharpens the model's favourites; the KL part is what spreads the mass."""
    share = torch.exp(logprobs.detach().float() - log_mass)  # p_θ(y | x) / M
    coeff = -weights.to(share.dtype) + (1.0 - mass_weight) * share
    return (coeff.to(logprobs.dtype) * logprobs).sum()


def _log_mass(local: torch.Tensor | None, world: int, device: torch.device) -> torch.Tensor:
    """log Σ exp of every process's ``local`` log-probabilities (``None``: this process has no targets)."""
    lse = torch.logsumexp(local.float(), 0) if local is not None and local.numel() else None
    if world == 1:
        return lse
    peak = torch.full((), -math.inf, device=device) if lse is None else lse.clone()
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    part = torch.zeros((), device=device) if lse is None else torch.exp(lse - peak)
    dist.all_reduce(part)
    return peak + torch.log(part)


def _one_batch(enc: EncodedTask | None, cfg: TrainConfig) -> bool:
    """Do ``enc``'s targets fit one micro-batch (so one forward can keep the graph of all of them)?"""
    if enc is None:
        return False
    longest = max(len(t) for t in enc.target_ids)
    tokens = len(enc.prompt_ids) + enc.n_targets * longest  # padded, the most a micro-batch holds
    return enc.n_targets <= cfg.alg_config.batch_size and tokens <= cfg.max_batch_tokens


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
    loss: float  # Eq. 5 (whatever alg_config.mass_weight), averaged over the step's prompts
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
    mass_weight: float | None = None,
) -> Step:
    """One optimizer step on ``prompts`` (Eq. 5 averaged over them, its mass part weighed by
    ``alg_config.mass_weight``) plus, given ``retain`` examples, the retention term ``cfg.retain.weight`` × their
    mean KL(base ‖ tuned) per answer token. With a mass weight other than 1, a prompt whose targets take several
    micro-batches is scored once more without gradient first, for the mass every micro-batch's gradient needs.
    ``mass_weight``: this step's α, where a schedule sets it (:func:`mass_weight_at`)."""
    device = params[0].device
    total = torch.zeros((), device=device)
    bf16 = cfg.mixed_precision == "bf16"
    alpha = cfg.alg_config.mass_weight if mass_weight is None else mass_weight

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    score = {
        "max_batch_tokens": cfg.max_batch_tokens,
        "max_batch_targets": cfg.alg_config.batch_size,
        "prompt_per_batch": cfg.gradient_checkpointing,
    }
    for enc in prompts:
        mine = _shard(enc, rank, world)
        log_mass = None
        if alpha != 1.0 and not _one_batch(mine, cfg):
            # M over all the prompt's targets, before the first micro-batch's backward needs it
            with torch.no_grad(), autocast():
                log_mass = _log_mass(
                    None if mine is None else score_task(model, mine, **score), world, device
                )
        if mine is None:
            continue
        weights = torch.tensor(mine.weights, dtype=torch.float32, device=device)
        if alpha != 1.0 and log_mass is None:  # one micro-batch: one forward, M from its own scores
            with autocast():
                logprobs = score_task(model, mine, **score)
            loss = distribution_matching_loss(logprobs, weights) / len(prompts)
            total = total + loss.detach()
            log_mass = _log_mass(logprobs.detach(), world, device)
            (mass_weighted_surrogate(logprobs, weights, log_mass, alpha) / len(prompts)).backward()
            continue

        def on_batch(
            idx: list[int], logprobs: torch.Tensor, weights=weights, log_mass=log_mass
        ) -> torch.Tensor:
            nonlocal total
            loss = distribution_matching_loss(logprobs, weights[idx]) / len(prompts)
            total = total + loss.detach()
            if log_mass is not None:
                return mass_weighted_surrogate(logprobs, weights[idx], log_mass, alpha) / len(prompts)
            return loss

        with autocast():
            score_task(model, mine, on_batch=on_batch, **score)
    kl = torch.zeros((), device=device)
    if retain:
        mine = list(retain)[rank::world]
        n_tokens = sum(len(e.response_ids) for e in retain)  # over all processes: their sum is the mean
        if mine:
            with autocast():
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


def mass_weight_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """α of step ``step`` (0-based): ``mass_weight``, or linearly from it to ``mass_weight_end`` at the last
    step of ``total_steps``."""
    alg = cfg.alg_config
    if alg.mass_weight_end is None or total_steps <= 1:
        return alg.mass_weight
    return alg.mass_weight + (alg.mass_weight_end - alg.mass_weight) * step / (total_steps - 1)


def _quotas(n_prompts: int, families: Sequence[str], weights: Mapping[str, float] | None) -> dict[str, int]:
    """Prompts a pass takes from each family: the same number from each (about ``n_prompts`` in all), times the
    family's weight in ``weights`` (1 where it names none), at least one."""
    names = sorted(set(families))
    quota = max(1, round(n_prompts / len(names)))
    return {f: max(1, round(quota * (weights or {}).get(f, 1.0))) for f in names}


def pass_length(
    n_prompts: int, families: Sequence[str] | None = None, weights: Mapping[str, float] | None = None
) -> int:
    """Prompts visited in one pass: each once, or with ``families`` (one name a prompt) the same number from
    every family (times its weight), about as many in all (:func:`pass_order`)."""
    if families is None:
        return n_prompts
    return sum(_quotas(n_prompts, families, weights).values())


def pass_order(
    n_prompts: int,
    seed: int,
    pass_index: int,
    families: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[int]:
    """The prompts of one pass, in order: a permutation drawn from (seed, pass); with ``families``, each family
    gives the same number of prompts times its weight (its own repeated when it has fewer, taken in turn
    across passes when it has more), then the pass is shuffled."""
    if families is None:
        return [int(i) for i in np.random.default_rng([seed, pass_index]).permutation(n_prompts)]
    groups: dict[str, list[int]] = {}
    for i, f in enumerate(families):
        groups.setdefault(f, []).append(i)
    quotas = _quotas(n_prompts, families, weights)
    chosen = []
    for k, name in enumerate(sorted(groups)):
        members, quota = groups[name], quotas[name]
        turn = np.random.default_rng([seed, k, len(members)]).permutation(len(members))  # fixed for the run
        chosen += [members[turn[(pass_index * quota + j) % len(members)]] for j in range(quota)]
    return [chosen[int(i)] for i in np.random.default_rng([seed, pass_index]).permutation(len(chosen))]


def step_prompts(
    n_prompts: int,
    per_step: int,
    seed: int,
    step: int,
    families: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[int]:
    """Indices of the prompts of global ``step``: each pass visits all prompts (or, with ``families``, every
    family equally, times its weight) in an order drawn from (seed, pass), so a resumed run replays exactly
    the steps an uninterrupted one would take."""
    steps_per_pass = math.ceil(pass_length(n_prompts, families, weights) / per_step)
    order = pass_order(n_prompts, seed, step // steps_per_pass, families, weights)
    k = step % steps_per_pass
    return order[k * per_step : (k + 1) * per_step]


def step_description(model_name: str, encoded: Sequence[EncodedTask], idx: list[int]) -> str:
    """The progress bar's text during a step: ``train <model>: <the step's first task> (+<more>)``."""
    more = f" (+{len(idx) - 1})" if len(idx) > 1 else ""
    return f"train {model_name}: {encoded[idx[0]].task.name}{more}"
