"""Hostile input through the CLI in-process (issue 12): every bad task file, output path, cache setting, model
and adapter folder is exit code 2 and one line on stderr of under 300 characters, never a traceback, and changes
nothing outside the run's own files. The loaders are replaced by one that fails the test, so bad input must be
refused before any model load; only the bad model folders (tiny models) go through the real loader."""

from __future__ import annotations

import csv
import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import char_tokenizer, tiny_llama

from diffuse_lm.cli import main
from diffuse_lm.commands.common import load_from_args as REAL_LOAD_FROM_ARGS
from diffuse_lm.tasks import MAX_ALIASED_NODES, TaskError, read_task_file

GOOD_TASK = '{"request": "Pick a letter.", "targets": ["a", "b", "c"]}'


def _alias_bomb(levels: int = 6, width: int = 10) -> str:
    """A few hundred bytes of YAML whose first target expands to ``width ** levels`` strings."""
    anchors = [f"&l0 [{', '.join(['lol'] * width)}]"]
    anchors += [f"&l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return f"description: [{', '.join(anchors)}]\nrequest: x\ntargets: [*l{levels - 1}, b]\n"


DEEP = 5000
BAD_TASK_FILES = [
    # item 5: weights that overflow, and numbers no float can hold
    (
        "wneg-huge.json",
        '{"request": "x", "targets": ["a", "b"], "weights": [-1' + "0" * 400 + ", 1]}",
        "weight 1 is negative",
    ),
    ("winf.yaml", "request: x\ntargets: [a, b]\nweights: [.inf, .inf]\n", "must be finite"),
    ("wdigits.json", '{"request": "x", "targets": ["a"], "weights": [' + "1" * 5000 + "]}", "malformed JSON"),
    ("wdigits.yaml", "request: x\ntargets: [a]\nweights: [" + "1" * 5000 + "]\n", "malformed YAML"),
    # deep nesting and an alias bomb
    ("deep.json", '{"request": "x", "targets": ' + "[" * DEEP + "]" * DEEP + "}", "nested too deeply"),
    ("deep.yaml", "request: x\ntargets: " + "[" * DEEP + "]" * DEEP + "\n", "nested too deeply"),
    ("bomb.yaml", _alias_bomb(), "aliases expand"),
    # a string where a list belongs
    ("tstring.json", '{"request": "x", "targets": "{1}"}', "targets must be a list"),
    ("tstring.yaml", 'request: x\ntargets: "{1}"\n', "targets must be a list"),
    # long values are quoted cut short, never whole
    ("tlong.json", json.dumps({"request": "x", "targets": [["x" * 1000]]}), "target 1 is list"),
    ("tdup.json", json.dumps({"request": "x", "targets": ["y" * 1000, "y" * 1000]}), "duplicate target"),
    ("klong.json", json.dumps({"request": "x", "targets": ["a"], "k" * 1000: 1}), "a key that is no name"),
    ("wlong.json", json.dumps({"request": "x", "targets": ["a"], "weights": ["1" * 1000]}), "not a number"),
    # a key given twice (parsers keep the last silently)
    ("dup.json", '{"request": "x", "targets": ["a"], "request": "y"}', "duplicate key 'request'"),
    ("dup.yaml", "request: x\ntargets: [a]\nrequest: y\n", "line 3, column 1: duplicate key 'request'"),
    (
        "dup.jsonl",
        '{"request": "x", "targets": ["a"], "targets": ["b"]}\n',
        "line 1: malformed JSON (duplicate key",
    ),
    # a file that is no task file is not echoed: its keys are not names
    (
        "shadow",
        "root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "a key that is no name",
    ),
    # keys of mixed types (issue 27): the name-like one is named, no TypeError while sorting them
    ("mixed.yaml", "1: a\nbogus: b\nrequest: x\ntargets: [a]\n", "unknown key 'bogus'"),
    ("mixedmap.yaml", "dataset_path: csv\n1: a\nbogus: b\n", "unknown key 'bogus' in a dataset mapping"),
    ("intkeys.yaml", "1: a\n2: b\n", "a key that is no name"),
    # a file name with a line break still gives one line
    ("new\nline.json", '{"request": "x"}', "empty targets"),
]


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Any model load fails the test: hostile input must be refused before it."""
    from diffuse_lm.cli import build_parser
    from diffuse_lm.commands import common, measure, sample

    build_parser()  # every command module imported now, so none binds the replacement below for good

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(measure, "load_from_args", loaded)
    monkeypatch.setattr(sample, "load_for_sampling", loaded)
    monkeypatch.setattr(common, "load_from_args", loaded)


def cli_error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2 and one short line on stderr holding ``needles``; return that line."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err[:500]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:500]
    line = lines[0]
    assert line.startswith("diffuse: error: ") and len(line) < 300, line[:500]
    for needle in needles:
        assert needle in line, line
    return line


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name,content,problem", BAD_TASK_FILES, ids=[b[0] for b in BAD_TASK_FILES])
def test_bad_task_file_is_one_short_line(tmp_path, capsys, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    before = snapshot(tmp_path)
    line = cli_error(capsys, ["measure", str(path), "--output", str(tmp_path / "m.json")], problem)
    assert name.replace("\n", " ") in line  # the file is named
    assert "19000" not in line  # nor is a line of a file that is no task file
    assert snapshot(tmp_path) == before


def test_alias_bomb_is_refused_while_composing_but_small_aliases_load(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(levels=6))  # 10**6 strings; the limit is far below
    assert MAX_ALIASED_NODES < 10**6
    with pytest.raises(TaskError, match="aliases expand to more than"):
        read_task_file(bomb)
    ok = tmp_path / "ok.yaml"
    ok.write_text("request: &q Pick one.\ndescription: *q\ntargets: &t [a, b]\nresponse: ['']\n")
    task = read_task_file(ok)
    assert task.description == "Pick one." and task.targets == ("a", "b")
    merged = tmp_path / "merged.yaml"  # a merge key's value may be overridden: no duplicate
    merged.write_text("<<: {request: Pick one., targets: [a]}\nrequest: Pick two.\n")
    assert read_task_file(merged).request == "Pick two."


@pytest.mark.parametrize(
    "weights,expected",
    [
        ([1e308] * 10, [0.1] * 10),  # summed in floats: inf, and every weight 0
        ([10**400, 10**400, 0], [0.5, 0.5, 0.0]),  # float(10**400) overflows
        ([10**400, 3 * 10**400], [0.25, 0.75]),
        ([1e308, 1e-308], [1.0, 0.0]),
        ([2, 1, 1], [0.5, 0.25, 0.25]),
    ],
)
def test_weights_are_normalised_by_their_largest_first(tmp_path, weights, expected):
    path = tmp_path / "w.json"
    targets = [f"t{i}" for i in range(len(weights))]
    path.write_text(json.dumps({"request": "x", "targets": targets, "weights": weights}))
    task = read_task_file(path)
    np.testing.assert_allclose(task.weights, expected, rtol=1e-12, atol=0)
    assert np.isfinite(task.weights).all() and task.weights.sum() == pytest.approx(1.0)


# --- outputs that are inputs, or cannot be written ---------------------------------------------------


@pytest.fixture
def task_file(tmp_path) -> Path:
    path = tmp_path / "tasks" / "letters.json"
    path.parent.mkdir()
    path.write_text(GOOD_TASK)
    return path


@pytest.fixture
def samples_file(tmp_path) -> Path:
    """A samples file of 3 records (n = 3) with its sidecar, as `diffuse sample` writes them."""
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"index": i, "text": "{a}"}) + "\n" for i in range(3)))
    (tmp_path / "s.jsonl.meta.json").write_text(json.dumps({"format": "diffuse-samples/1", "n": 3}))
    return path


def output_cases(tmp_path: Path, task: Path, samples: Path) -> dict[str, tuple[list[str], str]]:
    link = tmp_path / "link.json"
    link.symlink_to(task)
    loop = tmp_path / "loopy"
    loop.symlink_to(loop)
    return {
        "measure-output-is-task": (["measure", str(task), "--output", str(task)], "is an input"),
        "measure-output-in-task-folder": (
            ["measure", str(task.parent), "--output", str(task.parent / "letters.json")],
            "is an input",
        ),
        "measure-new-output-in-task-folder": (
            ["measure", str(task.parent), "--output", str(task.parent / "sub" / "m.json")],
            "a task folder this command reads",
        ),
        "compare-output-is-task-folder": (
            ["compare", str(task.parent), "-o", str(task.parent)],
            "a task folder this command reads",
        ),
        "measure-output-links-to-task": (["measure", str(task), "--output", str(link)], "is an input"),
        "sample-output-is-task": (["sample", str(task), "--output", str(task)], "is an input"),
        "sample-stats-output-is-task": (
            ["sample", str(task), "--output", str(tmp_path / "new.jsonl"), "--stats-output", str(task)],
            "is an input",
        ),
        "sample-stats-output-is-samples": (
            ["sample", str(task), "--output", str(samples), "--stats-output", str(samples)],
            "is an input",
        ),
        "stats-output-is-samples": (["stats", str(samples), "--no-exact", "-o", str(samples)], "is an input"),
        "stats-output-is-sidecar": (
            ["stats", str(samples), "--no-exact", "-o", str(samples) + ".meta.json"],
            "is an input",
        ),
        "stats-output-is-task": (
            ["stats", str(samples), "--no-exact", "--task", str(task), "-o", str(task)],
            "is an input",
        ),
        "output-name-too-long": (
            ["measure", str(task), "--output", str(tmp_path / ("x" * 300 + ".json"))],
            "cannot write there",
        ),
        "output-folder-name-too-long": (
            ["measure", str(task), "--output", str(tmp_path / ("x" * 300) / "m.json")],
            "cannot write there",
        ),
        "output-is-a-device": (["measure", str(task), "--output", os.devnull], "not a regular file"),
        "output-under-a-symlink-loop": (
            ["sample", str(task), "--output", str(loop / "s.jsonl")],
            "cannot write there (a symlink loop on the way)",
        ),
    }


OUTPUT_CASES = [
    "measure-output-is-task",
    "measure-output-in-task-folder",
    "measure-new-output-in-task-folder",
    "compare-output-is-task-folder",
    "measure-output-links-to-task",
    "sample-output-is-task",
    "sample-stats-output-is-task",
    "sample-stats-output-is-samples",
    "stats-output-is-samples",
    "stats-output-is-sidecar",
    "stats-output-is-task",
    "output-name-too-long",
    "output-folder-name-too-long",
    "output-is-a-device",
    "output-under-a-symlink-loop",
]


@pytest.mark.parametrize("case", OUTPUT_CASES)
def test_bad_output_is_refused_before_any_work(tmp_path, capsys, task_file, samples_file, case):
    argv, problem = output_cases(tmp_path, task_file, samples_file)[case]
    before = snapshot(tmp_path)
    cli_error(capsys, argv, problem)
    assert snapshot(tmp_path) == before  # nothing written, the probe file removed
    assert Path(os.devnull).is_char_device()


def test_a_good_output_passes_the_check_and_leaves_no_trace(tmp_path, task_file):
    from diffuse_lm.commands.common import check_writable

    before = snapshot(tmp_path)
    check_writable(tmp_path / "m.json", inputs=[task_file])
    check_writable(tmp_path / "new" / "sub" / "m.json", inputs=[task_file])
    check_writable(task_file.parent / "m.csv", inputs=[task_file, task_file.parent])  # not a task file name
    assert snapshot(tmp_path) == before and not (tmp_path / "new").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_where_no_file_can_be_made_is_refused_before_the_model_load(capsys, task_file):
    # /proc passes a permission check (as root, every folder does) but holds no new files.
    cli_error(
        capsys, ["measure", str(task_file), "--output", "/proc/diffuse-test-output.json"], "cannot write"
    )


# --- the model cache ------------------------------------------------------------------------------


@pytest.mark.parametrize("under", ["", "sub"], ids=["is-a-file", "under-a-file"])
def test_diffuse_cache_that_is_a_file_is_one_line(tmp_path, capsys, monkeypatch, under):
    from diffuse_lm import model_cache
    from diffuse_lm.commands import measure

    monkeypatch.setattr(model_cache, "_dequantize_gguf", lambda *a: pytest.fail("the cache was built"))
    (tmp_path / "cachefile").write_text("not a folder")
    before = snapshot(tmp_path)
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cachefile" / under))
    monkeypatch.setattr(measure, "load_from_args", REAL_LOAD_FROM_ARGS)  # the real loader, up to the cache
    cli_error(capsys, ["measure", "rng/1-10"], "DIFFUSE_CACHE", "cachefile")
    assert snapshot(tmp_path) == before


# --- diffuse stats: indices outside 0..n-1, duplicates with another text ---------------------------


def test_stats_leaves_out_indices_outside_the_sampled_range_and_says_so(tmp_path, capsys, samples_file):
    with samples_file.open("a") as f:
        for i in (3, 4, -1):
            f.write(json.dumps({"index": i, "text": "{z}"}) + "\n")
    out = tmp_path / "stats.json"
    assert main(["stats", str(samples_file), "--no-exact", "--output", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    stats = json.loads(out.read_text())["stats"]
    assert stats["n"] == 3 and stats["counts"] == {"a": 3}
    assert len(err) == 1 and err[0].startswith("warning: ") and "outside 0..2" in err[0], err
    assert "-1, 3, 4" in err[0]


def test_stats_reports_an_index_repeated_with_another_text(tmp_path, capsys, samples_file):
    with samples_file.open("a") as f:
        f.write(json.dumps({"index": 1, "text": "{b}"}) + "\n")  # another text: reported
        f.write(json.dumps({"index": 2, "text": "{a}"}) + "\n")  # same text again: harmless
    out = tmp_path / "stats.json"
    assert main(["stats", str(samples_file), "--no-exact", "--output", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert json.loads(out.read_text())["stats"]["n"] == 3
    assert len(err) == 1 and err[0].startswith("warning: ") and "repeated with different texts" in err[0], err
    assert err[0].endswith(": 1")


# --- biographies.csv: spreadsheet formula injection -------------------------------------------------


def test_biographies_csv_cells_that_start_a_formula_are_escaped(tmp_path):
    from diffuse_lm.biography_dataset import write_records

    hostile = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    records = [
        {"index": i, "first_name": h, "birth_year": -44, "valid": False, "problems": [h], "text": h}
        for i, h in enumerate(hostile)
    ]
    records.append({"index": 9, "first_name": "Ada", "valid": True, "problems": [], "text": "Ada, a-b"})
    write_records(records, tmp_path, as_csv=True)
    with open(tmp_path / "biographies.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row, h in zip(rows, hostile, strict=False):
        assert row["first_name"] == row["text"] == row["problems"] == "'" + h
        assert row["birth_year"] == "-44"  # a number, not text: left as it is
    assert rows[-1]["first_name"] == "Ada" and rows[-1]["text"] == "Ada, a-b"
    jsonl = [json.loads(x) for x in (tmp_path / "biographies.jsonl").read_text().splitlines()]
    assert jsonl[0]["text"] == hostile[0]  # the JSONL keeps the text as generated


# --- the samples-file lock, before the model load ---------------------------------------------------


@pytest.mark.parametrize("command", ["sample", "synth"])
def test_a_samples_file_being_written_is_refused_before_the_model_load(
    tmp_path, capsys, monkeypatch, task_file, command
):
    from diffuse_lm.commands import synth

    monkeypatch.setattr(synth, "load_for_sampling", lambda *a, **k: pytest.fail("a model was loaded"))
    if command == "sample":
        out = tmp_path / "s.jsonl"
        argv = ["sample", str(task_file), "--output", str(out)]
    else:
        out = tmp_path / "bios" / "generations.jsonl"
        out.parent.mkdir()
        argv = ["synth", "biographies", "--n", "2", "--output", str(out.parent)]
    out.write_text("")
    before = snapshot(tmp_path)
    with open(out, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # another `diffuse sample` writing it
        cli_error(capsys, argv, "another process is writing it right now")
    assert snapshot(tmp_path) == before


# --- bad model and adapter folders ------------------------------------------------------------------


def _save_tiny(folder: Path, hidden: int = 32, tokenizer: bool = True) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = char_tokenizer()
    if hidden == 32:
        model = tiny_llama(len(tok))
    else:
        model = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=len(tok),
                hidden_size=hidden,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
            )
        )
    model.save_pretrained(folder)
    if tokenizer:
        tok.save_pretrained(folder)
    return folder


def _adapter_of(base: Path, folder: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj"])
    )
    model.save_pretrained(folder)
    return folder


def _damage(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def bad_model_case(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """Build the folders of one case; return the arguments after the task and the problem to see."""
    models_dir = tmp_path / "models"
    good = _save_tiny(models_dir / "good")
    if case == "model-without-tokenizer":
        return ["--model", str(_save_tiny(models_dir / "notok", tokenizer=False))], "no tokenizer files in"
    if case == "model-weights-truncated":
        folder = _save_tiny(models_dir / "trunc")
        _damage(folder / "model.safetensors", 1000)
        return ["--model", str(folder)], "weights file is truncated or corrupt"
    if case == "model-weights-header-overwritten":
        folder = _save_tiny(models_dir / "header")
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(b"\xff" * 8 + data[8:])
        return ["--model", str(folder)], "weights file is truncated or corrupt"
    if case == "model-config-does-not-fit-its-weights":
        folder = _save_tiny(models_dir / "shapes")
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 2 * config["hidden_size"]}))
        return ["--model", str(folder)], "its weights do not fit its config.json"
    if case == "model-weights-lack-a-layer":
        from safetensors.torch import load_file, save_file

        folder = _save_tiny(models_dir / "cut")
        weights = load_file(folder / "model.safetensors")
        kept = {k: v for k, v in weights.items() if ".layers.1." not in k}
        save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})
        return ["--model", str(folder)], "its weights lack model.layers.1."
    if case == "adapter-for-another-base-model":
        adapter = _adapter_of(_save_tiny(models_dir / "wide", hidden=64), models_dir / "wide-adapter")
        return ["--model", str(good), "--adapter", str(adapter)], "made for another base model"
    if case == "adapter-weights-truncated":
        adapter = _adapter_of(good, models_dir / "adapter")
        _damage(adapter / "adapter_model.safetensors", 50)
        return ["--model", str(good), "--adapter", str(adapter)], "SafetensorError"
    raise AssertionError(case)


BAD_MODEL_CASES = [
    "model-without-tokenizer",
    "model-weights-truncated",
    "model-weights-header-overwritten",
    "model-config-does-not-fit-its-weights",
    "model-weights-lack-a-layer",
    "adapter-for-another-base-model",
    "adapter-weights-truncated",
]


@pytest.mark.parametrize("case", BAD_MODEL_CASES)
def test_a_bad_model_or_adapter_folder_is_one_short_line(tmp_path, capsys, monkeypatch, task_file, case):
    from diffuse_lm.commands import measure

    args, problem = bad_model_case(tmp_path, case)
    monkeypatch.setattr(measure, "load_from_args", REAL_LOAD_FROM_ARGS)
    before = snapshot(tmp_path)
    capsys.readouterr()  # the folders' own saving progress, not the command's
    cli_error(capsys, ["measure", str(task_file), "--output", str(tmp_path / "m.json"), *args], problem)
    assert snapshot(tmp_path) == before


def test_alias_bomb_and_deep_nesting_in_a_training_config_are_one_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("x: &a [1, 2]\n" + _alias_bomb() + "train_prompts: [rng/1-10]\noutput_dir: o\n")
    deep = tmp_path / "deep.yaml"
    deep.write_text("train_prompts: " + "[" * 5000 + "]" * 5000 + "\noutput_dir: o\n")
    twice = tmp_path / "twice.yaml"
    twice.write_text("train_prompts: [rng/1-10]\nlr: 0.1\noutput_dir: o\nlr: 0.2\n")
    for path, problem in (
        (bomb, "aliases expand"),
        (deep, "nested too deeply"),
        (twice, "line 4, column 1: duplicate key 'lr'"),
    ):
        assert main(["train", str(path)]) == 2
        err = capsys.readouterr().err
        assert problem in err and err.count("\n") == 1 and len(err) < 300


@pytest.mark.parametrize(
    ("meta", "problem"),
    [
        ([1, 2], "not a JSON object"),
        ({"n": 3, "task": 5}, "task is int"),
        ({"n": 3, "task": {"name": 5, "path": None}}, "task.name is int"),
        ({"n": "3"}, "n is str"),
    ],
)
def test_a_malformed_samples_sidecar_is_one_line(tmp_path, capsys, samples_file, meta, problem):
    side = Path(str(samples_file) + ".meta.json")
    side.write_text(json.dumps(meta))
    before = snapshot(tmp_path)
    cli_error(capsys, ["stats", str(samples_file), "--no-exact"], f"{side.name}: malformed ({problem})")
    assert snapshot(tmp_path) == before


def test_a_results_file_of_another_command_is_named_by_reproduce_report(tmp_path, capsys):
    (tmp_path / "compare.json").write_text(
        json.dumps({"tasks": [], "rows": []})
    )  # as `diffuse compare` writes
    before = snapshot(tmp_path)
    cli_error(
        capsys,
        ["reproduce", "report", "--output", str(tmp_path)],
        "compare.json: not a `diffuse reproduce compare`",
    )
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("flag", "value", "problem"), [("--temperature", "inf", "finite"), ("--max-new-tokens", "0", ">= 1")]
)
def test_sampling_settings_out_of_range_are_refused(tmp_path, capsys, task_file, flag, value, problem):
    before = snapshot(tmp_path)
    cli_error(capsys, ["sample", str(task_file), "-o", str(tmp_path / "s.jsonl"), flag, value], problem)
    assert snapshot(tmp_path) == before


def test_a_samples_line_whose_index_is_a_boolean_is_not_a_record(tmp_path, capsys, samples_file):
    with open(samples_file, "a") as f:
        f.write(
            json.dumps({"index": True, "text": "zz"}) + "\n"
        )  # JSON true is no index, though bool is an int
    cli_error(capsys, ["stats", str(samples_file), "--no-exact"], "line 4 is not a sample record")


def test_stats_of_an_unfinished_file_says_how_many_samples_it_holds(tmp_path, capsys, samples_file):
    lines = samples_file.read_text().splitlines(keepends=True)
    samples_file.write_text("".join(lines[:2]))  # the last one lost to a kill
    assert main(["stats", str(samples_file), "--no-exact"]) == 0
    assert "holds 2 of the 3 samples its run asked for" in capsys.readouterr().err


def test_an_empty_prompt_is_refused(tmp_path, capsys):
    cli_error(
        capsys, ["sample", "--prompt", " ", "--n", "2", "-o", str(tmp_path / "s.jsonl")], "--prompt: empty"
    )
    assert not (tmp_path / "s.jsonl").exists()
