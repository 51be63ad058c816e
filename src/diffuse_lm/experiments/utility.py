"""What tuning costs in general ability. The paper checks with MT-Bench (Appendix C.4), which needs a
GPT-4 judge; offline we measure KL(base ‖ tuned) of the next-token distributions along the base model's
greedy answers to 20 general prompts, and accuracy of greedy answers to a few hundred factual and
arithmetic questions (shipped in ``data/utility``), each asked twice: for the answer in braces (the
training tasks' format, where a tuned model may answer at random) and free-form; for the model tuned on the
six tasks of Section 5. Accuracies come with 95% Wilson intervals."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml

from diffuse_lm.experiments.common import Context, using
from diffuse_lm.experiments.leave_one_out import SIX_TASK_USES, six_task_adapter
from diffuse_lm.experiments.record import Experiment, Record
from diffuse_lm.metrics import wilson_interval
from diffuse_lm.present.markdown import table

CLAIM = "Appendix C.4: MT-Bench scores of baseline and six-task-tuned models differ minimally."
QA_MAX_NEW_TOKENS = 24
FORMATS = ("braced", "free")


class NextTokenKL(Record):
    """KL(base ‖ tuned) along the base model's greedy answers to the general prompts."""

    mean_per_token: float
    median_per_token: float
    first_token: float
    top1_agreement: float  # share of positions where the two models' most probable token agree
    tokens: int
    prompts: list[dict]  # each prompt's KL, first-token KL, agreement and the base answer


class Accuracy(Record):
    n: int
    correct: float  # share correct
    ci95: tuple[float, float]  # its 95% Wilson interval
    exact: float  # share with exactly an accepted answer in braces


class QA(Record):
    accuracy: dict[str, dict[str, dict[str, Accuracy]]]  # model -> format -> kind of question -> accuracy
    items: list[dict]  # each question with both models' answers and grades


class Utility(Record):
    """One tuned model's utility: next-token KL on general prompts and QA accuracy beside the base model."""

    recipe: str | None = None  # how the six-task model trained (in `utility`'s result, not tradeoff's)
    kl: NextTokenKL
    qa: QA


def _data(name: str):
    return yaml.safe_load((resources.files("diffuse_lm") / "data" / "utility" / name).read_text())


def load_prompts() -> list[str]:
    return list(_data("prompts.yaml"))


def load_questions() -> tuple[dict[str, str], list[dict]]:
    """The instruction appended to every question in each format, and the questions with their accepted
    answers."""
    qa = _data("qa.yaml")
    return {"braced": qa["instruction"], "free": qa["free_instruction"]}, qa["questions"]


def per_kind(questions: list[dict], n: int | None) -> list[dict]:
    """The first ``n`` questions of each kind, in file order (all of them for None)."""
    if n is None:
        return questions
    seen: Counter = Counter()
    out = []
    for q in questions:
        seen[q["kind"]] += 1
        if seen[q["kind"]] <= n:
            out.append(q)
    return out


def normalize(text: str) -> str:
    """Lower case, NFKC (H₂O -> h2o), punctuation dropped, a leading article dropped, spaces collapsed."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s]", "", t)
    t = re.sub(r"^(the|a|an)\s+", "", t.strip())
    return " ".join(t.split())


def grade(response: str, answers: list[str]) -> dict:
    """``exact``: the braced answer equals an accepted answer after normalising (format and content);
    ``correct``: the answer — the braced one, else the first line — holds an accepted answer as whole
    words ("The capital of France is Paris." is correct, not exact), so a model that ignores the braces
    is still judged on what it says."""
    from diffuse_lm.parsing import parse_answer

    braced = parse_answer(response)
    lines = [s for s in response.strip().splitlines() if s.strip()]
    given = normalize(braced if braced is not None else (lines[0] if lines else ""))
    accepted = [normalize(a) for a in answers]
    return {
        "exact": braced is not None and given in accepted,
        "correct": any(re.search(rf"(^|\s){re.escape(a)}($|\s)", given) for a in accepted),
    }


def _greedy(
    ctx: Context, model, tokenizer, texts: list[str], max_new_tokens: int, what: str, *, base: bool = False
) -> list[str]:
    """Greedy answers of ``model`` to ``texts`` (``what`` they are, for the progress bar; ``base``: the
    caller has turned the adapter off)."""
    from diffuse_lm.model_info import model_label
    from diffuse_lm.sampling import greedy_texts

    label = model_label(model, short=True, adapter=not base)
    convs = [[{"role": "user", "content": t}] for t in texts]
    return greedy_texts(
        model,
        tokenizer,
        convs,
        max_new_tokens=max_new_tokens,
        batch_size=ctx.scale.batch_size,
        progress=ctx.progress,
        desc=f"greedy {label}: utility {what}",
    )


def next_token_kl(ctx: Context, model, tokenizer, prompts: list[str]) -> NextTokenKL:
    """KL(base ‖ tuned) along the base model's greedy answers to ``prompts`` (``model`` has an adapter):
    mean and median per token, at the first token, and top-1 agreement, overall and per prompt."""
    from diffuse_lm.retention import encode_examples, kl_rows

    with model.disable_adapter():
        answers = _greedy(
            ctx, model, tokenizer, prompts, ctx.scale.utility_max_new_tokens, "general prompts", base=True
        )
    examples = encode_examples(tokenizer, prompts, answers)
    rows = []
    with torch.no_grad():
        for e in examples:
            kl, _, agree = kl_rows(model, [e])
            rows.append({"prompt": e.prompt, "base": e.response, "kl": kl[0], "agree": agree[0]})
    all_kl = torch.cat([r["kl"] for r in rows])
    return NextTokenKL(
        **{
            "mean_per_token": float(all_kl.mean()),
            "median_per_token": float(all_kl.median()),
            "first_token": float(np.mean([float(r["kl"][0]) for r in rows])),
            "top1_agreement": float(torch.cat([r["agree"] for r in rows]).float().mean()),
            "tokens": int(all_kl.numel()),
            "prompts": [
                {
                    "prompt": r["prompt"],
                    "kl": float(r["kl"].mean()),
                    "first_token_kl": float(r["kl"][0]),
                    "top1_agreement": float(r["agree"].float().mean()),
                    "base": r["base"],
                }
                for r in rows
            ],
        }
    )


def question_answers(ctx: Context, model, tokenizer) -> list[dict]:
    """Greedy answers of the base model and of ``model`` (with its adapter) to every question in both
    formats, graded."""
    instructions, questions = load_questions()
    questions = per_kind(questions, ctx.scale.utility_questions)
    items = []
    for fmt in FORMATS:
        texts = [f"{q['question']} {instructions[fmt]}" for q in questions]
        key = ("utility-base", fmt, tuple(texts))
        if key not in ctx.memo:  # the base model's answers do not depend on the adapter
            with model.disable_adapter():
                ctx.memo[key] = _greedy(
                    ctx, model, tokenizer, texts, QA_MAX_NEW_TOKENS, f"{fmt} questions", base=True
                )
        base = ctx.memo[key]
        tuned = _greedy(ctx, model, tokenizer, texts, QA_MAX_NEW_TOKENS, f"{fmt} questions")
        for q, b, t in zip(questions, base, tuned, strict=True):
            items.append(
                {
                    **q,
                    "format": fmt,
                    "base": b,
                    "tuned": t,
                    "base_grade": grade(b, q["answers"]),
                    "tuned_grade": grade(t, q["answers"]),
                }
            )
    return items


def evaluate(ctx: Context, adapter: str | Path) -> Utility:
    """The utility results of one tuned adapter: next-token KL on the general prompts and QA accuracy."""
    with using(ctx, adapter) as (model, tokenizer):
        kl = next_token_kl(ctx, model, tokenizer, load_prompts())
        items = question_answers(ctx, model, tokenizer)
    return Utility(kl=kl, qa=QA(accuracy={m: accuracy(items, m) for m in ("base", "tuned")}, items=items))


def run(ctx: Context) -> Utility:
    util = evaluate(ctx, six_task_adapter(ctx))
    return Utility(recipe=str(ctx.scale.six_recipe), kl=util.kl, qa=util.qa)


def accuracy(items: list[dict], model: str) -> dict[str, dict[str, Accuracy]]:
    """Accuracy of ``model``'s answers by format ("braced", "free") and kind of question (and "all"):
    ``correct`` with its 95% interval, and, braced, ``exact`` (right answer in the asked-for format)."""
    out: dict = {}
    for fmt in sorted({q.get("format", "braced") for q in items}):
        mine = [q for q in items if q.get("format", "braced") == fmt]
        out[fmt] = {}
        for kind in ["all", *sorted({q["kind"] for q in mine})]:
            sel = [q for q in mine if kind in ("all", q["kind"])]
            k = sum(q[f"{model}_grade"]["correct"] for q in sel)
            out[fmt][kind] = Accuracy(
                n=len(sel),
                correct=k / len(sel),
                ci95=wilson_interval(k, len(sel)),
                exact=float(np.mean([q[f"{model}_grade"]["exact"] for q in sel])),
            )
    return out


# --- report ----------------------------------------------------------------------------------------


def section(res: Utility, figures: Path) -> str:
    """Next-token KL in a sentence, the QA accuracy table and the questions whose correctness changed."""
    kl = res.kl
    md = (
        f"KL(base ‖ tuned) of next-token distributions along the base model's greedy answers to "
        f"{len(kl.prompts)} general prompts ({kl.tokens} tokens): mean {kl.mean_per_token:.4f} "
        f"nats/token (median {kl.median_per_token:.4f}), at the first token {kl.first_token:.4f}; "
        f"the two models' most probable next token agrees at {kl.top1_agreement:.1%} of positions.\n\n"
    )
    acc = res.qa.accuracy

    def pct(a: Accuracy) -> str:
        return f"{a.correct:.1%} [{a.ci95[0]:.0%}, {a.ci95[1]:.0%}]"

    rows = [
        [fmt, kind, a.n, pct(a), pct(acc["tuned"][fmt][kind])]
        + ([a.exact, acc["tuned"][fmt][kind].exact] if fmt == "braced" else [None, None])
        for fmt in acc["base"]
        for kind, a in acc["base"][fmt].items()
    ]
    md += (
        f"Greedy answers to {rows[0][2]} questions, asked once for the answer in braces (the training tasks' "
        "format) and once free-form. *Correct*: the answer (braced, else the first line) contains an "
        "accepted one, with its 95% Wilson interval; *exact*: the braced answer is an accepted one.\n\n"
        + table(
            ["format", "questions", "n", "base correct", "tuned correct", "base exact", "tuned exact"], rows
        )
    )
    changed = [q for q in res.qa.items if q["base_grade"]["correct"] != q["tuned_grade"]["correct"]]
    if changed:
        md += f"\nQuestions whose correctness changed ({len(changed)}; the first 30):\n\n" + table(
            ["format", "question", "base", "tuned"],
            [
                [
                    q.get("format"),
                    q["question"],
                    q["base"].replace("\n", " ")[:60],
                    q["tuned"].replace("\n", " ")[:60],
                ]
                for q in changed[:30]
            ],
        )
    return md


EXPERIMENT = Experiment(
    name="utility",
    run=run,
    result=Utility,
    section=section,
    claim=CLAIM,
    uses=(
        "six_recipe",
        *SIX_TASK_USES,
        "utility_questions",
        "utility_max_new_tokens",
        "batch_size",
    ),
    adapters=six_task_adapter,
)
