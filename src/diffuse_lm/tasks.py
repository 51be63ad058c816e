"""Loading tasks: task files, folders of them, built-in tasks and their groups (the task itself, and the
checks on one, are :mod:`diffuse_lm.task_model`).

A task file is JSON or YAML with the original study's keys — ``request``, ``response`` (a string or a
list of strings; one is chosen per target), ``targets``, ``weights``, ``eos`` — plus optional ``system``,
``name``, ``family``, ``description`` and ``valid``: answers that are right but not wanted by p* (a broader
set than the targets, e.g. any first name of a natural list), written like the targets, as a list or as the
name of a task or task file whose targets they are. Mass and yield are measured on targets and valid answers.
A file may also hold many tasks: a JSON or YAML list of them, or JSONL (one a line); or a YAML mapping from a
``datasets`` dataset's columns to task keys (:mod:`diffuse_lm.dataset_tasks`). Built-in tasks are the same kind
of file inside the package.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from diffuse_lm.dataset_tasks import dataset_tasks
from diffuse_lm.distributions import family_tasks, is_family_spec
from diffuse_lm.files import bounded_walk, check_regular
from diffuse_lm.task_model import KNOWN_KEYS, MAX_VALID, Task, TaskError, task_family, task_from_dict
from diffuse_lm.yaml_json import (
    MAX_ALIASED_NODES,
    AliasBomb,
    bounded_yaml_load,
    json_item_lines,
    loads_json,
    yaml_item_lines,
    yaml_problem,
)

# Re-exported: what other modules imported from here before the task model and the hardened loaders moved out.
__all__ = [
    "KNOWN_KEYS",
    "MAX_ALIASED_NODES",
    "MAX_VALID",
    "TASK_SUFFIXES",
    "Task",
    "TaskError",
    "bounded_yaml_load",
    "builtin_dir",
    "builtin_groups",
    "builtin_tasks",
    "load_tasks",
    "loads_json",
    "read_task_file",
    "read_task_files",
    "task_family",
    "task_from_dict",
    "targets_named",
    "yaml_problem",
]

TASK_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")


def targets_named(spec: str, source: str) -> tuple[str, ...] | None:
    """The targets of the task ``spec`` names: a file beside ``source`` or in the working folder, or a
    built-in task; ``None`` when there is none."""
    here = Path(source.split(": ")[0]).parent
    for candidate in (here / spec, Path(spec)):
        if candidate.suffix.lower() in TASK_SUFFIXES and candidate.is_file():
            return _targets_of(str(candidate.resolve()))
    path = builtin_tasks().get(spec)
    return _targets_of(str(path)) if path is not None else None


@functools.lru_cache(maxsize=16)
def _targets_of(path: str) -> tuple[str, ...]:
    """Every target of the tasks in one file (cached: a natural list of 30,000 names backs several tasks)."""
    return tuple(dict.fromkeys(t for task in read_task_files(path) for t in task.targets))


def read_task_file(path: str | Path) -> Task:
    """Load and validate a JSON or YAML file that holds exactly one task."""
    tasks = read_task_files(path)
    if len(tasks) != 1:
        raise TaskError(f"{path}: holds {len(tasks)} tasks, expected one (load_tasks reads them all)")
    return tasks[0]


def read_task_files(path: str | Path) -> list[Task]:
    """Load and validate the tasks of one file: a task (JSON, YAML), a list of tasks (JSON, YAML), one task a
    line (JSONL) or a dataset mapping (YAML with ``dataset_path``). Errors name the file and the line or item.
    A task without a ``name`` in a file of many is ``<file stem>/<k>`` (its 1-based place in the file)."""
    path = Path(path)
    check_regular(path, "a task file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskError(f"{path}: cannot read task file (not UTF-8 text: byte {e.start})") from None
    except OSError as e:
        raise TaskError(f"{path}: cannot read task file ({e.strerror or e.__class__.__name__})") from None
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        items = _jsonl_items(text, path)
    else:
        data = _parse(text, path, is_json=suffix == ".json")
        if isinstance(data, dict) and "dataset_path" in data:
            return dataset_tasks(data, path)
        if is_family_spec(data):  # a distribution family's spec: one task a phrasing and format
            return [replace(t, path=str(path)) for t in family_tasks(data, str(path))]
        if not isinstance(data, list):
            return [task_from_dict(data, source=str(path), name=path.stem)]
        lines = json_item_lines(text) if suffix == ".json" else yaml_item_lines(text)
        items = [
            (f"item {k} (line {line})", item)
            for k, (item, line) in enumerate(zip(data, lines, strict=True), 1)
        ]
    if not items:
        raise TaskError(f"{path}: holds no tasks")
    tasks = []
    for k, (where, item) in enumerate(items, 1):  # a distribution family's spec is many tasks
        made = (
            family_tasks(item, f"{path}: {where}")
            if is_family_spec(item)
            else [task_from_dict(item, source=f"{path}: {where}", name=f"{path.stem}/{k}")]
        )
        tasks += [replace(t, path=str(path)) for t in made]
    return tasks


def _parse(text: str, path: Path, *, is_json: bool) -> Any:
    """The JSON or YAML value of a task file; a malformed or empty one is a :class:`TaskError`."""
    kind = "JSON" if is_json else "YAML"
    try:
        data = loads_json(text) if is_json else bounded_yaml_load(text)
    except json.JSONDecodeError as e:
        raise TaskError(f"{path}: malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except AliasBomb as e:
        raise TaskError(f"{path}: refused YAML: {e} (an alias bomb?)") from None
    except yaml.YAMLError as e:
        raise TaskError(f"{path}: malformed YAML ({yaml_problem(e)})") from None
    except RecursionError:
        raise TaskError(f"{path}: {kind} nested too deeply to be a task file") from None
    except ValueError as e:  # e.g. an integer past Python's 4,300-digit limit
        raise TaskError(f"{path}: malformed {kind} ({str(e).split(';')[0][:120]})") from None
    if data is None:
        raise TaskError(f"{path}: empty task file")
    return data


def _jsonl_items(text: str, path: Path) -> list[tuple[str, Any]]:
    """``("line k", value)`` for every non-blank line of a JSONL file."""
    items = []
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append((f"line {k}", loads_json(line)))
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}: line {k}: malformed JSON (column {e.colno}: {e.msg})") from None
        except (RecursionError, ValueError) as e:
            raise TaskError(f"{path}: line {k}: malformed JSON ({str(e).split(';')[0][:120]})") from None
    return items


def builtin_dir() -> Path:
    """Folder of the built-in task files shipped inside the package."""
    return Path(str(resources.files("diffuse_lm") / "data" / "tasks"))


def builtin_groups() -> dict[str, list[str]]:
    """Named groups of built-in tasks (``groups.yaml`` beside them): name -> task names."""
    groups_file = builtin_dir().parent / "groups.yaml"
    if not groups_file.exists():
        return {}
    return {k: list(v) for k, v in _groups(groups_file, groups_file.stat().st_mtime_ns).items()}


@functools.cache
def _groups(path: Path, mtime_ns: int) -> dict[str, list[str]]:
    """``groups.yaml`` parsed once a process (per file version): task loading asks for it once a spec."""
    return yaml.safe_load(path.read_text()) or {}


def builtin_tasks() -> dict[str, Path]:
    """Built-in task name -> file. A name is the file's path under the folder, without suffix."""
    root = builtin_dir()
    if not root.exists():
        return {}
    return dict(_index(root))


@functools.cache
def _index(root: Path) -> dict[str, Path]:
    """The built-in task files under ``root``, walked once a process (package data does not change under it;
    task loading asks once a spec, and ``tasks list`` asks hundreds of times)."""
    return {
        str(p.relative_to(root).with_suffix("")): p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in TASK_SUFFIXES
    }


def _folder_files(folder: Path) -> list[Path]:
    """The task files under ``folder``; one named like a task file that cannot be read as one (a broken link,
    a FIFO) is an error, not skipped, so no task the user meant to give goes missing silently."""
    try:
        named = sorted(
            p for p in bounded_walk(folder, "task files", TaskError) if p.suffix.lower() in TASK_SUFFIXES
        )
        odd = [p for p in named if not p.is_file() and not p.is_dir()]
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise TaskError(f"{folder}: cannot read the folder{where}: {e.strerror or e}") from None
    if odd:
        raise TaskError(f"{odd[0]}: named like a task file but not a readable file (a broken link, a FIFO?)")
    return [p for p in named if p.is_file()]


def load_tasks(specs: list[str] | str) -> list[Task]:
    """Resolve task files, folders, built-in task names and built-in group names into tasks.

    A path that exists wins over a built-in of the same name. Task names are made unique.
    """
    if isinstance(specs, str):
        specs = [specs]
    builtins, groups = builtin_tasks(), builtin_groups()
    tasks: list[Task] = []
    for spec in specs:
        if not str(spec).strip():
            raise TaskError("an empty task name (give a task file, folder, or built-in task or group)")
        path = Path(spec)
        if path.is_dir():
            files = _folder_files(path)
            if not files:
                raise TaskError(f"{path}: folder holds no task files ({', '.join(TASK_SUFFIXES)})")
            tasks += [task for f in files for task in read_task_files(f)]
        elif path.is_file() or path.exists():
            tasks += read_task_files(path)  # a FIFO or device is refused there, unread
        elif spec in groups:
            tasks += load_tasks(groups[spec])
        elif spec in builtins:
            task = read_task_file(builtins[spec])
            tasks.append(replace(task, name=spec))
        elif any(name.startswith(spec + "/") for name in builtins):
            tasks += load_tasks([n for n in builtins if n.startswith(spec + "/")])
        else:
            hint = " (see `diffuse tasks list`)" if builtins else ""
            raise TaskError(f"{spec}: no such task file, folder or built-in task{hint}")
    return _unique_names(tasks)


def _unique_names(tasks: list[Task]) -> list[Task]:
    """Second and later tasks of the same name become ``name#2``, ``name#3`` … (never another task's name)."""
    given = {t.name for t in tasks}
    seen: set[str] = set()
    out = []
    for t in tasks:
        name = t.name
        if name in seen:
            k = 2
            while f"{t.name}#{k}" in seen or f"{t.name}#{k}" in given:
                k += 1
            name = f"{t.name}#{k}"
        seen.add(name)
        out.append(t if name == t.name else replace(t, name=name))
    return out
