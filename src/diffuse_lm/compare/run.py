"""Run every method on every task: the distribution over the task's valid answers, its metrics (those of
``measure``), and what the method costs.

Exact methods are scored by teacher forcing. Sampled methods give, per generation, the probability of each
valid answer (:class:`~diffuse_lm.compare.method.Draws`); their distribution is the mean over generations,
with 95% intervals from a bootstrap over generations (the format rate's is Wilson's).

Cost: ``tokens_per_valid`` is the number of tokens a user would generate per valid answer. Sampled
methods: tokens generated ÷ expected valid answers, as measured. Exact methods generate nothing to be
measured; for them it is estimated as E[target tokens | valid] ÷ mass, i.e. assuming invalid samples are as
long as valid ones on average (they may be longer: up to the sampler's token limit). ``wall_s`` is the time
taken to compute the row (scoring, or generating and parsing).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch

from diffuse_lm.compare.method import Draws, Spec
from diffuse_lm.encoding import encode_task
from diffuse_lm.metrics import (
    distribution_metrics,
    kolmogorov_pvalue,
    ks_pass_share,
    ordered_distances,
    ordered_metrics,
    renormalize,
    wilson_interval,
)
from diffuse_lm.model_info import model_label
from diffuse_lm.scoring import check_fits, score_task
from diffuse_lm.task_model import Task

BOOTSTRAP = 1000  # resamples of the generations for a sampled method's intervals
INTERVAL_KEYS = ("mass", "kl", "entropy", "normalized_entropy")
ORDERED_KEYS = ("tv", "ks", "w1", "mean", "sd", "ks_pass_100")  # and these where the task has values
BOOTSTRAP_KS_RUNS = 200  # simulated KS runs per bootstrap resample (the point estimate's: KS_RUNS)


def compare_tasks(
    model,
    tokenizer,
    tasks: list[Task],
    specs: list[Spec],
    *,
    samples: int = 100,
    seed: int = 0,
    coverage_n: int = 1000,
    batch_size: int = 16,
    progress: bool = False,
) -> dict:
    """The ``diffuse compare`` result: settings, and one row per (method, task), methods in the given order."""
    from tqdm.auto import tqdm

    for (
        task
    ) in tasks:  # a task past the context is refused before any method runs (a method's prompt may add)
        check_fits(model, encode_task(tokenizer, task))
    rows = []
    label = model_label(model, short=True)
    bar = tqdm(total=len(specs) * len(tasks), desc=f"compare {label}", unit="row", disable=not progress)
    with bar:
        for spec in specs:
            start = time.perf_counter()
            with spec.method.attach(model, spec.value) as m:
                setup = time.perf_counter() - start
                for task in tasks:
                    bar.set_description(f"compare {label}: {task.name} ({spec.label})", refresh=False)
                    start = time.perf_counter()
                    if spec.method.kind == "exact":
                        row = exact_row(m, tokenizer, task, spec, coverage_n)
                    else:
                        draws = spec.method.sample(
                            m, tokenizer, task, spec.value, n=samples, seed=seed, batch_size=batch_size
                        )
                        row = sampled_row(task, draws, coverage_n, seed)
                    rows.append(
                        {
                            "task": task.name,
                            "method": spec.label,
                            "kind": spec.method.kind,
                            **row,
                            "wall_s": time.perf_counter() - start,
                            "setup_s": setup,  # once per method: attaching an adapter
                        }
                    )
                    bar.update(1)
    return {
        "model": model_label(model),
        "samples": samples,
        "seed": seed,
        "coverage_n": coverage_n,
        "methods": [
            {"method": s.label, "name": s.method.name, "kind": s.method.kind, "about": s.method.about}
            for s in specs
        ],
        "tasks": [{"name": t.name, "path": t.path, "n_targets": len(t.targets)} for t in tasks],
        "rows": rows,
    }


@torch.no_grad()
def exact_row(model, tokenizer, task: Task, spec: Spec, coverage_n: int) -> dict:
    """Metrics of one task under an exact method, and the per-target log-probabilities."""
    asked = spec.method.prompt(task, spec.value)
    enc = encode_task(tokenizer, asked)
    transform = spec.method.transform(spec.value)
    logprobs = score_task(model, enc, transform=transform).double().cpu().numpy()
    metrics = distribution_metrics(logprobs, task.weights, coverage_n=coverage_n)
    p = renormalize(logprobs)
    if task.values is not None:
        metrics.update(ordered_metrics(np.array(task.values), p, task.weights))
    lengths = np.array([len(t) - s for t, s in zip(enc.target_ids, enc.starts, strict=True)])
    mass = metrics["mass"]
    mean_length = float(p @ lengths) if mass > 0 else float("nan")  # E[target tokens | valid]
    return {
        **metrics,
        "mean_valid_tokens": mean_length,
        "tokens_per_valid": mean_length / mass if mass > 0 else float("inf"),
        "targets": _targets(task, np.exp(logprobs), p, logprobs),
    }


def sampled_row(task: Task, draws: Draws, coverage_n: int, seed: int = 0) -> dict:
    """Metrics of one task under a sampled method, each with a 95% bootstrap interval over generations."""
    n = len(draws.q)
    p = draws.q.mean(0)
    metrics = _metrics(p, task, coverage_n)
    rng = np.random.default_rng(seed)
    resampled = rng.multinomial(n, np.full(n, 1 / n), size=BOOTSTRAP) @ draws.q / n  # (B, n_targets)
    boot = [_metrics(b, task, coverage_n, BOOTSTRAP_KS_RUNS, k) for k, b in enumerate(resampled)]
    cov = f"expected_coverage_{coverage_n}"
    keys = (*INTERVAL_KEYS, cov, *(ORDERED_KEYS if task.values is not None else ()))
    with warnings.catch_warnings():  # mean and sd are nan in a resample with no valid answer (all: nan)
        warnings.simplefilter("ignore", RuntimeWarning)
        intervals = {
            key: [
                float(np.nanquantile([b[key] for b in boot], q, method="inverted_cdf"))
                for q in (0.025, 0.975)
            ]
            for key in keys
        }
    k = int(draws.followed.sum())
    valid = float(draws.q.sum())  # expected valid answers over the n generations
    if task.values is not None:  # the KS test of the valid answers against p*, known exactly: one-sample
        answers = round(valid * draws.details.get("answers_per_generation", 1))
        metrics["ks_pvalue"] = kolmogorov_pvalue(metrics["ks"], answers) if answers else float("nan")
    return {
        **metrics,
        "intervals": intervals,
        "n_samples": n,
        "format_rate": k / n,
        "format_interval": list(wilson_interval(k, n)),
        "tokens_generated": float(draws.tokens.sum()),
        "tokens_per_valid": float(draws.tokens.sum()) / valid if valid > 0 else float("inf"),
        "targets": _targets(task, p, p / p.sum() if p.sum() > 0 else p, None),
        "details": draws.details,
    }


def _metrics(p: np.ndarray, task: Task, coverage_n: int, ks_runs: int | None = None, seed: int = 0) -> dict:
    """The metrics of an estimated distribution; with the task's ``values``, the distances of ordered
    supports and the KS pass share (from ``ks_runs`` simulated runs)."""
    with np.errstate(divide="ignore"):
        out = distribution_metrics(np.log(p), task.weights, coverage_n=coverage_n)
    if task.values is not None:
        values = np.array(task.values)
        q = p / p.sum() if p.sum() > 0 else p
        out.update(ordered_distances(values, q, task.weights))
        share, interval = ks_pass_share(
            values, q, task.weights, **({"runs": ks_runs} if ks_runs else {}), seed=seed
        )
        out.update(ks_pass_100=share, ks_pass_100_interval=list(interval))
    return out


def _targets(
    task: Task, raw: np.ndarray, renormalised: np.ndarray, logprobs: np.ndarray | None
) -> list[dict]:
    """Per target: the wanted weight, the probability (raw and renormalised over the valid set), log p (exact)."""
    out = []
    for i, t in enumerate(task.targets):
        row = {
            "target": t,
            "weight": float(task.weights[i]),
            "raw_prob": float(raw[i]),
            "prob": float(renormalised[i]),
        }
        if logprobs is not None:
            row["logprob"] = float(logprobs[i])
        out.append(row)
    return out
