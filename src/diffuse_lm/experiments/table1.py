"""Table 1 (Section 4.2): RNG and BABYNAMES, base vs tuned on each task alone — Coverage-N and entropy of
N samples at temperature 1, with the exact KL, entropy and mass on the valid set beside them."""

from __future__ import annotations

from pathlib import Path

from diffuse_lm.experiments.common import (
    TASKS,
    Context,
    adapter,
    brief,
    exact,
    sample_answers,
    using,
)
from diffuse_lm.metrics import entropy, expected_coverage
from diffuse_lm.tasks import Task, load_tasks

USES = (
    "passes.rng",
    "passes.babynames",
    "natural_babynames",
    "samples",
    "answer_max_new_tokens",
)


def section42_adapters(ctx: Context) -> dict[str, Path]:
    """The two models of Section 4.2 (shared with fig1 and temperature): tuned on RNG 1–10, and on the
    200-name sample of BABYNAMES."""
    passes = ctx.scale.passes
    return {
        "RNG": adapter(ctx, "rng-1-10", [TASKS["rng"]], passes["rng"]),
        "BABYNAMES": adapter(ctx, "babynames", [TASKS["babynames"]], passes["babynames"]),
    }


def section42_tasks(natural_names: str) -> dict[str, tuple[Task, Task]]:
    """Task -> (the task sampled and tuned on, the same prompt with the natural target set and weights).
    The two differ for BABYNAMES only: 200 sampled names vs the natural distribution ``natural_names``."""
    rng = load_tasks([TASKS["rng"]])[0]
    names, natural = load_tasks([TASKS["babynames"]])[0], load_tasks([natural_names])[0]
    measured = Task(
        **{**natural.__dict__, "request": names.request, "system": names.system, "responses": names.responses}
    )
    return {"RNG": (rng, rng), "BABYNAMES": (names, measured)}


def natural_reference(task: Task, n: int) -> dict:
    """What a sampler that follows the natural distribution exactly would show in ``n`` samples."""
    return {
        "entropy": entropy(task.weights),
        "expected_coverage": expected_coverage(task.weights, n),
        "n_targets": len(task.targets),
    }


def run(ctx: Context) -> dict:
    adapters = section42_adapters(ctx)
    n = ctx.scale.samples
    out = {"n_samples": n, "tasks": {}}
    for name, (prompt, measured) in section42_tasks(ctx.scale.natural_babynames).items():
        row = {"natural": natural_reference(measured, n), "train_targets": len(prompt.targets)}
        seen = prompt if prompt is not measured else None  # BABYNAMES: how many answers are training names
        for label, path in (("base", None), ("tuned", adapters[name])):
            with using(ctx, path) as (model, tokenizer):
                rows = exact(model, tokenizer, [measured, prompt] if prompt is not measured else [prompt], n)
                row[label] = {
                    "sampled": sample_answers(ctx, model, tokenizer, measured, n, seen=seen),
                    "exact": brief(rows[0]),
                    "exact_train_targets": brief(rows[-1]),
                }
        out["tasks"][name] = row
    return out
