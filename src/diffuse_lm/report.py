"""Tables (and, later, plots) from results."""

from __future__ import annotations

import os

from rich.console import Console
from rich.table import Table
from rich.text import Text

from diffuse_lm.measuring import describe_provenance, top_answers

PIPE_WIDTH = 160  # columns when writing to a file or pipe, where rich would otherwise assume 80


def table_console() -> Console:
    """A console for tables: the terminal's width, or a wide page (``$COLUMNS`` if set) when piped."""
    con = Console()
    if not con.is_terminal and not os.environ.get("COLUMNS"):
        con = Console(width=PIPE_WIDTH)
    return con


def print_measure_table(result: dict, title: str | None = None, console: Console | None = None) -> None:
    """One row a task: targets, mass, KL, entropy, normalised entropy, top 3 answers."""
    table = Table(title=title or Text(describe_provenance(result)))  # Text: a path's [..] is not markup
    for col in ("task", "targets", "mass", "KL", "entropy", "norm. entropy", "top 3 (renormalised)"):
        table.add_column(col, justify="left" if col in ("task", "top 3 (renormalised)") else "right")
    for row in result["tasks"]:
        top = ", ".join(f"{t} {p:.2f}" for t, p in top_answers(row))
        table.add_row(
            row["name"],
            str(row["n_targets"]),
            f"{row['mass']:.4f}",
            f"{row['kl']:.3f}",
            f"{row['entropy']:.3f}",
            f"{row['normalized_entropy']:.3f}",
            top,
        )
    (console or table_console()).print(table)
