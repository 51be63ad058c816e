"""Hostile input on the newer surfaces (issue 27), one table: samples files, dataset mappings, synth, compare,
train's run folder, sampling settings, doc_to_text templates, files that are no regular files, samples sidecars
and export. Every case is refused before any model load with exit code 2 and one line on stderr of under 300
characters, never a traceback; nothing under the test's folder changes and no partial file is left. Faults and
checks that need a model are in ``test_hostile_faults.py``."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_hostile_inputs import GOOD_TASK, cli_error, snapshot

Case = Callable[[Path, Path, pytest.MonkeyPatch], tuple[list[str], str]]
CASES: dict[str, Case] = {}


def case(*names: str):
    """Register a builder of hostile input: ``(folder, a good task file, monkeypatch) -> (argv, problem)``."""

    def register(build):
        for name in names:
            CASES[name] = lambda tmp, task, mp, name=name: build(tmp, task, mp, name)
        return build

    return register


# --- 1. a file that is not a samples file of this command is never truncated or appended to ---------

USERS_FILES = {
    "notes.txt": "my one line of notes, no newline",
    "data.json": '{"a": 1}',
    "lines.txt": "a\nb\n",
}


@case(*(f"sample-onto-a-users-{name}" for name in USERS_FILES))
def _users_file(tmp, task, mp, name):
    path = tmp / name.removeprefix("sample-onto-a-users-")
    path.write_text(USERS_FILES[path.name])
    return ["sample", str(task), "-o", str(path)], "no samples file of diffuse"


@case("synth-onto-a-users-generations")
def _users_generations(tmp, task, mp, name):
    (tmp / "bios").mkdir()
    (tmp / "bios" / "generations.jsonl").write_text("my own generations")
    return ["synth", "biographies", "--n", "2", "-o", str(tmp / "bios")], "no samples file of diffuse"


# --- 2. an output that is an input of a dataset mapping: a file it matched, will match, or its folder ---


def _mapping(tmp: Path, where: str) -> Path:
    pytest.importorskip("datasets")
    (tmp / "data").mkdir()
    (tmp / "data" / "q1.csv").write_text("q,answers\nPick one.,a|b\n")
    (tmp / "data" / "q2.csv").write_text("q,answers\nPick two.,c|d\n")
    spec = tmp / "q.yaml"
    spec.write_text(f'{where}\nrequest_column: q\ntargets_column: answers\ntargets_separator: "|"\n')
    return spec


@case("rows-onto-a-matched-data-file", "rows-a-pattern-would-match")
def _rows_onto_data(tmp, task, mp, name):
    spec = _mapping(tmp, "dataset_path: csv\ndata_files: data/q*.csv")
    rows = tmp / "data" / ("q2.csv" if "matched" in name else "q3.csv")
    return ["measure", str(spec), "--rows", str(rows)], "q*.csv, data files this command reads"


@case("output-in-a-dataset-folder")
def _output_in_data_dir(tmp, task, mp, name):
    spec = _mapping(tmp, f"dataset_path: csv\ndataset_kwargs: {{data_dir: {tmp / 'data'}}}")
    return ["measure", str(spec), "-o", str(tmp / "data" / "m.json")], "a dataset folder this command reads"


@case("data-dir-past-the-entry-limit")
def _huge_data_dir(tmp, task, mp, name):
    from diffuse_lm import files

    mp.setattr(files, "MAX_FOLDER_ENTRIES", 50)  # as `data_dir: /` passes the real limit
    (tmp / "big").mkdir()
    for i in range(60):
        (tmp / "big" / f"{i}.csv").write_text("q\n")
    spec = _mapping(tmp, f"dataset_path: csv\ndataset_kwargs: {{data_dir: {tmp / 'big'}}}")
    return ["measure", str(spec)], "big: more than 50 files and folders below it; give the folder that holds"


# --- 3. a user's file named like an output is not replaced ------------------------------------------


@case("synth-replaces-a-users-report")
def _users_report(tmp, task, mp, name):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "report.md").write_text("# my report\n")
    return ["synth", "biographies", "--n", "2", "-o", str(tmp / "mine")], "report.md: exists"


@case("compare-replaces-a-users-table")
def _users_table(tmp, task, mp, name):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "compare.md").write_text("# my table\n")
    return ["compare", str(task), "-o", str(tmp / "mine")], "compare.md: exists"


@case("train-overwrite-of-a-users-summary")
def _users_summary(tmp, task, mp, name):
    (tmp / "mine").mkdir()
    (tmp / "mine" / "summary.json").write_text('{"my": "summary"}')
    config = tmp / "c.yaml"
    config.write_text(yaml.safe_dump({"train_prompts": [str(task)], "output_dir": str(tmp / "mine")}))
    return ["train", str(config), "--overwrite"], "summary.json but no config.yaml"


# --- 8. sampling settings below float32 ------------------------------------------------------------

FLOAT32 = {
    "temperature-below-float32": (["sample", "--temperature", "1e-45"], "smallest float32"),
    "top-p-below-float32": (["sample", "--top-p", "1e-300"], "smallest float32"),
    "compare-temperature-below-float32": (
        ["compare", "--methods", "temperature:1e-45"],
        "float32's smallest",
    ),
    "compare-top-p-below-float32": (["compare", "--methods", "top_p:1e-300"], "float32's smallest"),
    "compare-min-p-below-float32": (["compare", "--methods", "min_p:1e-300"], "float32's smallest"),
}


@case(*FLOAT32)
def _below_float32(tmp, task, mp, name):
    (command, *flags), problem = FLOAT32[name]
    out = str(tmp / ("s.jsonl" if command == "sample" else "cmp"))
    return [command, str(task), "-o", out, *flags], problem


# --- 11. doc_to_text that fails while rendering ---------------------------------------------------

TEMPLATES = {
    "template-divides-by-zero": ("{{ 1/0 }}", "row 1: doc_to_text: ZeroDivisionError"),
    "template-pops": ("{{ [].pop() }}", "row 1: doc_to_text: SecurityError"),
    "template-column-self": ("{{ self }} {{ q }}", "column 'self' has a name Jinja keeps for itself"),
    "template-huge-repeat": ("{{ 'x' * 10**10 }}", "row 1: doc_to_text: SecurityError: a repeat to more"),
    "template-huge-output": ("{% for i in range(99999) %}{{ 'y' * 99 }}{% endfor %}", "renders more than"),
    "template-dunder": ("{{ q.__class__.__mro__ }}", "row 1: doc_to_text: SecurityError"),
}


@case(*TEMPLATES)
def _template(tmp, task, mp, name):
    pytest.importorskip("datasets")
    template, problem = TEMPLATES[name]
    (tmp / "q.csv").write_text("q,answers,self\nPick one.,a|b,me\n")
    spec = {"dataset_path": "csv", "data_files": "q.csv", "doc_to_text": template}
    (tmp / "q.yaml").write_text(
        yaml.safe_dump({**spec, "targets_column": "answers", "targets_separator": "|"})
    )
    return ["measure", str(tmp / "q.yaml")], problem


# --- 17. what is no regular file is refused unread -------------------------------------------------

UNREADABLE = {
    "stats-of-a-fifo": (["stats", "FIFO"], "is a FIFO, not a regular file; cannot read it as a samples file"),
    "stats-of-dev-zero": (["stats", "/dev/zero"], "is a device, not a regular file"),
    "measure-of-a-fifo": (
        ["measure", "FIFO"],
        "is a FIFO, not a regular file; cannot read it as a task file",
    ),
    "tasks-show-dev-zero": (["tasks", "show", "/dev/zero"], "is a device, not a regular file"),
    "train-of-a-fifo": (
        ["train", "FIFO"],
        "is a FIFO, not a regular file; cannot read it as a training config",
    ),
    "configs-cp-onto-a-fifo": (
        ["configs", "cp", "smollm2-135m/rng-1-10", "FIFO", "--overwrite"],
        "is not a regular file",
    ),
}


@case(*UNREADABLE)
def _unreadable(tmp, task, mp, name):
    argv, problem = UNREADABLE[name]
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    return [str(fifo) if a == "FIFO" else a for a in argv], problem


# --- 14, 20. a samples sidecar or an adapter config that is malformed -------------------------------


@case("sidecar-whose-n-is-no-count")
def _sidecar_n(tmp, task, mp, name):
    (tmp / "s.jsonl").write_text(json.dumps({"index": 0, "text": "{a}"}) + "\n")
    (tmp / "s.jsonl.meta.json").write_text(json.dumps({"format": "diffuse-samples/1", "n": -5}))
    return ["stats", str(tmp / "s.jsonl"), "--no-exact"], "malformed (n is -5, not a count of samples)"


ADAPTER_CONFIGS = {
    "export-adapter-config-malformed": ("{not json", "adapter_config.json is malformed"),
    "export-adapter-config-a-list": ("[1, 2]", "adapter_config.json holds a list"),
}


@case(*ADAPTER_CONFIGS)
def _adapter_config(tmp, task, mp, name):
    content, problem = ADAPTER_CONFIGS[name]
    adapter = tmp / "run" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(content)
    (adapter / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return ["export", str(adapter), "-o", str(tmp / "out")], problem


# --- the table ------------------------------------------------------------------------------------


@pytest.fixture
def no_model(monkeypatch):
    """Any model load fails the test: the input must be refused before it."""
    from diffuse_lm import models
    from diffuse_lm.cli import build_parser
    from diffuse_lm.commands import common, compare, measure, sample, synth

    build_parser()

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded")

    for module, name in (
        (measure, "load_from_args"),
        (compare, "load_from_args"),
        (sample, "load_for_sampling"),
        (synth, "load_for_sampling"),
        (common, "load_from_args"),
        (models, "load_model"),
    ):
        monkeypatch.setattr(module, name, loaded)


@pytest.fixture
def alarm():
    """A read that blocks (a FIFO) fails the test after 30 s instead of hanging it."""

    def hung(*_):
        raise AssertionError("blocked on a read")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_one_line_and_changes_nothing(tmp_path, capsys, monkeypatch, no_model, alarm, name):
    task = tmp_path / "tasks" / "letters.json"
    task.parent.mkdir()
    task.write_text(GOOD_TASK)
    argv, problem = CASES[name](tmp_path, task, monkeypatch)
    before = snapshot(tmp_path)
    cli_error(capsys, argv, problem)
    assert snapshot(tmp_path) == before  # nothing written, replaced, truncated or deleted
    partial = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or "-tmp" in p.name]
    assert not partial and not (tmp_path / "out").exists(), partial
