"""Leave one answer format out (beyond the paper): is a tuned model random only where it was asked in braces?
For each held-out format (the bare answer, "Answer: X", a JSON object, a letter or number among options, lower
case, braces), a model tuned on the format mix without that format (random choices in the fifteen other trained
formats) is measured on closed sets that no training task asks for (days, months, seasons, continents, compass
points) asked in the held-out format, beside the base model and the six-task model (which trains on every
format). Then base and the six-task model in formats that no training task uses (formats/unseen: YAML, bold,
"Final answer: X", a sentence, parentheses, a JSON list). Exact: mass on the valid answers, normalised entropy
and yield over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffuse_lm.experiments.common import Context, adapter, exact, using
from diffuse_lm.experiments.leave_one_out import recipe_settings, six_task_adapter
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.present.figures import pyplot, save
from diffuse_lm.present.markdown import table
from diffuse_lm.tasks import builtin_groups, builtin_tasks, load_tasks

CLAIM = (
    "Beyond the paper: a model tuned on random choices asked in some answer formats is random and valid in "
    "a format it was not tuned on, not only where it was asked in braces."
)
FORMATS = ("braces", "bare", "answer", "json", "lower", "letter", "number")
MODELS = ("base", "held out", "six-task")


class Cell(Record):
    """One model on one format's measuring tasks: means over the tasks."""

    mass: float  # on every valid answer: the targets and the task's `valid` ones (a sentence without its period)
    normalized_entropy: float
    yield_20: float
    kl: float
    tasks: list[dict]  # each task's exact metrics


class FormatsResult(Record):
    formats: list[str]
    subjects: int | None  # training subjects of the format mix kept (None: all)
    results: dict[str, dict[str, Cell]]  # format -> model ("base", "held out", "six-task") -> cell
    # format no training task uses -> model ("base", "six-task") -> cell (absent from results of older code)
    unseen: dict[str, dict[str, Cell]] = {}


def held_out(ctx: Context) -> list[str]:
    """The formats held out at this scale."""
    return [f for f in FORMATS if ctx.scale.formats_held_out is None or f in ctx.scale.formats_held_out]


def unseen_formats() -> list[str]:
    """The formats that no built-in training task asks in (formats/unseen/<format>/...)."""
    return sorted({n.split("/")[2] for n in builtin_tasks() if n.startswith("formats/unseen/")})


def training_tasks(ctx: Context, without: str) -> list[str]:
    """The format mix (each training subject in two of the sixteen trained formats) without the tasks asked in
    ``without``: those of its first ``format_subjects`` subjects; and where the scale's recipe mixes in the
    constrained or ordered-set tasks, those asked in a kept format."""
    groups = builtin_groups()
    subjects = sorted({n.split("/")[3] for n in groups["formats-mix"]})[: ctx.scale.format_subjects]
    out = [n for n in groups["formats-mix"] if n.split("/")[2] != without and n.split("/")[3] in subjects]
    if ctx.scale.six_recipe.constrained_mix:
        out += [n for n in groups["constrained-mix"] if n.split("/")[1] != without]
    if ctx.scale.six_recipe.ordered_mix:
        out += [n for n in groups["ordered-mix"] if n.split("/")[2] != without]
    return out


def models(ctx: Context) -> dict[str, Path]:
    """The model tuned without each held-out format, trained as the six-task model is (the scale's recipe:
    its learning rate, family balance and retention term) on the format tasks of every other format."""
    passes, settings = ctx.scale.passes["formats"], recipe_settings(ctx, ctx.scale.six_recipe)
    return {
        f: adapter(ctx, f"formats-without-{f}", training_tasks(ctx, f), passes, settings=settings)
        for f in held_out(ctx)
    }


def cell(rows: list[dict]) -> Cell:
    """Means over one format's tasks; the mass is that of every valid answer, as the yield counts them."""
    means = {
        k: float(np.mean([r[k] for r in rows]))
        for k in ("valid_mass", "normalized_entropy", "yield_20", "kl")
    }
    kept = ("name", "mass", "valid_mass", "normalized_entropy", "yield_20", "kl", "entropy")
    return Cell(mass=means.pop("valid_mass"), **means, tasks=[{k: r[k] for k in kept} for r in rows])


def run(ctx: Context) -> FormatsResult:
    tuned = models(ctx)
    six = six_task_adapter(ctx)
    results: dict[str, dict[str, Cell]] = {}
    for fmt in held_out(ctx):
        tasks = load_tasks([f"formats/eval/{fmt}"])
        results[fmt] = {}
        for label, path in (("base", None), ("held out", tuned[fmt]), ("six-task", six)):
            with using(ctx, path) as (model, tokenizer):
                results[fmt][label] = cell(exact(model, tokenizer, tasks, ctx.scale.coverage_n))
    unseen: dict[str, dict[str, Cell]] = {}
    asked = {fmt: load_tasks([f"formats/unseen/{fmt}"]) for fmt in unseen_formats()}
    for label, path in (("base", None), ("six-task", six)):
        with using(ctx, path) as (model, tokenizer):
            for fmt, tasks in asked.items():
                unseen.setdefault(fmt, {})[label] = cell(exact(model, tokenizer, tasks, ctx.scale.coverage_n))
    return FormatsResult(
        formats=held_out(ctx), subjects=ctx.scale.format_subjects, results=results, unseen=unseen
    )


def _table(cells: dict[str, dict[str, Cell]], models: tuple[str, ...]) -> str:
    """Mass, normalised entropy and yield@20 of each model (columns) in each format (rows)."""
    keys = {"mass": "mass", "normalized_entropy": "norm. H", "yield_20": "yield@20"}
    head = ["format"] + [f"{m} {label}" for label in keys.values() for m in models]
    rows = [[f] + [getattr(by[m], k) for k in keys for m in models] for f, by in cells.items()]
    return table(head, rows)


def section(res: FormatsResult, figures: Path) -> str:
    """Mass and normalised entropy of each model in each held-out format (figure and table)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    x = np.arange(len(res.formats))
    colors = {"base": "tab:red", "held out": "tab:blue", "six-task": "tab:green"}
    for ax, key, label in (
        (axes[0], "mass", "mass on valid answers (log)"),
        (axes[1], "normalized_entropy", "normalised entropy over them"),
    ):
        for i, m in enumerate(MODELS):
            ax.bar(x + (i - 1) * 0.27, [getattr(res.results[f][m], key) for f in res.formats], 0.27,
                   color=colors[m], label=m)  # fmt: skip
        ax.set_xticks(x, res.formats)
        ax.set(ylabel=label, yscale="log" if key == "mass" else "linear")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(MODELS), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # the legend above the panels, over no bar
    md = save(fig, figures / "formats.png")
    md += (
        "\nMeasured on days, months, seasons, continents and compass points asked in each format (means over "
        "the five); 'held out': tuned on the format mix without the held-out format "
        f"({'all' if res.subjects is None else res.subjects} subjects, each in two of the other formats) with "
        "the six-task model's recipe; 'six-task': the six-task model, tuned on every format:\n\n"
        + _table(res.results, MODELS)
    )
    if res.unseen:
        md += (
            "\n\nThe same subjects asked in formats that no training task uses (formats/unseen):\n\n"
            + _table(res.unseen, ("base", "six-task"))
        )
    return md


EXPERIMENT = Experiment(
    name="formats",
    run=run,
    result=FormatsResult,
    section=section,
    claim=CLAIM,
    uses=("passes.formats", "formats_held_out", "format_subjects", "six_recipe", "coverage_n"),
    adapters=lambda ctx: (models(ctx), six_task_adapter(ctx)),
)
