"""Sampling throughput on the default model: the paper's RNG 1-10 prompt, pure sampling, at batch sizes 1, 16
and 64. Samples are the same at every batch size (each has its own seed), so each size does the same work.

    .venv/bin/python benchmarks/sampling.py [--n 1000] [--n-batch1 64] [--max-new-tokens 32]

Batch 1 times only the first ``--n-batch1`` samples (one at a time is slow on a CPU); rates are per sample.
Last line: ``sampling: samples_per_s=<x> at batch <b>`` (the best batch size).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from diffuse_lm.models import load_model
from diffuse_lm.paper_prompts import rng_task
from diffuse_lm.sampling import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="samples timed at batch 16 and 64")
    ap.add_argument("--n-batch1", type=int, default=64, help="samples timed at batch 1")
    ap.add_argument("--max-new-tokens", type=int, default=32, help="as `diffuse sample` uses for this task")
    ap.add_argument("--batch-sizes", default="1,16,64")
    args = ap.parse_args()

    model, tokenizer = load_model()
    messages = rng_task(1, 10).messages()  # the paper's RNG prompt (Section 4.1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"default model on {next(model.parameters()).device}, {torch.get_num_threads()} torch threads, "
        f"load average {load:.1f}; max_new_tokens {args.max_new_tokens}"
    )
    generate(model, tokenizer, messages, 2, max_new_tokens=4, batch_size=2)  # warm-up

    best = (0.0, 0)
    for b in (int(x) for x in args.batch_sizes.split(",")):
        n = args.n_batch1 if b == 1 else args.n
        t0 = time.perf_counter()
        texts = generate(model, tokenizer, messages, n, max_new_tokens=args.max_new_tokens, batch_size=b)
        secs = time.perf_counter() - t0
        rate = n / secs
        tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        print(
            f"batch {b:>3}: {n} samples in {secs:.1f}s = {rate:.2f} samples/s (~{tokens / secs:.0f} tokens/s)"
        )
        best = max(best, (rate, b))
    print(f"sampling: samples_per_s={best[0]:.2f} at batch {best[1]}")


if __name__ == "__main__":
    main()
