"""Figure 2 (Section 4.2): tuned on RNG 1–10 and 1–100, does the model stay uniform on other ranges and
prompt wordings? Entropy (exact, over the range's integers) averaged over the five prompt formats of
Appendix B.1 for ranges [1, high] (2a), and over five random lows of format 1 for ranges
[low, low + size − 1] with low in 1..900 (2b), base vs tuned, with 95% confidence intervals."""

from __future__ import annotations

import math

import numpy as np

from diffuse_lm.experiments.common import TASKS, Context, adapter, exact, mean_ci, using

USES = ("passes.rng_train", "fig2_highs", "fig2_sizes", "fig2_lows")
FORMATS = (1, 2, 3, 4, 5)  # Appendix B.1's five prompts
MAX_LOW = 900


def rng_task(low: int, high: int, fmt: int):
    """An RNG task over [low, high] in prompt format ``fmt`` of Appendix B.1 (built in memory)."""
    from diffuse_lm.builtin import rng_task as build

    return build(low, high, fmt)


def points_a(highs) -> list[list[tuple[int, int, int]]]:
    """Figure 2a: for each high, [1, high] in each of the five formats."""
    return [[(1, h, f) for f in FORMATS] for h in highs]


def points_b(sizes, lows: int, seed: int) -> list[list[tuple[int, int, int]]]:
    """Figure 2b: for each size, ``lows`` ranges [low, low + size − 1] with random lows, format 1."""
    rng = np.random.default_rng([seed, 2])
    return [[(int(lo), int(lo) + s - 1, 1) for lo in rng.integers(1, MAX_LOW + 1, size=lows)] for s in sizes]


def curve(model, tokenizer, points: list[list[tuple[int, int, int]]], n: int) -> dict:
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
    return out


def run(ctx: Context) -> dict:
    tuned = adapter(ctx, "rng-train", [TASKS["rng_train"]], ctx.scale.passes["rng_train"])
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
    return out
