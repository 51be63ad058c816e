"""Provenance in every result: the measure JSON and table name the adapter and its hash, dtype, device,
versions and task file hashes; per-target rows as a flat table; samples files end in index order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import char_tokenizer, tiny_llama
from test_cli_measure import assert_one_line_error
from test_task_data import THREE, write_dataset, write_jsonl
from test_training import save_tiny_model

from diffuse_lm.cli import main
from diffuse_lm.files import sha256_file


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    from peft import LoraConfig, get_peft_model

    out = tmp_path_factory.mktemp("adapter") / "a[1]"  # brackets: not rich markup in the table title
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_llama(len(char_tokenizer()), seed=0), lora).save_pretrained(out)
    return out


def test_measure_json_and_table_name_the_adapter_its_hash_dtype_device_versions_and_task_files(
    tmp_path, model_dir, adapter, capsys
):
    tasks = write_jsonl(tmp_path / "three.jsonl", THREE)
    out = tmp_path / "m.json"
    argv = ["measure", str(tasks), "--model", str(model_dir), "--adapter", str(adapter), "--output", str(out)]
    assert main(argv) == 0
    prov = json.loads(out.read_text())["provenance"]
    digest = sha256_file(adapter / "adapter_model.safetensors")
    assert prov["adapter"] == {"path": str(adapter), "sha256": digest}
    assert prov["dtype"] == "float32" and prov["device"] == "cpu"
    assert {"python", "diffuse-lm", "torch", "transformers", "peft"} <= set(prov["versions"])
    assert prov["task_files"] == {str(tasks): sha256_file(tasks)}
    title = " ".join(capsys.readouterr().out.split("┏")[0].split())  # rich wraps it to the table's width
    assert f"adapter: {adapter} (sha256 {digest[:12]})" in title and "float32 on cpu" in title

    assert main(["measure", str(tasks), "--model", str(model_dir), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["provenance"]["adapter"] is None


def test_a_dataset_mapping_hashes_its_yaml_and_its_data_files(tmp_path, model_dir):
    spec = write_dataset(tmp_path, "request_column: kind\ntargets_column: answers\ntargets_separator: '|'\n")
    out = tmp_path / "m.json"
    assert main(["measure", str(spec), "--model", str(model_dir), "--output", str(out)]) == 0
    files = json.loads(out.read_text())["provenance"]["task_files"]
    assert files[str(spec)] == sha256_file(spec)
    assert sha256_file(tmp_path / "data" / "q.csv") in files.values() and len(files) == 2


def test_an_adapter_changed_in_memory_is_named_by_a_hash_of_its_weights(model_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    from diffuse_lm import load_model, make_task, measure
    from diffuse_lm.sampling import adapter_fingerprint

    model, tok = load_model(str(model_dir))
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    task = make_task("Pick a or b.", ["a", "b"], name="ab")
    first = measure(peft, tok, task).to_json()["provenance"]["adapter"]
    assert first["path"] is None and first["lora_sha256"][:16] == adapter_fingerprint(peft)
    with torch.no_grad():
        next(p for n, p in peft.named_parameters() if "lora_B" in n).add_(1.0)
    assert measure(peft, tok, task).provenance["adapter"]["lora_sha256"] != first["lora_sha256"]


def test_one_weight_hash_for_the_adapter_and_the_base():
    """``weights_sha256`` keeps the adapter hash that samples files and results already record (names and
    float32 values of the LoRA parameters, sorted by name); the base hash leaves the adapter out."""
    import hashlib

    import torch
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.provenance import weights_sha256

    peft = get_peft_model(
        tiny_llama(len(char_tokenizer()), seed=0),
        LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False),
    )
    before = hashlib.sha256()  # the hash as results and samples files recorded it before
    for name, p in sorted(peft.named_parameters()):
        if "lora_" in name:
            before.update(name.encode())
            before.update(p.detach().float().cpu().numpy().tobytes())
    assert weights_sha256(peft) == before.hexdigest()
    base, cheap = weights_sha256(peft, "base"), weights_sha256(peft, "base", every=997)
    assert len({base, cheap, weights_sha256(peft)}) == 3
    with torch.no_grad():
        next(p for n, p in peft.named_parameters() if "lora_B" in n).add_(1.0)
    assert weights_sha256(peft, "base") == base and weights_sha256(peft) != before.hexdigest()
    with torch.no_grad():
        next(p for n, p in peft.named_parameters() if "lora_" not in n).view(-1)[0] += 1.0  # a sampled value
    assert weights_sha256(peft, "base") != base and weights_sha256(peft, "base", every=997) != cheap
    with pytest.raises(ValueError, match="part is 'adapter' or 'base'"):
        weights_sha256(peft, "lora")


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_rows_are_one_flat_row_a_target_that_pandas_reads(tmp_path, model_dir, adapter, suffix):
    tasks = write_jsonl(tmp_path / "three.jsonl", THREE)
    rows_path = tmp_path / f"rows{suffix}"
    out = tmp_path / "m.json"
    argv = ["measure", str(tasks), "--model", str(model_dir), "--adapter", str(adapter)]
    assert main([*argv, "--output", str(out), "--rows", str(rows_path)]) == 0
    read = {".jsonl": lambda p: pd.read_json(p, lines=True), ".csv": pd.read_csv, ".parquet": pd.read_parquet}
    rows = read[suffix](rows_path)
    result = json.loads(out.read_text())
    assert len(rows) == sum(len(t["targets"]) for t in result["tasks"]) == 9
    assert list(rows.columns) == [
        *("model", "adapter", "adapter_sha256", "task", "task_path", "target_index"),
        *("target", "weight", "logprob", "prob"),
    ]
    assert (rows.adapter_sha256 == result["provenance"]["adapter"]["sha256"]).all()
    assert rows.groupby("task").prob.sum().round(9).eq(1).all()
    assert rows[rows.task == "xyz"].weight.tolist() == [0.25, 0.25, 0.5]


def test_a_bad_rows_file_is_refused_before_the_model_loads(tmp_path, capsys):
    tasks = write_jsonl(tmp_path / "three.jsonl", THREE)
    code = main(["measure", str(tasks), "--model", "/nonexistent", "--rows", str(tmp_path / "rows.xlsx")])
    assert_one_line_error(code, capsys.readouterr().err, "rows.xlsx", ".jsonl, .csv, .parquet")
    code = main(["measure", str(tasks), "--model", "/nonexistent", "--rows", str(tasks)])
    assert_one_line_error(code, capsys.readouterr().err, "is an input of this command")


def test_a_samples_file_ends_in_index_order_after_grouped_and_resumed_runs(tmp_path):
    from diffuse_lm.sampling import sample_to_jsonl

    tok = char_tokenizer()
    model = tiny_llama(len(tok))
    messages = [{"role": "user", "content": "Pick a or b."}]
    out = tmp_path / "s.jsonl"
    kw = {"max_new_tokens": 2, "batch_size": 2, "responses": ["{", "("]}  # sampled grouped: 0 2 4 then 1 3 5
    sample_to_jsonl(model, tok, messages, 6, out, **kw)
    lines = out.read_text().splitlines()
    assert [json.loads(x)["index"] for x in lines] == list(range(6))
    out.write_text("\n".join(lines[1:4]) + "\n")  # lost 0, 4, 5: a resumed run appends them
    sample_to_jsonl(model, tok, messages, 6, out, **kw)
    assert out.read_text().splitlines() == lines  # the same lines, in index order
    meta = json.loads((tmp_path / "s.jsonl.meta.json").read_text())
    assert meta["provenance"]["dtype"] == "float32" and meta["provenance"]["adapter"] is None


def test_a_training_runs_after_json_names_its_saved_adapter_as_measure_does(tmp_path, model_dir, capsys):
    from test_training import tiny_config

    from diffuse_lm.config import config_from_dict
    from diffuse_lm.training import train

    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 1})  # 2 tasks: 2 steps
    r = train(config_from_dict(cfg), progress=False)
    run = Path(r.summary["output_dir"])
    after = json.loads((run / "after.json").read_text())["provenance"]["adapter"]
    out = tmp_path / "m.json"
    task = cfg["train_prompts"][0]
    argv = ["measure", task, "--model", str(model_dir), "--adapter", str(r.adapter_dir), "--output", str(out)]
    assert r.steps == 2 and main(argv) == 0
    measured = json.loads(out.read_text())["provenance"]["adapter"]
    assert (
        after
        == measured
        == r.after.provenance["adapter"]
        == {"path": str(r.adapter_dir), "sha256": sha256_file(r.adapter_dir / "adapter_model.safetensors")}
    )
    assert json.loads((run / "before.json").read_text())["provenance"]["adapter"]["path"] is None


def test_one_versions_list_for_results_and_experiment_records():
    """Measure JSONs and experiment records carry the same versions; a caller's edit of one does not leak."""
    from diffuse_lm.experiments import runner
    from diffuse_lm.provenance import PACKAGES, package_versions

    versions = package_versions()
    assert list(versions)[0] == "python" and set(versions) - {"python"} <= set(PACKAGES)
    versions["torch"] = "edited"
    assert package_versions()["torch"] != "edited"
    assert runner.package_versions is package_versions
