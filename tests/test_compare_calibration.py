"""The calibration baselines of ``diffuse compare`` — String Seed of Thought (``ssot``) and k answers in one
response (``in-one:k``) — parse what they ask for, count their tokens, and give the ordered-support
distances with intervals; bad specs are one-line errors before the model loads."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import char_tokenizer, tiny_llama

from diffuse_lm import metrics
from diffuse_lm.cli import main
from diffuse_lm.compare import parse_methods
from diffuse_lm.compare.methods import in_one, ssot
from diffuse_lm.compare.run import sampled_row
from diffuse_lm.distributions import family_tasks

SPEC = {"family": "uniform", "support": [1, 4], "formats": ["braced"], "phrasings": [0]}


@pytest.fixture
def ordered():
    return family_tasks(SPEC, source="spec")[0]  # {1} .. {4}, values 1..4, uniform


def fake_generations(monkeypatch, module, texts: list[str], n_tokens: list[int]):
    def generate_records(model, tokenizer, messages, n, **kw):
        assert n == len(texts)
        fake_generations.asked = messages
        return [{"text": t, "n_tokens": k, "stopped": True} for t, k in zip(texts, n_tokens, strict=True)]

    import diffuse_lm.sampling

    monkeypatch.setattr(diffuse_lm.sampling, "generate_records", generate_records)  # imported when run


def test_ssot_takes_the_answer_after_the_string_and_counts_extra_tokens(monkeypatch, ordered):
    assert ssot.final_answer("<random_string>{4}x</random_string> sum 7 mod 4 = 3 -> {3}", braces=True) == "3"
    assert ssot.final_answer("no string, just {2}", braces=True) is None
    assert ssot.final_answer("<random_string>ab</random_string>\nAnswer: 42", braces=False) == "42"
    texts = [
        "<random_string>k3J9</random_string> 3 -> {2}",
        "<random_string>zz</random_string> so {4}",
        "{1}",  # no string: unusable
        "<random_string>q</random_string> {7}",  # in the format, not a valid answer
    ]
    fake_generations(monkeypatch, ssot, texts, [30, 20, 3, 10])
    draws = ssot.sample(None, char_tokenizer(), ordered, None, n=4, seed=0)
    assert draws.followed.tolist() == [True, True, False, True]
    assert draws.q.tolist() == [[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert draws.tokens.tolist() == [31, 21, 4, 11]  # the end-of-turn token counted
    assert draws.details["mean_extra_tokens"] == pytest.approx(67 / 4 - 4)  # "{k}" is 3 tokens, + end
    assert ssot.OPEN in fake_generations.asked[-1]["content"]
    row = sampled_row(ordered, draws, 100)
    assert row["tokens_per_valid"] == pytest.approx(67 / 2) and row["format_rate"] == 0.75
    assert row["mean"] == pytest.approx(3.0) and row["ks"] == pytest.approx(0.25)
    assert row["ks_pvalue"] == pytest.approx(metrics.kolmogorov_pvalue(0.25, 2))  # two valid answers
    assert {"tv", "ks", "w1", "mean", "sd", "ks_pass_100"} <= set(row["intervals"])


def test_in_one_takes_each_listed_answer_as_a_sample_and_resamples_lists(monkeypatch, ordered):
    assert in_one.parse_answers("1. 3\n2. 4\n- 4\n", 2, braces=False) == ["3", "4"]
    texts = ["{1}\n{2}\n{3}", "{1}\n{1}\n{9}", "{2}"]
    fake_generations(monkeypatch, in_one, texts, [9, 9, 3])
    draws = in_one.sample(None, char_tokenizer(), ordered, 3, n=3, seed=0)
    np.testing.assert_allclose(draws.q, [[1 / 3, 1 / 3, 1 / 3, 0], [2 / 3, 0, 0, 0], [0, 1 / 3, 0, 0]])
    assert draws.followed.tolist() == [True, True, False]
    np.testing.assert_allclose(draws.tokens, [10 / 3, 10 / 3, 4 / 3])  # a list's tokens / k
    assert draws.details["distinct_share"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    # first answers {1} {1} {2} -> (2/3, 1/3, 0, 0); all valid answers (3, 2, 1, 0) / 6
    assert draws.details["first_vs_all_tv"] == pytest.approx(0.5 * (1 / 6 + 0 + 1 / 6 + 0))
    assert "3 times" in fake_generations.asked[-1]["content"]
    row = sampled_row(ordered, draws, 100)
    assert row["tokens_per_valid"] == pytest.approx(8 / (6 / 3))  # 24 tokens for 6 valid answers
    assert row["n_samples"] == 3  # lists, resampled whole
    # (3, 2, 1, 0) / 6 against uniform: CDFs (.5, .83, 1, 1) and (.25, .5, .75, 1); six answers tested
    assert row["ks"] == pytest.approx(1 / 3) and row["ks_pvalue"] == pytest.approx(
        metrics.kolmogorov_pvalue(1 / 3, 6)
    )


@pytest.mark.parametrize(
    "methods,needle",
    [
        ("ssot:3", "ssot takes no parameter"),
        ("in-one", "needs a parameter (in-one:k"),
        ("in-one:1", "k must be a whole number in [2, 100]"),
        ("in-one:x", "k must be a whole number in [2, 100]"),
        ("in-one:nan", "k must be a whole number in [2, 100]"),
    ],
)
def test_bad_baseline_specs_are_one_line_errors(methods, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("diffuse_lm.commands.compare.load_from_args", lambda args: pytest.fail("loaded"))
    code = main(["compare", "rng/1-10", "--methods", methods, "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_compare_runs_both_baselines_with_costs_on_a_family_task(tmp_path, capsys):
    model_dir = tmp_path / "model"
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=1)
    model.config.max_position_embeddings = 2048  # ssot's prompt is ~620 characters: one token each
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    spec = tmp_path / "u.yaml"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "cmp"
    assert [s.label for s in parse_methods("base,ssot,in-one:3")] == ["base", "ssot", "in-one:3"]
    code = main(
        ["compare", str(spec), "--model", str(model_dir), "--methods", "base,ssot,in-one:3"]
        + ["--output", str(out), "--samples", "2", "--batch-size", "2"]
    )
    capsys.readouterr()
    assert code == 0
    rows = {r["method"]: r for r in json.loads((out / "compare.json").read_text())["rows"]}
    assert set(rows) == {"base", "ssot", "in-one:3"}
    assert rows["base"]["ks"] >= 0 and "ks_pass_100" in rows["base"]
    assert rows["ssot"]["tokens_generated"] > 0 and "mean_extra_tokens" in rows["ssot"]["details"]
    assert rows["in-one:3"]["details"]["k"] == 3
