"""Section 6: synthetic biographies from the base model, Tuned-OOD (tuned on the six tasks of Section 5,
never on biographies) and Tuned-ID (Tuned-OOD tuned further on 210 categorical tuples with balanced
gender, birth year and birth place). Table 2 (top values), Tables 7–8 (coverage and entropy of each
attribute), Figure 4 (coverage, unigram diversity) and Figure 5 (maps) are built from these records."""

from __future__ import annotations

from pathlib import Path

from diffuse_lm.biographies import plot_birthplaces
from diffuse_lm.experiments.common import TASKS, Context, adapter, using
from diffuse_lm.experiments.leave_one_out import SIX_TASK_USES, six_task_adapter
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table

CLAIM = (
    "Tuned-OOD: ~4× the unique first names, 3× the birth places, 1.5× the professions of "
    "the base model; the base Llama-2 writes 'Evelyn' 284 times and 966 women in 1000 "
    "biographies; Tuned-ID balances gender and birth year."
)
MODELS = ("Base", "Tuned-OOD", "Tuned-ID")
# The paper's Tables 7–8: Llama-2-13B biographies (1000 samples), attribute -> model -> (coverage, entropy in nats).
TABLE78 = {
    "first_name": {"Base": (158, 3.23), "Tuned-ID": (637, 5.58), "Tuned-OOD": (375, 6.18)},
    "last_name": {"Base": (288, 4.30), "Tuned-ID": (845, 5.96), "Tuned-OOD": (557, 6.63)},
    "birth_year": {"Base": (26, 1.10), "Tuned-ID": (67, 4.22), "Tuned-OOD": (89, 3.15)},
    "birth_place": {"Base": (98, 2.65), "Tuned-ID": (305, 5.98), "Tuned-OOD": (533, 5.08)},
    "profession": {"Base": (178, 3.81), "Tuned-ID": (276, 4.33), "Tuned-OOD": (198, 4.61)},
}


class Recovered(Record):
    """Per field, the share of the biographies the strict parser (the one the metrics use) and the tolerant
    one (:mod:`diffuse_lm.biography_recovery`) recover it from: beside the metrics, not in them."""

    n: int
    strict: dict[str, float]
    tolerant: dict[str, float]


class Model(Record):
    report: dict  # diffuse_lm.biographies.biography_report of the records
    records: list[dict]  # each biography parsed, with its text
    recovered: Recovered | None = None  # absent from results stored before the tolerant parser


class Biographies(Record):
    n_samples: int
    models: dict[str, Model]  # "Base", "Tuned-OOD", "Tuned-ID"


def biography_messages() -> list[dict]:
    from diffuse_lm.paper_prompts import BIOGRAPHY_PROMPT

    return [{"role": "user", "content": BIOGRAPHY_PROMPT}]


def records_of(texts: list[str]) -> list[dict]:
    """Parsed biographies, each with its raw text; malformed ones are kept (and flagged by the parser)."""
    from diffuse_lm.biographies import parse_biography

    return [{**parse_biography(t), "text": t} for t in texts]


def report_of(records: list[dict]) -> dict:
    from diffuse_lm.biographies import biography_report

    return biography_report(records)


def recovered(texts: list[str]) -> Recovered:
    """Per field, the share of biographies the strict parser and the tolerant one recover it from."""
    from diffuse_lm.biography_recovery import recovery

    return Recovered(**recovery(texts))


def run(ctx: Context) -> Biographies:
    ood = six_task_adapter(ctx)
    tuned_id = adapter(
        ctx, "biographies-id", [TASKS["biographies"]], ctx.scale.passes["biographies"], parent=ood
    )
    s = ctx.scale
    models = {}
    for label, path in zip(MODELS, (None, ood, tuned_id), strict=True):
        with using(ctx, path) as (model, tokenizer):
            texts = ctx.sampler(
                model,
                tokenizer,
                biography_messages(),
                s.bio_samples,
                temperature=1.0,
                max_new_tokens=s.bio_max_new_tokens,
                seed=ctx.seed,
                batch_size=s.batch_size,
                progress=ctx.progress,
                what="biographies",
            )
        records = records_of(texts)
        models[label] = Model(report=report_of(records), records=records, recovered=recovered(texts))
    return Biographies(n_samples=s.bio_samples, models=models)


# --- report ----------------------------------------------------------------------------------------


def section(res: Biographies, figures: Path) -> str:
    """Tables 7–8 beside Llama-2's, Table 2, Figure 4 (coverage, unigram diversity) and Figure 5 (maps)."""
    plt = pyplot()
    models = list(res.models)
    reports = {m: res.models[m].report for m in models}
    attrs = list(reports[models[0]]["attributes"])
    head = ["attribute"] + [f"{m} cov / H" for m in models] + [f"Llama-2 {m} cov / H" for m in models]
    rows = []
    for a in attrs:
        ours = [
            f"{reports[m]['attributes'][a]['coverage']} / {reports[m]['attributes'][a]['entropy'] + 0.0:.2f}"
            for m in models
        ]
        paper = [" / ".join(map(str, TABLE78[a][m])) if a in TABLE78 else None for m in models]
        rows.append([a] + ours + paper)
    md = f"{res.n_samples} biographies per model (the paper: 1000).\n\nTables 7–8:\n\n" + table(head, rows)
    top = [
        [a, m, ", ".join(f"{v} ({c})" for v, c in reports[m]["attributes"][a]["top"][:5])]
        for a in attrs
        for m in models
    ]
    md += "\nTable 2, top five values:\n\n" + table(["attribute", "model", "top 5 (count)"], top)
    rec = {m: res.models[m].recovered for m in models if res.models[m].recovered is not None}
    if rec:  # not in the paper: how much a tolerant parser would recover (the metrics above are strict)
        md += (
            "\nShare of biographies with each field, strict parse (the metrics above) / tolerant parse "
            "(labelled lines, a first-line name, numbered or comma-separated fields; `diffuse synth`'s "
            "default):\n\n"
        )
        keys = list(next(iter(rec.values())).strict)
        md += table(
            ["field", *rec],
            [[k, *(f"{r.strict[k]:.0%} / {r.tolerant[k]:.0%}" for r in rec.values())] for k in keys],
        )
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        a1.bar(
            [j + i * width for j in range(len(attrs))],
            [reports[m]["attributes"][a]["coverage"] for a in attrs],
            width,
            label=m,
            color=COLORS[m],
        )
        div = reports[m]["unigram_diversity"]
        a2.bar([j + i * width for j in range(len(div))], list(div.values()), width, color=COLORS[m])
    a1.set(
        xticks=[j + 0.4 - width / 2 for j in range(len(attrs))],
        xticklabels=attrs,
        ylabel="coverage",
        title="(a) coverage of categorical attributes",
    )
    a2.set(
        xticks=[j + 0.4 - width / 2 for j in range(len(div))],
        xticklabels=list(div),
        ylabel="unigram diversity",
        title="(b) normalised unigram diversity",
    )
    a1.legend()
    md += "\n" + save(fig, figures / "fig4_biographies.png")
    for m in models:
        name = f"fig5_birthplaces_{m.lower()}.png"
        plot_birthplaces(res.models[m].records, figures / name)
        md += f"\nFigure 5, {m}:\n\n![{m}](figures/{name})\n"
    return md


EXPERIMENT = Experiment(
    name="biographies",
    run=run,
    result=Biographies,
    section=section,
    claim=CLAIM,
    uses=(
        *SIX_TASK_USES,
        "passes.biographies",
        "bio_samples",
        "bio_max_new_tokens",
    ),
    adapters=six_task_adapter,
)
