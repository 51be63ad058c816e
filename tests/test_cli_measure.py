"""``diffuse measure`` in-process: bad input is one line on stderr and exit code 2, never a traceback;
a run on a tiny local model writes the documented JSON and prints the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import char_tokenizer, tiny_llama

from diffuse_lm.cli import main

ROOT = Path(__file__).resolve().parents[1]
RNG = str(ROOT / "examples/tasks/rng-1-10.json")


@pytest.fixture(autouse=True)
def isolated_cli_state():
    """One torch thread (tiny models, shared CPU), and transformers' logging restored after each run."""
    from transformers.utils import logging as hf_logging

    state = (torch.get_num_threads(), hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity())
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(state[0])
    (hf_logging.enable_progress_bar if state[1] else hf_logging.disable_progress_bar)()
    hf_logging.set_verbosity(state[2])


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("tiny-model")
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=1).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["measure", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffuse: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


BAD = {
    "unreadable.json": (b"\xff\xfe\x00binary", "not UTF-8"),
    "malformed.json": ('{"request": "x", "targets": [', "malformed JSON"),
    "malformed.yaml": ("request: [x\n", "malformed YAML"),
    "norequest.json": ('{"targets": ["a"]}', "missing request"),
    "notargets.json": ('{"request": "x", "targets": []}', "empty targets"),
    "duplicates.json": ('{"request": "x", "targets": ["a", "a"]}', "duplicate target 'a'"),
    "wlength.json": ('{"request": "x", "targets": ["a"], "weights": [1, 2]}', "weights has length 2"),
    "wnegative.json": ('{"request": "x", "targets": ["a", "b"], "weights": [1, -2]}', "negative"),
    "wnan.json": ('{"request": "x", "targets": ["a", "b"], "weights": [NaN, 1]}', "nan"),
    "wzero.json": ('{"request": "x", "targets": ["a", "b"], "weights": [0, 0.0]}', "all zero"),
    "prefix.json": ('{"request": "x", "targets": ["ab", "a"], "eos": false}', "'a' is a prefix of 'ab'"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_task_file(tmp_path, capsys, name):
    content, problem = BAD[name]
    path = tmp_path / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    code, out, err = run_cli(capsys, str(path))
    assert_one_line_error(code, err, str(path), problem)
    assert out == ""


def test_missing_task(capsys, tmp_path):
    assert_one_line_error(*run_cli(capsys, str(tmp_path / "nope.json"))[::2], "no such task file")


def test_missing_model_path(capsys):
    assert_one_line_error(*run_cli(capsys, RNG, "--model", "/no/such/path")[::2], "--model /no/such/path")


def test_unknown_hub_id_offline(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(capsys, RNG, "--model", "no-such-org-xyz/no-such-model")
    assert_one_line_error(code, err, "not found in the local Hugging Face cache")


def test_adapter_without_adapter_files(capsys, tmp_path):
    code, _, err = run_cli(capsys, RNG, "--adapter", str(tmp_path))
    assert_one_line_error(code, err, "--adapter", "no adapter_config.json")


def test_unwritable_output_fails_before_the_model_load(capsys, tmp_path, monkeypatch):
    from diffuse_lm.commands import measure

    monkeypatch.setattr(measure, "load_from_args", lambda args: pytest.fail("model loaded"))
    (tmp_path / "afile").write_text("")
    code, _, err = run_cli(capsys, RNG, "--output", str(tmp_path / "afile" / "out.json"))
    assert_one_line_error(code, err, "cannot write")


def test_unknown_flag_is_argparse_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["measure", RNG, "--no-such-flag"])
    assert e.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_measure_tiny_model_end_to_end(capsys, tmp_path, tiny_model_dir):
    task = tmp_path / "colours.yaml"
    task.write_text("request: Pick a colour.\ntargets: [red, green, blue]\nweights: [2, 1, 1]\n")
    out_file = tmp_path / "results" / "m.json"
    code, out, err = run_cli(capsys, str(task), RNG, "--model", tiny_model_dir, "--output", str(out_file))
    assert code == 0, err
    assert "Loading weights" not in err and "Traceback" not in err
    assert "colours" in out and "rng-1-10" in out and "top 3" in out

    result = json.loads(out_file.read_text())
    assert result["model"] == tiny_model_dir
    keys = {"name", "path", "n_targets", "mass", "kl", "entropy", "normalized_entropy", "target_entropy"}
    colours, rng = result["tasks"]
    assert keys | {"expected_coverage_1000", "targets"} <= set(colours)
    assert (colours["name"], colours["n_targets"], rng["n_targets"]) == ("colours", 3, 10)
    rows = colours["targets"]
    assert [r["target"] for r in rows] == ["red", "green", "blue"]
    assert [r["weight"] for r in rows] == pytest.approx([0.5, 0.25, 0.25])
    probs, logprobs = np.array([r["prob"] for r in rows]), np.array([r["logprob"] for r in rows])
    assert probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probs, np.exp(logprobs) / np.exp(logprobs).sum(), rtol=1e-9)
    assert colours["mass"] == pytest.approx(np.exp(logprobs).sum(), rel=1e-9)
    assert 0 <= colours["normalized_entropy"] <= 1 and colours["kl"] >= 0


def test_table_is_wide_when_not_a_terminal(monkeypatch, capsys):
    from diffuse_lm.present.console import PIPE_WIDTH, print_measure_table

    monkeypatch.delenv("COLUMNS", raising=False)
    targets = [
        {"target": f"{{answer number {i}}}", "prob": 0.1, "weight": 0.1, "logprob": -3.0} for i in range(3)
    ]
    row = {"name": "a-task-with-a-long-name", "n_targets": 3, "mass": 0.5, "kl": 0.1, "entropy": 1.0}
    print_measure_table({"model": "m", "tasks": [{**row, "normalized_entropy": 0.9, "targets": targets}]})
    out = capsys.readouterr().out
    assert PIPE_WIDTH >= 120
    line = next(line for line in out.splitlines() if "a-task-with-a-long-name" in line)
    assert "{answer number 0} 0.10, {answer number 1} 0.10, {answer number 2} 0.10" in line  # not wrapped


@pytest.mark.slow
def test_measure_default_model_rng(capsys, tmp_path):
    out_file = tmp_path / "demo.json"
    code, out, err = run_cli(capsys, RNG, "--output", str(out_file))
    assert code == 0, err
    assert "SmolLM2-135M-Instruct" in out and "rng-1-10" in out and "Loading weights" not in err
    (task,) = json.loads(out_file.read_text())["tasks"]
    assert [t["target"] for t in task["targets"]] == [f"{{{i}}}" for i in range(1, 11)]
    assert sum(t["prob"] for t in task["targets"]) == pytest.approx(1.0)
