"""Tasks: a prompt, its valid answers (targets) and the wanted distribution over them.

A task file is JSON or YAML with the original study's keys — ``request``, ``response`` (a string or a
list of strings; one is chosen per target), ``targets``, ``weights``, ``eos`` — plus optional ``system``,
``name``, ``family``, ``description`` and ``valid``: answers that are right but not wanted by p* (a broader
set than the targets, e.g. any first name of a natural list), written like the targets, as a list or as the
name of a task or task file whose targets they are. Mass and yield are measured on targets and valid answers. A file may also hold many tasks: a JSON or YAML list of them, or
JSONL (one a line); or a YAML mapping from a ``datasets`` dataset's columns to task keys
(:mod:`diffuse_lm.dataset_tasks`). Built-in tasks are the same kind of file inside the package.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from diffuse_lm.errors import DiffuseError, known_list, shorten, unknown_key, unknown_keys
from diffuse_lm.files import check_regular

TASK_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml")
KNOWN_KEYS = {
    "request",
    "response",
    "targets",
    "weights",
    "eos",
    "system",
    "name",
    "family",
    "description",
    "values",
    "valid",
}
MAX_VALID = 200_000  # valid answers of one task: each is scored by teacher forcing
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
MAX_ALIASED_NODES = 100_000  # YAML values that aliases may add to a task file: more is an alias bomb


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
    sources: tuple[str, ...] = field(default=(), compare=False)  # data files and folders it was read from
    # The number each target stands for, where the answers are ordered (a distribution family's support):
    # measure then adds the distances of ordered supports (KS, Wasserstein-1, mean and sd)
    values: tuple[float, ...] | None = None
    valid: tuple[str, ...] = ()  # right answers beyond the targets (never one of them), not wanted by p*

    @property
    def valid_set(self) -> tuple[str, ...]:
        """Every valid answer: the targets, then the broader ``valid`` ones."""
        return self.targets + self.valid

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


def task_family(task: Task) -> str:
    """The family a task belongs to (BABYNAMES, COUNTRIES, …): its ``family``, else its name's first part."""
    return task.family or task.name.split("/")[0]


def task_from_dict(data: Any, *, source: str, name: str | None = None) -> Task:
    """Validate one task's raw data; every problem is a :class:`TaskError` naming ``source``."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"{source}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"expected a mapping of task keys, got {type(data).__name__}")
    unknown = unknown_keys(data, KNOWN_KEYS)
    if unknown:
        raise fail(f"{unknown_key(unknown[0])} (known: {known_list(unknown[0], KNOWN_KEYS)})")
    request = data.get("request")
    if not isinstance(request, str) or not request.strip():
        raise fail("missing request (a non-empty string)")

    targets = data.get("targets")
    if targets is not None and not isinstance(targets, list):
        raise fail(f"targets must be a list of strings, got {type(targets).__name__} {shorten(targets)}")
    if not targets:
        raise fail("empty targets (need a non-empty list of strings)")
    for i, t in enumerate(targets):
        if not isinstance(t, str):
            raise fail(f"target {i + 1} is {type(t).__name__} {shorten(t)}, not a string (quote it in YAML)")
        if not t:
            raise fail(f"target {i + 1} is an empty string")
    seen: set[str] = set()
    for t in targets:
        if t in seen:
            raise fail(f"duplicate target {shorten(t)}")
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
                raise fail(f"weight {i + 1} is {shorten(w)}, not a number")
            if isinstance(w, float) and not math.isfinite(w):
                raise fail(f"weight {i + 1} is {w} (weights must be finite)")
            if w < 0:
                raise fail(f"weight {i + 1} is negative ({shorten(w)})")
        if max(raw_weights) == 0:
            raise fail("weights are all zero")
        weights = _normalised(raw_weights)

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
                raise fail(f"with eos: false, target {shorten(a)} is a prefix of {shorten(b)}")

    for key in ("system", "name", "family", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise fail(f"{key} must be a string")
    values = _values(data.get("values"), len(targets), fail)
    system = data.get("system")
    valid = _valid_answers(data.get("valid"), set(targets), eos, source, fail)
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
        values=values,
        valid=valid,
    )


def _values(raw: Any, n: int, fail) -> tuple[float, ...] | None:
    """The optional ``values`` of a task: one distinct finite number a target."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n:
        raise fail(f"values must be a list of {n} numbers, one a target, got {shorten(raw)}")
    for i, v in enumerate(raw):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise fail(f"value {i + 1} is {shorten(v)}, not a finite number")
    if len(set(raw)) != n:
        raise fail("values must be distinct (one number a target)")
    return tuple(float(v) for v in raw)


def _valid_answers(raw: Any, targets: set[str], eos: bool, source: str, fail) -> tuple[str, ...]:
    """The ``valid`` key: a list of answers written like the targets, or the name of a task (built-in, or a
    file next to ``source``) whose targets they are; the targets themselves are left out."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        found = _valid_from(raw, source)
        if found is None:
            raise fail(
                f"valid: {shorten(raw)} is no built-in task nor task file (give a list, or a task name)"
            )
        raw = list(found)
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise fail("valid must be a list of non-empty strings, or the name of a task whose targets they are")
    if len(raw) > MAX_VALID:
        raise fail(f"valid holds {len(raw):,} answers (at most {MAX_VALID:,})")
    out = tuple(dict.fromkeys(v for v in raw if v not in targets))
    if not eos:
        every = sorted(targets | set(out))
        for a, b in zip(every, every[1:], strict=False):
            if b.startswith(a):
                raise fail(f"with eos: false, valid answer {shorten(a)} is a prefix of {shorten(b)}")
    return out


def _valid_from(spec: str, source: str) -> tuple[str, ...] | None:
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


def _normalised(raw: list[int | float]) -> np.ndarray:
    """Finite, non-negative weights (not all zero) divided by their largest, then by their sum, in exact
    arithmetic first: ``[1e308] * 10`` does not sum to inf and an int like ``10**400`` does not overflow."""
    if all(type(w) is float or (type(w) is int and abs(w) < 2**53) for w in raw):
        # every weight a float exactly: one IEEE division each rounds as the Fraction would (and is fast)
        exact = np.array(raw, dtype=np.float64)
        scaled = exact / exact.max()
    else:
        top = Fraction(max(raw))
        scaled = np.array([float(Fraction(w) / top) for w in raw], dtype=np.float64)
    return scaled / scaled.sum()  # the sum is >= 1 (the largest is 1)


class _AliasBomb(yaml.YAMLError):
    """YAML aliases that would expand to far more values than any task has."""


class _TaskYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases that would expand past :data:`MAX_ALIASED_NODES` values (an
    alias bomb) while composing, before any object is built or walked."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._seen = 0  # values composed, aliases counted at their expanded size
        self._aliased = 0
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node), 1)
            self._seen += size
            self._aliased += size
            if self._aliased > MAX_ALIASED_NODES:
                raise _AliasBomb(f"aliases expand to more than {MAX_ALIASED_NODES:,} values")
            return node
        start = self._seen
        self._seen += 1
        node = super().compose_node(parent, index)
        self._sizes[id(node)] = self._seen - start
        return node

    def construct_mapping(self, node, deep=False):
        """Refuse a key given twice in one mapping (YAML keeps the last silently; a merge ``<<`` may still
        be overridden, as YAML says)."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shorten(key_node.value)}", key_node.start_mark
                    )
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose keys are all different (JSON parsers keep the last of a repeated key silently)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {shorten(key)}")
        seen.add(key)
    return dict(pairs)


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses a key repeated in one object (a ``ValueError``)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def bounded_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses alias bombs (:class:`yaml.YAMLError`) before building anything: for
    every YAML file a user hands in (task files, configs, prompt lists)."""
    return yaml.load(text, Loader=_TaskYamlLoader)


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
            from diffuse_lm.dataset_tasks import dataset_tasks

            return dataset_tasks(data, path)
        from diffuse_lm.distributions import family_tasks, is_family_spec

        if is_family_spec(data):  # a distribution family's spec: one task a phrasing and format
            return [replace(t, path=str(path)) for t in family_tasks(data, str(path))]
        if not isinstance(data, list):
            return [task_from_dict(data, source=str(path), name=path.stem)]
        lines = _json_item_lines(text) if suffix == ".json" else _yaml_item_lines(text)
        items = [
            (f"item {k} (line {line})", item)
            for k, (item, line) in enumerate(zip(data, lines, strict=True), 1)
        ]
    if not items:
        raise TaskError(f"{path}: holds no tasks")
    from diffuse_lm.distributions import family_tasks, is_family_spec

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
        data = loads_json(text) if is_json else yaml.load(text, Loader=_TaskYamlLoader)
    except json.JSONDecodeError as e:
        raise TaskError(f"{path}: malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except _AliasBomb as e:
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


def _json_item_lines(text: str) -> list[int]:
    """The line each item of a JSON array starts on (``text`` is known to be a valid array)."""
    decoder, lines, line, seen = json.JSONDecoder(), [], 1, 0
    i = _JSON_SPACE.match(text, text.index("[") + 1).end()
    while text[i] != "]":
        line, seen = line + text.count("\n", seen, i), i
        lines.append(line)
        _, i = decoder.raw_decode(text, i)
        i = _JSON_SPACE.match(text, i).end()
        i = _JSON_SPACE.match(text, i + (text[i] == ",")).end()
    return lines


def _yaml_item_lines(text: str) -> list[int]:
    """The line each item of a YAML sequence starts on."""
    return [node.start_mark.line + 1 for node in yaml.compose(text, Loader=_TaskYamlLoader).value]


def yaml_problem(e: yaml.YAMLError) -> str:
    """Where and what: ``line 3, column 1: duplicate key 'lr'``."""
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


MAX_FOLDER_ENTRIES = 100_000  # entries walked below a task folder before it is refused as not one


def bounded_walk(folder: Path, holds: str) -> Iterator[Path]:
    """Every entry below ``folder``, refused (a :class:`TaskError`) once more than :data:`MAX_FOLDER_ENTRIES`
    have passed: `tasks show /` or a dataset's ``data_dir: /`` would walk the whole disk before saying
    anything. ``holds`` says what the folder should hold."""
    for seen, p in enumerate(folder.rglob("*"), 1):
        if seen > MAX_FOLDER_ENTRIES:
            raise TaskError(
                f"{folder}: more than {MAX_FOLDER_ENTRIES:,} files and folders below it; "
                f"give the folder that holds your {holds}"
            )
        yield p


def _folder_files(folder: Path) -> list[Path]:
    """The task files under ``folder``; one named like a task file that cannot be read as one (a broken link,
    a FIFO) is an error, not skipped, so no task the user meant to give goes missing silently."""
    try:
        named = sorted(p for p in bounded_walk(folder, "task files") if p.suffix.lower() in TASK_SUFFIXES)
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
