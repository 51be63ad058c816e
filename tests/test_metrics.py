"""Metrics against closed forms (natural logs)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffuse_lm import metrics as M
from diffuse_lm.measuring import task_result, top_answers
from diffuse_lm.tasks import task_from_dict


@pytest.mark.parametrize("n", [1, 2, 10, 1000])
def test_uniform_entropy_is_log_n_normalized_one_kl_zero(n):
    p = np.full(n, 1.0 / n)
    assert M.entropy(p) == pytest.approx(math.log(n), abs=1e-12)
    assert M.normalized_entropy(p) == pytest.approx(1.0)
    assert M.kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)


def test_point_mass_has_zero_entropy():
    assert M.entropy(np.array([0.0, 1.0, 0.0])) == 0.0
    assert M.normalized_entropy(np.array([0.0, 1.0, 0.0])) == 0.0


def test_entropy_of_known_distribution():
    p = np.array([0.5, 0.25, 0.25])
    assert M.entropy(p) == pytest.approx(1.5 * math.log(2))
    assert M.normalized_entropy(p) == pytest.approx(1.5 * math.log(2) / math.log(3))


def test_kl_of_known_pairs():
    # Bernoulli: KL(q || r) = q log(q/r) + (1-q) log((1-q)/(1-r)).
    q, r = 0.3, 0.6
    expected = q * math.log(q / r) + (1 - q) * math.log((1 - q) / (1 - r))
    assert M.kl_divergence(np.array([q, 1 - q]), np.array([r, 1 - r])) == pytest.approx(expected)
    # Uniform wanted over 4, model puts everything on 2 of them: KL = inf (p = 0 < p*).
    assert M.kl_divergence(np.full(4, 0.25), np.array([0.5, 0.5, 0, 0])) == math.inf
    # Zero-weight targets contribute nothing: KL(point mass on y || p) = -log p(y).
    assert M.kl_divergence(np.array([0, 1.0, 0]), np.array([0.2, 0.5, 0.3])) == pytest.approx(-math.log(0.5))


def test_kl_is_not_symmetric():
    a, b = np.array([0.9, 0.1]), np.array([0.5, 0.5])
    assert M.kl_divergence(a, b) != pytest.approx(M.kl_divergence(b, a))


def test_renormalize_and_mass_from_logprobs():
    p = np.array([0.1, 0.2, 0.05])
    lp = np.log(p)
    np.testing.assert_allclose(M.renormalize(lp), p / p.sum())
    assert M.mass(lp) == pytest.approx(0.35)
    # Very negative log-probabilities (long targets) must not underflow to 0/0.
    np.testing.assert_allclose(M.renormalize(lp - 2000), p / p.sum())
    assert M.mass(lp - 2000) == 0.0


@pytest.mark.parametrize("n,draws", [(1, 5), (10, 1), (10, 20), (100, 1000)])
def test_expected_coverage_of_uniform(n, draws):
    expected = n * (1 - (1 - 1 / n) ** draws)
    assert M.expected_coverage(np.full(n, 1 / n), draws) == pytest.approx(expected, rel=1e-12)


def test_expected_coverage_counts_only_valid_mass():
    # Two valid answers of probability 0.01 each (the rest of the mass on invalid text).
    p = np.array([0.01, 0.01])
    assert M.expected_coverage(p, 100) == pytest.approx(2 * (1 - 0.99**100))
    assert M.expected_coverage(np.array([1.0, 0.0]), 1000) == pytest.approx(1.0)


def test_distribution_metrics_of_a_uniform_model():
    n = 8
    lp = np.full(n, math.log(0.5 / n))  # uniform over the targets, half the mass elsewhere
    m = M.distribution_metrics(lp, np.full(n, 1 / n), coverage_n=10)
    assert m["n_targets"] == n
    assert m["mass"] == pytest.approx(0.5)
    assert m["kl"] == pytest.approx(0.0, abs=1e-12)
    assert m["entropy"] == pytest.approx(math.log(n)) and m["target_entropy"] == pytest.approx(math.log(n))
    assert m["expected_coverage_10"] == pytest.approx(n * (1 - (1 - 0.5 / n) ** 10))


def test_samples_metrics():
    answers = ["a", "b", "a", "c", "a", "b"]
    assert M.empirical_distribution(answers) == {
        "a": 0.5,
        "b": pytest.approx(1 / 3),
        "c": pytest.approx(1 / 6),
    }
    assert list(M.empirical_distribution(answers)) == ["a", "b", "c"]  # most frequent first
    assert M.coverage(answers) == 3
    assert M.empirical_entropy(answers) == pytest.approx(M.entropy(np.array([1 / 2, 1 / 3, 1 / 6])))
    assert M.empirical_distribution([]) == {} and M.coverage([]) == 0


def test_coverage_of_outputs_and_of_valid_answers_are_two_counts():
    answers = ["1", "2", "2", "Zed", None, "7"]
    assert M.coverage([a for a in answers if a is not None]) == 4  # the paper's Eq. 4: any distinct output
    assert M.valid_coverage(answers, {"1", "2", "3"}) == 2  # only the task's answers count
    assert M.valid_coverage(answers) == 4  # no task: every well-formed answer is valid
    assert M.valid_coverage([None, None]) == 0 and M.valid_coverage([], {"1"}) == 0


def test_unigram_diversity():
    assert M.unigram_diversity(["The cat", "the dog"]) == pytest.approx(3 / 4)  # case-folded
    assert M.unigram_diversity(["a b c d"]) == 1.0
    assert M.unigram_diversity(["x x x x"]) == 0.25
    assert M.unigram_diversity([]) == 0.0


def test_task_result_rows():
    task = task_from_dict({"request": "r", "targets": ["a", "b", "c"], "weights": [1, 1, 2]}, source="t")
    lp = np.log(np.array([0.2, 0.1, 0.1]))
    row = task_result(task, lp)
    assert row["name"] == "t" and row["n_targets"] == 3
    probs = [t["prob"] for t in row["targets"]]
    np.testing.assert_allclose(probs, [0.5, 0.25, 0.25])
    assert [t["logprob"] for t in row["targets"]] == pytest.approx(list(lp))
    assert [t["weight"] for t in row["targets"]] == pytest.approx([0.25, 0.25, 0.5])
    assert row["mass"] == pytest.approx(0.4)
    assert row["kl"] == pytest.approx(0.25 * math.log(0.5) + 0.25 * 0 + 0.5 * math.log(2))
    assert [t for t, _ in top_answers(row, k=2)] == ["a", "b"]
    assert [p for _, p in top_answers(row, k=2)] == pytest.approx([0.5, 0.25])
