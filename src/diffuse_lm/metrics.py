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


# --- distances on ordered supports (distribution families: tasks with ``values``) --------------------

KS_ALPHA = 0.05  # level of the KS test behind the pass share
KS_RUNS = 2000  # simulated runs behind an exact pass share


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total variation distance ½ Σ |p − q| of two distributions on the same support."""
    return 0.5 * float(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def _sorted(values: np.ndarray, *dists: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(np.asarray(values, np.float64), kind="stable")
    return (np.asarray(values, np.float64)[order], *(np.asarray(d, np.float64)[order] for d in dists))


def ks_distance(values: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance max_x |F_p(x) − F_q(x)| of two distributions on the numbers ``values``."""
    _, p, q = _sorted(values, p, q)
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def wasserstein1(values: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """Wasserstein-1 (earth mover's) distance Σ |F_p − F_q| · gap between neighbouring values, in the
    values' units."""
    x, p, q = _sorted(values, p, q)
    return float(np.sum(np.abs(np.cumsum(p) - np.cumsum(q))[:-1] * np.diff(x)))


def mean_sd(values: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of a distribution ``p`` on the numbers ``values`` (nan for p = 0)."""
    x, p = np.asarray(values, np.float64), np.asarray(p, np.float64)
    if p.sum() <= 0:
        return float("nan"), float("nan")
    p = p / p.sum()
    mean = float(p @ x)
    return mean, float(np.sqrt(max(0.0, p @ (x - mean) ** 2)))


def kolmogorov_pvalue(d: float, n: int, m: int | None = None) -> float:
    """Asymptotic p-value of a KS statistic ``d``: one sample of ``n`` against a known CDF (``m`` None), or
    two samples of ``n`` and ``m``; Stephens' correction, Kolmogorov's series. On a discrete support the test
    is conservative (it rejects less often than its level), as every KS test of discrete data."""
    ne = n if m is None else n * m / (n + m)
    lam = (np.sqrt(ne) + 0.12 + 0.11 / np.sqrt(ne)) * d
    if lam < 0.2:
        return 1.0
    k = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k**2 * lam**2)), 0.0, 1.0))


def ks_critical(n: int, m: int | None = None, alpha: float = KS_ALPHA) -> float:
    """The KS statistic above which :func:`kolmogorov_pvalue` falls below ``alpha`` (bisection: the p-value
    falls as the statistic grows)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if kolmogorov_pvalue(mid, n, m) > alpha else (lo, mid)
    return hi


def ks_two_sample(values: np.ndarray, counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and p-value of two samples given as counts on the numbers ``values``."""
    a, b = np.asarray(counts_a, np.float64), np.asarray(counts_b, np.float64)
    n, m = int(a.sum()), int(b.sum())
    d = ks_distance(values, a / n, b / m)
    return d, kolmogorov_pvalue(d, n, m)


def ks_pass_share(
    values: np.ndarray,
    p: np.ndarray,
    p_star: np.ndarray,
    *,
    n: int = 100,
    runs: int = KS_RUNS,
    alpha: float = KS_ALPHA,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """Share of runs in which a two-sample KS test at level ``alpha`` does not reject ``n`` samples from ``p``
    against ``n`` from ``p*`` (what sampled benchmarks report), computed by simulating ``runs`` runs from the
    exact distributions; with its Wilson 95% interval (simulation noise only)."""
    p = np.asarray(p, np.float64)
    if p.sum() <= 0:  # no valid answer to test
        return float("nan"), (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    _, p, p_star = _sorted(values, p / p.sum(), np.asarray(p_star, np.float64))
    a = np.cumsum(rng.multinomial(n, p / p.sum(), size=runs), axis=1)
    b = np.cumsum(rng.multinomial(n, p_star / p_star.sum(), size=runs), axis=1)
    passed = int(np.sum(np.max(np.abs(a - b), axis=1) / n < ks_critical(n, n, alpha)))
    return passed / runs, wilson_interval(passed, runs)


def ordered_distances(values: np.ndarray, p: np.ndarray, p_star: np.ndarray) -> dict:
    """Exact distances between ``p`` (renormalised over the support) and ``p*`` on the numbers ``values``:
    TV, KS, Wasserstein-1, and both means and sds; nan where ``p`` has no mass (no valid answer sampled)."""
    mean, sd = mean_sd(values, p)
    target_mean, target_sd = mean_sd(values, p_star)
    valid = float(np.sum(p)) > 0
    nan = float("nan")
    return {
        "tv": total_variation(p, p_star) if valid else nan,
        "ks": ks_distance(values, p, p_star) if valid else nan,
        "w1": wasserstein1(values, p, p_star) if valid else nan,
        "mean": mean,
        "sd": sd,
        "target_mean": target_mean,
        "target_sd": target_sd,
    }


def ordered_metrics(values: np.ndarray, p: np.ndarray, p_star: np.ndarray) -> dict:
    """:func:`ordered_distances` and the KS pass share at N = 100 with its interval (``measure``'s)."""
    share, interval = ks_pass_share(values, p, p_star)
    return {
        **ordered_distances(values, p, p_star),
        "ks_pass_100": share,
        "ks_pass_100_interval": list(interval),
    }


def sampled_ordered_metrics(
    values: np.ndarray, answers: list[int], p_star: np.ndarray, *, n: int = 100, seed: int = 0
) -> dict:
    """The distances of ordered supports from sampled answers (indices into ``values``, in sample order):
    those of their empirical distribution, the one-sample KS p-value against p* (known exactly), and the
    share of disjoint runs of ``n`` answers that a two-sample KS test at 5% does not reject against ``n``
    draws from p* (what sampled benchmarks report), with its Wilson interval."""
    k = len(values)
    counts = np.bincount(np.asarray(answers, dtype=np.int64), minlength=k).astype(np.float64)
    p = counts / counts.sum() if counts.sum() else counts
    out = ordered_distances(values, p, p_star)
    out["ks_pvalue"] = kolmogorov_pvalue(out["ks"], len(answers)) if answers else float("nan")
    rng = np.random.default_rng(seed)
    crit, runs, passed = ks_critical(n, n), len(answers) // n, 0
    for r in range(runs):
        run = np.bincount(np.asarray(answers[r * n : (r + 1) * n], dtype=np.int64), minlength=k) / n
        passed += ks_distance(values, run, rng.multinomial(n, p_star / np.sum(p_star)) / n) < crit
    out["ks_runs_100"] = runs
    out["ks_pass_100"] = passed / runs if runs else float("nan")
    out["ks_pass_100_interval"] = list(wilson_interval(passed, runs)) if runs else [float("nan")] * 2
    return out
