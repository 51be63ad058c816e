"""Figure 2 (Section 4.2): tuned on RNG 1–10 and 1–100, does the model stay uniform on other ranges and
prompt wordings? Entropy (exact, over the range's integers) averaged over the five prompt formats of
Appendix B.1 for ranges [1, high] (2a), and over five random lows of format 1 for ranges
[low, low + size − 1] with low in 1..900 (2b), base vs tuned, with 95% confidence intervals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from diffuse_lm.experiments.common import TASKS, Context, adapter, exact, mean_ci, using
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.paper_prompts import rng_task
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table

CLAIM = (
    "The model tuned on 1–10 and 1–100 is near uniform on unseen formats and ranges (e.g. 1–45), "
    "and has substantially higher entropy than the base model on shifted ranges (e.g. 154–204)."
)
FORMATS = (1, 2, 3, 4, 5)  # Appendix B.1's five prompts
MAX_LOW = 900


class Curve(Record):
    """One model's exact entropy at each x: mean over the prompts, 95% CI half-width, every prompt's value;
    and the mean mass on the range's integers."""

    mean: list[float]
    ci: list[float]
    values: list[list[float]]
    mass: list[float]


class Panel(Record):
    x: list[int]  # high (2a) or size of the range (2b)
    ranges: list[list[tuple[int, int]]]  # the [low, high] of each prompt at each x
    ideal: list[float]  # log of the range's size: the uniform distribution's entropy
    base: Curve
    tuned: Curve


class Fig2(Record):
    a: Panel
    b: Panel


def points_a(highs) -> list[list[tuple[int, int, int]]]:
    """Figure 2a: for each high, [1, high] in each of the five formats."""
    return [[(1, h, f) for f in FORMATS] for h in highs]


def points_b(sizes, lows: int, seed: int) -> list[list[tuple[int, int, int]]]:
    """Figure 2b: for each size, ``lows`` ranges [low, low + size − 1] with random lows, format 1."""
    rng = np.random.default_rng([seed, 2])
    return [[(int(lo), int(lo) + s - 1, 1) for lo in rng.integers(1, MAX_LOW + 1, size=lows)] for s in sizes]


def curve(model, tokenizer, points: list[list[tuple[int, int, int]]], n: int) -> Curve:
    """Mean entropy and mass with 95% CI half-widths at each x, and every prompt's value."""
    out = {"mean": [], "ci": [], "values": [], "mass": []}
    for group in points:
        rows = exact(model, tokenizer, [rng_task(*p) for p in group], n)
        values = [r["entropy"] for r in rows]
        mean, half = mean_ci(values)
        out["mean"].append(mean)
        out["ci"].append(half)
        out["values"].append(values)
        out["mass"].append(float(np.mean([r["mass"] for r in rows])))
    return Curve(**out)


def rng_train_adapter(ctx: Context) -> Path:
    """The model tuned on RNG 1–10 and 1–100 (Section 4.2's generalisation test)."""
    return adapter(ctx, "rng-train", [TASKS["rng_train"]], ctx.scale.passes["rng_train"])


def run(ctx: Context) -> Fig2:
    tuned = rng_train_adapter(ctx)
    s = ctx.scale
    panels = {
        "a": (list(s.fig2_highs), points_a(s.fig2_highs)),
        "b": (list(s.fig2_sizes), points_b(s.fig2_sizes, s.fig2_lows, ctx.seed)),
    }
    out = {}
    for key, (x, points) in panels.items():
        out[key] = {
            "x": x,
            "ranges": [[p[:2] for p in g] for g in points],
            "ideal": [math.log(g[0][1] - g[0][0] + 1) for g in points],
        }
    for label, path in (("base", None), ("tuned", tuned)):
        with using(ctx, path) as (model, tokenizer):
            for key, (_, points) in panels.items():
                out[key][label] = curve(model, tokenizer, points, s.coverage_n)
    return Fig2(**out)


def section(res: Fig2, figures: Path) -> str:
    """Figure 2: entropy against the range for both panels, with each point's table."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    titles = {
        "a": "(a) ranges [1, high], five prompt formats",
        "b": "(b) ranges [low, low+size-1], random low",
    }
    xlabels = {"a": "high", "b": "size of the range"}
    md = []
    for ax, key in zip(axes, ("a", "b"), strict=True):
        panel = getattr(res, key)
        ax.plot(panel.x, panel.ideal, "k--", marker="_", lw=1, label="uniform (log n)")
        for label in ("base", "tuned"):
            mean, ci = getattr(panel, label).mean, getattr(panel, label).ci
            ax.errorbar(panel.x, mean, yerr=ci, color=COLORS[label], marker="o", ms=3, capsize=3, label=label)
        ax.set(title=titles[key], xlabel=xlabels[key], ylabel="entropy (nats)")
        ax.set_ylim(bottom=0)
        ax.legend()
        rows = [
            [x, f"{b:.3f} ± {bc:.3f}", f"{t:.3f} ± {tc:.3f}", i]
            for x, b, bc, t, tc, i in zip(
                panel.x,
                panel.base.mean,
                panel.base.ci,
                panel.tuned.mean,
                panel.tuned.ci,
                panel.ideal,
                strict=True,
            )
        ]
        md.append(
            f"Figure 2{key}:\n\n"
            + table([xlabels[key], "base entropy (95% CI)", "tuned entropy (95% CI)", "uniform"], rows)
        )
    return save(fig, figures / "fig2_rng_generalization.png") + "\n" + "\n".join(md)


EXPERIMENT = Experiment(
    name="fig2",
    run=run,
    result=Fig2,
    section=section,
    claim=CLAIM,
    uses=("passes.rng_train", "fig2_highs", "fig2_sizes", "fig2_lows"),
    adapters=rng_train_adapter,
)
