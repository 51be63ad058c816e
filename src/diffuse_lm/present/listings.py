"""Console listings that need no model: the built-in tasks and groups, one task's prompt and targets, the
shipped configs (``diffuse tasks``, ``diffuse configs``)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table
from rich.text import Text

from diffuse_lm.metrics import entropy, normalized_entropy
from diffuse_lm.present.console import table_console
from diffuse_lm.tasks import Task


def _kind(task: Task) -> str:
    return "uniform" if task.uniform else "weighted"


def tasks_table(tasks: list[Task], title: str | None = None) -> Table:
    """One row a task: name, family, number of targets, uniform or weighted p*, eos."""
    table = Table(title=title)
    for col, justify in (
        ("task", "left"),
        ("family", "left"),
        ("targets", "right"),
        ("p*", "left"),
        ("eos", "left"),
    ):
        table.add_column(col, justify=justify)
    for t in tasks:
        table.add_row(
            Text(t.name), Text(t.family or ""), str(len(t.targets)), _kind(t), "yes" if t.eos else "no"
        )
    return table


def print_tasks(tasks: list[Task], groups: dict[str, tuple[list[str], int]] | None = None) -> None:
    """The tasks' table, then (given) the groups: name -> (member specs, number of tasks)."""
    console = table_console()
    console.print(tasks_table(tasks, title=f"{len(tasks)} tasks"))
    if groups is not None:
        table = Table(title="groups")
        for col in ("group", "tasks", "members"):
            table.add_column(col, justify="right" if col == "tasks" else "left")
        for name, (members, count) in groups.items():
            table.add_row(Text(name), str(count), Text(", ".join(members)))
        console.print(table)


def print_task(t: Task, *, limit: int | None) -> None:
    """What one task asks (system, request, response prefixes) and wants: its targets, heaviest first, the
    first ``limit`` of them (all for ``None``), with the entropy of p*."""
    console = table_console()
    n = len(t.targets)
    h = entropy(t.weights)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("task", t.name),
        ("family", t.family or "-"),
        ("file", t.path or "-"),
        ("description", t.description or "-"),
        ("system", t.system or "-"),
        ("response prefix", " | ".join(repr(r) for r in t.responses)),
        ("eos", "yes (the answer ends the turn)" if t.eos else "no (the model goes on after the target)"),
        (
            "targets",
            f"{n}, {_kind(t)} p*: entropy {h:.3f} nats, {normalized_entropy(t.weights):.3f} of the uniform's",
        ),
    ]
    for key, value in rows:
        head.add_row(key, Text(value))
    console.print(head)
    console.print(Text("request:", style="bold"))
    console.print(Text(t.request))
    order = sorted(range(n), key=lambda i: (-t.weights[i], i)) if not t.uniform else list(range(n))
    shown = order if limit is None else order[:limit]
    table = Table(title=f"targets ({len(shown)} of {n}{'' if t.uniform else ', heaviest first'})")
    table.add_column("#", justify="right")
    table.add_column("target")
    table.add_column("p*", justify="right")
    for i in shown:
        table.add_row(str(i), Text(t.targets[i]), f"{t.weights[i]:.4g}")
    if shown:
        console.print(table)


def print_configs(configs: dict[str, Path]) -> None:
    """The shipped configs with the description each one's second comment line gives."""
    table = Table(title="shipped configs (diffuse train NAME, or diffuse configs cp NAME DIR)")
    table.add_column("name")
    table.add_column("description")
    for name, path in configs.items():
        comments = [line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")]
        table.add_row(Text(name), Text(comments[1] if len(comments) > 1 else ""))
    table_console().print(table)
