"""``diffuse configs``: list, print or copy the training configs that ship with the package (as torchtune's
``tune ls`` and ``tune cp``), so a pip-installed user has them to start from."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_text_atomic


def register(sub) -> None:
    p = sub.add_parser(
        "configs",
        help="list, show or copy the shipped training configs",
        description="The training configs that ship with diffuse-lm (the repository's configs/). "
        "`diffuse train NAME` runs one by name; `cp` copies one to edit.",
        epilog="example: diffuse configs cp smollm2-135m/rng-1-10 my-configs/ && "
        "diffuse train my-configs/rng-1-10.yaml",
    )
    verbs = p.add_subparsers(dest="verb", metavar="{list,show,cp}")
    ls = verbs.add_parser("list", help="names and one-line descriptions (the default)")
    ls.set_defaults(func=run_list)
    show = verbs.add_parser("show", help="print a config")
    show.add_argument("name", metavar="NAME", help="a name from `diffuse configs list`")
    show.set_defaults(func=run_show)
    cp = verbs.add_parser("cp", help="copy a config to a folder or file, to edit and train from")
    cp.add_argument("name", metavar="NAME", help="a name from `diffuse configs list`")
    cp.add_argument("dest", metavar="DEST", help="folder (the file keeps its name) or .yaml file to write")
    cp.add_argument("--overwrite", action="store_true", help="replace DEST if it exists")
    cp.set_defaults(func=run_cp)
    p.set_defaults(func=run_list)


def _get(name: str) -> Path:
    from diffuse_lm.config import builtin_configs

    known = builtin_configs()
    key = name.removeprefix("configs/").removesuffix(".yaml")
    if key not in known:
        raise DiffuseError(f"config {name!r}: not shipped (see diffuse configs list)")
    return known[key]


def _description(path: Path) -> str:
    """The config's second comment line (the first is the command that runs it)."""
    comments = [line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")]
    return comments[1] if len(comments) > 1 else ""


def run_list(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from diffuse_lm.config import builtin_configs
    from diffuse_lm.present.console import table_console

    table = Table(title="shipped configs (diffuse train NAME, or diffuse configs cp NAME DIR)")
    table.add_column("name")
    table.add_column("description")
    for name, path in builtin_configs().items():
        table.add_row(Text(name), Text(_description(path)))
    table_console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    source = _get(args.name)
    lines = source.read_text().splitlines(keepends=True)
    if lines and lines[0].startswith("# diffuse train "):  # a repository path; the name works where installed
        lines[0] = f"# diffuse train {_name(source)}\n"
    print("".join(lines), end="")
    return 0


def _name(path: Path) -> str:
    from diffuse_lm.config import builtin_configs

    return next(name for name, p in builtin_configs().items() if p == path)


def run_cp(args: argparse.Namespace) -> int:
    source = _get(args.name)
    dest = Path(args.dest)
    if dest.is_dir() or args.dest.endswith(("/", "\\")) or not dest.suffix:
        dest = dest / source.name
    if dest.exists() and not args.overwrite:
        raise DiffuseError(f"{dest}: exists (--overwrite to replace it)")
    lines = source.read_text().splitlines(keepends=True)
    if lines and lines[0].startswith("# diffuse train "):
        lines[0] = f"# diffuse train {dest}\n"  # the command that runs the copy
    if (dest.exists() or dest.is_symlink()) and not dest.is_file():
        raise DiffuseError(f"{dest}: is not a regular file (a FIFO, a device?); give a .yaml file name")
    write_text_atomic(dest, "".join(lines))  # whole or not at all: a full disk leaves no empty config
    print(f"{dest}  (diffuse train {dest})")
    return 0
