"""The one exception the CLI turns into a one-line message and exit code 2, and the helper that keeps it short."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Iterable

SHOWN_CHARS = 80  # an input value quoted in a message is cut to this many characters

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = SHOWN_CHARS - 20  # room for brackets around a string
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4


class DiffuseError(Exception):
    """Bad user input (a file, a flag, a config key, a model path): shown as one line, never a traceback."""


def shorten(value: object, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters: a message quotes a hostile input, never prints it whole."""
    try:
        text = _repr.repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit, a nesting past the stack
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unknown_keys(data: dict, known: set[str]) -> list:
    """The keys of ``data`` not in ``known``, names first, then in text order: a YAML file may mix key types
    (``1:`` beside ``bogus:``), which plain ``sorted`` cannot order."""
    return sorted(set(data) - known, key=lambda k: (not isinstance(k, str), str(k)))


def unknown_key(key: object) -> str:
    """An unknown key named in a message: a name-like key as itself (the typo a user looks for), anything
    else not at all, so a file that is no config (``/etc/shadow`` read as YAML) is not echoed line by line."""
    if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w.-]{0,39}", key):
        return f"unknown key {key!r}"
    return "a key that is no name (is this the right file?)"


def closest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The up to ``n`` ``choices`` most like ``word`` (difflib's ratio, as Python's own "did you mean"), best
    first. A dotted key is matched among its siblings first (``alg_config.n_iter`` -> ``alg_config.n_iters``),
    then among all keys, whole and by their last part (``n_iters`` -> ``alg_config.n_iters``)."""
    choices = list(dict.fromkeys(choices))
    parent, _, tail = word.rpartition(".")
    siblings = {c.rpartition(".")[2]: c for c in choices if c.rpartition(".")[0] == parent}
    found = [siblings[t] for t in difflib.get_close_matches(tail, list(siblings), n=n, cutoff=0.6)]
    if not found:
        found = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
        by_tail = {c.rpartition(".")[2]: c for c in choices if "." in c}
        found += [by_tail[t] for t in difflib.get_close_matches(tail, list(by_tail), n=n, cutoff=0.8)]
    return list(dict.fromkeys(found))[:n]


def did_you_mean(word: object, choices: Iterable[str], rename: dict[str, str] | None = None) -> str:
    """``" (did you mean 'lr'?)"`` for the closest of ``choices`` to ``word``, or ``""`` when none is close;
    ``rename`` maps a choice to the name to suggest (an alias to the key it stands for)."""
    if not isinstance(word, str):
        return ""
    found = list(dict.fromkeys((rename or {}).get(c, c) for c in closest(word, choices)))
    return f" (did you mean {' or '.join(repr(c) for c in found)}?)" if found else ""


def known_list(word: object, choices: Iterable[str]) -> str:
    """``choices`` for a "known: …" list, the closest to ``word`` first: a long list cut short by the one-line
    limit still shows the ones the user most likely meant."""
    choices = sorted(choices)
    first = closest(word, choices) if isinstance(word, str) else []
    return ", ".join(first + [c for c in choices if c not in first])
