"""Answer parsing (the first ``{…}``) and the metrics of sampled answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffuse_lm.parsing import answer_of, parse_answer, parse_fields, sample_stats, task_answers
from diffuse_lm.tasks import task_from_dict


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("{7}", "7"),
        ("Sure! Here is one: { 12 } and {3}", "12"),
        ("{a{b}c} {d}", "a{b}c"),  # the first { and its own }
        ("} stray {5}", "5"),
        ("{7", None),
        ("no braces", None),
        ("{}", None),
        ("{   }", None),
        ("", None),
    ],
)
def test_parse_answer(text, answer):
    assert parse_answer(text) == answer


def test_parse_fields_keeps_every_top_level_field_in_order():
    text = "{Ada Lovelace}\n{Female}\n{December 10, 1815}\n{London, {UK}}\n{unclosed"
    assert parse_fields(text) == ["Ada Lovelace", "Female", "December 10, 1815", "London, {UK}"]
    assert parse_fields("nothing here") == []


def test_task_answers_with_and_without_braces():
    braced = task_from_dict({"request": "r", "targets": ["{1}", "{2}"]}, source="t")
    assert task_answers(braced) == (["1", "2"], True)
    bare = task_from_dict({"request": "r", "targets": ["apple", "pear"]}, source="t")
    assert task_answers(bare) == (["apple", "pear"], False)
    assert answer_of("  apple \n", braces=False) == "apple"
    assert answer_of("  ", braces=False) is None


def test_sample_stats_with_a_task():
    task = task_from_dict({"request": "r", "targets": ["{1}", "{2}", "{3}", "{4}"]}, source="t")
    texts = ["{1}", "I pick {1}", "{2}", "{2}", "{9}", "no answer"]
    records = [{"text": t, "stopped": i != 5} for i, t in enumerate(texts)]
    s = sample_stats(records, task, top=1)
    assert (s["n"], s["n_well_formed"], s["n_valid"], s["coverage"]) == (6, 5, 4, 2)
    assert s["valid_rate"] == pytest.approx(4 / 6)
    assert s["entropy"] == pytest.approx(math.log(2))  # two answers, twice each
    assert s["normalized_entropy"] == pytest.approx(math.log(2) / math.log(4))
    assert s["top"] == [["1", 2]] and s["counts"] == {"1": 2, "2": 2}
    assert s["truncated_rate"] == pytest.approx(1 / 6)
    words = "{1} I pick {1} {2} {2} {9} no answer".lower().split()
    assert s["unigram_diversity"] == pytest.approx(len(set(words)) / len(words))


def test_sample_stats_without_a_task_counts_well_formed_answers():
    s = sample_stats([{"text": "{x}"}, {"text": "{y}"}, {"text": "{x}"}, {"text": "??"}])
    assert (s["n_valid"], s["coverage"], s["top"][0]) == (3, 2, ["x", 2])
    assert "normalized_entropy" not in s and "truncated_rate" not in s
    empty = sample_stats([{"text": "no answer"}])
    assert empty["valid_rate"] == 0.0 and math.copysign(1, empty["entropy"]) == 1  # 0, not -0


def test_one_answer_summary_counts_distinct_valid_invented_and_both_entropies():
    from diffuse_lm.parsing import AnswerKey, summarize_answers

    task = task_from_dict({"request": "r", "targets": ["{1}", "{2}"], "valid": ["{3}"]}, source="t")
    texts = ["{1}", "{1}", "{3}", "{9}", "{9}", "{8}", "junk", "{2}"]
    s = summarize_answers(texts, task)
    assert (s.n, s.n_well_formed, s.n_valid, s.n_invented) == (8, 7, 4, 3)
    assert (s.distinct, s.distinct_valid) == (5, 3)  # {1} {3} {9} {8} {2}; {9} and {8} are invented
    assert s.valid_entropy == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    p = np.array([2, 1, 2, 1, 1]) / 7
    assert s.entropy == pytest.approx(-(p * np.log(p)).sum())
    assert s.invented_examples() == ["9", "8"] and s.share_in({"1", "2"}) == pytest.approx(3 / 8)
    assert s.valid_in_order() == ["1", "1", "3", "2"]
    # sample_stats reports the same summary: Coverage-N of valid answers and of every answer, both entropies
    st = sample_stats([{"text": t} for t in texts], task)
    assert (st["coverage"], st["distinct_answers"], st["n_invented"]) == (3, 5, 3)
    assert (st["entropy"], st["answers_entropy"]) == (s.valid_entropy, s.entropy)
    # another reader of answers (the open-ended experiment's), no task: every answer it reads is valid
    bare = summarize_answers(["A ", "a", "b"], key=AnswerKey(parse=lambda t: t.strip().lower() or None))
    assert (bare.distinct, bare.distinct_valid, bare.n_invented) == (2, 2, 0)
    assert summarize_answers([], task).rate(0) == 0.0


def test_api_sample_marks_a_broader_valid_answer_valid_as_stats_does(monkeypatch):
    import diffuse_lm.sampling
    from diffuse_lm import api

    task = task_from_dict({"request": "r", "targets": ["{1}", "{2}"], "valid": ["{3}"]}, source="t")
    monkeypatch.setattr(diffuse_lm.sampling, "generate", lambda *a, **k: ["{3}", "{9}", "{1}", "x"])
    recs = api.sample(None, None, task, 4)
    assert [r["valid"] for r in recs] == [True, False, True, False]
    assert sum(r["valid"] for r in recs) == sample_stats(recs, task)["n_valid"]
