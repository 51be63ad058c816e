"""What every experiment module exports: its result as a typed record (JSON on disk as before), and one
:class:`Experiment` naming its ``run``, its report section, the paper's claim and the scale settings it uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from diffuse_lm.experiments.common import Context


class Record(BaseModel):
    """A typed part of a result. Keys a record does not name (from older or newer files) are kept, and a
    key left out when the record was made stays out of its JSON, so stored results load and write back as
    they were."""

    model_config = ConfigDict(extra="allow")

    def to_json(self) -> dict:
        """The record as JSON-ready Python (what ``diffuse reproduce`` writes under ``result``)."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_json(cls, data: dict) -> Self:
        """The record of a stored result (``result`` of OUT/<experiment>.json)."""
        return cls.model_validate(data)


@dataclass(frozen=True)
class Experiment:
    """One experiment of ``diffuse reproduce``: everything the runner, the report and the record of choices
    need from it. Each module under :mod:`diffuse_lm.experiments` exports one as ``EXPERIMENT``."""

    name: str  # the CLI's name for it: the module's name with "-" for "_"
    run: Callable[[Context], Record]  # computes the results (writes nothing)
    result: type  # the record ``run`` returns (a Record, or a pydantic RootModel), with from_json
    section: Callable[[Any, Path], str]  # (result, figures folder) -> the report's Markdown, figures saved
    claim: str  # what the paper says, quoted above the section
    uses: tuple[str, ...]  # Scale fields it depends on (``passes.<model>`` for one model's passes)
    in_all: bool = True  # run by ``diffuse reproduce all``
    # The adapters it trains from the base model (calls :func:`common.adapter` as ``run`` does): what
    # ``--jobs`` trains side by side before the experiments run
    adapters: Callable[[Context], Any] | None = None
