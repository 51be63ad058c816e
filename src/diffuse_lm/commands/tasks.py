"""``diffuse tasks``: list the built-in tasks and groups, or show what one task asks and wants."""

from __future__ import annotations

import argparse


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


def run_list(args: argparse.Namespace) -> int:
    from diffuse_lm.api import builtin_groups, builtin_tasks, load_tasks
    from diffuse_lm.present.listings import print_tasks

    specs = args.tasks or list(builtin_tasks())
    tasks = load_tasks(specs) if specs else []
    groups = None
    if not args.tasks:
        groups = {name: (members, len(load_tasks([name]))) for name, members in builtin_groups().items()}
    print_tasks(tasks, groups)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from diffuse_lm.api import DiffuseError, load_tasks
    from diffuse_lm.present.console import table_console
    from diffuse_lm.present.listings import print_task, tasks_table

    if args.limit < 0:
        raise DiffuseError(f"--limit {args.limit}: must be zero or more")
    tasks = load_tasks([args.task])
    if len(tasks) > 1:
        table_console().print(
            tasks_table(tasks, title=f"{args.task}: {len(tasks)} tasks (show one by its full name)")
        )
        return 0
    print_task(tasks[0], limit=None if args.all else args.limit)
    return 0
