"""Progress bars say what they do: the verb, the model's short name and the task, on stderr only."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_task_data import THREE, write_jsonl
from test_training import save_tiny_model, tiny_config

from diffuse_lm.cli import main
from diffuse_lm.model_info import model_label, set_model_info


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama")


class Fake:
    """A stand-in model: a name, and a LoRA adapter or not."""

    def __init__(self, name_or_path: str, *, peft: bool = False):
        self.name_or_path = name_or_path
        if peft:
            self.peft_config = {}


def test_the_short_label_is_the_last_part_of_the_name_and_the_adapter_run():
    hub = Fake("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert model_label(hub, short=True) == "SmolLM2-135M-Instruct"
    assert model_label(hub) == "HuggingFaceTB/SmolLM2-135M-Instruct"  # tables keep the full name
    tuned = set_model_info(Fake("/m/tiny", peft=True), adapter={"path": "/runs/demo/adapter", "sha256": "0"})
    assert model_label(tuned, short=True) == "tiny + demo"
    assert model_label(tuned, short=True, adapter=False) == "tiny"
    assert model_label(Fake("/m/tiny", peft=True), short=True) == "tiny + adapter"
    assert model_label(Fake("/m/tiny/"), short=True) == "tiny"
    named = set_model_info(Fake("x"), label="SmolLM2 + paper-six-1a2b")
    assert model_label(named, short=True) == "SmolLM2 + paper-six-1a2b"
    engine = SimpleNamespace(label="/hub/SmolLM2", adapter="/runs/six/adapter")  # a vLLM engine's fields
    assert model_label(engine, short=True) == "SmolLM2 + six" and model_label(engine) == "/hub/SmolLM2"


def test_measure_bar_names_model_and_task_on_stderr_only(tmp_path, model_dir, capsys):
    tasks = write_jsonl(tmp_path / "three.jsonl", THREE)
    result = tmp_path / "m.json"
    assert main(["measure", str(tasks), "--model", str(model_dir), "--output", str(result)]) == 0
    out, err = capsys.readouterr()
    names = [t["name"] for t in json.loads(result.read_text())["tasks"]]
    assert len(names) == 3 and all(f"measure tiny-llama: {n}" in err for n in names)
    assert "measure tiny-llama" not in out and "┏" in out  # the table on stdout, the bar on stderr


def test_sample_and_train_bars_name_model_and_task(tmp_path, model_dir, capsys):
    from diffuse_lm.config import config_from_dict
    from diffuse_lm.training import train

    tasks = write_jsonl(tmp_path / "xyz.jsonl", THREE[1:2])
    out = tmp_path / "s.jsonl"
    argv = [
        "sample",
        str(tasks),
        "--model",
        str(model_dir),
        "--n",
        "2",
        "--max-new-tokens",
        "2",
        "-o",
        str(out),
    ]
    assert main(argv) == 0
    assert "sample tiny-llama: xyz" in capsys.readouterr().err
    r = train(config_from_dict(tiny_config(tmp_path, model_dir, alg_config={"n_iters": 1})), progress=True)
    err = capsys.readouterr().err
    assert "train tiny-llama: " in err and ("digits" in err or "letters" in err)
    assert model_label(r.model, short=True) == "tiny-llama + run"  # named by its run's folder
