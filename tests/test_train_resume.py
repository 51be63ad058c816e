"""A real `diffuse train` process killed mid-run resumes from its last checkpoint and ends exactly where an
uninterrupted run does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training import save_tiny_model, tiny_config

from diffuse_lm.config import config_from_dict
from diffuse_lm.training import train

KILL_AFTER = 13  # steps logged before the kill: past the checkpoints at 5 and 10, not on one


def _logged_steps(log: Path) -> int:
    try:
        return sum('"loss"' in line for line in log.read_text().splitlines())
    except FileNotFoundError:
        return 0


def _losses(out: Path) -> dict[int, float]:
    entries = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return {e["step"]: e["loss"] for e in entries if "loss" in e}


def test_killed_run_resumes_and_ends_where_an_uninterrupted_run_does(tmp_path):
    model_dir = save_tiny_model(tmp_path / "model")
    over = {"alg_config": {"n_iters": 20, "batch_size": 2}, "checkpoint_every": 5}
    reference = train(config_from_dict(tiny_config(tmp_path / "ref", model_dir, **over)), progress=False)

    cfg = tiny_config(tmp_path / "killed", model_dir, **over)
    out = Path(cfg["output_dir"])
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffuse_lm.cli", "train", str(path), "-q", "--no-plot"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while (
        _logged_steps(out / "train_log.jsonl") < KILL_AFTER and proc.poll() is None and time.time() < deadline
    ):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read().decode()
    assert proc.returncode == -signal.SIGKILL, stderr  # killed, not finished
    assert not (out / "summary.json").exists()
    done = _logged_steps(out / "train_log.jsonl")
    print(f"killed after {done} logged steps")
    assert KILL_AFTER <= done < 40

    # What the kill left is consistent: the pointer names a complete checkpoint at most 5 steps back.
    pointer = json.loads((out / "checkpoint.json").read_text())
    assert done - 5 <= pointer["step"] <= done and pointer["step"] % 5 == 0
    assert load_file(out / pointer["dir"] / "optimizer.safetensors")
    assert json.loads((out / pointer["dir"] / "state.json").read_text())["step"] == pointer["step"]

    resumed = train(config_from_dict(cfg), progress=False)
    assert resumed["steps"] == reference["steps"] == 40
    assert resumed["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-6)
    ref_losses, got_losses = _losses(Path(reference["output_dir"])), _losses(out)
    assert sorted(got_losses) == list(range(1, 41))  # each step logged once, redone steps replaced
    for step, loss in ref_losses.items():
        assert got_losses[step] == pytest.approx(loss, rel=1e-6), step
    want = load_file(Path(reference["adapter_dir"]) / "adapter_model.safetensors")
    got = load_file(Path(resumed["adapter_dir"]) / "adapter_model.safetensors")
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=1e-5)
    assert resumed["before"] == json.loads((out / "before.json").read_text())
