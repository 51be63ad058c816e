"""The one exception the CLI turns into a one-line message and exit code 2, and the helper that keeps it short."""

from __future__ import annotations

import re
import reprlib

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
