"""Verbalized sampling (Zhang et al., 2025, "Verbalized Sampling: How to Mitigate Mode Collapse and Unlock
LLM Diversity"): the model is asked to list k candidate answers with a probability each, and the client
draws one answer from the list.

Estimated from N sampled lists. The client's draw from a list is known exactly (its probabilities,
renormalised), so each generation contributes that distribution rather than one simulated draw: the same
expectation, less variance. A generation with no line in the format (an answer, then a probability) is an
unusable list: its answer is invalid, and the share of usable ones is the method's format rate.
"""

from __future__ import annotations

import re

import numpy as np

from diffuse_lm.compare.method import Draws, Method, integer
from diffuse_lm.parsing import task_answers
from diffuse_lm.task_model import Task

INSTRUCTION = (
    "Do not give just one answer. Instead, list {k} different possible answers and the probability of each "
    "(the probabilities add up to 1): one answer per line, each written exactly in the format asked for "
    "above and followed by its probability, like this:\n{example}"
)
TOKENS_PER_LINE = (
    8  # generation budget per listed answer beyond the answer's own tokens (space, number, newline)
)
EXTRA_TOKENS = 16  # and for the whole list (a lead-in sentence)

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_PROBABILITY = re.compile(rf"(?<![\w.]){_NUMBER}\s*(?:(%)|/\s*{_NUMBER})?")
_MARKER = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)])\s+")  # a list marker: "- ", "1. ", "(2) "
_BARE_LINE = re.compile(
    rf"^(.*?)[\s:=|,(–-]+(?:probability|prob|p)?\s*[:=]?\s*({_NUMBER}\s*(?:%|/\s*{_NUMBER})?)\)?\s*$"
)


def messages(task: Task, k: int) -> list[dict[str, str]]:
    """The task's turns with the request to list ``k`` answers and their probabilities."""
    braces = task_answers(task)[1]
    example = (
        "{first answer} 0.4\n{second answer} 0.3\n…" if braces else "first answer: 0.4\nsecond answer: 0.3\n…"
    )
    turns = task.messages()
    ask = INSTRUCTION.format(k=k, example=example)
    return [*turns[:-1], {"role": "user", "content": f"{turns[-1]['content']}\n\n{ask}"}]


def _weight(text: str) -> float | None:
    """The first probability in ``text``: ``0.3``, ``30%`` or ``3/10``; None if there is none."""
    m = _PROBABILITY.search(text)
    if not m:
        return None
    value = float(m.group(1))
    if m.group(2):
        return value / 100
    if m.group(3):
        return value / float(m.group(3)) if float(m.group(3)) > 0 else None
    return value


def parse_list(text: str, *, braces: bool) -> list[tuple[str, float]]:
    """``(answer, weight)`` of every line of ``text`` in the format: an answer (braced when the task's are),
    then a probability. Weights are as written (the client renormalises them); lines without both, or with
    a weight of 0, are skipped."""
    entries = []
    for line in text.splitlines():
        if braces:
            m = re.search(r"\{([^{}]*)\}(.*)", line)
            answer, weight = (m.group(1).strip(), _weight(m.group(2))) if m else (None, None)
        else:
            m = _BARE_LINE.match(_MARKER.sub("", line))
            answer, weight = (m.group(1).strip(), _weight(m.group(2))) if m else (None, None)
        if answer and weight is not None and weight > 0:
            entries.append((answer, weight))
    return entries


def sample(model, tokenizer, task: Task, k: int, *, n: int, seed: int, batch_size: int = 16) -> Draws:
    """``n`` lists of ``k`` answers; generation ``i``'s row of ``q`` is the client's draw from its list."""
    answers, braces = task_answers(task)
    index = {a: j for j, a in enumerate(answers)}
    longest = max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in task.targets)
    max_new_tokens = k * (longest + TOKENS_PER_LINE) + EXTRA_TOKENS
    asked = messages(task, k)
    from diffuse_lm.sampling import generate_records  # torch: imported when the method runs

    records = generate_records(
        model, tokenizer, asked, n, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size
    )
    q = np.zeros((n, len(answers)))
    followed = np.zeros(n, dtype=bool)
    generations = []
    for i, rec in enumerate(records):
        entries = parse_list(rec["text"], braces=braces)[:k]  # the first k: what was asked for
        total = sum(w for _, w in entries)
        followed[i] = bool(entries)
        for answer, w in entries:
            if answer in index:
                q[i, index[answer]] += w / total
        generations.append({"text": rec["text"], "list": entries, "stopped": rec["stopped"]})
    tokens = np.array([r["n_tokens"] + r["stopped"] for r in records], dtype=np.float64)
    details = {"request": asked[-1]["content"], "max_new_tokens": max_new_tokens, "generations": generations}
    return Draws(q=q, tokens=tokens, followed=followed, details=details)


METHOD = Method(
    name="verbalized",
    usage="verbalized:k",
    kind="sampled",
    about="the model lists k answers with probabilities; the client draws one (1 <= k <= 100)",
    parse=integer("verbalized", "k", lambda k: 1 <= k <= 100, "in [1, 100]"),
    sample=sample,
)
