"""Figure 3 and Tables 5–6 (Section 5): six tasks; for each, the base model, the model tuned on all six
(ID) and the model tuned on the other five (OOD). Exact entropy and expected Coverage-N over each
prompt's targets, and Coverage-N and entropy of sampled answers, averaged over the task's prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffuse_lm.experiments.common import (
    TASKS,
    Context,
    adapter,
    adapter_folder,
    brief,
    exact,
    sample_answers,
    using,
)
from diffuse_lm.experiments.scales import Recipe
from diffuse_lm.tasks import Task, builtin_tasks, load_tasks

USES = (
    "six_recipe",
    "passes.six",
    "six_phrasings",
    "six_max_targets",
    "loo_samples",
    "answer_max_new_tokens",
)


def family(task: Task) -> str:
    """The task a prompt belongs to (BABYNAMES, COUNTRIES, …): its ``family``, else its name's first part."""
    return task.family or task.name.split("/")[0]


def families(tasks: list[Task]) -> dict[str, list[Task]]:
    out: dict[str, list[Task]] = {}
    for t in tasks:
        out.setdefault(family(t), []).append(t)
    return out


def spec(task: Task) -> str:
    """What names ``task`` in a training config: its built-in name, else its file."""
    return task.name if task.name in builtin_tasks() or not task.path else task.path


def six_tasks(ctx: Context) -> list[Task]:
    """The six tasks' prompts at this scale: the first ``six_phrasings`` phrasings of each sub-task (e.g.
    COUNTRIES in Africa), without sub-tasks of more than ``six_max_targets`` targets unless a family
    would be left with none."""
    s = ctx.scale
    subtasks: dict[str, list[Task]] = {}
    for t in load_tasks([TASKS["six"]]):
        subtasks.setdefault(t.name.rsplit("/", 1)[0] if "/" in t.name else t.name, []).append(t)
    kept = [ts[: s.six_phrasings] for ts in subtasks.values()]
    small = [ts for ts in kept if s.six_max_targets is None or len(ts[0].targets) <= s.six_max_targets]
    lost = {family(ts[0]) for ts in kept} - {family(ts[0]) for ts in small}
    return [t for ts in kept if ts in small or family(ts[0]) in lost for t in ts]


def tuned(ctx: Context, name: str, tasks: list[Task], recipe: Recipe | None = None) -> Path:
    """The adapter tuned on ``tasks`` (and the recipe's extra tasks) with the scale's six-task recipe."""
    recipe = recipe or ctx.scale.six_recipe
    specs = [spec(t) for t in tasks] + recipe.extra_tasks()
    return adapter(ctx, name, specs, ctx.scale.passes["six"], settings=recipe.settings())


def six_task_adapter(ctx: Context, recipe: Recipe | None = None) -> Path:
    """The model tuned on all six tasks: ID here, Tuned-OOD for biographies, the tuned model of utility."""
    return tuned(ctx, "paper-six", six_tasks(ctx), recipe)


def six_task_run(ctx: Context, recipe: Recipe | None = None) -> Path:
    """The run folder of :func:`six_task_adapter`'s model, without training it."""
    recipe = recipe or ctx.scale.six_recipe
    specs = [spec(t) for t in six_tasks(ctx)] + recipe.extra_tasks()
    return adapter_folder(ctx, "paper-six", specs, ctx.scale.passes["six"], settings=recipe.settings())


def summarize(ctx: Context, model, tokenizer, tasks: list[Task], *, sample: bool = True) -> dict:
    """Per-prompt exact and sampled metrics of one family under one model, and their means."""
    rows = [brief(r) for r in exact(model, tokenizer, tasks, ctx.scale.coverage_n)]
    if ctx.scale.loo_samples and sample:
        for task, row in zip(tasks, rows, strict=True):
            s = sample_answers(ctx, model, tokenizer, task, ctx.scale.loo_samples)
            row.update(
                sampled_coverage=s["coverage"],
                sampled_entropy=s["entropy"],
                valid_rate=s["valid_rate"],
                top=s["top"][:5],
            )
    keys = (
        "entropy",
        "normalized_entropy",
        "mass",
        "kl",
        "expected_coverage",
        "sampled_coverage",
        "sampled_entropy",
        "valid_rate",
    )
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys if k in rows[0]}
    return {**means, "prompts": rows}


def run(
    ctx: Context, recipe: Recipe | None = None, *, sample: bool = True, baseline: dict | None = None
) -> dict:
    """Base, ID and OOD models on each family. ``baseline`` (a previous result's) skips re-measuring the
    base model; ``sample=False`` keeps to the exact metrics."""
    recipe = recipe or ctx.scale.six_recipe
    groups = families(six_tasks(ctx))
    tuned_id = six_task_adapter(ctx, recipe)
    tuned_ood = {
        f: tuned(
            ctx,
            f"paper-six-without-{f.lower().replace(' ', '-')}",
            [t for g, ts in groups.items() if g != f for t in ts],
            recipe,
        )
        for f in groups
    }
    out = {
        "coverage_n": ctx.scale.coverage_n,
        "recipe": str(recipe),
        "families": list(groups),
        "n_prompts": {f: len(ts) for f, ts in groups.items()},
        "results": {},
    }
    for f, tasks in groups.items():
        out["results"][f] = {}
        for label, path in (("baseline", None), ("ID", tuned_id), ("OOD", tuned_ood[f])):
            if label == "baseline" and baseline is not None:
                out["results"][f][label] = baseline[f]
                continue
            with using(ctx, path) as (model, tokenizer):
                out["results"][f][label] = summarize(ctx, model, tokenizer, tasks, sample=sample)
    return out
