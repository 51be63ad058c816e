"""Figure 1: the output distributions of the base and tuned models for RNG and BABYNAMES, sorted by
probability, beside the natural distribution. Exact (renormalised over the natural target set), not
sampled: the same picture without sampling noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffuse_lm.experiments.common import Context, exact, using
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.experiments.table1 import section42_adapters, section42_tasks
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table

CLAIM = (
    "Untuned Gemma puts 40% on 'Anya'; Llama-2 says 'Aurora' ~100× more often than the natural "
    "distribution; both put over 60% on 5 for RNG."
)
TOP = 100  # answers kept per distribution (the natural BABYNAMES set has thousands)

Distribution = list[tuple[str, float]]  # [(target, probability)] by decreasing probability


class Model(Record):
    distribution: Distribution  # renormalised over the natural target set
    mass: float
    kl: float
    entropy: float
    normalized_entropy: float


class Row(Record):
    natural: Distribution
    n_targets: int
    base: Model
    tuned: Model


class Fig1(Record):
    top: int  # answers kept per distribution
    tasks: dict[str, Row]


def sorted_distribution(targets, probs, top: int = TOP) -> Distribution:
    """``[(target, prob), ...]`` by decreasing probability, the first ``top``."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:top]
    return [(targets[i], float(probs[i])) for i in order]


def run(ctx: Context) -> Fig1:
    adapters = section42_adapters(ctx)
    tasks = {}
    for name, (_, measured) in section42_tasks(ctx.scale.natural_babynames).items():
        models = {}
        for label, path in (("base", None), ("tuned", adapters[name])):
            with using(ctx, path) as (model, tokenizer):
                m = exact(model, tokenizer, [measured], ctx.scale.coverage_n)[0]
            probs = [t["prob"] for t in m["targets"]]
            models[label] = Model(
                distribution=sorted_distribution(measured.targets, probs),
                **{k: m[k] for k in ("mass", "kl", "entropy", "normalized_entropy")},
            )
        tasks[name] = Row(
            natural=sorted_distribution(measured.targets, measured.weights),
            n_targets=len(measured.targets),
            **models,
        )
    return Fig1(top=TOP, tasks=tasks)


def section(res: Fig1, figures: Path) -> str:
    """Figure 1 (each distribution by decreasing probability) and the top five answers of each."""
    plt = pyplot()
    tasks = res.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.6))
    axes = [axes] if len(tasks) == 1 else list(axes)
    rows = []
    for ax, (task, r) in zip(axes, tasks.items(), strict=True):
        few = len(r.natural) <= 20  # grouped bars; long tails as lines on a log scale
        for i, label in enumerate(("natural", "base", "tuned")):
            dist = r.natural if label == "natural" else getattr(r, label).distribution
            probs = [p for _, p in dist]
            if few:
                ax.bar(
                    [k + (i - 1) * 0.27 for k in range(1, len(probs) + 1)],
                    probs,
                    0.27,
                    color=COLORS[label],
                    label=label,
                )
            else:
                ax.plot(range(1, len(probs) + 1), probs, color=COLORS[label], label=label)
            rows.append([task, label, ", ".join(f"{t} {p:.2f}" for t, p in dist[:5])])
        shown = "" if few else f", top {len(r.natural)} shown"
        ax.set(
            title=f"{task} ({r.n_targets} answers{shown})",
            xlabel="answers, by decreasing probability",
            ylabel="probability (renormalised)",
            yscale="linear" if few else "log",
        )
        ax.legend()
    return (
        save(fig, figures / "fig1_distributions.png") + "\n" + table(["task", "distribution", "top 5"], rows)
    )


EXPERIMENT = Experiment(
    name="fig1",
    run=run,
    result=Fig1,
    section=section,
    claim=CLAIM,
    uses=("passes.rng", "passes.babynames", "natural_babynames"),
    adapters=section42_adapters,
)
