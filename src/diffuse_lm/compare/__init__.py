"""``diffuse compare``: ways of getting diverse answers out of a model, side by side on the same tasks with
the same metrics — exact (by teacher forcing) wherever the method allows it, from samples with 95% intervals
where it does not. Each method is one module of ``methods/``. What runs them (torch) is imported on first use,
so that listing the methods (``diffuse --help``) stays fast."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from diffuse_lm.compare.method import Draws, Method, Spec
from diffuse_lm.compare.methods import METHODS, parse_methods
from diffuse_lm.compare.report import markdown_table, plot_compare

__all__ = [
    "METHODS",
    "Draws",
    "Method",
    "Spec",
    "compare_tasks",
    "markdown_table",
    "parse_methods",
    "plot_compare",
]


def __getattr__(name: str) -> Any:
    if name == "compare_tasks":
        return import_module("diffuse_lm.compare.run").compare_tasks
    raise AttributeError(f"module 'diffuse_lm.compare' has no attribute {name!r}")
