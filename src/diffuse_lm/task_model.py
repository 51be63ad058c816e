"""A task: a prompt, its valid answers (targets) and the wanted distribution over them, and the checks that
turn a task file's raw data into one (:func:`task_from_dict`). Reading files, folders and built-ins is
:mod:`diffuse_lm.tasks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from diffuse_lm.errors import DiffuseError, known_list, shorten, unknown_key, unknown_keys

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
        from diffuse_lm.tasks import targets_named  # resolving a name is loading (tasks imports this module)

        found = targets_named(raw, source)
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
