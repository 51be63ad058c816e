"""Footnote 6: the base model's entropy across a sweep of sampling temperatures, next to the tuned
model's at temperature 1; the temperature the base model needs to match it, and its outputs there.

Exact: sampling at temperature T draws each token from softmax(logits / T), so the probability of a
target under temperature sampling is what scoring gives with every logit divided by T. Entropy is over
the (natural) target set, renormalised; the mass shows how much of the output is still a valid answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from diffuse_lm.experiments.common import Context, brief, exact, sample_answers, using
from diffuse_lm.experiments.table1 import section42_adapters, section42_tasks

USES = (
    "passes.rng",
    "passes.babynames",
    "temperature_babynames",
    "temperatures",
    "temperature_samples",
    "answer_max_new_tokens",
)
BISECTIONS = 6  # refinements of the matching temperature between two swept values


class _ScaledHead(torch.nn.Module):
    """The LM head with its logits divided by ``t``."""

    def __init__(self, head: torch.nn.Module, t: float):
        super().__init__()
        self.head, self.t = head, t

    @property
    def weight(self) -> torch.Tensor:
        return self.head.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(hidden) / self.t


@contextmanager
def at_temperature(model, t: float) -> Iterator[None]:
    """Within the block, scoring ``model`` gives the sequence probabilities of sampling at temperature
    ``t``. (For Gemma-2-style soft-capped logits the cap applies after the division: close, not exact.)"""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = lm.get_output_embeddings()
    lm.set_output_embeddings(_ScaledHead(head, t))
    try:
        yield
    finally:
        lm.set_output_embeddings(head)


def measure_at(model, tokenizer, task, t: float, n: int) -> dict:
    """Exact metrics of ``task`` when sampling at temperature ``t``."""
    with at_temperature(model, t):
        return {"temperature": t, **brief(exact(model, tokenizer, [task], n)[0])}


def matching_temperature(entropy_at, target: float, sweep: list[dict]) -> float | None:
    """The lowest temperature at which the entropy reaches ``target``: the first swept interval that
    crosses it, refined by bisection on log T; None if no swept temperature reaches it."""
    for lo, hi in zip(sweep, sweep[1:], strict=False):
        if lo["entropy"] < target <= hi["entropy"]:
            a, b = math.log(lo["temperature"]), math.log(hi["temperature"])
            for _ in range(BISECTIONS):
                mid = (a + b) / 2
                a, b = (mid, b) if entropy_at(math.exp(mid)) < target else (a, mid)
            return math.exp(b)
    if sweep and sweep[0]["entropy"] >= target:
        return sweep[0]["temperature"]
    return None


def run(ctx: Context) -> dict:
    adapters = section42_adapters(ctx)
    n, k = ctx.scale.coverage_n, ctx.scale.temperature_samples
    out = {"temperatures": list(ctx.scale.temperatures), "tasks": {}}
    for name, (prompt, measured) in section42_tasks(ctx.scale.temperature_babynames).items():
        with using(ctx, adapters[name]) as (model, tokenizer):
            tuned = measure_at(model, tokenizer, measured, 1.0, n)
            tuned_samples = sample_answers(ctx, model, tokenizer, prompt, k, keep_texts=k)
        with using(ctx, None) as (model, tokenizer):
            sweep = [measure_at(model, tokenizer, measured, t, n) for t in sorted(ctx.scale.temperatures)]

            def entropy_at(t: float, model=model, tokenizer=tokenizer, task=measured) -> float:
                return measure_at(model, tokenizer, task, t, n)["entropy"]

            t_star = matching_temperature(entropy_at, tuned["entropy"], sweep)
            shown = t_star or max(ctx.scale.temperatures)
            at_star = measure_at(model, tokenizer, measured, shown, n)
            base_samples = sample_answers(ctx, model, tokenizer, prompt, k, temperature=shown, keep_texts=k)
        out["tasks"][name] = {
            "tuned": tuned,
            "sweep": sweep,
            "matching_temperature": t_star,
            "shown_temperature": shown,
            "base_at_shown": at_star,
            "base_samples": base_samples,
            "tuned_samples": tuned_samples,
        }
    return out
