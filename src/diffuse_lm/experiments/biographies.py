"""Section 6: synthetic biographies from the base model, Tuned-OOD (tuned on the six tasks of Section 5,
never on biographies) and Tuned-ID (Tuned-OOD tuned further on 210 categorical tuples with balanced
gender, birth year and birth place). Table 2 (top values), Tables 7–8 (coverage and entropy of each
attribute), Figure 4 (coverage, unigram diversity) and Figure 5 (maps) are built from these records."""

from __future__ import annotations

from diffuse_lm.experiments import common
from diffuse_lm.experiments.common import TASKS, Context, adapter, using
from diffuse_lm.experiments.leave_one_out import six_task_adapter

USES = (
    "passes.six",
    "six_phrasings",
    "six_max_targets",
    "passes.biographies",
    "bio_samples",
    "bio_max_new_tokens",
)
MODELS = ("Base", "Tuned-OOD", "Tuned-ID")


def biography_messages() -> list[dict]:
    from diffuse_lm.builtin import BIOGRAPHY_PROMPT

    return [{"role": "user", "content": BIOGRAPHY_PROMPT}]


def records_of(texts: list[str]) -> list[dict]:
    """Parsed biographies, each with its raw text; malformed ones are kept (and flagged by the parser)."""
    from diffuse_lm.biographies import parse_biography

    return [{**parse_biography(t), "text": t} for t in texts]


def report_of(records: list[dict]) -> dict:
    from diffuse_lm.biographies import biography_report

    return biography_report(records)


def run(ctx: Context) -> dict:
    ood = six_task_adapter(ctx)
    tuned_id = adapter(
        ctx, "biographies-id", [TASKS["biographies"]], ctx.scale.passes["biographies"], parent=ood
    )
    s = ctx.scale
    out = {"n_samples": s.bio_samples, "models": {}}
    for label, path in zip(MODELS, (None, ood, tuned_id), strict=True):
        with using(ctx, path) as (model, tokenizer):
            texts = common.sample_texts(
                model,
                tokenizer,
                biography_messages(),
                s.bio_samples,
                temperature=1.0,
                max_new_tokens=s.bio_max_new_tokens,
                seed=ctx.seed,
                batch_size=s.batch_size,
                progress=ctx.progress,
            )
        records = records_of(texts)
        out["models"][label] = {"report": report_of(records), "records": records}
    return out
