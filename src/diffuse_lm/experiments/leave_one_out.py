"""Figure 3 and Tables 5–6 (Section 5): six tasks; for each, the base model, the model tuned on all six
(ID) and the model tuned on the other five (OOD). Exact entropy and expected Coverage-N over each
prompt's targets, and Coverage-N and entropy of sampled answers, averaged over the task's prompts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from diffuse_lm.config import TrainConfig
from diffuse_lm.experiments.common import (
    TASKS,
    Context,
    adapter,
    adapter_folder,
    brief,
    exact,
    sample_answers,
    training_settings,
    using,
)
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.experiments.scales import Recipe
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table
from diffuse_lm.task_model import Task, task_family
from diffuse_lm.tasks import builtin_tasks, load_tasks

CLAIM = (
    "Tuning raises entropy over the baseline on every task, held out (OOD) or not (ID); "
    "the ID–OOD gap is largest for COUNTRIES and FRUITS."
)
# The paper's Table 5 (7B–13B models): mean Coverage-N over each task's prompts (Baseline, Ours (OOD)).
TABLE5_COVERAGE = {
    "Gemma": {
        "BABYNAMES": (170.0, 346.0),
        "COUNTRIES": (23.3, 53.3),
        "FRUITS": (20.5, 62.0),
        "DAYS AND DATES": (18.5, 23.0),
        "NUMBERS": (16.0, 31.0),
        "OCCUPATIONS": (51.7, 148.0),
    },
    "Llama": {
        "BABYNAMES": (129.0, 426.0),
        "COUNTRIES": (17.8, 43.0),
        "FRUITS": (45.0, 60.5),
        "DAYS AND DATES": (14.3, 22.5),
        "NUMBERS": (10.0, 31.9),
        "OCCUPATIONS": (192.7, 313.3),
    },
    "Mistral": {
        "BABYNAMES": (225.0, 493.0),
        "COUNTRIES": (44.0, 71.5),
        "FRUITS": (46.0, 64.0),
        "DAYS AND DATES": (22.7, 22.5),
        "NUMBERS": (29.3, 32.0),
        "OCCUPATIONS": (180.3, 305.0),
    },
}


class Summary(Record):
    """One model on one family: means over its prompts, and each prompt's metrics (exact, then sampled)."""

    entropy: float
    normalized_entropy: float
    mass: float
    kl: float
    expected_coverage: float
    valid_mass: float | None = None  # on the broader valid set (absent from results made before it)
    yield_20: float | None = None  # expected distinct valid answers in 20 and 100 samples
    yield_100: float | None = None
    sampled_coverage: float | None = None  # the sampled ones: absent when not sampled
    sampled_entropy: float | None = None
    valid_rate: float | None = None
    invented_rate: float | None = None  # sampled answers well formed but in no valid list
    prompts: list[dict]


class LeaveOneOut(Record):
    coverage_n: int
    recipe: str
    families: list[str]
    n_prompts: dict[str, int]
    results: dict[str, dict[str, Summary]]  # family -> "baseline", "ID", "OOD" -> its summary


def family(task: Task) -> str:
    """The task a prompt belongs to (BABYNAMES, COUNTRIES, …): its ``family``, else its name's first part."""
    return task_family(task)


def families(tasks: list[Task]) -> dict[str, list[Task]]:
    out: dict[str, list[Task]] = {}
    for t in tasks:
        out.setdefault(family(t), []).append(t)
    return out


def spec(task: Task) -> str:
    """What names ``task`` in a training config: its built-in name, else its file."""
    return task.name if task.name in builtin_tasks() or not task.path else task.path


# The scale settings every experiment on the six-task models depends on (its report lists where they depart).
SIX_TASK_USES = ("passes.six", "six_phrasings", "six_max_targets", "six_subtasks")


def six_tasks(ctx: Context) -> list[Task]:
    """The six tasks' prompts at this scale: the first ``six_phrasings`` phrasings of each sub-task (e.g.
    COUNTRIES in Africa), without sub-tasks of more than ``six_max_targets`` targets unless a family
    would be left with none, and the first ``six_subtasks`` sub-tasks of each family."""
    s = ctx.scale
    subtasks: dict[str, list[Task]] = {}
    for t in load_tasks([TASKS["six"]]):
        subtasks.setdefault(t.name.rsplit("/", 1)[0] if "/" in t.name else t.name, []).append(t)
    kept = [ts[: s.six_phrasings] for ts in subtasks.values()]
    small = [ts for ts in kept if s.six_max_targets is None or len(ts[0].targets) <= s.six_max_targets]
    lost = {family(ts[0]) for ts in kept} - {family(ts[0]) for ts in small}
    chosen = [ts for ts in kept if ts in small or family(ts[0]) in lost]
    if s.six_subtasks is not None:  # the first ``six_subtasks`` sub-tasks of each family
        rank = Counter()
        first = []
        for ts in chosen:
            rank[family(ts[0])] += 1
            if rank[family(ts[0])] <= s.six_subtasks:
                first.append(ts)
        chosen = first
    return [t for ts in chosen for t in ts]


def tuned(ctx: Context, name: str, tasks: list[Task], recipe: Recipe | None = None) -> Path:
    """The adapter tuned on ``tasks`` (and the recipe's extra tasks) with the scale's six-task recipe."""
    recipe = recipe or ctx.scale.six_recipe
    specs = [spec(t) for t in tasks] + recipe.extra_tasks()
    return adapter(ctx, name, specs, ctx.scale.passes["six"], settings=recipe_settings(ctx, recipe))


def recipe_settings(ctx: Context, recipe: Recipe) -> dict:
    """The training-config keys of ``recipe`` for ``ctx``'s model (the default model's rate, else TrainConfig's)."""
    return recipe.settings(training_settings(ctx).get("lr", TrainConfig.model_fields["lr"].default))


def six_task_adapter(ctx: Context, recipe: Recipe | None = None) -> Path:
    """The model tuned on all six tasks: ID here, Tuned-OOD for biographies, the tuned model of utility."""
    return tuned(ctx, "paper-six", six_tasks(ctx), recipe)


def six_task_run(ctx: Context, recipe: Recipe | None = None) -> Path:
    """The run folder of :func:`six_task_adapter`'s model, without training it."""
    recipe = recipe or ctx.scale.six_recipe
    specs = [spec(t) for t in six_tasks(ctx)] + recipe.extra_tasks()
    return adapter_folder(
        ctx, "paper-six", specs, ctx.scale.passes["six"], settings=recipe_settings(ctx, recipe)
    )


def summarize(ctx: Context, model, tokenizer, tasks: list[Task], *, sample: bool = True) -> Summary:
    """Per-prompt exact and sampled metrics of one family under one model, and their means."""
    rows = [brief(r) for r in exact(model, tokenizer, tasks, ctx.scale.coverage_n)]
    if ctx.scale.loo_samples and sample:
        for task, row in zip(tasks, rows, strict=True):
            s = sample_answers(ctx, model, tokenizer, task, ctx.scale.loo_samples)
            row.update(
                sampled_coverage=s.coverage,
                sampled_entropy=s.entropy,
                valid_rate=s.valid_rate,
                invented_rate=s.invented_rate,
                top=s.top[:5],
            )
    keys = (
        "entropy",
        "normalized_entropy",
        "mass",
        "kl",
        "expected_coverage",
        "valid_mass",
        "yield_20",
        "yield_100",
        "sampled_coverage",
        "sampled_entropy",
        "valid_rate",
        "invented_rate",
    )
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys if k in rows[0]}
    return Summary(**means, prompts=rows)


def models(ctx: Context, recipe: Recipe | None = None) -> tuple[Path, dict[str, Path]]:
    """The ID model (tuned on all six tasks) and, per family, the OOD model tuned without it."""
    groups = families(six_tasks(ctx))
    without = {
        f: tuned(
            ctx,
            f"paper-six-without-{f.lower().replace(' ', '-')}",
            [t for g, ts in groups.items() if g != f for t in ts],
            recipe,
        )
        for f in groups
    }
    return six_task_adapter(ctx, recipe), without


def run(
    ctx: Context,
    recipe: Recipe | None = None,
    *,
    sample: bool = True,
    baseline: dict[str, Summary] | None = None,
) -> LeaveOneOut:
    """Base, ID and OOD models on each family. ``baseline`` (a previous result's) skips re-measuring the
    base model; ``sample=False`` keeps to the exact metrics."""
    recipe = recipe or ctx.scale.six_recipe
    groups = families(six_tasks(ctx))
    tuned_id, tuned_ood = models(ctx, recipe)
    results: dict[str, dict[str, Summary]] = {}
    for f, tasks in groups.items():
        results[f] = {}
        for label, path in (("baseline", None), ("ID", tuned_id), ("OOD", tuned_ood[f])):
            if label == "baseline" and baseline is not None:
                results[f][label] = baseline[f]
                continue
            with using(ctx, path) as (model, tokenizer):
                results[f][label] = summarize(ctx, model, tokenizer, tasks, sample=sample)
    return LeaveOneOut(
        coverage_n=ctx.scale.coverage_n,
        recipe=str(recipe),
        families=list(groups),
        n_prompts={f: len(ts) for f, ts in groups.items()},
        results=results,
    )


# --- report ----------------------------------------------------------------------------------------


def section(res: LeaveOneOut, figures: Path) -> str:
    """Figure 3 (entropy of each model on each task), Table 6 (exact means) and Table 5 (sampled coverage
    beside the paper's)."""
    plt = pyplot()
    fams, labels = res.families, ("baseline", "ID", "OOD")
    fig, axes = plt.subplots(1, len(fams), figsize=(2.3 * len(fams), 3.2), squeeze=False)
    for ax, f in zip(axes[0], fams, strict=True):
        vals = [res.results[f][lab].entropy for lab in labels]
        ax.bar(labels, vals, color=[COLORS[lab] for lab in labels])
        ax.set(title=f, ylabel="entropy (nats)" if f == fams[0] else None)
        ax.tick_params(axis="x", labelsize=8)
    md = save(fig, figures / "fig3_leave_one_out.png")
    metrics = {"entropy": "entropy", "expected_coverage": "E[Cov]", "mass": "mass"}
    if res.results[fams[0]]["baseline"].yield_100 is not None:
        metrics = {**metrics, "valid_mass": "valid mass", "yield_100": "yield@100"}
    head = ["task"] + [f"{lab} {short}" for short in metrics.values() for lab in labels]
    rows = [[f] + [getattr(res.results[f][lab], m) for m in metrics for lab in labels] for f in fams]
    md += (
        f"\nExact entropy over each prompt's targets, expected Coverage-{res.coverage_n} of valid answers and "
        "mass on them, mean over the task's prompts (Figure 3, Table 6):\n\n" + table(head, rows)
    )
    if res.results[fams[0]]["baseline"].sampled_coverage is not None:
        papers = list(TABLE5_COVERAGE)
        head = ["task"] + [f"ours {lab}" for lab in labels] + [f"{p} base / OOD" for p in papers]
        rows = [
            [f]
            + [res.results[f][lab].sampled_coverage for lab in labels]
            + [" / ".join(f"{v:g}" for v in TABLE5_COVERAGE[p].get(f.upper(), ())) or None for p in papers]
            for f in fams
        ]
        md += "\nSampled coverage, mean over prompts (Table 5; the paper's N is larger):\n\n" + table(
            head, rows
        )
    return md


EXPERIMENT = Experiment(
    name="leave-one-out",
    run=run,
    result=LeaveOneOut,
    section=section,
    claim=CLAIM,
    uses=(
        "six_recipe",
        *SIX_TASK_USES,
        "loo_samples",
        "answer_max_new_tokens",
    ),
    adapters=models,
)
