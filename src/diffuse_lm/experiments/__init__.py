"""The paper's experiments, one module each. A module holds its ``run(ctx)`` (results as a typed record,
nothing written), its report section, the paper's claim and the scale settings it uses, and exports them as
``EXPERIMENT`` (:class:`diffuse_lm.experiments.record.Experiment`). Registering one is adding its module to
``MODULES``. ``diffuse reproduce`` runs them (:mod:`.runner`) and :mod:`.report` writes their report."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffuse_lm.experiments.record import Experiment

# In the order `all` runs them: experiments that share a tuned model come next to each other, so the
# cached adapter is reused while it is fresh.
MODULES = (
    "table1",
    "fig1",
    "temperature",
    "fig2",
    "leave_one_out",
    "biographies",
    "utility",
    "open_ended",
    "formats",
    "tradeoff",
    "compare",
    "calibration",
)
NAMES = tuple(m.replace("_", "-") for m in MODULES)  # names on the command line and of the results files


def experiment(name: str) -> Experiment:
    """The experiment called ``name`` (one of :data:`NAMES`); imports its module."""
    if name not in NAMES:
        raise KeyError(name)
    return import_module(f"diffuse_lm.experiments.{name.replace('-', '_')}").EXPERIMENT


def in_all() -> list[str]:
    """Names of the experiments ``diffuse reproduce all`` runs, in order."""
    return [name for name in NAMES if experiment(name).in_all]
