"""What a comparison method is: a name, whether its distribution is computed exactly or estimated from
samples, how its parameter is read, and the hooks the runner calls. Each method is one module of
``compare/methods/`` that builds one :class:`Method`; ``compare/methods/__init__.py`` lists them."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from diffuse_lm.errors import DiffuseError, shorten
from diffuse_lm.task_model import Task

if TYPE_CHECKING:  # torch is imported when a method runs, not when `diffuse --help` lists them
    from diffuse_lm.scoring import Transform


@dataclass
class Draws:
    """What a sampled method produced for one task: generation ``i`` answers target ``j`` with probability
    ``q[i, j]`` (row sums below 1 are the chance of an invalid answer; 0 for an unusable generation)."""

    q: np.ndarray  # (N, n_targets)
    tokens: np.ndarray  # (N,) tokens each generation took, its end-of-turn token included
    followed: np.ndarray  # (N,) bool: the generation was in the method's format
    details: dict = field(default_factory=dict)  # method-specific, kept in the JSON (texts, parsed lists)


def _no_transform(value: Any) -> Transform | None:
    return None


def _same_task(task: Task, value: Any) -> Task:
    return task


@contextmanager
def _same_model(model, value: Any) -> Iterator[Any]:
    yield model


@dataclass(frozen=True)
class Method:
    """One way of getting diverse answers out of a model.

    Exact methods are measured by teacher forcing: the task as the method asks it (``prompt``), scored
    with a next-token logits ``transform``, on the model the method makes (``attach``). Sampled methods
    give ``sample(model, tokenizer, task, value, n=, seed=, batch_size=) -> Draws``.
    """

    name: str
    usage: str  # as written in --methods, e.g. "temperature:T"
    kind: Literal["exact", "sampled"]
    about: str  # one line for --help
    # The parameter after ':' (None when there is none) -> the value hooks get; a DiffuseError if bad.
    parse: Callable[[str | None], Any]
    transform: Callable[[Any], Transform | None] = _no_transform
    prompt: Callable[[Task, Any], Task] = _same_task
    attach: Callable[[Any, Any], AbstractContextManager] = _same_model
    sample: Callable[..., Draws] | None = None


@dataclass(frozen=True)
class Spec:
    """A method with its parameter, as the user wrote it (``label``)."""

    method: Method
    value: Any
    label: str


# --- reading parameters: each problem is one line naming the spec ------------------------------------


def no_parameter(name: str) -> Callable[[str | None], None]:
    def parse(arg: str | None) -> None:
        if arg is not None:
            raise DiffuseError(f"--methods {name}:{shorten(arg)}: {name} takes no parameter")

    return parse


def _parameter(name: str, what: str, arg: str | None, kind: type, ok: Callable, rule: str):
    if arg is None:
        raise DiffuseError(f"--methods {name}: needs a parameter ({name}:{what}, {what} {rule})")
    try:
        value = kind(arg)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        kind_word = "a finite number" if kind is float else "a whole number"
        raise DiffuseError(f"--methods {name}:{shorten(arg)}: {what} must be {kind_word} {rule}")
    return value


def number(name: str, what: str, ok: Callable[[float], bool], rule: str) -> Callable[[str | None], float]:
    """A float parameter for which ``ok`` holds, ``rule`` saying which in words (``"> 0"``)."""
    return lambda arg: _parameter(name, what, arg, float, ok, rule)


def integer(name: str, what: str, ok: Callable[[int], bool], rule: str) -> Callable[[str | None], int]:
    """A whole-number parameter for which ``ok`` holds."""
    return lambda arg: _parameter(name, what, arg, int, ok, rule)
