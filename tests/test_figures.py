"""What the figures show (issue 26): ``compare.png`` puts the mass on valid answers beside the spread over them,
so a method that spreads its probability over junk (temperature 1.5: normalised entropy 0.93, mass 1.5e-05) does
not look best."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffuse_lm.compare.report import plot_compare  # noqa: E402


def _row(method: str, mass: float, spread: float, kl: float) -> dict:
    return {
        "task": "rng",
        "method": method,
        "kind": "exact",
        "mass": mass,
        "normalized_entropy": spread,
        "kl": kl,
    }


def test_compare_figure_shows_mass_beside_spread(tmp_path, monkeypatch):
    kept = []
    monkeypatch.setattr(plt, "close", kept.append)  # keep the figure to look inside it
    result = {
        "model": "m",
        "tasks": [{"name": "rng"}],
        "methods": [
            {"method": m} for m in ("base", "temperature:1.5", "min_p:0.1", "tuned:/x/run-7/adapter")
        ],
        "rows": [
            _row("base", 2.9e-4, 0.85, 0.45),
            _row("temperature:1.5", 1.5e-5, 0.93, 0.16),
            _row("min_p:0.1", 0.0, math.nan, math.inf),
            _row("tuned:/x/run-7/adapter", 0.999, 0.99, 0.001),
        ],
    }
    assert plot_compare(result, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    mass_ax, spread_ax = [ax for ax in kept[0].axes if ax.get_visible()]
    assert mass_ax.get_xscale() == "log" and "mass on valid answers" in mass_ax.get_xlabel()
    assert "normalised entropy" in spread_ax.get_xlabel()
    labels = [t.get_text() for t in mass_ax.get_yticklabels()]
    assert labels == ["base", "temperature:1.5", "min_p:0.1", "tuned:run-7"]  # no adapter path
    bars = spread_ax.patches
    hatched = [bool(b.get_hatch()) for b in bars]
    assert hatched == [True, True, True, False]  # only the tuned model has most samples valid
    texts = [t.get_text() for t in mass_ax.texts]
    assert "1.5e-05" in texts and "0: no valid answer" in texts
