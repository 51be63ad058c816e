"""What the commands write, read by the tools users read it with (issue 26): every JSON and JSONL file is strict
JSON (no NaN or Infinity: null, and a ``nonfinite`` field saying what was there), ``measure -o`` writes the format
its suffix names or refuses, ``Measurement.load`` takes a path, and the documented pandas one-liners work."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import char_tokenizer, tiny_llama
from test_training import save_tiny_model, tiny_config

from diffuse_lm import Measurement
from diffuse_lm.cli import main


def _strict(path: Path) -> list:
    """Every JSON value in ``path`` (one, or one a line for .jsonl), refusing NaN / Infinity."""

    def refuse(constant: str):
        raise AssertionError(f"{path.name}: {constant} is not JSON")

    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line, parse_constant=refuse) for line in text.splitlines() if line.strip()]
    return [json.loads(text, parse_constant=refuse)]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    """Every command that writes JSON, run once on a tiny model into one folder."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("outputs")
    model = str(save_tiny_model(tmp / "model"))
    config = json.loads((tmp / "model" / "config.json").read_text())
    config["max_position_embeddings"] = 1024  # synth biographies' prompt is 764 characters: one token each
    (tmp / "model" / "config.json").write_text(json.dumps(config))
    adapter = tmp / "adapter"
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_llama(len(char_tokenizer()), seed=1), lora).save_pretrained(adapter)
    out = tmp / "out"
    runs = [
        [
            "measure",
            "rng/1-10",
            "--model",
            model,
            "-o",
            str(out / "m.json"),
            "--rows",
            str(out / "rows.jsonl"),
        ],
        ["measure", "rng/1-10", "--model", model, "-o", str(out / "m.jsonl")],
        ["measure", "rng/1-10", "--model", model, "-o", str(out / "m.csv")],
        ["measure", "rng/1-10", "--model", model, "-o", str(out / "m.parquet")],
        # min_p cuts targets to probability 0: KL is infinite, which strict JSON cannot hold
        ["compare", "rng/1-10", "--model", model, "--methods", f"base,min_p:0.9,tuned:{adapter}"]
        + ["--samples", "3", "--output", str(out / "cmp")],
        ["sample", "rng/1-10", "--model", model, "--n", "4", "--max-new-tokens", "4"]
        + ["-o", str(out / "s.jsonl"), "--stats-output", str(out / "s-stats.json")],
        ["stats", str(out / "s.jsonl"), "--model", model, "-o", str(out / "stats.json")],
        ["synth", "biographies", "--model", model, "--n", "2", "--max-new-tokens", "8"]
        + ["--output", str(out / "synth")],
    ]
    for argv in runs:
        assert main(argv) == 0, argv
    from diffuse_lm import train
    from diffuse_lm.config import config_from_dict

    train(config_from_dict(tiny_config(out, model, output_dir=str(out / "run"))), progress=False)
    return out


def test_every_json_the_commands_write_is_strict(outputs):
    files = sorted(p for p in outputs.rglob("*") if p.suffix in (".json", ".jsonl"))
    kinds = {p.name for p in files}
    assert {
        "m.json",
        "rows.jsonl",
        "m.jsonl",
        "compare.json",
        "s.jsonl",
        "stats.json",
        "summary.json",
    } <= kinds
    assert {"train_log.jsonl", "before.json", "after.json", "report.json", "diffuse_base.json"} <= kinds
    for path in files:
        _strict(path)
    rows = _strict(outputs / "cmp" / "compare.json")[0]["rows"]
    cut = next(r for r in rows if r["method"] == "min_p:0.9")
    assert cut["kl"] is None and cut["nonfinite"]["kl"] == "+Infinity"  # the reason stays beside the null


def test_output_format_follows_the_suffix(outputs, tmp_path, capsys):
    nested = json.loads((outputs / "m.json").read_text())
    n = len(nested["tasks"][0]["targets"])
    assert len(pd.read_json(outputs / "m.jsonl", lines=True)) == n
    assert (
        len(pd.read_csv(outputs / "m.csv")) == n and list(pd.read_parquet(outputs / "m.parquet").target)[:1]
    )
    for bad in ("m.txt", "m.yaml", "m.xlsx"):
        assert main(["measure", "rng/1-10", "-o", str(tmp_path / bad)]) == 2
        err = capsys.readouterr().err
        assert "writes .json, .jsonl, .csv or .parquet" in err and err.count("\n") == 1
        assert not (tmp_path / bad).exists()
    assert main(["stats", str(outputs / "s.jsonl"), "--no-exact", "-o", str(tmp_path / "s.csv")]) == 2
    assert "writes .json, not .csv" in capsys.readouterr().err


def test_measurement_loads_from_a_path_and_reads_into_pandas(outputs):
    path = outputs / "m.json"
    m = Measurement.load(path)
    assert m.tasks[0]["name"] == "rng/1-10" and Measurement.from_json(str(path)).tasks == m.tasks
    # The documented one-liners: one row a task, and one row a target.
    tasks = pd.json_normalize(json.loads(path.read_text())["tasks"]).drop(columns="targets")
    assert list(tasks["name"]) == ["rng/1-10"] and "mass" in tasks
    targets = pd.json_normalize(json.loads(path.read_text())["tasks"], "targets", ["name"])
    assert len(targets) == len(m.tasks[0]["targets"]) and {"target", "prob", "name"} <= set(targets)
    assert m.to_pandas(targets=True)["target"].tolist() == targets["target"].tolist()


def test_non_finite_numbers_round_trip_through_the_files():
    import math

    from diffuse_lm.strict_json import dumps, loads

    data = {"kl": math.inf, "mass": 0.0, "rows": [{"entropy": math.nan, "lp": [-math.inf, 0.0]}]}
    text = dumps(data)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c))["kl"] is None
    back = loads(text)
    assert back["kl"] == math.inf and math.isnan(back["rows"][0]["entropy"]) and "nonfinite" not in back
    assert back["rows"][0]["lp"] == [None, 0.0]  # a list's entry cannot be told back: null, noted in the file


def test_sample_takes_min_p_as_compare_does(outputs, tmp_path, capsys):
    """``sample --min-p 1`` keeps only the most probable token at each step: every sample is the same text,
    and the sidecar records the setting (a rerun with another min-p would not resume this file)."""
    model = str(outputs.parent / "model")
    out = tmp_path / "cut.jsonl"
    argv = ["sample", "rng/1-10", "--model", model, "--n", "6", "--max-new-tokens", "5", "--no-stats"]
    assert main([*argv, "-o", str(out), "--min-p", "1"]) == 0
    texts = {r["text"] for r in _strict(out)}
    assert len(texts) == 1
    assert json.loads(Path(f"{out}.meta.json").read_text())["min_p"] == 1.0
    free = tmp_path / "free.jsonl"
    assert main([*argv, "-o", str(free)]) == 0
    assert len({r["text"] for r in _strict(free)}) > 1  # without it the tiny model's samples differ
    assert main([*argv, "-o", str(tmp_path / "x.jsonl"), "--min-p", "2"]) == 2
    assert "--min-p 2.0: must be in [0, 1]" in capsys.readouterr().err
