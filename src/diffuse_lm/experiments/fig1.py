"""Figure 1: the output distributions of the base and tuned models for RNG and BABYNAMES, sorted by
probability, beside the natural distribution. Exact (renormalised over the natural target set), not
sampled: the same picture without sampling noise."""

from __future__ import annotations

import numpy as np

from diffuse_lm.experiments.common import Context, exact, using
from diffuse_lm.experiments.table1 import section42_adapters, section42_tasks

USES = ("passes.rng", "passes.babynames", "natural_babynames")
TOP = 100  # answers kept per distribution (the natural BABYNAMES set has thousands)


def sorted_distribution(targets, probs, top: int = TOP) -> list[list]:
    """``[[target, prob], ...]`` by decreasing probability, the first ``top``."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:top]
    return [[targets[i], float(probs[i])] for i in order]


def run(ctx: Context) -> dict:
    adapters = section42_adapters(ctx)
    out = {"top": TOP, "tasks": {}}
    for name, (_, measured) in section42_tasks(ctx.scale.natural_babynames).items():
        row = {
            "natural": sorted_distribution(measured.targets, measured.weights),
            "n_targets": len(measured.targets),
        }
        for label, path in (("base", None), ("tuned", adapters[name])):
            with using(ctx, path) as (model, tokenizer):
                m = exact(model, tokenizer, [measured], ctx.scale.coverage_n)[0]
            probs = [t["prob"] for t in m["targets"]]
            row[label] = {
                "distribution": sorted_distribution(measured.targets, probs),
                **{k: m[k] for k in ("mass", "kl", "entropy", "normalized_entropy")},
            }
        out["tasks"][name] = row
    return out
