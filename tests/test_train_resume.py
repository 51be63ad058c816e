"""A real `diffuse train` process killed mid-run resumes from its last checkpoint and ends exactly where an
uninterrupted run does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training import save_tiny_model, tiny_config

from diffuse_lm import train
from diffuse_lm.config import config_from_dict
from diffuse_lm.errors import DiffuseError

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
    reference = train(
        config_from_dict(tiny_config(tmp_path / "ref", model_dir, **over)), progress=False
    ).summary

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

    resumed = train(config_from_dict(cfg), progress=False).summary
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


# --- issue 12: a run's folder, its checkpoints and faults while it writes -------------------------------


def _run_cfg(tmp_path: Path, model_dir: Path, n_iters: int, **over) -> dict:
    """Two prompts a pass, checkpoints every 3 steps: n_iters=3 leaves checkpoints at steps 3 and 6."""
    return tiny_config(tmp_path, model_dir, alg_config={"n_iters": n_iters, "batch_size": 2}, **over)


def _adapter(summary: dict) -> dict[str, torch.Tensor]:
    return load_file(Path(summary["adapter_dir"]) / "adapter_model.safetensors")


def _assert_same_adapter(a: dict, b: dict) -> None:
    """The same adapter up to float rounding (the reference ran with the default torch threads, not one)."""
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def _kls(measured: dict) -> list[float]:
    return [t["kl"] for t in measured["tasks"]]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir) -> dict:
    """An uninterrupted run of 8 steps, the one every resumed run below must end as."""
    cfg = _run_cfg(tmp_path_factory.mktemp("reference"), tiny_model_dir, 4)
    return train(config_from_dict(cfg), progress=False).summary


def test_a_folder_holding_other_files_is_refused_and_overwrite_deletes_only_run_files(
    tmp_path, tiny_model_dir, reference, capsys
):
    cfg = _run_cfg(tmp_path, tiny_model_dir, 4)
    out = Path(cfg["output_dir"])
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "mine.bin").write_bytes(b"someone's adapter")
    (out / "checkpoint-mine").mkdir()
    (out / "checkpoint-mine" / "notes.txt").write_text("keep me")
    (out / ".work-tmp-1").mkdir()
    (out / "notes.txt").write_text("keep me too")
    stray = {"model": "another run", "tasks": []}
    (out / "before.json").write_text(json.dumps(stray))
    before = _snapshot(out)
    with pytest.raises(DiffuseError, match="holds files of no run of this config") as e:
        train(config_from_dict(cfg), progress=False)
    assert "--overwrite" in str(e.value) and "\n" not in str(e.value)
    assert _snapshot(out) == before  # nothing deleted, nothing written

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    from diffuse_lm.cli import main

    assert main(["train", str(path), "-q", "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files of no run" in err[0] and len(err[0]) < 300, err
    assert _snapshot(out) == before

    # no config.yaml: no run ever wrote there, so before.json and adapter/ are someone's own (issue 27)
    assert main(["train", str(path), "-q", "--no-plot", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "adapter but no config.yaml, so no run wrote it" in err[0], err
    assert _snapshot(out) == before

    shutil.rmtree(out / "adapter")
    (out / "before.json").unlink()
    assert main(["train", str(path), "-q", "--no-plot", "--overwrite"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert _kls(summary["before"]) == _kls(reference["before"])
    _assert_same_adapter(_adapter(summary), _adapter(reference))
    kept = {"checkpoint-mine/notes.txt", ".work-tmp-1", "notes.txt"}
    assert {k for k in kept if (out / k).exists()} == kept  # everything else is left as it was
    # the folder is this run's now: a rerun returns it, without --overwrite
    assert train(config_from_dict(cfg), progress=False).summary["steps"] == 8


def test_another_configs_run_is_replaced_only_with_overwrite(tmp_path, tiny_model_dir, reference):
    train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 1, lr=0.5)), progress=False)
    cfg = config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 4))
    with pytest.raises(DiffuseError, match="lr=0.5"):
        train(cfg, progress=False)
    summary = train(cfg, progress=False, overwrite=True).summary
    assert _kls(summary["before"]) == _kls(reference["before"]) and summary["steps"] == 8
    _assert_same_adapter(_adapter(summary), _adapter(reference))


def test_checkpoints_carry_checksums_and_a_corrupt_latest_falls_back_to_the_previous(
    tmp_path, tiny_model_dir, reference, capsys
):
    short = train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 3)), progress=False).summary
    out = Path(short["output_dir"])
    pointer = json.loads((out / "checkpoint.json").read_text())
    assert [c["dir"] for c in pointer["checkpoints"]] == ["checkpoint-000006", "checkpoint-000003"]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-000003", "checkpoint-000006"]
    assert set(pointer["checkpoints"][0]["sha256"]) >= {"adapter_model.safetensors", "optimizer.safetensors"}

    latest = out / "checkpoint-000006" / "adapter_model.safetensors"
    data = bytearray(latest.read_bytes())
    data[-64:] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()  # same size
    latest.write_bytes(bytes(data))
    capsys.readouterr()
    resumed = train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 4)), progress=False).summary
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, err
    assert "checkpoint-000006 is corrupt (adapter_model.safetensors" in warning[0]
    assert "resuming from checkpoint-000003" in warning[0]
    assert resumed["steps"] == 8
    _assert_same_adapter(_adapter(resumed), _adapter(reference))
    assert sorted(_losses(out)) == list(range(1, 9))
    for step, loss in _losses(Path(reference["output_dir"])).items():
        assert _losses(out)[step] == pytest.approx(loss, rel=1e-5), step


def test_no_intact_checkpoint_is_a_one_line_error(tmp_path, tiny_model_dir):
    train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 3)), progress=False)
    out = tmp_path / "run"
    for name in ("checkpoint-000003", "checkpoint-000006"):
        path = out / name / "optimizer.safetensors"
        path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(DiffuseError, match="no intact checkpoint") as e:
        train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 4)), progress=False)
    assert "checkpoint-000006 is corrupt" in str(e.value) and "\n" not in str(e.value)


def test_a_truncated_checkpoint_file_without_checksums_is_a_one_line_error(tmp_path, tiny_model_dir):
    """A pointer written before checksums existed: the SafetensorError is one line, not a traceback."""
    train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 3)), progress=False)
    out = tmp_path / "run"
    (out / "checkpoint.json").write_text(json.dumps({"step": 6, "dir": "checkpoint-000006"}))
    path = out / "checkpoint-000006" / "optimizer.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DiffuseError, match="checkpoint-000006 is unreadable"):
        train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 4)), progress=False)


def test_a_dangling_checkpoint_pointer_falls_back_or_says_it_starts_again(
    tmp_path, tiny_model_dir, reference, capsys
):
    import shutil

    train(config_from_dict(_run_cfg(tmp_path / "a", tiny_model_dir, 3)), progress=False)
    out = tmp_path / "a" / "run"
    shutil.rmtree(out / "checkpoint-000006")
    capsys.readouterr()
    resumed = train(config_from_dict(_run_cfg(tmp_path / "a", tiny_model_dir, 4)), progress=False).summary
    warning = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning:")]
    assert len(warning) == 1 and "checkpoint-000006 is missing" in warning[0], warning
    assert "resuming from checkpoint-000003" in warning[0]
    _assert_same_adapter(_adapter(resumed), _adapter(reference))

    train(config_from_dict(_run_cfg(tmp_path / "b", tiny_model_dir, 3)), progress=False)
    out = tmp_path / "b" / "run"
    for name in ("checkpoint-000003", "checkpoint-000006"):
        shutil.rmtree(out / name)
    capsys.readouterr()
    again = train(config_from_dict(_run_cfg(tmp_path / "b", tiny_model_dir, 4)), progress=False).summary
    warning = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning:")]
    assert len(warning) == 1 and "starts again from step 0" in warning[0], warning
    assert "steps 1-6" in warning[0]
    assert again["steps"] == 8 and sorted(_losses(out)) == list(range(1, 9))
    _assert_same_adapter(_adapter(again), _adapter(reference))


@pytest.mark.parametrize("fault", ["disk-full", "read-only"])
def test_a_write_failing_mid_run_is_one_line_and_the_last_checkpoint_stays_intact(
    tmp_path, tiny_model_dir, reference, monkeypatch, fault
):
    import errno

    import safetensors.torch

    from diffuse_lm import run_dir

    if fault == "disk-full":  # the second checkpoint (step 6) fails half-written
        real, calls = safetensors.torch.save_file, []

        def save_file(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
        needle = "No space left on device"
    else:  # the folder turns read-only after step 4: the log line of step 5 cannot be written
        real_log = run_dir.append_log

        def log(out, entry):
            if entry.get("step", 0) >= 5:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(out / "train_log.jsonl"))
            real_log(out, entry)

        monkeypatch.setattr(run_dir, "append_log", log)
        needle = "Permission denied"
    cfg = _run_cfg(tmp_path, tiny_model_dir, 4)
    with pytest.raises(DiffuseError, match=needle) as e:
        train(config_from_dict(cfg), progress=False)
    assert "checkpoint of step 3 is intact" in str(e.value) and "\n" not in str(e.value)
    out = Path(cfg["output_dir"])
    pointer = json.loads((out / "checkpoint.json").read_text())
    assert pointer["dir"] == "checkpoint-000003" and not list(out.glob(".*-tmp-*"))
    monkeypatch.undo()
    resumed = train(config_from_dict(cfg), progress=False).summary
    _assert_same_adapter(_adapter(resumed), _adapter(reference))


def test_measure_off_trains_the_same_adapter_without_before_and_after(
    tmp_path, tiny_model_dir, reference, capsys
):
    """`measure: false` (what `reproduce` sets: it measures its models itself) skips only the two exact
    passes over the tasks: the same weights, no before/after files, and the CLI reports the run without them."""
    cfg = _run_cfg(tmp_path, tiny_model_dir, 4, measure=False)
    result = train(config_from_dict(cfg), progress=False)
    out = Path(cfg["output_dir"])
    assert result.before is None and result.after is None
    assert result.summary["before"] is None and result.summary["after"] is None
    assert not (out / "before.json").exists() and not (out / "after.json").exists()
    twin = train(
        config_from_dict(_run_cfg(tmp_path / "on", tiny_model_dir, 4)), progress=False
    )  # same threads
    a, b = _adapter(result.summary), _adapter(twin.summary)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit-identical
    assert twin.before is not None and _kls(twin.summary["before"]) == _kls(reference["before"])
    # the finished run is found again with measure back on (a key a run may change)
    again = train(config_from_dict({**cfg, "measure": True}), progress=False)
    assert again.steps == 8 and again.after is None

    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**cfg, "output_dir": str(tmp_path / "cli")}))
    from diffuse_lm.cli import main

    assert main(["train", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "8 steps" in shown and "before:" not in shown
    assert not (tmp_path / "cli" / "before_after.png").exists()


def test_overwrite_refuses_to_delete_the_runs_own_config_or_task_file(tmp_path, tiny_model_dir, capsys):
    from diffuse_lm.cli import main

    cfg = _run_cfg(tmp_path, tiny_model_dir, 1)
    out = Path(cfg["output_dir"])
    out.mkdir(parents=True)
    config = out / "config.yaml"  # the user's config kept where a run writes its own
    config.write_text("# mine\n" + yaml.safe_dump(cfg))
    assert main(["train", str(config), "-q", "--no-plot", "--overwrite"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--overwrite would delete {config}" in err[0], err
    assert config.read_text().startswith("# mine\n") and sorted(p.name for p in out.iterdir()) == [
        "config.yaml"
    ]

    task = tmp_path / "t" / "before.json"  # a task file named like a run's measurement
    task.parent.mkdir()
    task.write_text(json.dumps({"request": "Pick a or b.", "targets": ["{a}", "{b}"]}))
    (task.parent / "notes.txt").write_text("other files: --overwrite is needed")
    # no run claimed that folder (no config.yaml), so its before.json is no run's: refused as such
    with pytest.raises(DiffuseError, match="holds before.json but no config.yaml"):
        train(
            config_from_dict({**cfg, "train_prompts": [str(task)], "output_dir": str(task.parent)}),
            progress=False,
            overwrite=True,
        )
    assert json.loads(task.read_text())["targets"] == ["{a}", "{b}"]


def test_a_checkpoint_pointer_naming_no_checkpoint_is_an_error_not_a_fresh_start(tmp_path, tiny_model_dir):
    train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 3)), progress=False)
    out = tmp_path / "run"
    log = (out / "train_log.jsonl").read_text()
    for bad in ({"step": 6, "dir": "checkpoint-000006", "checkpoints": "no"}, {"step": "x", "dir": 5}):
        (out / "checkpoint.json").write_text(json.dumps(bad))
        with pytest.raises(DiffuseError, match="checkpoint.json: names no checkpoint") as e:
            train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 4)), progress=False)
        assert "\n" not in str(e.value)
        assert (out / "train_log.jsonl").read_text() == log  # nothing dropped


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_a_seed_out_of_range_is_refused_before_anything_is_written(tmp_path, tiny_model_dir, seed):
    with pytest.raises(DiffuseError, match="seed"):
        train(config_from_dict(_run_cfg(tmp_path, tiny_model_dir, 1, seed=seed)), progress=False)
    assert not (tmp_path / "run").exists()
