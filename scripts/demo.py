"""`make demo`: tune the embedded SmolLM2-135M-Instruct on the paper's RNG 1-10 prompt and show its
distribution over the ten answers before and after (table, results/demo/summary.json, a PNG)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from diffuse_lm.cli import main

CONFIG = "configs/smollm2-135m/rng-1-10.yaml"
OUT = Path("results/demo")
TARGETS = {"mass": 0.9, "normalized_entropy": 0.98}  # after tuning, on a 2-core CPU in under 5 minutes


def demo() -> int:
    reused = (OUT / "summary.json").exists()
    t0 = time.time()
    code = main(["train", CONFIG, f"output_dir={OUT}"])
    if code:
        return code
    summary = json.loads((OUT / "summary.json").read_text())
    before, after = summary["before"]["tasks"][0], summary["after"]["tasks"][0]
    for key, want in TARGETS.items():
        print(f"{key}: {before[key]:.4f} -> {after[key]:.4f} (target >= {want})")
    where = " (a finished run was there already: delete results/demo to train again)" if reused else ""
    print(f"demo: {time.time() - t0:.0f} s; results in {OUT}/summary.json and {OUT}/before_after.png{where}")
    return 0 if all(after[k] >= v for k, v in TARGETS.items()) else 1


if __name__ == "__main__":
    sys.exit(demo())
