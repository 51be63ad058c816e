"""Answers in generations — the text between the first ``{`` and its matching ``}`` (the paper's format) —
and the metrics of a set of sampled answers (Section 2.2).

A generation with no well-formed answer parses to ``None``; callers keep it and mark it invalid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from diffuse_lm.metrics import empirical_entropy, unigram_diversity, valid_coverage
from diffuse_lm.tasks import Task


def _fields(text: str, limit: int | None = None) -> list[str]:
    """Contents of the top-level ``{…}`` groups of ``text``, in order; nested braces stay inside a field."""
    out: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(text[start:i].strip())
                if limit is not None and len(out) >= limit:
                    break
    return out


def parse_answer(text: str) -> str | None:
    """The stripped text inside the first ``{`` and its ``}``; ``None`` when unclosed, absent or empty."""
    found = _fields(text, limit=1)
    return found[0] if found and found[0] else None


def parse_fields(text: str) -> list[str]:
    """Every top-level ``{…}`` field of a multi-field answer (e.g. a biography), stripped, in order."""
    return _fields(text)


def braced(targets: Iterable[str]) -> bool:
    """True when the targets are written in braces (``{7}``): answers are then parsed out of the text."""
    return all("{" in t and "}" in t for t in targets)


def answer_of(text: str, *, braces: bool = True) -> str | None:
    """The answer of one generation: the first ``{…}`` field, or the whole stripped text when ``braces``
    is off (tasks whose targets are bare strings)."""
    if braces:
        return parse_answer(text)
    return text.strip() or None


def task_answers(task: Task) -> tuple[list[str], bool]:
    """The answers a task accepts, in target order, and whether they are parsed out of braces."""
    braces = braced(task.targets)
    answers = [answer_of(t, braces=braces) or t for t in task.targets]
    return answers, braces


def valid_answers(task: Task) -> tuple[set[str], bool]:
    """Every answer ``task`` accepts — its targets' and its broader ``valid`` ones, parsed as the targets
    are — and whether they are parsed out of braces."""
    answers, braces = task_answers(task)
    return set(answers) | {answer_of(v, braces=braces) or v for v in task.valid}, braces


def sample_stats(records: Sequence[dict], task: Task | None = None, *, top: int = 10) -> dict:
    """Metrics of sampled generations (Section 2.2): valid rate, Coverage-N and entropy of the valid
    answers, the ``top`` answers with counts, and the unigram diversity of the texts (Figure 4b).

    With a task, an answer is valid when it is one of the task's targets or broader valid answers, and a
    well-formed answer in neither is *invented* (``invented_rate``, with the commonest as examples); without a
    task, an answer is valid when it is well formed. Answers are parsed again from each record's text, so any
    task can be applied to any file.
    """
    accepted, braces = valid_answers(task) if task is not None else (set(), True)
    parsed = [answer_of(r["text"], braces=braces) for r in records]
    good = [a for a in parsed if a is not None and (task is None or a in accepted)]
    invented = [a for a in parsed if a is not None and task is not None and a not in accepted]
    counts = Counter(good)
    n = len(records)
    stats = {
        "n": n,
        "n_well_formed": sum(a is not None for a in parsed),
        "n_valid": len(good),
        "valid_rate": len(good) / n if n else 0.0,
        "n_invented": len(invented),
        "invented_rate": len(invented) / n if n else 0.0,
        "invented_examples": [a for a, _ in Counter(invented).most_common(5)],
        "coverage": valid_coverage(good),
        "entropy": empirical_entropy(good) if good else 0.0,
        "top": [[a, c] for a, c in counts.most_common(top)],
        "counts": dict(counts.most_common()),
        "unigram_diversity": unigram_diversity(r["text"] for r in records),
    }
    if task is not None and len(task.targets) > 1:
        stats["normalized_entropy"] = stats["entropy"] / float(np.log(len(task.targets)))
    if task is not None and task.values is not None:  # an ordered support: KS, W1, mean, sd of the samples
        from diffuse_lm.metrics import sampled_ordered_metrics

        index = {a: j for j, a in enumerate(task_answers(task)[0])}  # the targets: each has a value
        stats["ordered"] = sampled_ordered_metrics(
            np.array(task.values), [index[a] for a in good if a in index], task.weights
        )
    if n and all("stopped" in r for r in records):
        stats["truncated_rate"] = sum(not r["stopped"] for r in records) / n
    return stats
