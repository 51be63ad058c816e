"""The reproduction report: OUT/report.md and OUT/figures/*.png from the results files that ``diffuse
reproduce`` writes (OUT/<experiment>.json), one section an experiment (written by the experiment's module),
under a header of what the results share."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from diffuse_lm.errors import DiffuseError
from diffuse_lm.experiments import experiment
from diffuse_lm.experiments.runner import load_results
from diffuse_lm.experiments.scales import SCALE_NOTES
from diffuse_lm.files import write_atomic


def write_report(out: str | Path) -> Path:
    """Write ``out/report.md`` and ``out/figures/*.png`` from the results in ``out``; returns the report."""
    out = Path(out)
    results = load_results(out)
    if not results:
        raise DiffuseError(f"{out}: holds no results (run `diffuse reproduce EXPERIMENT --out {out}` first)")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    parts = [header(results)]
    for name, record in results.items():
        exp = experiment(name)
        parts.append(f"## {name}\n\n*Paper:* {exp.claim}\n\n{settings(record)}\n")
        try:
            result = exp.result.from_json(record["result"])
        except (KeyError, ValidationError) as e:
            raise DiffuseError(
                f"{out / (name + '.json')}: not a {name} results file ({_first_error(e)})"
            ) from None
        parts.append(exp.section(result, figures))
    path = out / "report.md"
    write_atomic(path, "\n".join(parts))
    return path


def header(results: dict[str, dict]) -> str:
    """The report's title and what all its results share: model, scale, seed, time, versions."""
    first = next(iter(results.values()))
    total = sum(r["wall_s"] for r in results.values())
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    return (
        f"# Reproduction of *Forcing Diffuse Distributions out of Language Models*\n\n"
        f"Model **{first['model']}**, scale **{first['scale']}**, seed {first['seed']}; "
        f"{len(results)} experiment(s), {total / 60:.1f} min summed over their records (adapters trained "
        f"side by side before them, by `--jobs`, not counted). {versions}.\n\n"
        "Entropies are in nats. *Exact* numbers are computed by teacher forcing over the task's valid "
        "answers (renormalised over them; *mass* is the probability the model puts on them at all); "
        "*sampled* ones from generations at temperature 1, as in the paper.\n"
        + (f"\n{SCALE_NOTES[first['scale']]}\n" if first["scale"] in SCALE_NOTES else "")
    )


def settings(record: dict) -> str:
    """How one experiment ran: time, device, each adapter trained or reused, its scale's choices."""
    lines = [f"Ran in {record['wall_s']:.0f} s on {record.get('device') or 'the default device'}."]
    for name, a in record.get("adapters", {}).items():
        took = f"trained in {a.get('train_seconds') or 0:.0f} s"
        if a.get("cached"):  # by an earlier run, or side by side before this one (--jobs)
            took = f"reused from cache ({took})" if a.get("train_seconds") else "reused from cache"
        loss = (
            f", final pass loss {a['final_loss']:.3f} vs floor {a['floor']:.3f}"
            if a.get("final_loss")
            else ""
        )
        stop = ", early-stopped" if a.get("early_stopped") else ""
        lines.append(
            f"Adapter `{name}`: {a.get('steps')} steps ({a.get('passes')} passes){stop}{loss}; {took}."
        )
    if record.get("choices"):
        scale = str(record.get("scale", "quick")).capitalize()
        lines.append(f"{scale}-scale choices (paper -> here): " + "; ".join(record["choices"]) + ".")
    return " ".join(lines)


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
    return f"no {e}"
