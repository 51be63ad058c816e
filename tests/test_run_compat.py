"""A run folder written by diffuse-lm before the training refactor of issue 28 (``tests/fixtures/
interrupted_run``, made by ``make_interrupted_run.py`` there, stopped after step 4 with the checkpoint of step 3)
resumes with today's code and ends exactly where a run made in one go does: checkpoints, log and the
retention file keep their format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from fixtures.make_interrupted_run import CONFIG, FIXTURE
from safetensors.torch import load_file
from test_training import save_tiny_model

from diffuse_lm import train
from diffuse_lm.config import config_from_dict


def _entries(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _numbers(entry: dict, pre: str = "") -> dict:
    """A log entry's numbers by dotted key (an eval row's too), without its timing: two runs never share it."""
    out = {}
    for k, v in entry.items():
        if isinstance(v, dict):
            out.update(_numbers(v, f"{pre}{k}."))
        elif k not in ("seconds", "kind"):
            out[f"{pre}{k}"] = v
    return out


@pytest.fixture
def old_run(tmp_path, monkeypatch) -> Path:
    """The fixture's folder copied beside the tiny model it was trained on (rebuilt: same seed, same weights)."""
    shutil.copytree(FIXTURE, tmp_path, dirs_exist_ok=True)
    save_tiny_model(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "run"


def test_a_run_folder_of_the_previous_release_resumes_and_ends_as_a_run_in_one_go(old_run):
    old_log = (old_run / "train_log.jsonl").read_text().splitlines()
    old_before = (old_run / "before.json").read_bytes()
    assert json.loads((old_run / "checkpoint.json").read_text())["step"] == 3
    assert max(e["step"] for e in _entries(old_run / "train_log.jsonl")) == 4  # step 4 is redone

    fresh = train(config_from_dict({**CONFIG, "output_dir": "fresh"}), progress=False)
    # the model was rebuilt as it was: the same base answers, the same 'before' measurement
    assert (Path("fresh") / "retain.json").read_bytes() == (old_run / "retain.json").read_bytes()
    kls = [t["kl"] for t in json.loads(old_before)["tasks"]]
    assert [t["kl"] for t in fresh.summary["before"]["tasks"]] == pytest.approx(kls, rel=1e-9)

    resumed = train(config_from_dict(CONFIG), progress=False)
    assert resumed.steps == fresh.steps == 8
    new_log = (old_run / "train_log.jsonl").read_text().splitlines()
    kept = [line for line in old_log if json.loads(line)["step"] <= 3]
    assert new_log[: len(kept)] == kept  # the lines of steps the checkpoint holds stay, byte for byte
    got, want = _entries(old_run / "train_log.jsonl"), _entries(Path("fresh") / "train_log.jsonl")
    assert [e["step"] for e in got if e["kind"] == "train"] == list(range(1, 9))
    assert [(e["kind"], e["step"]) for e in got] == [(e["kind"], e["step"]) for e in want]
    for a, b in zip(got, want, strict=True):
        # the kept lines were written on another machine: float noise of ~1e-8 in small numbers
        assert _numbers(a) == pytest.approx(_numbers(b), rel=1e-6, abs=1e-6), a["step"]

    assert (old_run / "before.json").read_bytes() == old_before  # read back, not measured again
    assert resumed.summary["before"] == json.loads(old_before)
    assert resumed.summary["final_loss"] == pytest.approx(fresh.summary["final_loss"], rel=1e-5)
    a = load_file(old_run / "adapter" / "adapter_model.safetensors")
    b = load_file(Path("fresh") / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:  # steps 1-3 ran on another machine: Adam's steps carry its float noise (~1e-6) forward
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-3)
    pointer = json.loads((old_run / "checkpoint.json").read_text())
    assert [c["dir"] for c in pointer["checkpoints"]] == ["checkpoint-000008", "checkpoint-000006"]
    assert sorted(p.name for p in old_run.glob("checkpoint-*")) == ["checkpoint-000006", "checkpoint-000008"]
    # the checkpoints written now have the files, checksums and scalars the old one has, in the same order
    old = FIXTURE / "run" / "checkpoint-000003"
    new = old_run / "checkpoint-000006"
    assert sorted(p.name for p in new.iterdir()) == sorted(p.name for p in old.iterdir())
    assert list(pointer["checkpoints"][1]["sha256"]) == list(
        json.loads((FIXTURE / "run" / "checkpoint.json").read_text())["checkpoints"][0]["sha256"]
    )
    assert list(json.loads((new / "state.json").read_text())) == list(
        json.loads((old / "state.json").read_text())
    )
    assert (old_run / "retain.json").read_bytes() == (FIXTURE / "run" / "retain.json").read_bytes()
