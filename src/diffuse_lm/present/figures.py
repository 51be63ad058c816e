"""Figures (PNG, matplotlib on the Agg backend): the model's distribution over a task's targets before and after
tuning, and the colours and saving of the reproduction report's figures."""

from __future__ import annotations

from pathlib import Path

from diffuse_lm.files import write_figure_atomic

# Colours of the report's figures: one a model or distribution.
COLORS = {
    "natural": "0.55",
    "base": "tab:red",
    "tuned": "tab:blue",
    "baseline": "tab:red",
    "ID": "tab:green",
    "OOD": "tab:blue",
    "Base": "tab:red",
    "Tuned-OOD": "tab:blue",
    "Tuned-ID": "tab:green",
}

MAX_TASKS = 6  # rows in one figure
MAX_LABELLED = 40  # above this many targets, bars are sorted by probability and unlabelled


def _panel(ax, row: dict, heading: str, ymax: float) -> None:
    """Bars of the renormalised probabilities of one task's targets, with the wanted p* as a line."""
    targets = row["targets"]
    many = len(targets) > MAX_LABELLED
    if many:
        targets = sorted(targets, key=lambda t: (-t["weight"], -t["prob"]))  # by p*, then by the model
    xs = range(len(targets))
    ax.bar(
        xs,
        [t["prob"] for t in targets],
        color="#4C72B0",
        width=0.8,
        label="model, renormalised over the valid answers",
    )
    ax.step(xs, [t["weight"] for t in targets], where="mid", color="#DD8452", linewidth=2, label="wanted p*")
    ax.set_ylim(0, ymax)
    if many:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(targets)} targets, by wanted p*, then most probable first")
    else:
        ax.set_xticks(
            list(xs), [t["target"] for t in targets], rotation=90 if len(targets) > 12 else 0, fontsize=8
        )
    mass = f"{row['mass']:.4f}" if row["mass"] >= 1e-3 else f"{row['mass']:.1e}"
    ax.set_title(
        f"{heading}\nmass on valid answers {mass} · KL {row['kl']:.3f} · "
        f"norm. entropy {row['normalized_entropy']:.3f}",
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)


def plot_before_after(before: dict, after: dict, path: str | Path) -> Path:
    """Side-by-side bar charts (one row a task, at most ``MAX_TASKS``) of two measure JSONs; writes a PNG."""
    plt = pyplot()
    pairs = list(zip(before["tasks"], after["tasks"], strict=True))[:MAX_TASKS]
    fig, axes = plt.subplots(len(pairs), 2, figsize=(11, 3.6 * len(pairs)), squeeze=False)
    for (b, a), (ax_b, ax_a) in zip(pairs, axes, strict=True):
        peak = max(t["prob"] for t in b["targets"] + a["targets"])
        peak = max(peak, max(t["weight"] for t in b["targets"]))
        ymax = min(1.0, peak * 1.35)  # room for the legend above the bars
        _panel(ax_b, b, f"{b['name']}: before ({before['model']})", ymax)
        _panel(ax_a, a, f"{a['name']}: after ({after['model']})", ymax)
        ax_b.set_ylabel("probability among the valid answers")
    axes[0][1].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_figure_atomic(fig, path, dpi=110)
    plt.close(fig)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> str:
    """Write ``fig`` as a PNG and close it; returns the Markdown that shows it from the report. The tight
    layout, unless a figure legend placed by the caller set its own."""
    if not fig.legends:
        fig.tight_layout()
    write_figure_atomic(fig, path, dpi=110)
    pyplot().close(fig)
    return f"![{path.stem}](figures/{path.name})\n"
