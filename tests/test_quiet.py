"""Normal runs print no third-party warnings (issue 26): peft's FutureWarning on every adapter load is filtered
where diffuse calls peft, and ``diffuse train`` no longer hides FutureWarnings wholesale. Run as processes, so
that Python's own warning filters (once per location) are those a user gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from test_training import save_tiny_model


def test_train_and_measure_with_an_adapter_print_no_library_warnings(tmp_path):
    save_tiny_model(tmp_path / "tiny")
    cfg = {"model": "tiny", "train_prompts": ["rng/1-10"], "output_dir": "run", "device": "cpu", "lr": 0.02}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({**cfg, "alg_config": {"n_iters": 2}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": ""}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    for argv in (
        ["train", "cfg.yaml", "-q"],
        ["measure", "rng/1-10", "--model", "tiny", "--adapter", "run/adapter", "-o", "m.json"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "diffuse_lm.cli", *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Warning" not in done.stderr and "warn" not in done.stderr.lower(), done.stderr[-2000:]
