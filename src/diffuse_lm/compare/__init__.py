"""``diffuse compare``: ways of getting diverse answers out of a model, side by side on the same tasks with
the same metrics — exact (by teacher forcing) wherever the method allows it, from samples with 95% intervals
where it does not. Each method is one module of ``methods/``."""

from diffuse_lm.compare.method import Draws, Method, Spec
from diffuse_lm.compare.methods import METHODS, parse_methods
from diffuse_lm.compare.report import markdown_table, plot_compare
from diffuse_lm.compare.run import compare_tasks

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
