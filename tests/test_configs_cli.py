"""Configs run from any folder: relative paths in a config resolve next to it, shipped configs load by name and
ship inside the package, `diffuse configs list|show|cp`, and `train`'s --model/--device/--output shorthands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_training import save_tiny_model

from diffuse_lm import load_tasks
from diffuse_lm.cli import main
from diffuse_lm.config import builtin_configs, load_config
from diffuse_lm.errors import DiffuseError

ROOT = Path(__file__).resolve().parents[1]
TASK = {"request": "Pick one: {x}", "targets": ["{a}", "{b}"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def test_relative_paths_resolve_next_to_the_config_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "proj" / "tasks").mkdir(parents=True)
    (tmp_path / "proj" / "tasks" / "pick.json").write_text(json.dumps(TASK))
    (tmp_path / "proj" / "prompts.txt").write_text("Say hi.\n")
    cfg_path = tmp_path / "proj" / "cfg.yaml"
    cfg_path.write_text(
        "train_prompts: [tasks/pick.json, rng/1-10]\noutput_dir: run\nretain: {prompts: prompts.txt}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(cfg_path)
    assert Path(cfg.train_prompts[0]).resolve() == (tmp_path / "proj/tasks/pick.json").resolve()
    assert cfg.train_prompts[1] == "rng/1-10"  # a built-in name stays a name
    assert Path(cfg.retain.prompts).resolve() == (tmp_path / "proj/prompts.txt").resolve()
    assert cfg.output_dir == "run"  # outputs go where the command runs
    assert list(load_tasks(cfg.train_prompts)[0].targets) == ["{a}", "{b}"]
    # from the config's own folder the saved config keeps the path as written
    monkeypatch.chdir(tmp_path / "proj")
    assert load_config(cfg_path).train_prompts[0] == "tasks/pick.json"


def test_paths_in_overrides_stay_relative_to_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "c.yaml").write_text("train_prompts: [rng/1-10]\noutput_dir: o\n")
    (tmp_path / "mine.json").write_text(json.dumps(TASK))
    (tmp_path / "cfgs" / "mine.json").write_text(json.dumps({**TASK, "targets": ["{z}"]}))
    monkeypatch.chdir(tmp_path)
    cfg = load_config("cfgs/c.yaml", ["train_prompts=[mine.json]"])
    assert cfg.train_prompts == ["mine.json"] and list(load_tasks(cfg.train_prompts)[0].targets) == [
        "{a}",
        "{b}",
    ]


def test_shipped_configs_are_the_repository_configs_and_load_by_name(tmp_path, monkeypatch):
    names = set(builtin_configs())
    assert names == {
        str(p.relative_to(ROOT / "configs").with_suffix("")) for p in ROOT.glob("configs/**/*.yaml")
    }
    monkeypatch.chdir(tmp_path)
    for name in names:
        cfg = load_config(name)
        assert load_tasks(cfg.train_prompts), name
    assert load_config("configs/smollm2-135m/rng-1-10.yaml").train_prompts == ["rng/1-10"]


def test_the_demo_config_trains_from_another_folder_with_shorthands(tmp_path, monkeypatch, model_dir):
    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs/smollm2-135m/rng-1-10.yaml")
    args = ["train", config, "alg_config.n_iters=1", "--model", str(model_dir), "--device", "cpu"]
    assert main([*args, "--output", "run", "-q", "--no-plot"]) == 0
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["model"], saved["device"], saved["output_dir"]) == (str(model_dir), "cpu", "run")
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").exists()


def test_shorthands_win_over_overrides_and_bad_ones_exit_2(monkeypatch, capsys, tmp_path):
    from diffuse_lm.commands import train as train_cmd

    seen = {}

    def fake_train(cfg, **kw):
        seen["cfg"] = cfg
        raise DiffuseError("stopped before training")

    monkeypatch.setattr("diffuse_lm.training.train", fake_train)
    assert main(["train", "smollm2-135m/rng-1-10", "output_dir=a", "--output", "b", "--model", "1e3"]) == 2
    assert "stopped before training" in capsys.readouterr().err
    assert seen["cfg"].output_dir == "b" and seen["cfg"].model == "1e3"  # a string, not a number
    assert main(["train", "no/such-config"]) == 2
    assert "no such file, nor a shipped config" in capsys.readouterr().err
    assert train_cmd.shorthands(type("A", (), {"model": None, "device": None, "output": None})()) == []


def test_configs_list_show_cp(tmp_path, capsys):
    assert main(["configs"]) == 0 and "smollm2-135m/rng-1-10" in capsys.readouterr().out
    assert main(["configs", "list"]) == 0 and "paper/six-tasks/gemma-7b-it" in capsys.readouterr().out
    assert main(["configs", "show", "smollm2-135m/rng-1-10"]) == 0
    shown, source = capsys.readouterr().out, (ROOT / "configs/smollm2-135m/rng-1-10.yaml").read_text()
    # The first line is a command that works where the package is installed (by name, not a repository path).
    assert shown.splitlines()[0] == "# diffuse train smollm2-135m/rng-1-10"
    assert shown.splitlines()[1:] == source.splitlines()[1:]
    assert main(["configs", "cp", "smollm2-135m/rng-1-10", str(tmp_path / "mine")]) == 0
    copy = tmp_path / "mine" / "rng-1-10.yaml"
    assert copy.read_text().splitlines()[0] == f"# diffuse train {copy}"
    assert load_config(copy).train_prompts == ["rng/1-10"]
    assert main(["configs", "cp", "smollm2-135m/rng-1-10", str(copy)]) == 2
    assert "exists (--overwrite" in capsys.readouterr().err
    assert main(["configs", "cp", "smollm2-135m/rng-1-10", str(copy), "--overwrite"]) == 0
    assert main(["configs", "cp", "smollm2-135m/rng-1-10", str(tmp_path / "x.yaml")]) == 0
    assert (tmp_path / "x.yaml").exists()
    assert main(["configs", "show", "nope"]) == 2
    assert "config 'nope': not shipped" in capsys.readouterr().err


def test_the_build_puts_the_configs_inside_the_package(tmp_path):
    """setup.py's build_py copies configs/ into the wheel's diffuse_lm/configs (a non-editable install)."""
    build = tmp_path / "build"
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    shipped = {
        p.relative_to(build / "diffuse_lm" / "configs") for p in build.glob("diffuse_lm/configs/**/*.yaml")
    }
    assert shipped == {p.relative_to(ROOT / "configs") for p in ROOT.glob("configs/**/*.yaml")}
