"""Distribution metrics as pure functions of arrays (exact, from log-probabilities) and of samples.

Natural logs throughout (nats), as in the paper.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable

import numpy as np


def _logsumexp(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + float(np.log(np.sum(np.exp(x - m)))) if np.isfinite(m) else m


def renormalize(logprobs: np.ndarray) -> np.ndarray:
    """The model's distribution restricted to the target set: p(y) / Σ p(y'); all zeros when every target
    has probability 0 (log-probability -inf, e.g. cut by min-p), so KL is infinite and entropy 0."""
    logprobs = np.asarray(logprobs, dtype=np.float64)
    total = _logsumexp(logprobs)
    return np.exp(logprobs - total) if np.isfinite(total) else np.zeros_like(logprobs)


def mass(logprobs: np.ndarray) -> float:
    """Probability the model puts on the valid set, Σ p(y) (not renormalised)."""
    return float(np.exp(_logsumexp(np.asarray(logprobs, dtype=np.float64))))


def entropy(p: np.ndarray) -> float:
    """Shannon entropy −Σ p log p (Eq. 3), with 0 log 0 = 0."""
    p = np.asarray(p, dtype=np.float64)
    nz = p[p > 0]
    return float(-np.sum(nz * np.log(nz))) + 0.0  # + 0.0: no -0.0 for an empty input


def normalized_entropy(p: np.ndarray) -> float:
    """Entropy ÷ log |T|: 1 for the uniform distribution over the target set (1 for a single target)."""
    n = len(p)
    return entropy(p) / float(np.log(n)) if n > 1 else 1.0


def kl_divergence(p_star: np.ndarray, p: np.ndarray) -> float:
    """KL(p* ‖ p) = Σ p* log(p*/p) (Eq. 2); infinite where p = 0 < p*."""
    p_star, p = np.asarray(p_star, dtype=np.float64), np.asarray(p, dtype=np.float64)
    nz = p_star > 0
    with np.errstate(divide="ignore"):
        return float(np.sum(p_star[nz] * (np.log(p_star[nz]) - np.log(p[nz]))))


def expected_coverage(p: np.ndarray, n: int) -> float:
    """Expected number of distinct targets in ``n`` independent samples: Σ_y 1 − (1 − p(y))^n.

    With raw (unrenormalised) probabilities this is the expected Coverage-N counted over valid answers.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):  # p = 1: log1p(-1) = -inf, and the term is exactly 1
        return float(np.sum(-np.expm1(n * np.log1p(-p))))


YIELD_N = (20, 100)  # the N of the yields every result reports


def expected_yield(logprobs: np.ndarray, n: int) -> float:
    """The yield: expected number of distinct valid answers in ``n`` samples at temperature 1, from the
    raw (not renormalised) log-probabilities of every valid answer. A model that spreads its mass over
    invented answers scores low here however high its renormalised entropy."""
    return expected_coverage(np.exp(np.asarray(logprobs, dtype=np.float64)), n)


def distribution_metrics(
    logprobs: np.ndarray,
    weights: np.ndarray,
    *,
    coverage_n: int = 1000,
    valid_logprobs: np.ndarray | None = None,
) -> dict:
    """All exact metrics of one task from its targets' log-probabilities and wanted weights p*.

    KL and entropy are over the targets, renormalised; ``valid_mass`` and the yields are over every valid
    answer: the targets and ``valid_logprobs`` (answers that are right but not wanted by p*), unrenormalised.
    """
    p = renormalize(logprobs)
    every = np.concatenate([logprobs, valid_logprobs]) if valid_logprobs is not None else logprobs
    return {
        "n_targets": len(p),
        "mass": mass(logprobs),
        "kl": kl_divergence(weights, p),
        "entropy": entropy(p),
        "normalized_entropy": normalized_entropy(p),
        "target_entropy": entropy(weights),
        f"expected_coverage_{coverage_n}": expected_coverage(np.exp(logprobs), coverage_n),
        "n_valid": len(every),
        "valid_mass": mass(every),
        **{f"yield_{n}": expected_yield(every, n) for n in YIELD_N},
    }


# --- metrics of samples (Section 2.2) -------------------------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for the default ``z``) of a proportion ``k / n``; (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def empirical_distribution(answers: Iterable[str]) -> dict[str, float]:
    """Answer -> share of the samples, most frequent first."""
    counts = Counter(answers)
    total = sum(counts.values())
    return {a: c / total for a, c in counts.most_common()} if total else {}


def coverage(answers: Iterable[str]) -> int:
    """Coverage-N as the paper defines it (Eq. 4): the number of distinct answers among the samples, valid
    or not (the experiments' ``coverage``)."""
    return len(set(answers))


def valid_coverage(answers: Iterable[str | None], valid: Collection[str] | None = None) -> int:
    """The number of distinct *valid* answers among the samples: those in ``valid``, or every well-formed
    (not ``None``) answer when no valid set is given (``diffuse stats``' Coverage-N, the experiments'
    ``valid_coverage``). Never above :func:`coverage`."""
    return len({a for a in answers if a is not None and (valid is None or a in valid)})


def empirical_entropy(answers: Iterable[str]) -> float:
    """Entropy of the empirical distribution of the samples (Eq. 3 on p̃)."""
    return entropy(np.array(list(empirical_distribution(answers).values())))


def unigram_diversity(texts: Iterable[str]) -> float:
    """Normalised unigram diversity (the paper's Figure 4b): distinct unigrams / total unigrams."""
    words = [w for t in texts for w in t.lower().split()]
    return len(set(words)) / len(words) if words else 0.0
