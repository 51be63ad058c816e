"""``diffuse stats``: metrics of a samples file (Section 2.2), beside the exact distribution for a task."""

from __future__ import annotations

import argparse
import sys

from diffuse_lm.api import DEFAULT_MODEL, DiffuseError
from diffuse_lm.commands.common import (
    add_model_args,
    check_writable,
    output_format,
    task_inputs,
    write_json,
)


def register(sub) -> None:
    p = sub.add_parser(
        "stats",
        help="valid rate, coverage, entropy and top answers of a samples file",
        description="Metrics of sampled generations (a `diffuse sample` JSONL). With a task "
        "(--task, or the one the file was sampled for), answers are checked against its "
        "targets and the sampled distribution is printed beside the exact one. Records whose "
        "index is outside 0..n-1 (n from the file's .meta.json) are left out, and an index "
        "that occurs twice with different texts counts once (the first); both are reported "
        "as a warning line on stderr.",
    )
    p.add_argument("file", metavar="FILE.jsonl", help="samples written by `diffuse sample`")
    p.add_argument("--task", help="task to check answers against (default: the file's own, if known)")
    p.add_argument("--no-exact", action="store_true", help="skip the exact distribution (no model load)")
    p.add_argument("--top", type=int, default=10, help="answers listed with their counts (default 10)")
    p.add_argument("--output", "-o", help="write the metrics as JSON here")
    add_model_args(p)
    p.set_defaults(func=run)


def resolve_task(spec: str | None, meta: dict | None):
    """The task named by ``--task``, else the one recorded in the file's sidecar (``None`` if neither)."""
    from diffuse_lm.api import load_tasks

    if spec:
        tasks = load_tasks(spec)
        if len(tasks) != 1:
            raise DiffuseError(f"--task {spec}: names {len(tasks)} tasks; give one")
        return tasks[0]
    recorded = (meta or {}).get("task") or {}
    for candidate in (recorded.get("path"), recorded.get("name")):
        if candidate:
            try:
                tasks = load_tasks(candidate)
            except DiffuseError:
                continue
            # a file of many tasks (JSONL, a list, a dataset): the one of the recorded name
            named = [t for t in tasks if t.name == recorded.get("name")]
            if named or len(tasks) == 1:
                return (named or tasks)[0]
    if recorded.get("name"):
        print(
            f"note: the file's task {recorded['name']!r} is not found any more; give --task", file=sys.stderr
        )
    return None


def checked_records(path: str, records: list[dict], conflicts: list[int], meta: dict | None) -> list[dict]:
    """The records of a samples file with index in ``0..n-1`` (``n`` from its sidecar; without one, any
    index >= 0), warning on stderr about those left out and about indices repeated with another text."""
    n = (meta or {}).get("n")
    n = n if isinstance(n, int) and not isinstance(n, bool) else None
    kept = [r for r in records if r["index"] >= 0 and (n is None or r["index"] < n)]
    if len(kept) < len(records):
        span = f"outside 0..{n - 1} (the file's n is {n})" if n is not None else "below 0"
        out = sorted({r["index"] for r in records} - {r["index"] for r in kept})
        print(f"warning: {path}: left out the records with an index {span}: {_some(out)}", file=sys.stderr)
    distinct = len({r["index"] for r in kept})
    if n is not None and distinct < n:
        print(
            f"note: {path}: holds {distinct} of the {n} samples its run asked for (interrupted? the same "
            "`diffuse sample` command finishes it); the statistics are over these",
            file=sys.stderr,
        )
    if conflicts:
        print(
            f"warning: {path}: indices repeated with different texts (the first of each is counted): "
            f"{_some(conflicts)}",
            file=sys.stderr,
        )
    return kept


def _some(indices: list[int], shown: int = 5) -> str:
    """The first few of ``indices``, for a message of bounded length."""
    more = f", … {len(indices) - shown} more" if len(indices) > shown else ""
    return ", ".join(str(i) for i in indices[:shown]) + more


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import measure, read_samples_file, sample_stats, samples_sidecar
    from diffuse_lm.present.console import print_stats

    if args.top < 1:
        raise DiffuseError(f"--top {args.top}: must be >= 1")
    if args.output:
        check_writable(args.output, inputs=[args.file, samples_sidecar(args.file)])
        output_format(args.output, "--output")
    records, conflicts, meta = read_samples_file(args.file)
    records = checked_records(args.file, records, conflicts, meta)
    if not records:
        raise DiffuseError(f"{args.file}: holds no samples")
    task = resolve_task(args.task, meta)
    if args.output and task is not None:
        check_writable(args.output, **task_inputs([task]))  # a mapping's data files and folders too
    if task is not None and meta and meta.get("messages") not in (None, task.messages()):
        print(f"note: task {task.name} has another prompt than the one these samples answer", file=sys.stderr)
    stats = sample_stats(records, task, top=args.top)
    exact = None
    if task is not None and not args.no_exact:
        from diffuse_lm.commands.common import load_from_args

        if args.model == DEFAULT_MODEL and args.adapter is None and meta:  # the model that sampled the file
            args.model, args.adapter = meta.get("model_arg", DEFAULT_MODEL), meta.get("adapter_path")
        model, tokenizer = load_from_args(args)
        exact = measure(model, tokenizer, [task]).tasks[0]
    if args.output:
        write_json(
            args.output, {"file": str(args.file), "task": task and task.name, "stats": stats, "exact": exact}
        )
    title = f"{args.file}" + (f" · task {task.name}" if task else "")
    if meta and exact and (meta.get("temperature"), meta.get("top_p"), meta.get("top_k")) != (1.0, 1.0, 0):
        title += " · note: exact p is at temperature 1, no top-p/top-k"
    print_stats(stats, task=task, exact=exact, title=title)
    return 0
