"""The layers of the package: every ``diffuse`` command is argument parsing, a call into the public API
(:mod:`diffuse_lm.api`) and printing (:mod:`diffuse_lm.present`), and nothing below the commands reaches up
into them. Checked on the source (every import statement, at any depth), not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "diffuse_lm"
# What a command may import from the package: the API, printing, and the commands' argument helpers.
COMMAND_MAY_IMPORT = ("diffuse_lm.api", "diffuse_lm.present", "diffuse_lm.commands")


def imported(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in the module at ``path`` under ``src/``."""
    return imports_of(path.read_text(), ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1]))


def imports_of(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source``, a module of ``package`` (``from diffuse_lm import x``
    counts as ``diffuse_lm.x``; relative imports are resolved)."""
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base == "diffuse_lm":  # from diffuse_lm import api, models: each a module (or a name of it)
                found += [(node.lineno, f"diffuse_lm.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def command_files() -> list[Path]:
    return sorted((SRC / "commands").glob("*.py"))


@pytest.mark.parametrize("path", command_files(), ids=lambda p: p.name)
def test_commands_import_only_the_api_present_and_their_argument_helpers(path):
    bad = [
        f"{path.name}:{line} imports {module}"
        for line, module in imported(path)
        if module.startswith("diffuse_lm") and not _within(module, COMMAND_MAY_IMPORT)
    ]
    assert not bad, "; ".join(bad)


def test_nothing_below_the_commands_imports_them():
    bad = [
        f"{path.relative_to(SRC)}:{line} imports {module}"
        for path in sorted(SRC.rglob("*.py"))
        if path.parent != SRC / "commands" and path != SRC / "cli.py"
        for line, module in imported(path)
        if _within(module, ("diffuse_lm.commands",))
    ]
    assert not bad, "; ".join(bad)


def test_the_rule_checker_sees_imports_at_any_depth_and_in_every_form():
    source = (
        "import diffuse_lm.models\nfrom diffuse_lm import sampling\n"
        "def f():\n    from ..tasks import load_tasks\n    from .common import x\n"
    )
    modules = [m for _, m in imports_of(source, "diffuse_lm.commands")]
    assert modules == [
        "diffuse_lm.models",
        "diffuse_lm.sampling",
        "diffuse_lm.tasks",
        "diffuse_lm.commands.common",
    ]
