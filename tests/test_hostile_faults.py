"""Faults and model-backed checks of the newer surfaces (issue 27): a full disk leaves one line and no partial
file, tasks and generations past the model's context, devices that cannot run a model, exports, library
warnings before an error, and progress. The table of hostile input refused before any model load is in
``test_hostile_surfaces.py``."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import char_tokenizer, tiny_llama
from test_hostile_inputs import GOOD_TASK, cli_error

from diffuse_lm.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-model")
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=1).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def task_file(tmp_path) -> Path:
    path = tmp_path / "tasks" / "letters.json"
    path.parent.mkdir()
    path.write_text(GOOD_TASK)
    return path


class _FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f) -> None:
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def writelines(self, lines):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk(monkeypatch) -> None:
    """From now on every file opened for writing (``os.fdopen``, ``open``) fails its writes with ENOSPC."""
    import builtins

    real_fdopen, real_open = os.fdopen, builtins.open

    def fdopen(fd, mode="r", *args, **kwargs):
        f = real_fdopen(fd, mode, *args, **kwargs)
        return _FullDisk(f) if any(c in mode for c in "wa+") else f

    def open_(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return _FullDisk(f) if any(c in mode for c in "wax") else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    monkeypatch.setattr(builtins, "open", open_)


@pytest.fixture
def full_disk(monkeypatch):
    fill_disk(monkeypatch)


def no_partial_files(folder: Path) -> None:
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or "-tmp" in p.name]
    assert not leftovers, leftovers


# --- 1. a samples file with a torn line and its sidecar is still one of ours ----------------------


def test_a_samples_file_with_a_torn_line_and_its_sidecar_is_still_repaired(tmp_path, tiny_model_dir):
    from diffuse_lm.models import load_model
    from diffuse_lm.sampling import sample_to_jsonl

    model, tok = load_model(str(tiny_model_dir), device="cpu")
    out = tmp_path / "s.jsonl"
    messages = [{"role": "user", "content": "Pick."}]
    first = sample_to_jsonl(model, tok, messages, 3, out, max_new_tokens=3)
    out.write_bytes(out.read_bytes()[:-5])  # a kill tore the last line
    again = sample_to_jsonl(model, tok, messages, 3, out, max_new_tokens=3)
    assert [r["text"] for r in again] == [r["text"] for r in first]


# --- 4, 13. a full disk: one line, nothing partial, what was there kept ------------------------------


def test_configs_cp_onto_a_full_disk_leaves_no_empty_config(tmp_path, capsys, full_disk):
    cli_error(capsys, ["configs", "cp", "smollm2-135m/rng-1-10", str(tmp_path)], "No space left")
    assert list(tmp_path.iterdir()) == []  # a retry does not say "exists"


def test_measure_onto_a_full_disk_is_one_line_and_keeps_the_old_results(
    tmp_path, capsys, monkeypatch, task_file, tiny_model_dir
):
    out = tmp_path / "m.json"
    out.write_text('{"old": "results"}')
    argv = ["measure", str(task_file), "--model", str(tiny_model_dir), "-o", str(out), "--rows"]
    argv.append(str(tmp_path / "rows.csv"))
    from diffuse_lm import measuring

    real = measuring.measure_tasks

    def measure_then_fill_the_disk(*args, **kwargs):
        result = real(*args, **{**kwargs, "progress": False})  # the progress of work done is not the error
        fill_disk(monkeypatch)
        return result

    monkeypatch.setattr(measuring, "measure_tasks", measure_then_fill_the_disk)
    cli_error(capsys, argv, "m.json: cannot write (No space left on device)")
    monkeypatch.undo()
    assert out.read_text() == '{"old": "results"}' and not (tmp_path / "rows.csv").exists()
    no_partial_files(tmp_path)


def test_sample_onto_a_full_disk_keeps_whole_samples_only(tmp_path, capsys, monkeypatch, tiny_model_dir):
    from diffuse_lm import samples_file
    from diffuse_lm.models import load_model
    from diffuse_lm.sampling import sample_to_jsonl

    model, tok = load_model(str(tiny_model_dir), device="cpu")
    out = tmp_path / "s.jsonl"
    messages = [{"role": "user", "content": "Pick."}]
    sample_to_jsonl(model, tok, messages, 2, out, max_new_tokens=3)
    whole = out.read_bytes()

    class Torn:
        """Half of each line reaches the disk, then it is full."""

        def __init__(self, f) -> None:
            self._f = f

        def write(self, data):
            self._f.write(data[: len(data) // 2])
            self._f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self._f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    from diffuse_lm.errors import DiffuseError

    with pytest.raises(DiffuseError, match="cannot write .No space left on device.; its 2 samples are kept"):
        with monkeypatch.context() as m:
            real_open = open

            def open_(file, mode="r", *a, **k):
                f = real_open(file, mode, *a, **k)
                return Torn(f) if str(file) == str(out) and "a" in mode else f

            m.setattr(samples_file, "open", open_, raising=False)
            sample_to_jsonl(model, tok, messages, 4, out, max_new_tokens=3)
    assert out.read_bytes() == whole  # no torn line: whole samples only
    no_partial_files(tmp_path)


# --- 8. a tiny temperature, used --------------------------------------------------------------


def test_a_tiny_temperature_is_greedy_not_nan():
    from diffuse_lm.decoding import SampleConfig, pick_tokens, scale_logits

    logits = torch.tensor([[100.0, 90.0, -50.0, 99.0], [-3.0, 70.0, 69.0, 0.0]])
    t = 1e-37  # a normal float32, but 100 / t overflows it
    picked = pick_tokens(logits, torch.tensor([0.99, 0.01]), SampleConfig(temperature=t).check())
    assert picked.tolist() == [0, 1]
    logp = torch.log_softmax(scale_logits(logits, t), dim=-1)  # compare's temperature:T, scored exactly
    assert not logp.isnan().any() and logp[:, :2].max(-1).values.tolist() == [0.0, 0.0]


# --- 9, 15. prompts and generations past the model's context --------------------------------------


@pytest.mark.parametrize("command", ["measure", "compare"])
def test_a_task_longer_than_the_models_context_is_refused(
    tmp_path, capsys, tiny_model_dir, task_file, command
):
    task = tmp_path / "long.json"
    task.write_text(json.dumps({"request": "x" * 600, "targets": ["a", "b"]}))  # 512 positions
    out = tmp_path / ("m.json" if command == "measure" else "cmp")
    cli_error(
        capsys,
        [command, str(task_file), str(task), "--model", str(tiny_model_dir), "-o", str(out)],
        "long: its prompt and longest target",
        "more than the model's context of 512",
    )
    assert not out.exists()


def test_max_new_tokens_is_bounded_by_the_context(tmp_path, capsys, tiny_model_dir, task_file):
    out = tmp_path / "s.jsonl"
    argv = [
        "sample",
        str(task_file),
        "--model",
        str(tiny_model_dir),
        "-o",
        str(out),
        "--n",
        "2",
        "--no-stats",
    ]
    assert main([*argv, "--max-new-tokens", str(10**12)]) == 0  # not an allocation of 10**12 positions
    err = capsys.readouterr().err
    assert "warning: --max-new-tokens 1,000,000,000,000:" in err and "the model's context ends there" in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["n_tokens"] <= 512 for r in records)


def test_a_sample_prompt_past_the_context_is_refused_before_the_file(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "s.jsonl"
    argv = ["sample", "--prompt", "y" * 600, "--model", str(tiny_model_dir), "-o", str(out), "--n", "2"]
    cli_error(capsys, argv, "the prompt and one generated token", "context of 512")
    assert not out.exists() and not Path(str(out) + ".meta.json").exists()


# --- 12. a device that holds no weights or is not here ---------------------------------------------


@pytest.mark.parametrize(
    "device,problem", [("meta", "not a device to run a model on"), ("mps", "mps is not available")]
)
def test_a_device_that_cannot_run_the_model_is_one_line_and_leaves_no_run_folder(
    tmp_path, capsys, task_file, tiny_model_dir, device, problem
):
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    argv = ["measure", str(task_file), "--model", str(tiny_model_dir), "--device", device]
    cli_error(capsys, [*argv, "-o", str(tmp_path / "m.json")], f"--device {device}: {problem}")
    config = tmp_path / "c.yaml"
    run = tmp_path / "runs" / "a"
    config.write_text(
        yaml.safe_dump(
            {
                "model": str(tiny_model_dir),
                "train_prompts": [str(task_file)],
                "output_dir": str(run),
                "device": device,
            }
        )
    )
    cli_error(capsys, ["train", str(config)], f"--device {device}: {problem}")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "m.json").exists()


# --- 14. export: malformed records of the run, and two exports into one folder ---------------------


@pytest.fixture
def run_adapter(tmp_path, tiny_model_dir) -> Path:
    """A tiny model's LoRA adapter in a run folder, as `diffuse train` leaves it."""
    from test_hostile_inputs import _adapter_of

    return _adapter_of(tiny_model_dir, tmp_path / "run" / "adapter")


def test_export_with_metrics_that_are_no_numbers_writes_n_a(tmp_path, capsys, run_adapter, tiny_model_dir):
    run = run_adapter.parent
    (run / "before.json").write_text(json.dumps({"tasks": [{"name": "t", "mass": "lots", "kl": None}, 5]}))
    (run / "after.json").write_text(json.dumps({"tasks": [{"name": "t", "mass": [1], "kl": 0.5}, "x"]}))
    (run / "config.yaml").write_text(f"model: {tiny_model_dir}\ntrain_prompts: 7\n")
    out = tmp_path / "out"
    assert main(["export", str(run_adapter), "-o", str(out)]) == 0, capsys.readouterr().err
    card = (out / "README.md").read_text()
    assert "| t | n/a | n/a | n/a | 0.5 |" in card


def test_a_second_export_into_the_same_folder_is_refused_and_leaves_nothing(
    tmp_path, capsys, run_adapter, tiny_model_dir
):
    out = tmp_path / "out"
    capsys.readouterr()  # the fixture's own loading progress
    lock = tmp_path / ".out.export-lock"
    holder = (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1], timeout=0); l.acquire(); "
        "print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        argv = ["export", str(run_adapter), "--merge", "--model", str(tiny_model_dir), "-o", str(out)]
        cli_error(capsys, argv, "another `diffuse export` is writing it right now")
    finally:
        proc.kill()
        proc.wait()
    assert not out.exists() and not list(tmp_path.glob(".out.export-*[!k]"))
    assert main(argv) == 0 and (out / "config.json").exists()  # free again
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


# --- 20. the error is the one line on stderr, with no library warning before it ---------------------


@pytest.mark.parametrize("case", ["adapter-for-another-base-model", "adapter-weights-truncated"])
def test_a_failed_adapter_load_is_the_only_line_on_stderr(tmp_path, task_file, case):
    from test_hostile_inputs import bad_model_case

    args, problem = bad_model_case(tmp_path, case)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    argv = [sys.executable, "-m", "diffuse_lm.cli", "measure", str(task_file), *args]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("diffuse: error: ") and problem in lines[0]


# --- 19. one task of many targets shows its progress ---------------------------------------------


def test_measure_of_one_large_task_shows_progress_by_targets(tmp_path, capsys, tiny_model_dir):
    task = tmp_path / "many.json"
    task.write_text(json.dumps({"request": "Pick.", "targets": [f"t{i}" for i in range(300)]}))
    argv = ["measure", str(task), "--model", str(tiny_model_dir), "-o", str(tmp_path / "m.json")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "measure " in err and "300/300" in err and "target" in err, err[-500:]


def test_a_model_cache_build_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    from diffuse_lm.errors import DiffuseError
    from diffuse_lm.model_cache import cached_build

    source = tmp_path / "model.gguf"
    source.write_bytes(b"weights")

    def build(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiffuseError, match="cannot build the model cache .No space left on device.") as e:
        cached_build(tmp_path / "cache" / "model", source, build)
    assert "\n" not in str(e.value)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_a_second_compare_into_the_same_folder_is_refused(tmp_path, capsys, task_file, tiny_model_dir):
    holder = (
        "import sys, time; from filelock import FileLock; l = FileLock(sys.argv[1], timeout=0); l.acquire(); "
        "print('held', flush=True); time.sleep(60)"
    )
    lock = tmp_path / ".cmp.compare-lock"
    proc = subprocess.Popen([sys.executable, "-c", holder, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        argv = ["compare", str(task_file), "--model", str(tiny_model_dir), "-o", str(tmp_path / "cmp")]
        cli_error(capsys, [*argv, "--methods", "base"], "another `diffuse compare` is writing it right now")
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "cmp").exists()
