"""No import circles in src/diffuse_lm: the modules form layers that can be read bottom to top.

The graph is of module-level imports (``import`` and ``from … import`` at the top of a module, including under
``if``/``try`` there). Imports inside functions are left out: they run when the function is called, after
every module has loaded, and serve to keep slow imports (torch, datasets) off the CLI's start.
``if TYPE_CHECKING:`` blocks are left out too: they never run."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "diffuse_lm"


def _module_name(path: Path, src: Path) -> str:
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _top_level_imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """The modules of this package that ``tree`` imports when it is loaded (not inside functions or
    classes, not under ``if TYPE_CHECKING``)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import submodule`
            elif isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return found


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports at load time."""
    files = {_module_name(p, src): p for p in (src / PACKAGE).rglob("*.py")}
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imported = _top_level_imports(tree, module, path.name == "__init__.py")
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules, the first repeated at the end), or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        return list(reversed(e.args[1]))  # graphlib lists it against the arrows
    return None


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    """Does ``start`` import ``goal``, directly or through other modules?"""
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module == goal:
            return True
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, ())
    return False


def test_src_has_no_import_circle():
    graph = import_graph()
    # the walk found the imports (a broken one would pass vacuously)
    assert sum(map(len, graph.values())) > 50
    found = circle(graph)
    assert found is None, "an import circle: " + " -> ".join(found)


def test_tasks_and_dataset_tasks_do_not_import_each_other():
    graph = import_graph()
    assert "diffuse_lm.dataset_tasks" in graph["diffuse_lm.tasks"]
    assert not reaches(graph, "diffuse_lm.dataset_tasks", "diffuse_lm.tasks")


def test_a_circle_is_found(tmp_path):
    """The walk sees a circle through ``from . import`` and ``from pkg.mod import name`` alike."""
    pkg = tmp_path / PACKAGE
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from diffuse_lm.b import thing\n")
    (pkg / "b.py").write_text("try:\n    from . import c\nexcept ImportError:\n    pass\n")
    (pkg / "c.py").write_text("def f():\n    import diffuse_lm.d\nimport diffuse_lm.a\n")
    (pkg / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import diffuse_lm.a\n"
    )
    graph = import_graph(tmp_path)
    found = circle(graph)
    assert found is not None and set(found) == {"diffuse_lm.a", "diffuse_lm.b", "diffuse_lm.c"}
    assert graph["diffuse_lm.c"] == {"diffuse_lm.a"}  # not d: imported inside a function
    assert graph["diffuse_lm.d"] == set()  # under TYPE_CHECKING
