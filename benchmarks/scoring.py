"""Benchmark: shared-prefix exact scoring (``score_task``) against plain per-sequence scoring
(``score_plain``) on the default model, RNG tasks with 10, 100 and 1000 targets (issue 2, §8).

    .venv/bin/python benchmarks/scoring.py [--threads 1] [--rounds 3] [--full-plain]

Both sides run in one process, alternated (the order flips every round), and medians are reported.
Memory is the process's resident set (RSS, from /proc/self/statm) sampled every millisecond by a thread
while a call runs; freed heap is handed back to the OS (``malloc_trim``) before each call, so "+MB" is what
the call itself added. Plain forward scoring holds one sequence at a time, so its memory does not depend on
how many targets it scores. Plain runs every target for 10 and 100 targets; for 1000 (many minutes) it
runs an evenly spaced sample of ``--plain-sample`` targets and its time is scaled to the whole set, an
estimate that the output labels (``--full-plain`` runs them all). The forward+backward (training) case
uses a LoRA adapter (r=4 on q, v); plain keeps every sequence's graph until the backward, so its memory
grows with the targets and only a few targets are run (their cost is extrapolated and labelled).
Then packed rows against one padded row per target (both sharing the prompt), forward, for the same tasks,
and a packed row as a prefix tree against each target packed whole, forward+backward, on three library tasks.
The last line is ``scoring: speedup_vs_plain=<x> peak_rss_mb=<y>`` for 100 targets, forward: x = plain time /
our time, y = the process's peak RSS (model included) while our scorer ran.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import threading
import time
import warnings
from dataclasses import replace

import torch

from diffuse_lm.encoding import EncodedTask, encode_task
from diffuse_lm.models import load_model, quiet_transformers
from diffuse_lm.scoring import score_plain, score_task
from diffuse_lm.tasks import task_from_dict

PAGE = os.sysconf("SC_PAGE_SIZE")
REQUEST = (
    "Generate a random number between 1 and {n}. Output only the number between two curly braces, "
    "like this: {{number}}. Don't output code."
)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def release_memory() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: increments may then be understated
        pass


def measure(fn) -> tuple[float, float, float]:
    """(seconds, peak RSS MB during the call, RSS MB before it)."""
    release_memory()
    base = rss_mb()
    peak, stop = [base], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return seconds, max(peak[0], rss_mb()), base


def rng_task(tokenizer, n: int) -> EncodedTask:
    task = task_from_dict(
        {"request": REQUEST.format(n=n), "targets": [f"{{{i}}}" for i in range(1, n + 1)]},
        source=f"rng-1-{n}",
    )
    return encode_task(tokenizer, task)


def sample(enc: EncodedTask, k: int) -> EncodedTask:
    """``k`` evenly spaced targets of ``enc`` (all of them if it has no more)."""
    if enc.n_targets <= k:
        return enc
    idx = [round(i * (enc.n_targets - 1) / (k - 1)) for i in range(k)]
    return replace(
        enc,
        target_ids=[enc.target_ids[i] for i in idx],
        starts=[enc.starts[i] for i in idx],
        weights=enc.weights[idx],
    )


def run_case(name: str, fast, plain, scale: float, rounds: int) -> dict:
    """Alternate ``fast`` and ``plain`` for ``rounds`` rounds; medians of time, max of peak RSS."""
    rows = {"fast": [], "plain": []}
    for r in range(rounds):
        order = [("fast", fast), ("plain", plain)] if r % 2 == 0 else [("plain", plain), ("fast", fast)]
        for side, fn in order:
            rows[side].append(measure(fn))
    out = {"name": name, "scale": scale, "rounds": rounds}
    for side, runs in rows.items():
        out[side] = {
            "s": statistics.median(s for s, _, _ in runs) * (scale if side == "plain" else 1.0),
            "peak": max(p for _, p, _ in runs),
            "added": max(p - b for _, p, b in runs),
        }
    out["speedup"] = out["plain"]["s"] / out["fast"]["s"]
    return out


def report(case: dict, note: str) -> None:
    f, p = case["fast"], case["plain"]
    print(
        f"{case['name']:<26} ours {f['s']:8.2f}s peak {f['peak']:7.0f} MB (+{f['added']:5.0f})   "
        f"plain {p['s']:8.2f}s peak {p['peak']:7.0f} MB (+{p['added']:5.0f})   "
        f"speedup {case['speedup']:5.1f}x   [{case['rounds']} round(s){note}]",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steady timings on a shared CPU)"
    )
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds for 10 and 100 targets")
    ap.add_argument(
        "--rounds-large", type=int, default=1, help="rounds for 1000 targets and forward+backward"
    )
    ap.add_argument("--plain-sample", type=int, default=20, help="targets plain scores of the 1000")
    ap.add_argument("--full-plain", action="store_true", help="time plain on every target (slow)")
    ap.add_argument("--backward-plain", type=int, default=4, help="targets in the plain forward+backward run")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notices from peft/transformers
    quiet_transformers()
    t0 = time.perf_counter()
    model, tokenizer = load_model()
    print(
        f"default model loaded in {time.perf_counter() - t0:.1f}s; torch threads {torch.get_num_threads()}; "
        f"RSS {rss_mb():.0f} MB",
        flush=True,
    )
    encs = {n: rng_task(tokenizer, n) for n in (10, 100, 1000)}
    with torch.no_grad():  # warm-up: first calls pay one-time kernel and allocator setup
        score_task(model, encs[10])
        score_plain(model, sample(encs[10], 2))

    results = {}
    for n in (10, 100, 1000):
        enc = encs[n]
        small = enc if args.full_plain or n <= 100 else sample(enc, args.plain_sample)
        scale = enc.n_targets / small.n_targets

        def fast(enc=enc):
            with torch.no_grad():
                score_task(model, enc)

        def plain(small=small):
            with torch.no_grad():
                score_plain(model, small)

        rounds = args.rounds if n <= 100 else args.rounds_large
        results[n] = run_case(f"forward, {n} targets", fast, plain, scale, rounds)
        note = f"; plain timed on {small.n_targets} of {n} targets, x{scale:g}" if scale != 1 else ""
        report(results[n], note)

    # Training shape: LoRA adapter, loss = -sum p* log p (Eq. 5), backward.
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    enc = encs[100]
    small = sample(enc, args.backward_plain)
    weights = torch.tensor(enc.weights, dtype=torch.float32)

    def fast_backward():
        lora.zero_grad()
        score_task(lora, enc, on_batch=lambda idx, logp: -(weights[idx] * logp).sum())

    def plain_backward():
        lora.zero_grad()
        (-(weights[: small.n_targets] * score_plain(lora, small)).sum()).backward()

    case = run_case(
        "forward+backward, 100",
        fast_backward,
        plain_backward,
        enc.n_targets / small.n_targets,
        args.rounds_large,
    )
    per_target = (case["plain"]["added"]) / small.n_targets
    report(case, f"; plain run on {small.n_targets} targets in one graph, time x{case['scale']:g}")
    print(
        f"{'':<26} plain forward+backward holds every sequence's graph: +{case['plain']['added']:.0f} MB for "
        f"{small.n_targets} targets, so about {per_target * enc.n_targets / 1024:.1f} GB for 100 "
        "(extrapolated, not run)",
        flush=True,
    )

    # Packing (one row per micro-batch, block-diagonal mask) against one padded row per target, both on
    # the shared prompt cache: what the packed path adds on top of sharing the prompt.
    for n in (10, 100, 1000):
        enc = encs[n]

        def packed(enc=enc):
            with torch.no_grad():
                score_task(model, enc, pack=True)

        def rows(enc=enc):
            with torch.no_grad():
                score_task(model, enc, pack=False)

        case = run_case(
            f"packed vs rows, {n}", packed, rows, 1.0, args.rounds if n <= 100 else args.rounds_large
        )
        print(
            f"{case['name']:<26} packed {case['fast']['s']:8.2f}s peak {case['fast']['peak']:7.0f} MB   "
            f"rows {case['plain']['s']:8.2f}s peak {case['plain']['peak']:7.0f} MB   "
            f"packing speedup {case['speedup']:5.2f}x   [{case['rounds']} round(s)]",
            flush=True,
        )

    # Prefix tree (a beginning shared by several targets computed once) against each target packed whole,
    # forward+backward through the LoRA adapter as a training step does, on tasks of the library.
    from diffuse_lm import load_tasks

    library = {t.name: t for t in load_tasks(["paper-six"])}
    for name in ("occupations/any/p0", "babynames/train/p0", "fruits/fruit/p0"):
        enc = encode_task(tokenizer, library[name])
        weights = torch.tensor(enc.weights, dtype=torch.float32)
        tree = len({tuple(t[:j]) for t in enc.target_ids for j in range(1, len(t))})
        whole = sum(len(t) - 1 for t in enc.target_ids)

        def step(share: bool, enc=enc, weights=weights):
            lora.zero_grad()
            score_task(
                lora,
                enc,
                max_batch_targets=256,
                on_batch=lambda idx, logp: -(weights[idx] * logp).sum(),
                share_prefixes=share,
            )

        case = run_case(
            f"tree vs whole, {name.split('/')[0]}",
            lambda step=step: step(True),
            lambda step=step: step(False),
            1.0,
            args.rounds_large,
        )
        print(
            f"{case['name']:<26} tree {case['fast']['s']:8.2f}s   whole {case['plain']['s']:8.2f}s   "
            f"prefix-tree speedup {case['speedup']:5.2f}x   [{enc.n_targets} targets, {tree} positions "
            f"against {whole}, forward+backward, {case['rounds']} round(s)]",
            flush=True,
        )

    head = results[100]
    print(f"scoring: speedup_vs_plain={head['speedup']:.1f} peak_rss_mb={head['fast']['peak']:.0f}")


if __name__ == "__main__":
    main()
