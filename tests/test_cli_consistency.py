"""One command line (issue 14, item 6): --output everywhere (reproduce's old --out still works), `diffuse tasks`
alone lists, and every option's --help names its default."""

from __future__ import annotations

import argparse

import pytest

from diffuse_lm.cli import build_parser, main


def _subparsers(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from _subparsers(sub, f"{prefix}{name} ")


def test_every_option_with_a_default_shows_it_in_help():
    missing = []
    for name, sub in _subparsers(build_parser()):
        text = sub.format_help()
        for action in sub._actions:
            default = action.default
            if not action.option_strings or any(default is v for v in (None, False, True, argparse.SUPPRESS)):
                continue
            shown = sub.formatter_class(prog=name)._get_help_string(action)  # as --help renders it
            if action.help and "default" not in shown.lower():
                missing.append(f"{name} {action.option_strings[0]}")
        assert "%(default)" not in text
    assert not missing, missing
    reproduce = " ".join(dict(_subparsers(build_parser()))["reproduce"].format_help().split())
    assert "(default: results/reproduce)" in reproduce and "(default: 0)" in reproduce


@pytest.mark.parametrize("command", ["measure", "sample", "stats", "compare", "train", "reproduce", "export"])
def test_commands_that_write_take_output(command):
    sub = dict(_subparsers(build_parser()))[command]
    assert any("--output" in a.option_strings for a in sub._actions), command


def test_reproduce_output_and_its_old_name(monkeypatch):
    from diffuse_lm.commands import reproduce

    seen = []
    monkeypatch.setattr(reproduce, "run", lambda args: seen.append(args.out) or 0)
    assert main(["reproduce", "report", "--output", "a"]) == 0
    assert main(["reproduce", "report", "--out", "b"]) == 0
    assert main(["reproduce", "report"]) == 0
    assert seen == ["a", "b", "results/reproduce"]
    assert "--out OUT" not in dict(_subparsers(build_parser()))["reproduce"].format_help()  # hidden alias


def test_reproduce_bad_output_names_the_flag(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["reproduce", "report", "--output", str(tmp_path / "f")]) == 2
    assert "--output" in capsys.readouterr().err


def test_tasks_alone_lists(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "rng/1-10" in out and "groups" in out
