"""Two real CPU processes (torchrun) share each prompt's targets and sum their gradients: the loss curve
and the adapter are the single-process ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training import save_tiny_model, tiny_config

from diffuse_lm import train
from diffuse_lm.config import config_from_dict


def _losses(out: Path) -> list[float]:
    entries = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    return [e["loss"] for e in entries if "loss" in e]


@pytest.mark.skipif(
    not shutil.which("torchrun", path=str(Path(sys.executable).parent)) and not shutil.which("torchrun"),
    reason="torchrun is not installed",
)
@pytest.mark.parametrize("mass_weight", [1.0, 0.3])
def test_two_processes_follow_the_single_process_loss_curve(tmp_path, mass_weight):
    """With a mass weight, the mass each micro-batch's gradient needs is summed over both processes' shares
    (rank 0's 3 digits take two micro-batches, rank 1's 2 one)."""
    model_dir = save_tiny_model(tmp_path / "model")
    # 5 and 3 targets: uneven shards, 2 micro-batches
    over = {"alg_config": {"n_iters": 3, "batch_size": 2, "mass_weight": mass_weight}}
    single = train(config_from_dict(tiny_config(tmp_path / "one", model_dir, **over)), progress=False).summary

    cfg = tiny_config(tmp_path / "two", model_dir, **over)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "diffuse_lm.cli",
        "train",
        str(path),
        "-q",
        "--no-plot",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    out = Path(cfg["output_dir"])
    two = json.loads((out / "summary.json").read_text())
    assert two["world_size"] == 2 and single["world_size"] == 1
    one_curve, two_curve = _losses(Path(single["output_dir"])), _losses(out)
    assert len(one_curve) == len(two_curve) == 6
    assert two_curve == pytest.approx(one_curve, rel=1e-5)
    assert one_curve[-1] != one_curve[0]  # the curve moves, so agreement means something
    want = load_file(Path(single["adapter_dir"]) / "adapter_model.safetensors")
    got = load_file(Path(two["adapter_dir"]) / "adapter_model.safetensors")
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-4, rtol=1e-3)  # Adam on float noise
    assert (out / "train_log.jsonl").read_text().count('"loss"') == 6  # one writer, not two


def _torchrun(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "diffuse_lm.cli", "train", str(path), "-q", "--no-plot"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _log(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.skipif(
    not shutil.which("torchrun", path=str(Path(sys.executable).parent)) and not shutil.which("torchrun"),
    reason="torchrun is not installed",
)
def test_fsdp_two_processes_match_one_and_resume(tmp_path):
    """FSDP2 (``fsdp: true``): two CPU processes shard the decoder layers, stop after a step budget, resume, and
    end with one process's losses, eval rows and adapter."""
    model_dir = save_tiny_model(tmp_path / "model")
    over = {"alg_config": {"n_iters": 3, "batch_size": 2}, "eval_every": 2, "checkpoint_every": 2}
    single = train(config_from_dict(tiny_config(tmp_path / "one", model_dir, **over)), progress=False).summary

    cfg = tiny_config(tmp_path / "two", model_dir, fsdp=True, **over)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump({**cfg, "alg_config": {**cfg["alg_config"], "max_steps": 3}}))
    proc = _torchrun(path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = Path(cfg["output_dir"])
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    path.write_text(yaml.safe_dump(cfg))  # the whole budget: resumes from the checkpoint of step 3
    proc = _torchrun(path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    two = json.loads((out / "summary.json").read_text())
    assert two["world_size"] == 2 and two["fsdp"] and not single["fsdp"]
    assert two["steps"] == single["steps"] == 6
    want, got = _log(Path(single["output_dir"])), _log(out)
    got = [e for e in got if (e["kind"], e["step"]) != ("eval", 3)]  # the 'after' row of the 3-step budget
    assert [(e["kind"], e["step"]) for e in got] == [(e["kind"], e["step"]) for e in want]
    assert [e["loss"] for e in got if e["kind"] == "train"] == pytest.approx(
        [e["loss"] for e in want if e["kind"] == "train"], rel=1e-5
    )
    kls = [
        [e["eval"][t]["kl"] for t in ("digits", "letters") for e in log if e["kind"] == "eval"]
        for log in (got, want)
    ]
    assert kls[0] == pytest.approx(kls[1], rel=1e-4)  # eval rows: every process measured, the main one logged
    assert two["after"]["tasks"][0]["kl"] == pytest.approx(single["after"]["tasks"][0]["kl"], rel=1e-4)
    a = load_file(Path(single["adapter_dir"]) / "adapter_model.safetensors")
    b = load_file(Path(two["adapter_dir"]) / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-4)
