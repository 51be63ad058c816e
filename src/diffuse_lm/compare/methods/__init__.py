"""The methods ``diffuse compare`` knows. Adding one: a module here that builds a ``Method``, and a line below."""

from __future__ import annotations

from diffuse_lm.compare.method import Method, Spec
from diffuse_lm.compare.methods import (
    base,
    in_one,
    min_p,
    ssot,
    system_prompt,
    temperature,
    top_p,
    tuned,
    verbalized,
)
from diffuse_lm.errors import DiffuseError, shorten

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        base.METHOD,
        temperature.METHOD,
        min_p.METHOD,
        top_p.METHOD,
        system_prompt.METHOD,
        verbalized.METHOD,
        ssot.METHOD,
        in_one.METHOD,
        tuned.METHOD,
    )
}


def parse_methods(text: str) -> list[Spec]:
    """``base,temperature:1.5,tuned:PATH`` -> specs, in order; a bad name or parameter is a one-line
    :class:`DiffuseError` (raised before any model loads)."""
    specs: list[Spec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise DiffuseError(
                f"--methods {shorten(text)}: an empty method name (two commas, or a trailing one?)"
            )
        name, sep, arg = item.partition(":")
        method = METHODS.get(name.strip())
        if method is None:
            known = ", ".join(m.usage for m in METHODS.values())
            raise DiffuseError(f"--methods: unknown method {shorten(name)} (known: {known})")
        value = method.parse(arg.strip() if sep else None)
        if item in [s.label for s in specs]:
            raise DiffuseError(f"--methods: {shorten(item)} is listed twice")
        specs.append(Spec(method, value, item))
    return specs
