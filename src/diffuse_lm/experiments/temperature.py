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
from pathlib import Path

import torch

from diffuse_lm.experiments.common import Context, Exact, Sampled, brief, exact, sample_answers, using
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.experiments.table1 import section42_adapters, section42_tasks
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table

CLAIM = (
    "Footnote 6: untuned models must be sampled at a temperature above 10 to match the "
    "entropy of the tuned models of Section 4.2."
)
BISECTIONS = 6  # refinements of the matching temperature between two swept values


class AtTemperature(Exact):
    """Exact metrics of sampling at one temperature."""

    temperature: float


class Row(Record):
    tuned: AtTemperature  # the tuned model at T = 1
    sweep: list[AtTemperature]  # the base model at each swept temperature
    matching_temperature: float | None  # where the base model reaches the tuned entropy (None: nowhere)
    shown_temperature: float  # the matching temperature, else the highest swept
    base_at_shown: AtTemperature
    base_samples: Sampled  # the base model's samples at the shown temperature
    tuned_samples: Sampled  # the tuned model's at T = 1


class Temperature(Record):
    temperatures: list[float]
    tasks: dict[str, Row]


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


def measure_at(model, tokenizer, task, t: float, n: int) -> AtTemperature:
    """Exact metrics of ``task`` when sampling at temperature ``t``."""
    with at_temperature(model, t):
        return AtTemperature(temperature=t, **brief(exact(model, tokenizer, [task], n)[0]))


def matching_temperature(entropy_at, target: float, sweep: list[AtTemperature]) -> float | None:
    """The lowest temperature at which the entropy reaches ``target``: the first swept interval that
    crosses it, refined by bisection on log T; None if no swept temperature reaches it."""
    for lo, hi in zip(sweep, sweep[1:], strict=False):
        if lo.entropy < target <= hi.entropy:
            a, b = math.log(lo.temperature), math.log(hi.temperature)
            for _ in range(BISECTIONS):
                mid = (a + b) / 2
                a, b = (mid, b) if entropy_at(math.exp(mid)) < target else (a, mid)
            return math.exp(b)
    if sweep and sweep[0].entropy >= target:
        return sweep[0].temperature
    return None


def run(ctx: Context) -> Temperature:
    adapters = section42_adapters(ctx)
    n, k = ctx.scale.coverage_n, ctx.scale.temperature_samples
    tasks = {}
    for name, (prompt, measured) in section42_tasks(ctx.scale.temperature_babynames).items():
        with using(ctx, adapters[name]) as (model, tokenizer):
            tuned = measure_at(model, tokenizer, measured, 1.0, n)
            tuned_samples = sample_answers(ctx, model, tokenizer, prompt, k, keep_texts=k)
        with using(ctx, None) as (model, tokenizer):
            sweep = [measure_at(model, tokenizer, measured, t, n) for t in sorted(ctx.scale.temperatures)]

            def entropy_at(t: float, model=model, tokenizer=tokenizer, task=measured) -> float:
                return measure_at(model, tokenizer, task, t, n).entropy

            t_star = matching_temperature(entropy_at, tuned.entropy, sweep)
            shown = t_star or max(ctx.scale.temperatures)
            at_star = measure_at(model, tokenizer, measured, shown, n)
            base_samples = sample_answers(ctx, model, tokenizer, prompt, k, temperature=shown, keep_texts=k)
        tasks[name] = Row(
            tuned=tuned,
            sweep=sweep,
            matching_temperature=t_star,
            shown_temperature=shown,
            base_at_shown=at_star,
            base_samples=base_samples,
            tuned_samples=tuned_samples,
        )
    return Temperature(temperatures=list(ctx.scale.temperatures), tasks=tasks)


# --- report ----------------------------------------------------------------------------------------


def section(res: Temperature, figures: Path) -> str:
    """The sweep (entropy and mass against temperature) and, per task, where the base model matches."""
    import matplotlib.ticker

    plt = pyplot()
    tasks = res.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.6))
    axes = [axes] if len(tasks) == 1 else list(axes)
    md = []
    for ax, (task, r) in zip(axes, tasks.items(), strict=True):
        ts = [p.temperature for p in r.sweep]
        ax.plot(ts, [p.entropy for p in r.sweep], "o-", color=COLORS["base"], label="base, entropy")
        ax.axhline(r.tuned.entropy, color=COLORS["tuned"], ls="--", label="tuned at T=1")
        if r.matching_temperature:
            ax.axvline(r.matching_temperature, color="0.5", lw=1)
        ax2 = ax.twinx()
        ax2.plot(ts, [p.mass for p in r.sweep], "s:", color="tab:orange", ms=3, label="base, mass (right)")
        ax2.set(ylabel="mass on valid answers", yscale="log")
        ax.set(title=task, xscale="log", xlabel="sampling temperature", ylabel="entropy (nats)")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="lower right", fontsize=8)
        t_star = r.matching_temperature
        found = f"at T = {t_star:.2f}" if t_star else f"at no temperature up to T = {max(ts):g}"
        if t_star and t_star <= 1:
            found = f"already at T = {t_star:g}: over the valid answers alone it is no less diffuse"
        rows = [[p.temperature, p.entropy, p.mass, p.kl] for p in r.sweep]
        rows.append(["tuned, T=1", r.tuned.entropy, r.tuned.mass, r.tuned.kl])
        shown = r.base_samples
        md.append(
            f"**{task}**: the base model matches the tuned model's entropy ({r.tuned.entropy:.3f}) "
            f"{found}. At T = {r.shown_temperature:.2f} the base model's mass on valid answers is "
            f"{r.base_at_shown.mass:.2g} and {shown.valid_rate:.0%} of {shown.n} samples are "
            f"valid (tuned at T = 1: {r.tuned.mass:.2g} and {r.tuned_samples.valid_rate:.0%}).\n\n"
            + table(["T", "entropy", "mass", "KL"], rows)
            + "\nBase samples at that temperature:\n\n```\n"
            + "\n".join(t.replace("\n", " ")[:100] for t in shown.texts)
            + "\n```\n"
        )
    return save(fig, figures / "temperature_sweep.png") + "\n" + "\n".join(md)


EXPERIMENT = Experiment(
    name="temperature",
    run=run,
    result=Temperature,
    section=section,
    claim=CLAIM,
    uses=(
        "passes.rng",
        "passes.babynames",
        "temperature_babynames",
        "temperatures",
        "temperature_samples",
        "answer_max_new_tokens",
    ),
    adapters=section42_adapters,
)
