"""What tuning costs in general ability. The paper checks with MT-Bench (Appendix C.4), which needs a
GPT-4 judge; offline we measure KL(base ‖ tuned) of the next-token distributions along the base model's
greedy answers to 20 general prompts, and exact-match accuracy of greedy answers to 40 factual and
arithmetic questions (shipped in ``data/utility``), for the model tuned on the six tasks of Section 5."""

from __future__ import annotations

import re
import unicodedata
from importlib import resources

import numpy as np
import torch
import yaml

from diffuse_lm.experiments import common
from diffuse_lm.experiments.common import Context, using
from diffuse_lm.experiments.leave_one_out import six_task_adapter

USES = ("passes.six", "six_phrasings", "six_max_targets", "utility_max_new_tokens")
QA_MAX_NEW_TOKENS = 24


def _data(name: str):
    return yaml.safe_load((resources.files("diffuse_lm") / "data" / "utility" / name).read_text())


def load_prompts() -> list[str]:
    return list(_data("prompts.yaml"))


def load_questions() -> tuple[str, list[dict]]:
    """The instruction appended to every question, and the questions with their accepted answers."""
    qa = _data("qa.yaml")
    return qa["instruction"], qa["questions"]


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


def greedy(model, tokenizer, text: str, max_new_tokens: int) -> str:
    return common.sample_texts(
        model,
        tokenizer,
        [{"role": "user", "content": text}],
        1,
        temperature=0.0,
        max_new_tokens=max_new_tokens,
    )[0]


@torch.no_grad()
def next_token_logprobs(model, tokenizer, prompt: str, response: str) -> torch.Tensor:
    """Log-softmax of the next-token distributions at the positions that predict ``response``'s tokens
    after the templated ``prompt``: (len(response tokens), V)."""
    from diffuse_lm.sampling import prompt_ids

    start = prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
    ids = start + tokenizer(response, add_special_tokens=False)["input_ids"]
    device = next(model.parameters()).device
    logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, len(start) - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1)


def kl_rows(base_lp: torch.Tensor, tuned_lp: torch.Tensor) -> torch.Tensor:
    """KL(base ‖ tuned) at each position: Σ_v p_base(v) (log p_base(v) − log p_tuned(v))."""
    return (base_lp.exp() * (base_lp - tuned_lp)).sum(-1)


def run(ctx: Context) -> dict:
    tuned_path = six_task_adapter(ctx)
    k = ctx.scale.utility_max_new_tokens
    instruction, questions = load_questions()
    prompts, kls = [], []
    qa = []
    with using(ctx, tuned_path) as (model, tokenizer):
        for text in load_prompts():
            with model.disable_adapter():
                base_answer = greedy(model, tokenizer, text, k)
                base_lp = next_token_logprobs(model, tokenizer, text, base_answer)
            tuned_lp = next_token_logprobs(model, tokenizer, text, base_answer)
            tuned_answer = greedy(model, tokenizer, text, k)
            kl = kl_rows(base_lp, tuned_lp)
            kls.append(kl)
            prompts.append(
                {
                    "prompt": text,
                    "kl": float(kl.mean()),
                    "first_token_kl": float(kl[0]),
                    "top1_agreement": float((base_lp.argmax(-1) == tuned_lp.argmax(-1)).float().mean()),
                    "base": base_answer,
                    "tuned": tuned_answer,
                }
            )
        for q in questions:
            text = f"{q['question']} {instruction}"
            with model.disable_adapter():
                base_answer = greedy(model, tokenizer, text, QA_MAX_NEW_TOKENS)
            tuned_answer = greedy(model, tokenizer, text, QA_MAX_NEW_TOKENS)
            qa.append(
                {
                    **q,
                    "base": base_answer,
                    "tuned": tuned_answer,
                    "base_grade": grade(base_answer, q["answers"]),
                    "tuned_grade": grade(tuned_answer, q["answers"]),
                }
            )
    all_kl = torch.cat(kls)
    return {
        "kl": {
            "mean_per_token": float(all_kl.mean()),
            "median_per_token": float(all_kl.median()),
            "first_token": float(np.mean([p["first_token_kl"] for p in prompts])),
            "top1_agreement": float(np.mean([p["top1_agreement"] for p in prompts])),
            "tokens": int(all_kl.numel()),
            "prompts": prompts,
        },
        "qa": {"accuracy": {m: accuracy(qa, m) for m in ("base", "tuned")}, "items": qa},
    }


def accuracy(items: list[dict], model: str) -> dict:
    """Exact-match and correct-answer accuracy of ``model``'s answers, overall and per kind of question."""
    kinds = sorted({q["kind"] for q in items})
    out = {}
    for kind in ["all", *kinds]:
        sel = [q for q in items if kind in ("all", q["kind"])]
        out[kind] = {m: float(np.mean([q[f"{model}_grade"][m] for q in sel])) for m in ("exact", "correct")}
    return out
