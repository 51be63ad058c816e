"""Not in the paper: the tuned models beside the other ways of getting diversity (``diffuse compare``) on the
six tasks of Section 5 and on the RNG prompts (the paper's and Appendix B.1's formats for [1, 10]): the base
model, temperature, min-p, top-p, a system prompt asking for randomness, verbalized sampling, and the model
tuned on those tasks (the six-task model; the RNG 1–10 model of Table 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import RootModel

from diffuse_lm.experiments.common import TASKS, Context, adapter, base
from diffuse_lm.experiments.leave_one_out import six_task_adapter, six_tasks
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.present.markdown import table
from diffuse_lm.tasks import load_tasks

CLAIM = (
    "Footnote 6 compares tuning with temperature only; this compares it with min-p, top-p, a "
    "system prompt and verbalized sampling too (not in the paper)."
)
METHODS = "base,temperature:1.5,min_p:0.1,top_p:0.9,system-prompt,verbalized:5"
RNG_PROMPTS = ("rng/1-10", "rng/formats/1-10")


class Compared(Record):
    """One group of tasks compared: ``diffuse_lm.compare.compare_tasks``' result."""

    tasks: list[dict]
    methods: list[dict]
    rows: list[dict]  # one a method and prompt, with its metrics


class Compare(RootModel[dict[str, Compared]]):
    """Group name ("six tasks", "RNG") -> its comparison; the JSON is that mapping itself."""

    def to_json(self) -> dict:
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_json(cls, data: dict) -> Compare:
        return cls.model_validate(data)


def run(ctx: Context) -> Compare:
    from diffuse_lm.compare import compare_tasks, parse_methods

    groups = {
        "six tasks": (six_tasks(ctx), six_task_adapter(ctx)),
        "RNG": (
            load_tasks(list(RNG_PROMPTS)),
            adapter(ctx, "rng-1-10", [TASKS["rng"]], ctx.scale.passes["rng"]),
        ),
    }
    out = {}
    for name, (tasks, tuned) in groups.items():
        model, tokenizer = base(ctx)
        out[name] = compare_tasks(
            model,
            tokenizer,
            tasks,
            parse_methods(f"{METHODS},tuned:{tuned}"),
            samples=ctx.scale.loo_samples,  # verbalized lists per prompt
            seed=ctx.seed,
            coverage_n=ctx.scale.coverage_n,
            batch_size=ctx.scale.batch_size,
            progress=ctx.progress,
        )
    return Compare(out)


def section(res: Compare, figures: Path) -> str:
    """Per group of tasks: mean of each method's metrics over the prompts, the figure, the full table."""
    from diffuse_lm.compare import markdown_table, plot_compare

    md = ""
    for name, compared in res.root.items():
        result = compared.to_json()  # the compare package's own tables and figure read its dict
        methods = [m["method"] for m in compared.methods]
        rows = []
        for m in methods:
            mine = [r for r in compared.rows if r["method"] == m]
            mean = {k: float(np.mean([r[k] for r in mine])) for k in ("mass", "normalized_entropy")}
            fmt = [r["format_rate"] for r in mine if r.get("format_rate") is not None]
            label = m if not m.startswith("tuned:") else "tuned"
            rows.append(
                [
                    label,
                    mine[0]["kind"],
                    mean["mass"],
                    mean["normalized_entropy"],
                    np.mean(fmt) if fmt else None,
                ]
            )
        md += f"\n### {name} ({len(compared.tasks)} prompts)\n\nMean over the prompts:\n\n" + table(
            ["method", "kind", "mass on valid answers", "normalised entropy over them", "format followed"],
            rows,
        )
        slug = name.lower().replace(" ", "_")
        plot_compare(result, figures / f"compare_{slug}.png")
        md += (
            f"\n![compare {name}](figures/compare_{slug}.png)\n\n<details><summary>every prompt</summary>\n\n"
        )
        md += markdown_table(result) + "\n</details>\n"
    return md


EXPERIMENT = Experiment(
    name="compare",
    run=run,
    result=Compare,
    section=section,
    claim=CLAIM,
    uses=(
        "six_recipe",
        "passes.six",
        "passes.rng",
        "six_phrasings",
        "six_max_targets",
        "six_subtasks",
        "loo_samples",
    ),
    in_all=False,  # beyond the paper
)
