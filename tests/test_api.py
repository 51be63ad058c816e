"""The public Python API: lazy imports, tasks built in code, measure/sample/train on a tiny model, and the
quickstart example end to end."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_training import model_dir  # noqa: F401  (a fixture: a tiny model saved as a folder)

import diffuse_lm
from diffuse_lm import DiffuseError, TrainResult, load_model, load_tasks, make_task, measure, sample, train

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
    assert isinstance(s, TrainResult) and s.steps == 3 and len(s.losses) == 3 and s.adapter_dir.is_dir()
    assert s.adapter_dir == out / "adapter" and s.summary["adapter_dir"] == str(out / "adapter")
    (spec,) = yaml.safe_load((out / "config.yaml").read_text())["train_prompts"]
    back = load_tasks([spec])[0]  # the in-memory task went in as a file that reads back the same
    assert (back.request, back.targets, list(back.weights)) == (
        task.request,
        task.targets,
        list(task.weights),
    )
    assert Path(spec).is_relative_to(tmp_path / "cache")
    assert s.after["digits"]["kl"] < s.before["digits"]["kl"]
    assert measure(s.model, tok, task)["digits"]["kl"] == pytest.approx(s.after["digits"]["kl"], abs=1e-6)
    again = train(model=str(model_dir), tasks=[task], output_dir=str(out), lr=0.05, alg_config={"n_iters": 3})
    assert again.model is None and again.losses == s.losses  # the finished run, read back


def test_train_a_held_model_on_in_memory_tasks_writes_nothing(tmp_path, model_dir, monkeypatch):  # noqa: F811
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    task = make_task("Pick a digit: {d}.", ["{1}", "{2}", "{3}"], name="digits")
    model, tok = load_model(str(model_dir))
    before = measure(model, tok, task)["digits"]
    result = train(model=model, tokenizer=tok, tasks=[task], lr=0.05, alg_config={"n_iters": 4})
    assert list(cwd.iterdir()) == [] and not (tmp_path / "cache").exists()  # nothing written anywhere
    assert result.adapter_dir is None and result.summary["output_dir"] is None
    assert result.steps == 4 and len(result.losses) == 4 and all(np.isfinite(result.losses))
    assert result.model.get_base_model() is model  # the held model, wrapped with LoRA, not reloaded
    assert result.before["digits"]["kl"] == pytest.approx(before["kl"], abs=1e-9)
    after = measure(result.model, tok, task)
    assert after["digits"]["kl"] < before["kl"] / 2  # the distribution moved towards uniform
    assert after["digits"]["kl"] == pytest.approx(result.after["digits"]["kl"], abs=1e-6)
    assert after.model == f"{model_dir} + LoRA"  # the tuned model's label names the base
    with pytest.raises(DiffuseError, match="tokenizer"):
        train(model=model, tasks=[task])
    with pytest.raises(DiffuseError, match="already has a PEFT adapter"):
        train(model=result.model, tokenizer=tok, tasks=[task])


def _quickstart(argv: list[str], monkeypatch, capsys) -> tuple[dict, dict, str]:
    """Run examples/api_quickstart.py with ``argv``; its printed before/after metrics and all it printed."""
    monkeypatch.setattr(sys, "argv", ["api_quickstart.py", *argv])
    runpy.run_path(str(ROOT / "examples" / "api_quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1] for line in out.splitlines() if ":" in line}
    return ast.literal_eval(lines["before"].strip()), ast.literal_eval(lines["after"].strip()), out


def test_quickstart_example_runs(tmp_path, model_dir, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    argv = ["--model", str(model_dir), "--out", str(tmp_path / "q"), "--steps", "2"]
    before, after, out = _quickstart(argv, monkeypatch, capsys)
    assert after["kl"] != before["kl"] and out.count("valid") >= 5 and (tmp_path / "q" / "adapter").is_dir()
    assert _quickstart(argv, monkeypatch, capsys)[1] == after  # rerun: the finished run, read back


@pytest.mark.slow
def test_quickstart_example_runs_on_the_default_model(monkeypatch, capsys):
    before, after, out = _quickstart([], monkeypatch, capsys)  # 20 steps, nothing written
    assert after["kl"] < before["kl"] and out.count("valid") >= 5
