"""Open-ended random requests (beyond the paper): prompts that ask for one short thing at random with no answer
list ("Suggest a name for a pet hamster at random. Reply with the name only."), sampled from the base model and
the six-task model. Only answer-like outputs count — a short answer that ends within the token budget, not
prose — since a base model at temperature 1 writes a different rambling sentence almost every time, and
counting raw distinct strings would measure that noise."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from diffuse_lm.experiments.common import Context, using
from diffuse_lm.experiments.leave_one_out import six_task_adapter
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.parsing import AnswerKey, summarize_answers
from diffuse_lm.present.figures import COLORS, pyplot, save
from diffuse_lm.present.markdown import table

CLAIM = (
    "Beyond the paper: tuning on a few random-choice tasks makes the model answer open-ended random requests "
    "with short answers that vary, where the base model repeats itself or writes prose."
)
MAX_WORDS = 5  # an answer of more words is prose, not an answer
MAX_TEXT_WORDS = 8  # nor is a short first line followed by more text
_EDGES = re.compile(r"^[\s\"'`*_{}\[\]()<>.,;:!?-]+|[\s\"'`*_{}\[\]()<>.,;:!?-]+$")
_LABEL = re.compile(r"^(answer|name|word|the answer is)\s*[:=-]\s*", re.IGNORECASE)


def prompts() -> list[str]:
    """The shipped open-ended prompts (``data/open_ended/prompts.yaml``)."""
    path = resources.files("diffuse_lm") / "data" / "open_ended" / "prompts.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8")))


def answer_like(text: str) -> str | None:
    """The normalised answer of one generation when it is answer-like — at most ``MAX_WORDS`` words on its
    first line and ``MAX_TEXT_WORDS`` in all (so it ended well within a short token budget) — else ``None``.
    Normalised: first non-empty line, a leading ``Answer:`` label, quotes, brackets, markdown and edge
    punctuation removed, case folded."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines or len(text.split()) > MAX_TEXT_WORDS:
        return None
    first = _EDGES.sub("", _LABEL.sub("", _EDGES.sub("", lines[0])))
    words = first.split()
    if not 1 <= len(words) <= MAX_WORDS:
        return None
    return " ".join(words).casefold()


class PromptResult(Record):
    prompt: str
    answer_like_rate: float  # share of the K samples that are answer-like
    distinct: int  # distinct answer-like outputs
    entropy: float  # of the answer-like outputs' empirical distribution (nats)
    top_share: float  # the commonest answer-like output's share of all K samples
    top: list[tuple[str, int]]  # the five commonest answer-like outputs


class ModelSummary(Record):
    answer_like_rate: float  # mean over prompts
    distinct: float  # mean distinct answer-like outputs a prompt
    entropy: float  # mean entropy of the answer-like outputs
    dominated: float  # share of prompts whose commonest answer takes over half the samples
    prompts: list[PromptResult]


class OpenEnded(Record):
    k: int  # samples a prompt
    max_new_tokens: int
    n_prompts: int
    models: dict[str, ModelSummary]  # "base", "tuned"


def summarize_prompt(prompt: str, texts: list[str]) -> PromptResult:
    """The answer-like outputs of ``texts`` (the K samples of one prompt), counted."""
    s = summarize_answers(texts, key=AnswerKey(parse=answer_like))
    top = s.answers.most_common(5)
    return PromptResult(
        prompt=prompt,
        answer_like_rate=s.rate(s.n_well_formed),
        distinct=s.distinct,
        entropy=s.entropy,
        top_share=s.rate(top[0][1]) if top else 0.0,
        top=top,
    )


def summarize(rows: list[PromptResult]) -> ModelSummary:
    """Means over the prompts."""
    return ModelSummary(
        answer_like_rate=float(np.mean([r.answer_like_rate for r in rows])),
        distinct=float(np.mean([r.distinct for r in rows])),
        entropy=float(np.mean([r.entropy for r in rows])),
        dominated=float(np.mean([r.top_share > 0.5 for r in rows])),
        prompts=rows,
    )


def run(ctx: Context) -> OpenEnded:
    k, budget = ctx.scale.open_ended_samples, ctx.scale.answer_max_new_tokens
    asked = prompts()[: ctx.scale.open_ended_prompts]
    models = {}
    for label, path in (("base", None), ("tuned", six_task_adapter(ctx))):
        rows = []
        with using(ctx, path) as (model, tokenizer):
            for i, prompt in enumerate(asked):
                texts = ctx.sampler(
                    model,
                    tokenizer,
                    [{"role": "user", "content": prompt}],
                    k,
                    temperature=1.0,
                    max_new_tokens=budget,
                    seed=ctx.seed + i,
                    batch_size=ctx.scale.batch_size,
                )
                rows.append(summarize_prompt(prompt, texts))
        models[label] = summarize(rows)
    return OpenEnded(k=k, max_new_tokens=budget, n_prompts=len(asked), models=models)


def section(res: OpenEnded, figures: Path) -> str:
    """The means of each model, a histogram of distinct answer-like outputs a prompt, and a few prompts."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.arange(0, res.k + 2) - 0.5
    for label, m in res.models.items():
        ax.hist([p.distinct for p in m.prompts], bins=bins, alpha=0.6, color=COLORS.get(label), label=label)
    ax.set(xlabel=f"distinct answer-like outputs in {res.k} samples", ylabel="prompts", title="open-ended")
    ax.legend()
    md = save(fig, figures / "open_ended.png")
    head = ["model", "answer-like", f"distinct of {res.k}", "entropy", "prompts dominated"]
    rows = [
        [label, m.answer_like_rate, m.distinct, m.entropy, m.dominated] for label, m in res.models.items()
    ]
    md += (
        f"\n{res.n_prompts} open-ended prompts, {res.k} samples each at temperature 1, at most "
        f"{res.max_new_tokens} new tokens; means over prompts ('dominated': the commonest answer takes over "
        "half the samples):\n\n" + table(head, rows)
    )
    shown = [
        [
            p.prompt[:60],
            *(", ".join(f"{a} {c}" for a, c in m.prompts[i].top[:3]) for m in res.models.values()),
        ]
        for i, p in enumerate(next(iter(res.models.values())).prompts[:6])
    ]
    md += "\nCommonest answer-like outputs of the first prompts:\n\n" + table(["prompt", *res.models], shown)
    return md


def adapters(ctx: Context):
    return six_task_adapter(ctx)


EXPERIMENT = Experiment(
    name="open-ended",
    run=run,
    result=OpenEnded,
    section=section,
    claim=CLAIM,
    uses=("six_recipe", "open_ended_samples", "open_ended_prompts", "answer_max_new_tokens"),
    adapters=adapters,
)
