"""Seconds per optimizer step and peak memory of our training loop (shared prompt, logits only where
targets are) against the original study's plain loop (every target fed with the full prompt, full-vocabulary
logits at every position), on the default model, LoRA as in the paper, one process, runs alternated.

Also: the same loop with packing off (padded rows on the shared prompt cache), with the retention term on
(2 general prompts a step, the base model's 48-token answers; its base side from the decoder states the
greedy answers kept, as training does, and recomputed by a pass of the decoder, as it was before), with Eq. 5's mass part weighed 0.1 (the task in
one micro-batch, and in micro-batches of 4 targets, which scores it once more for the mass), and what bf16
autocast does to the loss and to the step time. The last line is ``training: speedup_vs_plain=<x> peak_rss_mb=<y>``
for RNG 1-10 (y: peak RSS of a process while it runs our loop, model included, its loading not counted).
Run: python benchmarks/training.py [--rounds N] [--tasks rng-1-10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RNG10 = json.loads((ROOT / "examples/tasks/rng-1-10.json").read_text())
RNG100 = {
    **RNG10,
    "request": RNG10["request"].replace("10", "100"),
    "targets": [f"{{{i}}}" for i in range(1, 101)],
}
TASKS = {"rng-1-10": RNG10, "rng-1-100": RNG100}


def setup(task_name: str):
    """Default model + paper LoRA, its encoded task, an AdamW over the LoRA weights, a config, the tokenizer."""
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.config import PAPER_TARGET_MODULES, config_from_dict
    from diffuse_lm.encoding import encode_task
    from diffuse_lm.models import load_model, quiet_transformers
    from diffuse_lm.tasks import task_from_dict

    quiet_transformers()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.manual_seed(0)
    model, tokenizer = load_model(device="cpu")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=PAPER_TARGET_MODULES))
    model.train()
    enc = encode_task(tokenizer, task_from_dict(TASKS[task_name], source=task_name))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6, eps=1e-5)
    cfg = config_from_dict({"train_prompts": ["-"], "output_dir": "-", "alg_config": {"batch_size": 32}})
    return model, enc, params, opt, cfg, tokenizer


def plain_step(model, opt, params, enc, batch_size: int = 32) -> float:
    """The original algorithm: micro-batches of full prompt+target sequences through the whole model."""
    n, p = enc.n_targets, len(enc.prompt_ids)
    weights = torch.tensor(enc.weights, dtype=torch.float32)
    total = 0.0
    for off in range(0, n, batch_size):
        idx = list(range(off, min(off + batch_size, n)))
        longest = max(len(enc.target_ids[i]) for i in idx)
        ids = torch.zeros(len(idx), p + longest, dtype=torch.long)
        mask = torch.zeros(len(idx), longest)
        for b, i in enumerate(idx):
            t = enc.target_ids[i]
            ids[b, : p + len(t)] = torch.tensor(enc.prompt_ids + t)
            mask[b, enc.starts[i] : len(t)] = 1
        logits = model(input_ids=ids).logits  # (B, p + longest, V): every position, every token
        logp = F.log_softmax(logits[:, p - 1 : -1].float(), dim=-1).gather(2, ids[:, p:, None]).squeeze(2)
        loss = -(weights[idx] * (logp * mask).sum(1)).sum()
        loss.backward()
        total += loss.item()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total


def our_step(model, opt, params, enc, cfg, retain=()) -> float:
    from diffuse_lm.training import train_step

    return train_step(model, opt, params, [enc], cfg, retain=retain)[0]


def retain_batch(model, tokenizer, n: int = 2) -> list:
    """The retention examples of one step: ``n`` shipped general prompts and the base model's answers, with
    the decoder states that chose them (what training uses)."""
    from diffuse_lm.retention import base_answers_with_states, encode_examples, load_retain_prompts

    prompts = load_retain_prompts("general")[:n]
    answers = base_answers_with_states(model, tokenizer, prompts, 48, cache=None)
    examples = encode_examples(tokenizer, prompts, answers.texts, answers.states)
    assert all(e.base_states is not None for e in examples), (
        "the benchmark's answers should keep their states"
    )
    return examples


def unpacked(fn):
    """``fn`` with packing turned off: every micro-batch as padded rows on the prompt's shared cache."""
    from diffuse_lm import scoring

    def run():
        can_pack, scoring.can_pack = scoring.can_pack, lambda *args: False
        try:
            return fn()
        finally:
            scoring.can_pack = can_pack

    return run


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_task(task_name: str, rounds: int) -> dict:
    """Median seconds per step of each loop (and of ours under bf16 autocast, and with the retention term),
    alternated round by round."""
    from diffuse_lm.config import RetainSettings

    model, enc, params, opt, cfg, tokenizer = setup(task_name)
    bf16 = cfg.model_copy(update={"mixed_precision": "bf16"})
    retain_cfg = cfg.model_copy(update={"retain": RetainSettings(weight=1.0)})
    retain = retain_batch(model, tokenizer)
    recomputed = [dataclasses.replace(e, base_states=None) for e in retain]
    mass = cfg.model_copy(update={"alg_config": cfg.alg_config.model_copy(update={"mass_weight": 0.1})})
    mass4 = mass.model_copy(update={"alg_config": mass.alg_config.model_copy(update={"batch_size": 4})})
    loops = {
        "ours": lambda: our_step(model, opt, params, enc, cfg),
        "ours_mass": lambda: our_step(model, opt, params, enc, mass),
        "ours_mass_batched": lambda: our_step(model, opt, params, enc, mass4),
        "ours_retain": lambda: our_step(model, opt, params, enc, retain_cfg, retain),
        "ours_retain_recomputed": lambda: our_step(model, opt, params, enc, retain_cfg, recomputed),
        "ours_bf16": lambda: our_step(model, opt, params, enc, bf16),
        "ours_unpacked": unpacked(lambda: our_step(model, opt, params, enc, cfg)),
        "plain": lambda: plain_step(model, opt, params, enc),
    }
    for fn in loops.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(rounds):
        for name, fn in loops.items():
            times[name].append(timed(fn))
    return {k: statistics.median(v) for k, v in times.items()} | {"targets": enc.n_targets}


def bf16_loss_error(task_name: str) -> dict:
    """Loss and per-target log-probabilities at the same weights in float32 and under bf16 autocast."""
    from diffuse_lm.scoring import score_task
    from diffuse_lm.training import distribution_matching_loss

    model, enc, *_ = setup(task_name)
    w = torch.tensor(enc.weights, dtype=torch.float32)
    with torch.no_grad():
        lp32 = score_task(model, enc)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp16 = score_task(model, enc)
    fp32 = float(distribution_matching_loss(lp32, w))
    bf16 = float(distribution_matching_loss(lp16, w))
    # Per-target errors can cancel in the loss, so the largest one is reported too.
    worst = float((lp16 - lp32).abs().max())
    return {"fp32": fp32, "bf16": bf16, "rel_err": abs(bf16 - fp32) / abs(fp32), "max_logprob_err": worst}


def peak_rss_mb(loop: str, task_name: str, steps: int = 2) -> float:
    """Peak RSS while ``steps`` steps of one loop run, in a fresh process (model loading not counted)."""
    cmd = [sys.executable, __file__, "--memory", loop, task_name, str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def _memory_child(loop: str, task_name: str, steps: int) -> None:
    import psutil

    model, enc, params, opt, cfg, _ = setup(task_name)
    proc, peak, done = psutil.Process(), [0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    watcher = threading.Thread(target=poll)
    watcher.start()
    for _ in range(steps):
        our_step(model, opt, params, enc, cfg) if loop == "ours" else plain_step(model, opt, params, enc)
    done.set()
    watcher.join()
    print(peak[0] / 2**20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    ap.add_argument("--memory", nargs=3, metavar=("LOOP", "TASK", "STEPS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory:
        return _memory_child(args.memory[0], args.memory[1], int(args.memory[2]))
    load = os.getloadavg()[0]
    busy = f" (busy machine, load {load:.1f}: timings pessimistic)" if load > 1 else ""
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 weights, LoRA r=4 (paper){busy}"
    )
    results = {}
    for task_name in args.tasks:
        t = time_task(task_name, args.rounds)
        mem = {loop: peak_rss_mb(loop, task_name) for loop in ("ours", "plain")}
        err = bf16_loss_error(task_name)
        results[task_name] = {**t, "rss": mem, "bf16": err}
        print(
            f"{task_name} ({t['targets']} targets): s/step ours {t['ours']:.3f}, plain {t['plain']:.3f} "
            f"(x{t['plain'] / t['ours']:.1f}); ours unpacked {t['ours_unpacked']:.3f}; "
            f"ours + retention term {t['ours_retain']:.3f} (its base side recomputed: "
            f"{t['ours_retain_recomputed']:.3f}, x{t['ours_retain_recomputed'] / t['ours_retain']:.2f}); ours with mass weight 0.1 {t['ours_mass']:.3f} "
            f"(in micro-batches of 4: {t['ours_mass_batched']:.3f}); "
            f"ours+bf16 autocast {t['ours_bf16']:.3f}; peak RSS MB ours "
            f"{mem['ours']:.0f}, plain {mem['plain']:.0f}; loss fp32 {err['fp32']:.5f} bf16 {err['bf16']:.5f} "
            f"(rel. err {err['rel_err']:.1e}; largest log p error {err['max_logprob_err']:.3f})"
        )
    if "rng-1-10" not in results:
        return
    r = results["rng-1-10"]
    print(f"training: speedup_vs_plain={r['plain'] / r['ours']:.2f} peak_rss_mb={r['rss']['ours']:.0f}")


if __name__ == "__main__":
    main()
