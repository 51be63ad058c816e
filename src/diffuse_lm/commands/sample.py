"""``diffuse sample``: sample generations of a task or prompt into a resumable JSONL file, then print their
metrics (and, for a task, the sampled distribution beside the exact one)."""

from __future__ import annotations

import argparse

from diffuse_lm.api import DiffuseError
from diffuse_lm.commands.common import (
    add_model_args,
    add_sampling_args,
    check_sampling_args,
    check_writable,
    load_for_sampling,
    output_format,
    sampling_kwargs,
    task_inputs,
    write_json,
)

PROMPT_MAX_NEW_TOKENS = 256


def register(sub) -> None:
    p = sub.add_parser(
        "sample",
        help="sample generations into a resumable JSONL file",
        description="Sample generations of a task (or a free prompt), one JSON object a line: "
        "text, parsed {answer}, valid, index, seed. Re-running the same command resumes: only "
        "missing samples are generated.",
    )
    p.add_argument("task", nargs="?", metavar="TASK", help="task file or built-in task name")
    p.add_argument("--prompt", help="a free prompt instead of a task")
    p.add_argument("--system", help="system message for --prompt")
    p.add_argument("--output", "-o", required=True, help="JSONL file to write (resumed if it exists)")
    p.add_argument("--stats-output", help="also write the metrics as JSON here")
    p.add_argument("--no-stats", action="store_true", help="do not print metrics at the end")
    add_sampling_args(
        p,
        max_new_tokens_help="default: for a task, twice its longest target + 8 (at least "
        f"32); for --prompt, {PROMPT_MAX_NEW_TOKENS}",
    )
    add_model_args(p)
    p.set_defaults(func=run)


def default_max_new_tokens(tokenizer, task) -> int:
    """Room for the longest target twice over (answers often come with a few words around them)."""
    if task is None:
        return PROMPT_MAX_NEW_TOKENS
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in task.targets)
    return max(32, 2 * longest + 8)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import (
        check_samples_file,
        is_vllm,
        load_tasks,
        measure,
        sample_stats,
        sample_to_file,
        samples_sidecar,
    )
    from diffuse_lm.present.console import print_stats

    if (args.task is None) == (args.prompt is None):
        raise DiffuseError("give a TASK or --prompt TEXT (one of them)")
    if args.prompt is not None and not args.prompt.strip():
        raise DiffuseError("--prompt: empty (a task file refuses an empty request too)")
    if args.system and not args.prompt:
        raise DiffuseError("--system goes with --prompt (a task has its own system message)")
    task = None
    if args.task:
        tasks = load_tasks(args.task)
        if len(tasks) != 1:
            raise DiffuseError(f"{args.task}: names {len(tasks)} tasks; sample one task a file")
        task = tasks[0]
    messages = (
        task.messages()
        if task
        else ([{"role": "system", "content": args.system}] if args.system else [])
        + [{"role": "user", "content": args.prompt}]
    )
    check_sampling_args(args)
    read = task_inputs([task] if task else [])
    check_writable(args.output, **read)
    if args.stats_output:
        outputs = [args.output, samples_sidecar(args.output)]
        check_writable(args.stats_output, inputs=read["inputs"] + outputs, data_folders=read["data_folders"])
        output_format(args.stats_output, "--stats-output")
    check_samples_file(args.output)  # before the model load, which takes a while

    model, tokenizer = load_for_sampling(args)
    max_new = args.max_new_tokens or default_max_new_tokens(tokenizer, task)
    records = sample_to_file(
        model, tokenizer, messages, args.n, args.output, task=task, **sampling_kwargs(args, max_new)
    )
    stats = sample_stats(records, task)
    exact = None
    if task is not None and not is_vllm(model) and not args.no_stats:
        exact = measure(model, tokenizer, [task]).tasks[0]
    if args.stats_output:
        write_json(
            args.stats_output,
            {"file": args.output, "task": task and task.name, "stats": stats, "exact": exact},
        )
    if not args.no_stats:
        print_stats(
            stats, task=task, exact=exact, title=f"{args.output}" + (f" · task {task.name}" if task else "")
        )
    return 0
