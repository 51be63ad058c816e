"""Not in the paper: the tuned models beside the other ways of getting diversity (``diffuse compare``) on the
six tasks of Section 5 and on the RNG prompts (the paper's and Appendix B.1's formats for [1, 10]): the base
model, temperature, min-p, top-p, a system prompt asking for randomness, verbalized sampling, and the model
tuned on those tasks (the six-task model; the RNG 1–10 model of Table 1)."""

from __future__ import annotations

from pathlib import Path

from diffuse_lm.experiments.common import TASKS, Context, adapter, base
from diffuse_lm.experiments.leave_one_out import six_task_adapter, six_tasks
from diffuse_lm.tasks import load_tasks

USES = ("six_recipe", "passes.six", "passes.rng", "six_phrasings", "six_max_targets", "loo_samples")
METHODS = "base,temperature:1.5,min_p:0.1,top_p:0.9,system-prompt,verbalized:5"
RNG_PROMPTS = ("rng/1-10", "rng/formats/1-10")


def run(ctx: Context) -> dict:
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
    return out


def section(res: dict, figures: Path) -> str:
    """Per group of tasks: mean of each method's metrics over the prompts, the figure, the full table."""
    import numpy as np

    from diffuse_lm.compare import markdown_table, plot_compare
    from diffuse_lm.report_figures import table

    md = ""
    for name, result in res.items():
        methods = [m["method"] for m in result["methods"]]
        rows = []
        for m in methods:
            mine = [r for r in result["rows"] if r["method"] == m]
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
        md += f"\n### {name} ({len(result['tasks'])} prompts)\n\nMean over the prompts:\n\n" + table(
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
