"""JSON that strict readers accept (``JSON.parse``, ``jq``, ``json.loads(..., parse_constant=…)`` that refuses):
Python writes NaN and ±inf as the bare words NaN and Infinity, which are not JSON. Every file diffuse writes goes
through :func:`strict_json` first: a non-finite number becomes null, and the dict that held it gains a
``"nonfinite"`` field naming which keys were nulled and what they were (``{"kl": "+Infinity"}``), so the reason
is kept where a reader looks."""

from __future__ import annotations

import json
import math
from typing import Any

NONFINITE = "nonfinite"


def _name(x: float) -> str:
    return "NaN" if math.isnan(x) else ("+Infinity" if x > 0 else "-Infinity")


def _bad(x: Any) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by null, and each dict that held one (directly, or in a
    list under one of its keys) given ``"nonfinite": {key: "+Infinity" | "-Infinity" | "NaN" | "…in a list"}``."""
    if isinstance(value, dict):
        out, notes = {}, {}
        for k, v in value.items():
            if _bad(v):
                out[k], notes[str(k)] = None, _name(v)
                continue
            if isinstance(v, list | tuple) and any(_bad(x) for x in v):
                first = next(x for x in v if _bad(x))
                count = sum(_bad(x) for x in v)
                notes[str(k)] = f"{count} of {len(v)} entries were not finite (first: {_name(first)})"
            out[k] = strict_json(v)
        if notes:
            out[NONFINITE] = {**(out.get(NONFINITE) or {}), **notes}
        return out
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if _bad(value):
        return None
    if type(value).__module__ == "numpy":  # numpy scalars: as the Python number they hold
        return strict_json(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict_json` of ``value``; refuses (ValueError) anything still not finite."""
    return json.dumps(strict_json(value), allow_nan=False, **kwargs)


def restore(value: Any) -> Any:
    """The inverse of :func:`strict_json` where it can be: a null named in its dict's ``nonfinite`` field gets
    its float back (+inf, -inf, nan), so results read back compute as they were made (a non-finite entry
    of a list stays null)."""
    if isinstance(value, dict):
        notes = value.get(NONFINITE)
        out = {k: restore(v) for k, v in value.items() if not (k == NONFINITE and isinstance(notes, dict))}
        if isinstance(notes, dict):
            for k, note in notes.items():
                if out.get(k) is None and note in ("+Infinity", "-Infinity", "NaN"):
                    out[k] = {"+Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}[note]
        return out
    if isinstance(value, list):
        return [restore(v) for v in value]
    return value


def loads(text: str) -> Any:
    """Parse a JSON file diffuse wrote, non-finite numbers restored (:func:`restore`)."""
    return restore(json.loads(text))
