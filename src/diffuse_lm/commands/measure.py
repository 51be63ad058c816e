"""``diffuse measure``: exact distribution metrics of tasks, without sampling."""

from __future__ import annotations

import argparse

from diffuse_lm.commands.common import (
    add_model_args,
    check_writable,
    load_from_args,
    output_format,
    task_inputs,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "measure",
        help="exact KL, entropy, mass and coverage of tasks (no sampling)",
        description="Score every target of each task exactly and compare the model's "
        "distribution over the targets with the wanted one.",
    )
    p.add_argument("tasks", nargs="+", metavar="TASK", help="task file, folder, or built-in task/group name")
    add_model_args(p)
    p.add_argument(
        "--output",
        "-o",
        help="write the results here, in the format of its suffix: .json (nested: tasks, targets, the adapter's "
        "hash, dtype, device, versions) or one row a target as .jsonl, .csv or .parquet (for pandas)",
    )
    p.add_argument(
        "--rows",
        metavar="FILE",
        help="also write one row a target as a flat table: .jsonl, .csv or .parquet",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import check_rows_path, load_tasks, measure, measure_rows, write_rows
    from diffuse_lm.present.console import print_measure_table

    tasks = load_tasks(args.tasks)  # validate input before the (slow) model load
    read = task_inputs(tasks, args.tasks)  # folders among them
    if args.output:
        check_writable(args.output, **read)
        if output_format(args.output, "--output", tables=True) == "rows":
            check_rows_path(args.output)
    if args.rows:
        check_rows_path(args.rows)
        check_writable(args.rows, inputs=[*read["inputs"], args.output], data_folders=read["data_folders"])
    model, tokenizer = load_from_args(args)
    result = measure(model, tokenizer, tasks, progress=True).to_json()
    if args.output and output_format(args.output, "--output", tables=True) == "rows":
        write_rows(args.output, measure_rows(result))
    elif args.output:  # written first: a broken pipe on the table must not lose it
        write_json(args.output, result)
    if args.rows:
        write_rows(args.rows, measure_rows(result))
    print_measure_table(result)
    return 0
