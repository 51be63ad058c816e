"""Not in the paper: diversity that transfers against utility kept, one point per training recipe.

For each recipe of the scale (the paper's Eq. 5 alone, the retention term, determinate questions in the
mix, both), the six leave-one-out models give the out-of-domain diversity gain (exact entropy, expected
Coverage-N and mass on valid answers of each held-out task, over the base model's), and the six-task model
gives the utility kept (accuracy on the shipped questions asked in braces and free-form, arithmetic, and
next-token KL(base ‖ tuned) on general prompts). Not part of ``all``: it trains seven models per recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffuse_lm.experiments import leave_one_out, utility
from diffuse_lm.experiments.common import Context
from diffuse_lm.experiments.leave_one_out import SIX_TASK_USES, LeaveOneOut, Summary
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.experiments.utility import Accuracy, Utility
from diffuse_lm.files import write_json_atomic
from diffuse_lm.present.figures import pyplot, save
from diffuse_lm.present.markdown import table
from diffuse_lm.strict_json import loads

CLAIM = (
    "Not in the paper. Section 5 and Appendix C.4 together claim both at once: diversity that "
    "transfers to held-out tasks, and general ability unchanged."
)
GAINS = ("entropy", "expected_coverage", "mass", "valid_mass", "yield_100")


class Point(Record):
    """One recipe: the OOD models' gains over base per held-out family, and the six-task model's utility."""

    settings: dict  # the recipe's retain and determinate
    ood_gain: dict[str, dict[str, float]]  # metric (GAINS) -> family -> OOD minus base
    mean_entropy_gain: float
    mean_coverage_gain: float
    families_entropy_up: int
    families_mass_up: int
    n_families: int
    mean_ood_yield_100: float | None = None  # mean over held-out families of the OOD model's yield@100
    families_valid_mass_020: int | None = None  # held-out families whose OOD valid mass is at least 0.2
    qa: dict[str, dict[str, dict[str, Accuracy]]]  # format -> "base"/"tuned" -> kind of question -> accuracy
    kl_per_token: float
    top1_agreement: float
    leave_one_out: dict[str, dict[str, Summary]]  # the leave-one-out results it summarises


class Tradeoff(Record):
    recipes: list[str]
    coverage_n: int
    points: dict[str, Point]  # recipe -> its point


def point(loo: LeaveOneOut, util: Utility) -> dict:
    """One recipe's summary: per held-out family the OOD model's gain over base, and the utility kept."""
    fams = loo.families
    res = loo.results
    known = [
        m for m in GAINS if all(getattr(res[f][k], m) is not None for f in fams for k in ("OOD", "baseline"))
    ]
    gain = {m: {f: getattr(res[f]["OOD"], m) - getattr(res[f]["baseline"], m) for f in fams} for m in known}
    acc = util.qa.accuracy
    validity = {}
    if "yield_100" in known:  # results made since yields exist: rank by what a user receives
        validity = {
            "mean_ood_yield_100": float(np.mean([res[f]["OOD"].yield_100 for f in fams])),
            "families_valid_mass_020": sum(res[f]["OOD"].valid_mass >= 0.2 for f in fams),
        }
    return {
        **validity,
        "ood_gain": gain,
        "mean_entropy_gain": float(np.mean(list(gain["entropy"].values()))),
        "mean_coverage_gain": float(np.mean(list(gain["expected_coverage"].values()))),
        "families_entropy_up": sum(v > 0 for v in gain["entropy"].values()),
        "families_mass_up": sum(v > 0 for v in gain["mass"].values()),
        "n_families": len(fams),
        "qa": {fmt: {m: acc[m][fmt] for m in ("base", "tuned")} for fmt in acc["base"]},
        "kl_per_token": util.kl.mean_per_token,
        "top1_agreement": util.kl.top1_agreement,
    }


def run(ctx: Context) -> Tradeoff:
    """Each recipe's point; a finished point is kept in ``OUT/tradeoff/`` (by the recipe and the six-task
    adapter it measured), so an interrupted sweep resumes at the recipe it was on, and a finished point is
    read back without its adapters (a recipe added later costs only its own models)."""
    points, baseline = {}, None
    for recipe in ctx.scale.tradeoff:
        done = ctx.out / "tradeoff" / f"{leave_one_out.six_task_run(ctx, recipe).name}.json"
        if done.exists():
            points[str(recipe)] = Point.from_json(loads(done.read_text()))
            continue
        six = leave_one_out.six_task_adapter(ctx, recipe)
        loo = leave_one_out.run(ctx, recipe, sample=False, baseline=baseline)
        baseline = {f: r["baseline"] for f, r in loo.results.items()}
        util = utility.evaluate(ctx, six)
        points[str(recipe)] = Point(
            settings={"retain": recipe.retain, "determinate": recipe.determinate},
            **point(loo, util),
            leave_one_out=loo.results,
        )
        write_json_atomic(done, points[str(recipe)].to_json())
    return Tradeoff(recipes=list(points), coverage_n=ctx.scale.coverage_n, points=points)


# --- report ----------------------------------------------------------------------------------------


def _acc(p: Point, fmt: str, kind: str = "all", model: str = "tuned") -> str:
    a = p.qa[fmt][model][kind]
    lo, hi = a.ci95
    return f"{a.correct:.1%} [{lo:.0%}, {hi:.0%}]"


def section(res: Tradeoff, figures: Path) -> str:
    """The frontier figure and its table."""
    plt = pyplot()
    pts = res.points
    first = pts[res.recipes[0]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for name, p in pts.items():
        kept = {
            fmt: p.qa[fmt]["tuned"]["all"].correct / max(p.qa[fmt]["base"]["all"].correct, 1e-9)
            for fmt in p.qa
        }
        axes[0].scatter(kept["braced"], p.mean_entropy_gain, s=60, label=name)
        axes[0].scatter(
            kept["free"],
            p.mean_entropy_gain,
            s=60,
            marker="x",
            color=axes[0].collections[-1].get_facecolor(),
        )
        axes[1].scatter(p.kl_per_token, p.mean_entropy_gain, s=60)
        axes[1].annotate(name.split(":")[0], (p.kl_per_token, p.mean_entropy_gain), fontsize=7)
    axes[0].axvline(0.9, color="grey", ls=":", lw=1)
    axes[0].axhline(0, color="grey", lw=0.5)
    axes[1].axhline(0, color="grey", lw=0.5)
    axes[0].set(
        xlabel="QA accuracy kept, tuned / base (o braced, x free-form)",
        ylabel="OOD entropy gain (nats, mean over held-out tasks)",
        title="(a) diversity that transfers vs accuracy kept",
    )
    axes[1].set(xlabel="next-token KL(base ‖ tuned) per token, general prompts", title="(b) vs drift")
    ncol = min(len(pts), 2)  # long recipe names: two a row
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=7, loc="lower center", ncol=ncol)
    fig.tight_layout(rect=(0, 0.05 * -(-len(pts) // ncol) + 0.02, 1, 1))
    md = save(fig, figures / "tradeoff.png")
    n = first.n_families
    head = [
        "recipe",
        "OOD yield@100 (valid mass >= 0.2)",
        "OOD entropy gain",
        f"tasks up (of {n}): H / mass",
        "E[Cov] gain",
        "braced QA",
        "free QA",
        "braced arithmetic",
        "KL/token",
    ]
    rows = [
        [
            name,
            "n/a"
            if p.mean_ood_yield_100 is None
            else f"{p.mean_ood_yield_100:.1f} ({p.families_valid_mass_020} of {p.n_families})",
            f"{p.mean_entropy_gain:+.3f}",
            f"{p.families_entropy_up} / {p.families_mass_up}",
            f"{p.mean_coverage_gain:+.1f}",
            _acc(p, "braced"),
            _acc(p, "free"),
            _acc(p, "braced", "arithmetic"),
            f"{p.kl_per_token:.3f}",
        ]
        for name, p in pts.items()
    ]
    rows.append(
        [
            "(base model)",
            "",
            "",
            "",
            "",
            _acc(first, "braced", model="base"),
            _acc(first, "free", model="base"),
            _acc(first, "braced", "arithmetic", "base"),
            "0",
        ]
    )
    if all(p.mean_ood_yield_100 is None for p in pts.values()):  # results from before yield was measured
        head, rows = [head[0], *head[2:]], [[r[0], *r[2:]] for r in rows]
    md += (
        "\nOne row per training recipe: gains of the leave-one-out OOD models over base (exact, mean over "
        "the held-out tasks), and the six-task model's accuracy (95% Wilson interval) and drift:\n\n"
        + table(head, rows)
    )
    fams = list(first.ood_gain["entropy"])
    md += "\nOOD entropy gain per held-out task:\n\n" + table(
        ["recipe", *fams],
        [[name, *(f"{p.ood_gain['entropy'][f]:+.2f}" for f in fams)] for name, p in pts.items()],
    )
    return md


EXPERIMENT = Experiment(
    name="tradeoff",
    run=run,
    result=Tradeoff,
    section=section,
    claim=CLAIM,
    uses=(
        "tradeoff",
        *SIX_TASK_USES,
        "utility_questions",
        "utility_max_new_tokens",
    ),
    in_all=False,  # seven models a recipe
)
