"""Answers in generations — the text between the first ``{`` and its matching ``}`` (the paper's format) —
and the metrics of a set of sampled answers (Section 2.2).

A generation with no well-formed answer parses to ``None``; callers keep it and mark it invalid.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from diffuse_lm.metrics import empirical_entropy, unigram_diversity
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


class AnswerKey:
    """How a task's answers are read out of generations and which of them are valid: the targets' and the
    broader ``valid`` answers, parsed as the targets are. Without a task every well-formed answer is valid.
    ``parse`` replaces the reading (e.g. the open-ended experiment's answer-like outputs)."""

    def __init__(self, task: Task | None = None, *, parse: Callable[[str], str | None] | None = None):
        self.accepted, self.braces = valid_answers(task) if task is not None else (None, True)
        self._parse = parse

    def answer(self, text: str) -> str | None:
        """The answer of one generation, ``None`` when it holds no well-formed one."""
        return self._parse(text) if self._parse is not None else answer_of(text, braces=self.braces)

    def is_valid(self, answer: str | None) -> bool:
        """Is ``answer`` well formed and, with a task, one the task accepts?"""
        return answer is not None and (self.accepted is None or answer in self.accepted)


@dataclass(frozen=True)
class AnswerSummary:
    """Sampled answers summarised (Section 2.2), the one place every command, the API and every experiment
    count them: ``answers`` counts every well-formed answer, ``valid`` those the task accepts (in first-seen
    order, so ties rank as they were sampled); an *invented* answer is well formed and not valid."""

    parsed: tuple[str | None, ...]  # the answer of each generation, in sample order (None: none)
    answers: Counter  # every well-formed answer -> count
    valid: Counter  # the valid ones -> count

    @property
    def n(self) -> int:
        """Generations, with or without an answer."""
        return len(self.parsed)

    def valid_in_order(self) -> list[str]:
        """The valid answers in sample order (for statistics over runs of samples)."""
        return [a for a in self.parsed if a is not None and a in self.valid]

    @property
    def n_well_formed(self) -> int:
        return sum(self.answers.values())

    @property
    def n_valid(self) -> int:
        return sum(self.valid.values())

    @property
    def n_invented(self) -> int:
        return self.n_well_formed - self.n_valid

    @property
    def distinct(self) -> int:
        """Coverage-N as Eq. 4 defines it: distinct answers, valid or not."""
        return len(self.answers)

    @property
    def distinct_valid(self) -> int:
        """Distinct valid answers (``diffuse stats``' Coverage-N)."""
        return len(self.valid)

    @property
    def entropy(self) -> float:
        """Entropy of the empirical distribution of every well-formed answer (nats)."""
        return empirical_entropy(self.answers.elements())

    @property
    def valid_entropy(self) -> float:
        """Entropy of the empirical distribution of the valid answers (nats)."""
        return empirical_entropy(self.valid.elements())

    def rate(self, count: int) -> float:
        """``count`` as a share of all ``n`` generations (0 for none)."""
        return count / self.n if self.n else 0.0

    def share_in(self, answers: Collection[str]) -> float:
        """Share of all ``n`` generations whose answer is in ``answers`` (e.g. a training task's)."""
        return self.rate(sum(c for a, c in self.answers.items() if a in answers))

    def invented_examples(self, k: int = 5) -> list[str]:
        """The ``k`` commonest invented answers."""
        invented = Counter(a for a in self.parsed if a is not None and a not in self.valid)
        return [a for a, _ in invented.most_common(k)]


def summarize_answers(
    texts: Iterable[str], task: Task | None = None, *, key: AnswerKey | None = None
) -> AnswerSummary:
    """The answers of ``texts`` (generations) counted against ``task`` (or an :class:`AnswerKey`)."""
    key = key or AnswerKey(task)
    parsed = tuple(key.answer(text) for text in texts)
    answers = Counter(a for a in parsed if a is not None)
    return AnswerSummary(parsed, answers, Counter(a for a in parsed if key.is_valid(a)))


def sample_stats(records: Sequence[dict], task: Task | None = None, *, top: int = 10) -> dict:
    """Metrics of sampled generations (Section 2.2): valid rate, Coverage-N and entropy of the valid
    answers (and of every answer), the ``top`` answers with counts, and the unigram diversity of the texts
    (Figure 4b).

    With a task, an answer is valid when it is one of the task's targets or broader valid answers, and a
    well-formed answer in neither is *invented* (``invented_rate``, with the commonest as examples); without a
    task, an answer is valid when it is well formed. Answers are parsed again from each record's text, so any
    task can be applied to any file. The counting is :func:`summarize_answers`'.
    """
    s = summarize_answers((r["text"] for r in records), task)
    n = s.n
    stats = {
        "n": n,
        "n_well_formed": s.n_well_formed,
        "n_valid": s.n_valid,
        "valid_rate": s.rate(s.n_valid),
        "n_invented": s.n_invented,
        "invented_rate": s.rate(s.n_invented),
        "invented_examples": s.invented_examples(5),
        "coverage": s.distinct_valid,
        "entropy": s.valid_entropy,
        "distinct_answers": s.distinct,  # valid or not (Eq. 4's Coverage-N, the experiments' coverage)
        "answers_entropy": s.entropy,
        "top": [[a, c] for a, c in s.valid.most_common(top)],
        "counts": dict(s.valid.most_common()),
        "unigram_diversity": unigram_diversity(r["text"] for r in records),
    }
    if task is not None and len(task.targets) > 1:
        stats["normalized_entropy"] = stats["entropy"] / float(np.log(len(task.targets)))
    if task is not None and task.values is not None:  # an ordered support: KS, W1, mean, sd of the samples
        from diffuse_lm.metrics import sampled_ordered_metrics

        index = {a: j for j, a in enumerate(task_answers(task)[0])}  # the targets: each has a value
        stats["ordered"] = sampled_ordered_metrics(
            np.array(task.values), [index[a] for a in s.valid_in_order() if a in index], task.weights
        )
    if n and all("stopped" in r for r in records):
        stats["truncated_rate"] = sum(not r["stopped"] for r in records) / n
    return stats
