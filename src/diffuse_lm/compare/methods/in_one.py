"""k answers in one response: the model is asked for k independent random answers at once, one a line, and
each answer is taken as a sample. The answers of one list are not independent (a model that lists 1, 2, 3, …
covers the range without being random), so the rows of ``q`` are lists, not answers: generation ``i``
contributes the share of its k slots that hold each valid answer, and the bootstrap resamples whole lists.

Recorded beside the distribution (``details``): the share of distinct answers within a list, and the total
variation between the first answers of the lists and all their answers (how much the position in the list
changes the distribution). Tokens are counted per answer asked for (a list's tokens ÷ k), so the cost per
valid answer compares with one-answer methods.
"""

from __future__ import annotations

import re

import numpy as np

from diffuse_lm.compare.method import Draws, Method, integer
from diffuse_lm.metrics import total_variation
from diffuse_lm.parsing import parse_fields, task_answers
from diffuse_lm.task_model import Task

INSTRUCTION = (
    "Do not give just one answer. Answer this request {k} times, independently, as if it had been asked {k} "
    "separate times: {k} answers, one per line, each written exactly in the format asked for above, and "
    "nothing else."
)
TOKENS_PER_LINE = 3  # generation budget per answer beyond its own tokens (newline, a list marker)
_MARKER = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)])\s+")  # "- ", "1. ", "(2) "


def messages(task: Task, k: int) -> list[dict[str, str]]:
    """The task's turns with the request for ``k`` answers in one response."""
    turns = task.messages()
    ask = INSTRUCTION.format(k=k)
    return [*turns[:-1], {"role": "user", "content": f"{turns[-1]['content']}\n\n{ask}"}]


def parse_answers(text: str, k: int, *, braces: bool) -> list[str]:
    """The first ``k`` answers of a response: its ``{…}`` fields, or (bare answers) its non-empty lines
    without list markers."""
    if braces:
        found = [f for f in parse_fields(text) if f]
    else:
        found = [_MARKER.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return found[:k]


def sample(model, tokenizer, task: Task, k: int, *, n: int, seed: int, batch_size: int = 16) -> Draws:
    """``n`` lists of ``k`` answers; row ``i`` of ``q`` is the share of list ``i``'s slots on each answer."""
    answers, braces = task_answers(task)
    index = {a: j for j, a in enumerate(answers)}
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in task.targets)
    max_new_tokens = k * (longest + TOKENS_PER_LINE)
    asked = messages(task, k)
    from diffuse_lm.sampling import generate_records  # torch: only when the method runs

    records = generate_records(
        model, tokenizer, asked, n, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size
    )
    q = np.zeros((n, len(answers)))
    first = np.zeros(len(answers))
    followed = np.zeros(n, dtype=bool)
    distinct, generations = [], []
    for i, rec in enumerate(records):
        found = parse_answers(rec["text"], k, braces=braces)
        followed[i] = len(found) == k
        for a in found:
            if a in index:
                q[i, index[a]] += 1 / k
        if found and found[0] in index:
            first[index[found[0]]] += 1
        if found:
            distinct.append(len(set(found)) / len(found))
        generations.append({"text": rec["text"], "answers": found, "stopped": rec["stopped"]})
    pooled = q.sum(0)
    position_tv = (
        total_variation(first / first.sum(), pooled / pooled.sum()) if first.sum() and pooled.sum() else None
    )
    tokens = np.array([r["n_tokens"] + r["stopped"] for r in records], dtype=np.float64)
    details = {
        "request": asked[-1]["content"],
        "k": k,
        "answers_per_generation": k,  # a row of q is k answers: the KS test counts them all
        "max_new_tokens": max_new_tokens,
        "tokens_per_list": float(tokens.mean()),
        "distinct_share": float(np.mean(distinct)) if distinct else None,
        "first_vs_all_tv": position_tv,
        "generations": generations,
    }
    return Draws(q=q, tokens=tokens / k, followed=followed, details=details)


METHOD = Method(
    name="in-one",
    usage="in-one:k",
    kind="sampled",
    about="k answers asked for in one response, each taken as a sample (2 <= k <= 100)",
    parse=integer("in-one", "k", lambda k: 2 <= k <= 100, "in [2, 100]"),
    sample=sample,
)
