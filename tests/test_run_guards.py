"""A training run's folder guarded against silently wrong results (issue 27): two runs into one folder, a
resume after its task files changed, and results that are not numbers are refused in one line, with nothing
published."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from test_training import save_tiny_model, tiny_config

from diffuse_lm import train
from diffuse_lm.config import config_from_dict
from diffuse_lm.errors import DiffuseError
from diffuse_lm.run_guards import LOCK_FILE


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _cfg(tmp_path: Path, model_dir: Path, n_iters: int = 1, **over) -> dict:
    return tiny_config(tmp_path, model_dir, alg_config={"n_iters": n_iters, "batch_size": 2}, **over)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 5. one run at a time in a folder -------------------------------------------------------------


def test_a_second_run_into_a_folder_being_written_is_refused_naming_the_holder(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir)
    out = Path(cfg["output_dir"])
    out.mkdir()
    holder = (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1], timeout=0); l.acquire(); "
        "open(sys.argv[1], 'w').write('pid 4242 on elsewhere'); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder, str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(DiffuseError, match="another `diffuse train` is writing it right now") as e:
            train(config_from_dict(cfg), progress=False)
        assert "pid 4242 on elsewhere" in str(e.value) and "\n" not in str(e.value)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing written beside it
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    summary = train(config_from_dict(cfg), progress=False).summary  # free again: the run goes ahead
    assert summary["steps"] == 2
    assert FileLock(out / LOCK_FILE, timeout=0).acquire()  # and released at its end


@contextmanager
def _lock_held(lock: Path, seconds: float):
    """Another process holding ``lock`` for ``seconds`` (then letting go), from the moment this enters."""
    holder = (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1], timeout=0); l.acquire(); "
        "print('held', flush=True); time.sleep(float(sys.argv[2])); l.release()"
    )
    cmd = [sys.executable, "-c", holder, str(lock), str(seconds)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout.readline().strip() == "held"
            yield
        finally:
            proc.kill()


def test_a_finished_run_held_by_another_reader_is_waited_for_not_refused(
    tmp_path, tiny_model_dir, monkeypatch
):
    """`reproduce --jobs 2` runs experiments side by side that open the same finished adapter run: one holding
    its lock for the seconds that takes must not fail the other."""
    import diffuse_lm.run_guards as run_guards

    cfg = _cfg(tmp_path, tiny_model_dir)
    first = train(config_from_dict(cfg), progress=False).summary
    lock = Path(cfg["output_dir"]) / LOCK_FILE
    with _lock_held(lock, 1.5):
        again = train(config_from_dict(cfg), progress=False).summary  # the lock held: waits, then reads
    assert again["steps"] == first["steps"] and again["final_loss"] == first["final_loss"]
    # a holder that keeps it longer than the wait is named, as for a run being written
    monkeypatch.setattr(run_guards, "FINISHED_WAIT_S", 0.2)
    with (
        _lock_held(lock, 60),
        pytest.raises(DiffuseError, match="another `diffuse train` is writing it right now"),
    ):
        train(config_from_dict(cfg), progress=False)


def test_a_run_that_cannot_start_leaves_no_folder_with_only_its_lock(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir, model=str(tmp_path / "no-such-model"))
    with pytest.raises(DiffuseError):
        train(config_from_dict(cfg), progress=False)
    assert not Path(cfg["output_dir"]).exists()


# --- 6. a resume after the task files changed -------------------------------------------------------


def test_a_finished_run_resumed_after_its_task_file_changed_is_refused(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir, n_iters=1)
    train(config_from_dict(cfg), progress=False)
    task = Path(cfg["train_prompts"][0])
    data = json.loads(task.read_text())
    task.write_text(json.dumps({**data, "targets": [f"{{{t}}}x" for t in "pqrs"][: len(data["targets"])]}))
    out = Path(cfg["output_dir"])
    before = _snapshot(out)
    longer = {**cfg, "alg_config": {**cfg["alg_config"], "n_iters": 2}}
    for again in (cfg, longer):  # returned as finished, or resumed for more steps: both would mix two tasks
        with pytest.raises(DiffuseError, match=f"measured {task} before it changed") as e:
            train(config_from_dict(again), progress=False)
        assert "--overwrite" in str(e.value) and "\n" not in str(e.value)
        assert _snapshot(out) == before
    task.write_text(json.dumps(data))  # put back: the run resumes
    assert train(config_from_dict(longer), progress=False).summary["steps"] == 4


# --- 7. results that are not numbers stop the run before anything is published ----------------------


def test_a_run_whose_results_are_not_finite_publishes_nothing(tmp_path, tiny_model_dir, monkeypatch):
    from diffuse_lm import training

    real = training._measure_sets

    def blown_up(model, tokenizer, task_sets, label, cfg, progress=False):
        results = real(model, tokenizer, task_sets, label, cfg, progress)
        if "LoRA" in label:  # the tuned model's results, as weights of 1e14 give them
            results[0]["tasks"][0] = {**results[0]["tasks"][0], "mass": math.nan, "kl": math.inf}
        return results

    monkeypatch.setattr(training, "_measure_sets", blown_up)
    cfg = _cfg(tmp_path, tiny_model_dir)
    with pytest.raises(DiffuseError, match="mass on .* is nan .*nothing was published") as e:
        train(config_from_dict(cfg), progress=False)
    assert "\n" not in str(e.value)
    out = Path(cfg["output_dir"])
    names = {p.name for p in out.iterdir()}
    assert not names & {"adapter", "after.json", "summary.json"}, names
    assert not [n for n in names if "-tmp-" in n], names


def test_a_task_past_the_context_is_refused_before_the_run_folder_is_claimed(tmp_path, tiny_model_dir):
    task = tmp_path / "long.json"
    task.write_text(json.dumps({"request": "x" * 600, "targets": ["a", "b"]}))  # 512 positions
    cfg = _cfg(tmp_path, tiny_model_dir, train_prompts=[str(task)])
    with pytest.raises(DiffuseError, match="task long: its prompt and longest target: .* context of 512"):
        train(config_from_dict(cfg), progress=False)
    assert not Path(cfg["output_dir"]).exists()
