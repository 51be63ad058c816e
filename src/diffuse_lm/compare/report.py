"""The ``diffuse compare`` Markdown table and figure, from its result JSON."""

from __future__ import annotations

import math
from pathlib import Path

from diffuse_lm.files import write_figure_atomic

COLORS = {"exact": "#4C72B0", "sampled": "#DD8452"}


def _num(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞"
    if x != 0 and (abs(x) < 10 ** -(digits - 1) or abs(x) >= 1e5):
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


def _md(text: str) -> str:
    """``text`` as one Markdown table cell: a ``|`` in a task's name or an adapter's path does not split it."""
    return str(text).replace("|", "\\|")


def _cell(row: dict, key: str, digits: int = 3) -> str:
    """A value, with its 95% interval in brackets where the row was sampled."""
    text = _num(row[key], digits)
    if "intervals" in row and key in row["intervals"]:
        lo, hi = row["intervals"][key]
        text += f" [{_num(lo, digits)}, {_num(hi, digits)}]"
    return text


def markdown_table(result: dict) -> str:
    """One row per (task, method): mass, KL, entropy, expected coverage, format rate, cost."""
    cov = f"expected_coverage_{result['coverage_n']}"
    lines = [
        f"Model: {result['model']}{' with adapter ' + result['adapter'] if result.get('adapter') else ''}. "
        "Exact methods are computed by teacher forcing (no sampling); sampled ones "
        f"from {result['samples']} generations per task (seed {result['seed']}), with 95% bootstrap intervals "
        "over generations in brackets.",
        "",
        "| task | method | kind | mass on valid answers | KL(p* ‖ p) | entropy | norm. entropy "
        f"| E[Coverage-{result['coverage_n']}] | format followed | tokens per valid answer | time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in sorted(result["rows"], key=lambda r: [t["name"] for t in result["tasks"]].index(r["task"])):
        sampled = row["kind"] == "sampled"
        fmt = "–"
        if sampled:
            lo, hi = row["format_interval"]
            fmt = f"{row['format_rate']:.0%} [{lo:.0%}, {hi:.0%}]"
        tokens = _num(row["tokens_per_valid"], 1)
        lines.append(
            f"| {_md(row['task'])} | {_md(row['method'])} | {row['kind']} | {_cell(row, 'mass', 4)} | {_cell(row, 'kl')} "
            f"| {_cell(row, 'entropy')} | {_cell(row, 'normalized_entropy')} | {_cell(row, cov, 1)} | {fmt} "
            f"| {tokens if sampled else '~' + tokens} | {row['wall_s']:.1f} s |"
        )
    lines += [
        "",
        "Mass: probability of a valid answer. KL and entropy: of the distribution renormalised over the valid "
        "answers (natural logs; KL is ∞ where a wanted answer gets probability 0). Format followed: share of "
        "generations in the format the method asks for (Wilson 95%). Tokens per valid answer: sampled "
        "methods, tokens generated ÷ expected valid answers; exact methods (~), E[answer tokens | valid] ÷ "
        "mass, assuming invalid samples are as long as valid ones on average. Time: to compute the row "
        "(exact: scoring; sampled: generating and parsing).",
    ]
    return "\n".join(lines) + "\n"


MASS_FLOOR = 1e-6  # the mass axis is logarithmic; a mass below this is drawn at it (and labelled "<1e-6")
LOW_MASS = 0.5  # below this, most samples are not valid answers: the spread bar is hatched


def _short(method: str) -> str:
    """A method's label for a figure: ``tuned:<folder>`` rather than the adapter's whole path (its run folder's
    name for ``<run>/adapter``)."""
    name, _, arg = method.partition(":")
    if name != "tuned" or not arg:
        return method
    path = Path(arg)
    return f"tuned:{path.parent.name if path.name == 'adapter' and path.parent.name else path.name}"


def plot_compare(result: dict, path: str | Path) -> Path:
    """Two panels per task, methods as rows: the mass on valid answers (log scale: 1e-5 and 0.9 are worlds
    apart) and, beside it, the normalised entropy over the valid answers (95% intervals where sampled). A
    method's spread is hatched and greyed where most of its probability is off the valid answers, so a method
    that spreads its mass over junk does not look best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t["name"] for t in result["tasks"]]
    methods = [m["method"] for m in result["methods"]]
    per_row = 1 if len(tasks) <= 3 else 2  # two tasks (four panels) a row when there are many
    nrows = math.ceil(len(tasks) / per_row)
    fig, axes = plt.subplots(
        nrows,
        2 * per_row,
        figsize=(11 * per_row, 0.42 * len(methods) * nrows + 1.1 * nrows + 0.6),
        squeeze=False,
        gridspec_kw={"width_ratios": [1, 1.15] * per_row},
    )
    pairs = [(row[2 * k], row[2 * k + 1]) for row in axes for k in range(per_row)]
    for mass_ax, spread_ax in pairs[len(tasks) :]:
        mass_ax.set_visible(False)
        spread_ax.set_visible(False)
    ys = list(range(len(methods)))
    for (mass_ax, spread_ax), task in zip(pairs, tasks, strict=False):
        rows = {r["method"]: r for r in result["rows"] if r["task"] == task}
        for y, method in zip(ys, methods, strict=True):
            row = rows[method]
            color = COLORS[row["kind"]]
            mass = row["mass"]
            shown = max(mass, MASS_FLOOR) if math.isfinite(mass) else MASS_FLOOR
            mass_ax.barh(y, shown, color=color, height=0.7, left=MASS_FLOOR * 0.5)
            label = (
                "0: no valid answer"
                if mass == 0
                else (f"<{MASS_FLOOR:.0e}" if mass < MASS_FLOOR else _num(mass, 3))
            )
            mass_ax.text((shown + MASS_FLOOR * 0.5) * 1.3, y, label, va="center", fontsize=7)
            value = row["normalized_entropy"]
            err = None
            if "intervals" in row:
                lo, hi = row["intervals"]["normalized_entropy"]
                err = [[max(0.0, value - lo)], [max(0.0, hi - value)]]
            low = mass < LOW_MASS
            spread_ax.barh(
                y,
                value,
                xerr=err,
                color="#BBBBBB" if low else color,
                hatch="///" if low else None,
                edgecolor="#777777" if low else color,
                capsize=3,
                height=0.7,
            )
            note = "no valid answer to spread" if mass == 0 else f"KL {_num(row['kl'], 2)}"
            x = min(value, 1.0) + 0.02 if math.isfinite(value) else 0.02
            spread_ax.text(x, y, note, va="center", fontsize=7, clip_on=False)
        mass_ax.set_xscale("log")
        mass_ax.set_xlim(MASS_FLOOR * 0.5, 3)
        mass_ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        mass_ax.set_yticks(ys, [_short(m) for m in methods], fontsize=8)
        mass_ax.invert_yaxis()
        mass_ax.set_xlabel("mass on valid answers (log scale; 1 = every sample valid)", fontsize=8)
        mass_ax.set_title(f"{task}: how often the answer is valid", fontsize=9)
        mass_ax.grid(axis="x", alpha=0.3)
        spread_ax.set_yticks(ys, [""] * len(ys))
        spread_ax.invert_yaxis()
        spread_ax.set_xlim(0, 1.25)
        spread_ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        spread_ax.set_xlabel("normalised entropy over the valid answers (1 = uniform over them)", fontsize=8)
        spread_ax.set_title(f"{task}: how evenly the valid answers are spread", fontsize=9)
        spread_ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="#BBBBBB", edgecolor="#777777", hatch="///"))
    labels = [*COLORS, f"mass < {LOW_MASS}: spread of a minority of samples"]
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(f"diffuse compare: {result['model']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    path = Path(path)
    try:
        write_figure_atomic(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path
