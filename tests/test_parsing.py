"""Answer parsing (the first ``{…}``) and the metrics of sampled answers."""

from __future__ import annotations

import math

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
