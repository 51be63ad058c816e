"""``diffuse tasks``: list the built-in tasks and groups, or show what one task asks and wants."""

from __future__ import annotations

import argparse

from rich.table import Table
from rich.text import Text

from diffuse_lm.present.console import table_console
from diffuse_lm.task_model import Task


def register(sub) -> None:
    p = sub.add_parser(
        "tasks",
        help="list built-in tasks and groups (the default), or show one task",
        description="Built-in tasks are accepted wherever a task file is, by name "
        "(e.g. fruits/fruit/p0), folder prefix (fruits) or group (paper-six).",
    )
    p.set_defaults(func=run_list, tasks=[])  # `diffuse tasks` alone lists
    verbs = p.add_subparsers(dest="verb", metavar="{list,show}")
    ls = verbs.add_parser("list", help="table of tasks (default: every built-in) and of the groups")
    ls.add_argument("tasks", nargs="*", metavar="TASK", help="task files, folders, built-in names or groups")
    ls.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="one task's prompt, targets and wanted weights")
    show.add_argument("task", metavar="TASK", help="built-in name, group or task file")
    show.add_argument("--limit", type=int, default=20, help="targets to print, heaviest first (default: 20)")
    show.add_argument("--all", action="store_true", help="print every target")
    show.set_defaults(func=run_show)


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


def run_list(args: argparse.Namespace) -> int:
    from diffuse_lm.tasks import builtin_groups, builtin_tasks, load_tasks

    console = table_console()
    specs = args.tasks or list(builtin_tasks())
    tasks = load_tasks(specs) if specs else []
    console.print(tasks_table(tasks, title=f"{len(tasks)} tasks"))
    if not args.tasks:
        groups = Table(title="groups")
        for col in ("group", "tasks", "members"):
            groups.add_column(col, justify="right" if col == "tasks" else "left")
        for name, members in builtin_groups().items():
            groups.add_row(Text(name), str(len(load_tasks([name]))), Text(", ".join(members)))
        console.print(groups)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from diffuse_lm.errors import DiffuseError
    from diffuse_lm.metrics import entropy, normalized_entropy
    from diffuse_lm.tasks import load_tasks

    if args.limit < 0:
        raise DiffuseError(f"--limit {args.limit}: must be zero or more")
    tasks = load_tasks([args.task])
    console = table_console()
    if len(tasks) > 1:
        console.print(
            tasks_table(tasks, title=f"{args.task}: {len(tasks)} tasks (show one by its full name)")
        )
        return 0
    t = tasks[0]
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
    shown = order if args.all else order[: args.limit]
    table = Table(title=f"targets ({len(shown)} of {n}{'' if t.uniform else ', heaviest first'})")
    table.add_column("#", justify="right")
    table.add_column("target")
    table.add_column("p*", justify="right")
    for i in shown:
        table.add_row(str(i), Text(t.targets[i]), f"{t.weights[i]:.4g}")
    if shown:
        console.print(table)
    return 0
