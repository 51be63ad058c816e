"""Tasks: a prompt, its valid answers (targets) and the wanted distribution over them.

A task file is JSON or YAML with the original study's keys — ``request``, ``response`` (a string or a
list of strings; one is chosen per target), ``targets``, ``weights``, ``eos`` — plus optional ``system``,
``name``, ``family`` and ``description``. Built-in tasks are the same kind of file inside the package.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from diffuse_lm.errors import DiffuseError

TASK_SUFFIXES = (".json", ".yaml", ".yml")
KNOWN_KEYS = {"request", "response", "targets", "weights", "eos", "system", "name", "family", "description"}


class TaskError(DiffuseError):
    """A task file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Task:
    """One prompt and its target set. ``weights`` are normalised to sum to 1 (the wanted p*)."""

    name: str
    request: str
    targets: tuple[str, ...]
    weights: np.ndarray
    system: str | None = None
    responses: tuple[str, ...] = ("",)
    eos: bool = True
    family: str | None = None
    description: str | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def uniform(self) -> bool:
        return bool(np.allclose(self.weights, 1.0 / len(self.targets)))

    def messages(self) -> list[dict[str, str]]:
        """The chat turns that precede the answer."""
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": self.request}]

    def response_for(self, i: int) -> str:
        """The assistant prefix used for target ``i`` (the original study's ``response``), chosen cyclically."""
        return self.responses[i % len(self.responses)]


def task_from_dict(data: Any, *, source: str, name: str | None = None) -> Task:
    """Validate one task's raw data; every problem is a :class:`TaskError` naming ``source``."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"{source}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"expected a mapping of task keys, got {type(data).__name__}")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(KNOWN_KEYS))})")
    request = data.get("request")
    if not isinstance(request, str) or not request.strip():
        raise fail("missing request (a non-empty string)")

    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise fail("empty targets (need a non-empty list of strings)")
    for i, t in enumerate(targets):
        if not isinstance(t, str):
            raise fail(f"target {i + 1} is {type(t).__name__} {t!r}, not a string (quote it in YAML)")
        if not t:
            raise fail(f"target {i + 1} is an empty string")
    seen: set[str] = set()
    for t in targets:
        if t in seen:
            raise fail(f"duplicate target {t!r}")
        seen.add(t)

    raw_weights = data.get("weights")
    if raw_weights is None:
        weights = np.full(len(targets), 1.0 / len(targets))
    else:
        if not isinstance(raw_weights, list):
            raise fail(f"weights must be a list of numbers, got {type(raw_weights).__name__}")
        if len(raw_weights) != len(targets):
            raise fail(f"weights has length {len(raw_weights)}, targets has {len(targets)}")
        for i, w in enumerate(raw_weights):
            if not isinstance(w, int | float) or isinstance(w, bool):
                raise fail(f"weight {i + 1} is {w!r}, not a number")
            if math.isnan(w) or math.isinf(w):
                raise fail(f"weight {i + 1} is {w} (weights must be finite)")
            if w < 0:
                raise fail(f"weight {i + 1} is negative ({w})")
        total = float(sum(raw_weights))
        if total <= 0:
            raise fail("weights are all zero")
        weights = np.asarray(raw_weights, dtype=np.float64) / total

    response = data.get("response", "")
    responses = [response] if isinstance(response, str) else response
    if not isinstance(responses, list) or not responses or not all(isinstance(r, str) for r in responses):
        raise fail("response must be a string or a non-empty list of strings")

    eos = data.get("eos", True)
    if not isinstance(eos, bool):
        raise fail("eos must be true or false")
    if not eos:
        # Without an end-of-turn token, a target that is a prefix of another can never match p*.
        ordered = sorted(targets)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if b.startswith(a):
                raise fail(f"with eos: false, target {a!r} is a prefix of {b!r}")

    for key in ("system", "name", "family", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise fail(f"{key} must be a string")
    system = data.get("system")
    return Task(
        name=str(data.get("name") or name or Path(source).stem),
        request=request,
        targets=tuple(targets),
        weights=weights,
        system=system,
        responses=tuple(responses),
        eos=eos,
        family=data.get("family"),
        description=data.get("description"),
        path=source,
    )


def read_task_file(path: str | Path) -> Task:
    """Load and validate one JSON or YAML task file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise TaskError(f"{path}: cannot read task file (not UTF-8 text: byte {e.start})") from None
    except OSError as e:
        raise TaskError(f"{path}: cannot read task file ({e.strerror or e.__class__.__name__})") from None
    is_json = path.suffix.lower() == ".json"
    try:
        data = json.loads(text) if is_json else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise TaskError(f"{path}: malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except yaml.YAMLError as e:
        raise TaskError(f"{path}: malformed YAML ({_yaml_problem(e)})") from None
    if data is None:
        raise TaskError(f"{path}: empty task file")
    return task_from_dict(data, source=str(path), name=path.stem)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def builtin_dir() -> Path:
    """Folder of the built-in task files shipped inside the package."""
    return Path(str(resources.files("diffuse_lm") / "data" / "tasks"))


def builtin_groups() -> dict[str, list[str]]:
    """Named groups of built-in tasks (``groups.yaml`` beside them): name -> task names."""
    groups_file = builtin_dir().parent / "groups.yaml"
    if not groups_file.exists():
        return {}
    return {k: list(v) for k, v in (yaml.safe_load(groups_file.read_text()) or {}).items()}


def builtin_tasks() -> dict[str, Path]:
    """Built-in task name -> file. A name is the file's path under the folder, without suffix."""
    root = builtin_dir()
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root).with_suffix("")): p
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in TASK_SUFFIXES
    }


def _folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in TASK_SUFFIXES)


def load_tasks(specs: list[str] | str) -> list[Task]:
    """Resolve task files, folders, built-in task names and built-in group names into tasks.

    A path that exists wins over a built-in of the same name. Task names are made unique.
    """
    if isinstance(specs, str):
        specs = [specs]
    builtins, groups = builtin_tasks(), builtin_groups()
    tasks: list[Task] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files = _folder_files(path)
            if not files:
                raise TaskError(f"{path}: folder holds no task files (.json, .yaml, .yml)")
            tasks += [read_task_file(f) for f in files]
        elif path.is_file():
            tasks.append(read_task_file(path))
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
