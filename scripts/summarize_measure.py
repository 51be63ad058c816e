"""Summarise `diffuse measure` JSON files by family (the task name's first part; the format for format tasks):
mean mass, mass on the valid set, normalised entropy and yields, one table a file.

    python scripts/summarize_measure.py m_base.json m_tuned.json
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

KEYS = ("mass", "valid_mass", "normalized_entropy", "yield_20", "yield_100")


def group(name: str) -> str:
    """``formats/eval/json/day`` -> ``json``; ``countries/asia/p0`` -> ``countries``."""
    parts = name.split("/")
    return parts[2] if parts[0] == "formats" and len(parts) > 2 else parts[0]


def summary(path: Path) -> dict[str, dict[str, float]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for t in json.loads(path.read_text())["tasks"]:
        groups[group(t["name"])].append(t)
    return {
        g: {k: float(np.mean([t.get(k, np.nan) for t in ts])) for k in KEYS} | {"n": len(ts)}
        for g, ts in groups.items()
    }


def main(argv: list[str]) -> int:
    for path in map(Path, argv):
        print(f"== {path}")
        print(f"{'group':14s} {'mass':>7s} {'vmass':>7s} {'normH':>6s} {'y20':>6s} {'y100':>6s} n")
        for g, m in summary(path).items():
            print(
                f"{g:14s} {m['mass']:7.3f} {m['valid_mass']:7.3f} {m['normalized_entropy']:6.3f} "
                f"{m['yield_20']:6.2f} {m['yield_100']:6.2f} {m['n']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
