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
        f"Model: {result['model']}{' with adapter ' + result['adapter'] if result.get('adapter') else ''}. Exact methods are computed by teacher forcing (no sampling); sampled ones "
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
            f"| {row['task']} | {row['method']} | {row['kind']} | {_cell(row, 'mass', 4)} | {_cell(row, 'kl')} "
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


def plot_compare(result: dict, path: str | Path) -> Path:
    """One panel per task: methods by normalised entropy over the valid answers (95% intervals where
    sampled), each bar labelled with its mass on valid answers and KL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t["name"] for t in result["tasks"]]
    methods = [m["method"] for m in result["methods"]]
    cols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(
        nrows, cols, figsize=(7.5 * cols, 0.5 * len(methods) * nrows + 1.3 * nrows), squeeze=False
    )
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        rows = {r["method"]: r for r in result["rows"] if r["task"] == task}
        ys = range(len(methods))
        for y, method in zip(ys, methods, strict=True):
            row = rows[method]
            value = row["normalized_entropy"]
            err = None
            if "intervals" in row:
                lo, hi = row["intervals"]["normalized_entropy"]
                err = [[max(0.0, value - lo)], [max(0.0, hi - value)]]
            ax.barh(y, value, xerr=err, color=COLORS[row["kind"]], capsize=3, height=0.7)
            inside = value > 0.55  # the label inside a long bar, after a short one
            ax.text(
                0.01 if inside else value + 0.01,
                y,
                f"mass {_num(row['mass'], 3)} · KL {_num(row['kl'], 2)}",
                va="center",
                fontsize=7,
                color="white" if inside else "black",
            )
        ax.set_yticks(list(ys), methods, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.05)
        ax.axvline(1.0, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("normalised entropy over valid answers (1 = uniform)", fontsize=8)
        ax.set_title(task, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLORS.values()]
    fig.legend(handles, list(COLORS), loc="upper right", fontsize=8)
    fig.suptitle(f"diffuse compare: {result['model']}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.93, 0.97))
    path = Path(path)
    try:
        write_figure_atomic(fig, path, dpi=110)
    finally:
        plt.close(fig)
    return path
