"""The public Python API: lazy imports, tasks built in code, measure/sample/train on a tiny model, and the
quickstart example end to end."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_training import model_dir  # noqa: F401  (a fixture: a tiny model saved as a folder)

import diffuse_lm
from diffuse_lm import DiffuseError, load_model, load_tasks, make_task, measure, sample, train

ROOT = Path(__file__).resolve().parents[1]


def test_import_is_lazy_and_every_export_resolves():
    code = "import sys, diffuse_lm; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
    assert all(getattr(diffuse_lm, name) is not None for name in diffuse_lm.__all__)
    with pytest.raises(AttributeError):
        diffuse_lm.no_such_thing  # noqa: B018


def test_make_task_validates_like_a_file():
    t = make_task("Pick a or b.", ["{a}", "{b}"], [3, 1], name="ab")
    assert t.name == "ab" and np.allclose(t.weights, [0.75, 0.25]) and t.eos
    with pytest.raises(DiffuseError, match="duplicate target"):
        make_task("x", ["{a}", "{a}"])


def test_measure_sample_and_train_on_a_tiny_model(tmp_path, model_dir, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    task = make_task("Pick a digit: {d}.", ["{1}", "{2}", "{3}"], name="digits")
    model, tok = load_model(str(model_dir))
    m = measure(model, tok, [task, "rng/1-10"])
    assert [t["name"] for t in m.tasks] == ["digits", "rng/1-10"]
    assert 0 < m["digits"]["mass"] < 1 and len(m.to_pandas()) == 2
    rows = m.to_pandas(targets=True)
    assert len(rows) == 13 and np.isclose(rows[rows.task == "digits"].prob.sum(), 1.0)
    samples = sample(model, tok, task, 4, max_new_tokens=3, seed=1)
    assert [s["index"] for s in samples] == [0, 1, 2, 3] and all(
        isinstance(s["valid"], bool) for s in samples
    )
    assert samples == sample(model, tok, task, 4, max_new_tokens=3, seed=1)  # reproducible by seed
    out = tmp_path / "run"
    s = train(
        model=str(model_dir), train_prompts=[task], output_dir=str(out), lr=0.05, alg_config={"n_iters": 3}
    )
    assert s["steps"] == 3 and Path(s["adapter_dir"]).is_dir()
    (spec,) = yaml.safe_load((out / "config.yaml").read_text())["train_prompts"]
    back = load_tasks([spec])[0]  # the in-memory task went in as a file that reads back the same
    assert (back.request, back.targets, list(back.weights)) == (
        task.request,
        task.targets,
        list(task.weights),
    )
    assert Path(spec).is_relative_to(tmp_path / "cache")
    assert s["after"]["tasks"][0]["kl"] < s["before"]["tasks"][0]["kl"]


def test_quickstart_example_runs(tmp_path, model_dir, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    argv = ["api_quickstart.py", "--model", str(model_dir), "--out", str(tmp_path / "q"), "--steps", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "examples" / "api_quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "before:" in out and "after: " in out and out.count("valid") >= 5
