"""Console tables (rich): the measure table, the samples-statistics tables and the training summary."""

from __future__ import annotations

import os

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 180  # columns when writing to a file or pipe, where rich would otherwise assume 80


def table_console() -> Console:
    """A console for tables: the terminal's width, or a wide page (``$COLUMNS`` if set) when piped."""
    con = Console()
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = Console(width=PIPE_WIDTH)
    return con


def print_measure_table(result: dict, title: str | None = None, console: Console | None = None) -> None:
    """One row a task: targets, mass, KL, entropy, normalised entropy, yield, top 3 answers; the mass on the
    broader valid set too where a task has one."""
    from diffuse_lm.measuring import describe_provenance, top_answers  # torch: not for `diffuse tasks`

    table = Table(title=title or Text(describe_provenance(result)))  # Text: a path's [..] is not markup
    broad = any(r.get("n_valid", r["n_targets"]) != r["n_targets"] for r in result["tasks"])
    cols = ("task", "targets", "mass") + ("valid mass",) * broad
    cols += ("KL", "entropy", "norm. entropy", "yield@100", "top 3 (renormalised)")
    for col in cols:
        table.add_column(col, justify="left" if col in ("task", "top 3 (renormalised)") else "right")
    for row in result["tasks"]:
        top = ", ".join(f"{t} {p:.2f}" for t, p in top_answers(row))
        cells = [row["name"], str(row["n_targets"]), f"{row['mass']:.4f}"]
        cells += [f"{row.get('valid_mass', row['mass']):.4f}"] * broad
        cells += [f"{row['kl']:.3f}", f"{row['entropy']:.3f}", f"{row['normalized_entropy']:.3f}"]
        cells += [f"{row['yield_100']:.1f}" if "yield_100" in row else "", top]
        table.add_row(*cells)
    (console or table_console()).print(table)
    ordered = [row for row in result["tasks"] if "ks" in row]
    if ordered:
        print_ordered_table(ordered, console)


def print_ordered_table(rows: list[dict], console: Console | None = None) -> None:
    """Tasks with an ordered numeric support (distribution families): exact TV, KS and Wasserstein-1
    distances to p*, the model's mean and sd beside p*'s, and the share of N = 100 runs a KS test passes."""
    table = Table(title="ordered support: distances to p* (model renormalised over the support)")
    for col in ("task", "TV", "KS", "W1", "mean (p*)", "sd (p*)", "KS pass @100"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['tv']:.3f}",
            f"{row['ks']:.3f}",
            f"{row['w1']:.3g}",
            f"{row['mean']:.3g} ({row['target_mean']:.3g})",
            f"{row['sd']:.3g} ({row['target_sd']:.3g})",
            f"{row['ks_pass_100']:.0%}",
        )
    (console or table_console()).print(table)


SHOWN = 30  # answers listed in the distribution table of print_stats


def _ordered_rows(o: dict, exact: dict | None) -> list[tuple[str, str, str]]:
    """Rows of the summary for an ordered support: the samples' distances to p* (and the exact ones)."""
    e = exact if exact and "ks" in exact else {}

    def both(key: str, fmt: str) -> tuple[str, str]:
        return format(o[key], fmt), format(e[key], fmt) if key in e else ""

    runs = o["ks_runs_100"]
    sampled_pass = f"{o['ks_pass_100']:.0%} of {runs} runs" if runs else "(fewer than 100 valid)"
    return [
        ("TV to p*", *both("tv", ".3f")),
        ("KS to p*", *both("ks", ".3f")),
        ("Wasserstein-1 to p*", *both("w1", ".3g")),
        (f"mean (p* {o['target_mean']:.3g})", *both("mean", ".3g")),
        (f"sd (p* {o['target_sd']:.3g})", *both("sd", ".3g")),
        ("KS p-value (one-sample)", f"{o['ks_pvalue']:.3g}", ""),
        ("KS pass @100", sampled_pass, f"{e['ks_pass_100']:.0%} (simulated)" if e else ""),
    ]


def print_stats(
    stats: dict, *, task=None, exact: dict | None = None, title: str = "samples", con: Console | None = None
) -> None:
    """A summary table, then the answers: sampled counts and shares, with p* and the exact p for a task."""
    from diffuse_lm.metrics import expected_coverage
    from diffuse_lm.parsing import task_answers

    con = con or table_console()
    summary = Table(title=title)
    for col in ("metric", "sampled") + (("exact",) if exact else ()):
        summary.add_column(col, justify="left" if col == "metric" else "right")
    n = stats["n"]
    cov_exact = exact and expected_coverage(np.exp([t["logprob"] for t in exact["targets"]]), n)
    rows = [
        ("samples", str(n), ""),
        (
            "valid (rate)" if task else "well-formed (rate)",
            f"{stats['n_valid']} ({stats['valid_rate']:.3f})",
            exact and f"mass {exact['mass']:.4f}",
        ),
        (f"Coverage-{n}", str(stats["coverage"]), exact and f"expected {cov_exact:.1f}"),
    ]
    if task is not None and "invented_rate" in stats:
        examples = ", ".join(stats["invented_examples"][:3])
        rows.append(
            (
                "invented (rate)",
                f"{stats['n_invented']} ({stats['invented_rate']:.3f})"
                + (f": {examples}" if examples else ""),
                "",
            )
        )
    rows += [
        ("entropy (nats)", f"{stats['entropy']:.3f}", exact and f"{exact['entropy']:.3f}"),
    ]
    if "normalized_entropy" in stats:
        rows.append(
            (
                "normalised entropy",
                f"{stats['normalized_entropy']:.3f}",
                exact and f"{exact['normalized_entropy']:.3f}",
            )
        )
    if exact:
        rows.append(("KL(p* ‖ ·)", "", f"{exact['kl']:.3f}"))
    if "ordered" in stats:
        rows += _ordered_rows(stats["ordered"], exact)
    rows.append(("unigram diversity", f"{stats['unigram_diversity']:.3f}", ""))
    if "truncated_rate" in stats:
        rows.append(("cut at max tokens", f"{stats['truncated_rate']:.3f}", ""))
    for row in rows:
        summary.add_row(*[c or "" for c in row[: 3 if exact else 2]])
    con.print(summary)

    counts, valid = stats["counts"], max(stats["n_valid"], 1)
    if task is None and not counts:
        return
    table = Table(title="answers (shares are of the valid answers)")
    if task is None:
        for col in ("answer", "count", "share"):
            table.add_column(col, justify="left" if col == "answer" else "right")
        for a, c in stats["top"]:
            table.add_row(a, str(c), f"{c / valid:.3f}")
    else:
        answers, _ = task_answers(task)
        probs = [t["prob"] for t in exact["targets"]] if exact else [None] * len(answers)
        cols = ("answer", "p*") + (("exact p",) if exact else ()) + ("sampled", "count")
        for col in cols:
            table.add_column(col, justify="left" if col == "answer" else "right")
        ranked = sorted(
            zip(answers, task.weights, probs, strict=True),
            key=lambda r: -max(r[2] or 0.0, counts.get(r[0], 0) / valid),
        )
        for a, w, p in ranked[:SHOWN]:
            c = counts.get(a, 0)
            table.add_row(a, f"{w:.3f}", *([f"{p:.3f}"] if exact else []), f"{c / valid:.3f}", str(c))
        if len(ranked) > SHOWN:
            table.caption = f"… {len(ranked) - SHOWN} more targets"
    con.print(table)


def print_train_summary(summary: dict) -> None:
    """Before/after table of the evaluated tasks and where the run's files are."""

    console = table_console()
    for when in ("before", "after"):  # absent from a run with measure off
        if summary.get(when):
            print_measure_table(summary[when], title=f"{when}: {summary[when]['model']}", console=console)
    stop = ", stopped early" if summary["early_stopped"] else ""
    loss = summary["final_loss"]
    console.print(
        f"{summary['steps']} steps ({summary['passes']} passes{stop}); last pass loss "
        f"{'n/a' if loss is None else f'{loss:.4f}'} vs floor {summary['floor']:.4f}"
    )
    console.print(
        f"adapter: {summary['adapter_dir']}   (diffuse measure TASK --adapter {summary['adapter_dir']})"
    )


def print_biography_summary(report: dict, written: list) -> None:
    """``diffuse synth biographies``' summary: well-formed share, each attribute's coverage, entropy and top
    values, the fields each parser recovered, and the files written."""
    from diffuse_lm.biographies import ATTRIBUTES

    con = table_console()
    con.print(
        f"{report['n']} biographies, {report['n_valid']} well formed ({report['parse']} parse); "
        f"{report['map']['placed']} birth places on the map"
    )
    for key, a in report["attributes"].items():
        top = ", ".join(f"{str(v)[:30]} ({c})" for v, c in a["top"][:3])
        con.print(
            f"  {ATTRIBUTES[key]:<14} coverage {a['coverage']:>4}  entropy {a['entropy']:.2f}  {top}",
            markup=False,
            highlight=False,
        )
    rec = report["recovered"]
    con.print(
        "  fields recovered, strict -> tolerant parse: "
        + ", ".join(f"{k} {rec['strict'][k]:.0%} -> {rec['tolerant'][k]:.0%}" for k in rec["strict"]),
        markup=False,
        highlight=False,
    )
    for p in written:
        con.print(f"wrote {p}", markup=False, highlight=False)
