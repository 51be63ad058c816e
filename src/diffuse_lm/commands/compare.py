"""``diffuse compare``: the model's distribution over each task's valid answers under several ways of
getting diversity (temperature, min-p, top-p, a system prompt, verbalized sampling, a tuned adapter)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffuse_lm.api import DiffuseError
from diffuse_lm.commands.common import (
    add_model_args,
    check_replaceable,
    check_writable,
    load_from_args,
    task_inputs,
)

DEFAULT_METHODS = "base,temperature:1.5,min_p:0.1,top_p:0.9,system-prompt,verbalized:5"
FILES = ("compare.json", "compare.md", "compare.png")


def register(sub) -> None:
    from diffuse_lm.api import COMPARE_METHODS

    methods = "; ".join(f"{m.usage} ({m.kind}): {m.about}" for m in COMPARE_METHODS.values())
    p = sub.add_parser(
        "compare",
        help="compare ways of getting diverse answers (temperature, min-p, prompts, a tuned adapter)",
        description="Measure each method's distribution over each task's valid answers: exactly by teacher "
        "forcing where the method allows it, from samples with 95% intervals where it does not. Writes "
        "DIR/compare.json (everything), DIR/compare.md (a table) and DIR/compare.png. With --adapter, "
        "every method runs on the tuned model.",
    )
    p.add_argument("tasks", nargs="+", metavar="TASK", help="task file, folder, or built-in task/group name")
    p.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated methods (default: {DEFAULT_METHODS}). Known: {methods.replace('%', '%%')}",
    )
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder for the three files")
    p.add_argument("--samples", type=int, default=100, help="generations per task for sampled methods")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples and the bootstrap (default 0)")
    p.add_argument("--coverage-n", type=int, default=1000, help="N of the expected Coverage-N (default 1000)")
    p.add_argument("--batch-size", type=int, default=64, help="generations run together (default 64)")
    add_model_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import load_tasks, locked, parse_methods

    # Everything that can be wrong with the input fails here, before the (slow) model load.
    specs = parse_methods(args.methods)
    if args.adapter and any(s.method.name == "tuned" for s in specs):
        raise DiffuseError(
            "--adapter with a tuned:PATH method: give adapters one way (--methods base,tuned:PATH)"
        )
    for flag, value in (
        ("--samples", args.samples),
        ("--coverage-n", args.coverage_n),
        ("--batch-size", args.batch_size),
    ):
        if value < 1:
            raise DiffuseError(f"{flag} {value}: must be >= 1")
    if args.seed < 0:
        raise DiffuseError(f"--seed {args.seed}: must be >= 0")
    tasks = load_tasks(args.tasks)
    out = Path(args.output)
    for name in FILES:
        check_writable(out / name, **task_inputs(tasks, args.tasks))  # folders among them
    check_replaceable(out, FILES, _is_compare_result(out / "compare.json"), "compare")

    where = out.absolute()  # "." has no name to put beside it
    with locked(where.parent / f".{where.name}.compare-lock", str(out), "diffuse compare"):
        return _run(args, tasks, specs, out)


def _run(args: argparse.Namespace, tasks, specs, out: Path) -> int:
    """The slow part, under the output folder's lock: two compares into one folder would mix their files."""
    from diffuse_lm.api import compare, compare_markdown, plot_compare, write_json, write_text

    model, tokenizer = load_from_args(args)
    result = compare(
        model,
        tokenizer,
        tasks,
        specs,
        samples=args.samples,
        seed=args.seed,
        coverage_n=args.coverage_n,
        batch_size=args.batch_size,
        progress=True,
    )
    result["adapter"] = args.adapter
    table = compare_markdown(result)
    write_json(out / "compare.json", result)  # written first: a broken pipe must not lose them
    write_text(out / "compare.md", table)
    plot_compare(result, out / "compare.png")
    print(table, end="")
    print(f"wrote {out / 'compare.json'}, {out / 'compare.md'}, {out / 'compare.png'}")
    return 0


def _is_compare_result(path: Path) -> bool:
    """Did `diffuse compare` write ``path`` (a JSON object with its keys)? Then the files beside it are its."""
    import json

    if not path.is_file():
        return False  # a FIFO named so is not read (the writability check refuses it)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"model", "methods", "rows"} <= set(data)
