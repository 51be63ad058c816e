"""The ``diffuse`` command. Each subcommand lives in ``diffuse_lm.commands.<name>`` and registers itself;
bad input anywhere becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys

from diffuse_lm import __version__
from diffuse_lm.errors import DiffuseError

COMMANDS = [
    "measure",
    "compare",
    "tasks",
    "reproduce",
    "sample",
    "stats",
    "synth",
    "train",
    "export",
    "configs",
    "model",
]
MAX_MESSAGE = 280  # characters of an error message shown (values quoted in it are cut shorter still)


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it already names one or has none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or re.search(r"\(default|default:|^default|; default", text)
            or any(action.default is v for v in (None, False, True, argparse.SUPPRESS))
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse's own code), no usage dump
        self.exit(2, f"diffuse: error: {message} (see {self.prog} --help)\n")


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """The message on one line of at most ``limit`` characters, its middle cut if need be (the start names the
    file, the end the problem): a path or value with line breaks in it, or a long one, stays one short line."""
    text = " ".join(message.splitlines())
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return f"{text[:head]} … {text[len(text) - (limit - 3 - head) :]}"


def _flag_hint(parser: argparse.ArgumentParser, args: argparse.Namespace, strays: list[str]) -> str:
    """`` (did you mean '--model'?)`` for the first unknown flag, from the options of the command it was given
    to (and of its verb: ``configs cp``)."""
    from diffuse_lm.errors import did_you_mean

    flag = next((s.partition("=")[0] for s in strays if s.startswith("--")), None)
    if flag is None:
        return ""
    options, node = [], parser
    for name in (getattr(args, "command", None), getattr(args, "verb", None)):
        sub = next((a for a in node._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or name not in sub.choices:
            break
        node = sub.choices[name]
        options += [o for a in node._actions for o in a.option_strings if o.startswith("--")]
    bare = {o.lstrip("-"): o for o in options}  # "--" is in every name: matched without it
    return did_you_mean(flag.lstrip("-"), list(bare), bare)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="diffuse",
        description="Measure and fine-tune language models for diffuse distributions over valid answers.",
    )
    parser.add_argument("--version", action="version", version=f"diffuse-lm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"diffuse_lm.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (`train cfg.yaml -q lr=1`), which argparse leaves unparsed.
    strays = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if strays:
        parser.error(f"unrecognized arguments: {' '.join(strays)}{_flag_hint(parser, args, strays)}")
    if extra:
        args.overrides += extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    for noisy in ("transformers", "accelerate", "peft"):
        if not args.verbose:
            logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except DiffuseError as e:
        print(f"diffuse: error: {one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffuse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
