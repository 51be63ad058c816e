"""Tasks from data: JSONL and JSON/YAML lists of tasks, and a ``datasets`` dataset through a YAML mapping;
errors name the file and the line or row; a JSONL measures in one call and a CSV dataset trains."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_measure import assert_one_line_error
from test_training import save_tiny_model

from diffuse_lm import load_tasks
from diffuse_lm.cli import main
from diffuse_lm.tasks import TaskError, read_task_file

THREE = [
    {"request": "Pick a or b.", "targets": ["a", "b"]},
    {"name": "xyz", "request": "Pick x, y or z.", "targets": ["x", "y", "z"], "weights": [1, 1, 2]},
    {"request": "Pick 1, 2, 3 or 4.", "targets": ["1", "2", "3", "4"]},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- many tasks in one file ----------------------------------------------------------------------


def test_jsonl_holds_one_task_a_line_named_by_place_unless_named(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(THREE[0]) + "\n\n" + "".join(json.dumps(t) + "\n" for t in THREE[1:]))
    tasks = load_tasks([str(path)])
    assert [t.name for t in tasks] == ["mine/1", "xyz", "mine/3"]
    assert [len(t.targets) for t in tasks] == [2, 3, 4] and tasks[1].weights.tolist() == [0.25, 0.25, 0.5]
    assert {t.path for t in tasks} == {str(path)}


def test_json_and_yaml_lists_of_tasks_load_and_errors_name_item_and_line(tmp_path):
    (tmp_path / "l.json").write_text(json.dumps(THREE, indent=2))
    (tmp_path / "l.yaml").write_text(
        "- request: Pick a or b.\n  targets: [a, b]\n- request: Pick c.\n  targets: [c]\n"
    )
    assert [t.name for t in load_tasks([str(tmp_path / "l.json")])] == ["l/1", "xyz", "l/3"]
    assert [t.targets for t in load_tasks([str(tmp_path / "l.yaml")])] == [("a", "b"), ("c",)]

    (tmp_path / "bad.json").write_text('[\n  {"request": "x", "targets": ["a"]},\n\n  {"request": "y"}\n]')
    with pytest.raises(TaskError, match=r"bad.json: item 2 \(line 4\): empty targets"):
        load_tasks([str(tmp_path / "bad.json")])
    (tmp_path / "bad.yaml").write_text("- request: x\n  targets: [a]\n- request: y\n  targets: [b, b]\n")
    with pytest.raises(TaskError, match=r"bad.yaml: item 2 \(line 3\): duplicate target 'b'"):
        load_tasks([str(tmp_path / "bad.yaml")])
    with pytest.raises(TaskError, match="holds 3 tasks, expected one"):
        read_task_file(tmp_path / "l.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(TaskError, match="holds no tasks"):
        load_tasks([str(tmp_path / "empty.json")])


def test_a_folder_includes_jsonl_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", THREE[:2])
    (tmp_path / "b.json").write_text(json.dumps(THREE[2]))
    assert [t.name for t in load_tasks([str(tmp_path)])] == ["a/1", "xyz", "b"]


@pytest.mark.parametrize(
    "lines, problem",
    [
        (['{"request": "x", "targets": ["a"]}', '{"request": "y", "targets": ['], "line 2: malformed JSON"),
        (['{"request": "x", "targets": ["a"]}', "", '{"targets": ["a"]}'], "line 3: missing request"),
        (['["not", "a", "task"]'], "line 1: expected a mapping"),
    ],
)
def test_bad_jsonl_line_is_one_line_error_naming_the_line(tmp_path, capsys, lines, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code = main(["measure", str(path), "--model", "/nonexistent"])
    assert_one_line_error(code, capsys.readouterr().err, str(path), problem)


def test_a_jsonl_of_three_tasks_measures_in_one_call(tmp_path, model_dir, capsys):
    path = write_jsonl(tmp_path / "three.jsonl", THREE)
    out = tmp_path / "m.json"
    assert main(["measure", str(path), "--model", str(model_dir), "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [t["name"] for t in result["tasks"]] == ["three/1", "xyz", "three/3"]
    assert all(abs(sum(r["prob"] for r in t["targets"]) - 1) < 1e-9 for t in result["tasks"])
    assert "xyz" in capsys.readouterr().out


# --- a datasets dataset through a YAML mapping ---------------------------------------------------

CSV = 'id,kind,answers,w\nf,fruit,"apple|banana",1|3\nc,colour,"red|blue|green",1|1|1\n'


def write_dataset(folder: Path, mapping: str, csv: str = CSV) -> Path:
    """``data/q.csv`` and ``spec/q.yaml`` pointing at it by a path relative to the YAML file."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "spec").mkdir(exist_ok=True)
    (folder / "data" / "q.csv").write_text(csv)
    spec = folder / "spec" / "q.yaml"
    spec.write_text("dataset_path: csv\ndata_files: ../data/q.csv\n" + mapping)
    return spec


def test_csv_dataset_rows_become_tasks_with_data_files_relative_to_the_yaml(tmp_path, monkeypatch):
    spec = write_dataset(
        tmp_path,
        'doc_to_text: "Pick a random {{ kind }}."\ntargets_column: answers\ntargets_separator: "|"\n'
        "weights_column: w\nname_column: id\nsystem: Be random.\n",
    )
    monkeypatch.chdir(tmp_path / "data")  # not the YAML's folder: data_files still resolve
    tasks = load_tasks([str(spec)])
    assert [t.name for t in tasks] == ["f", "c"]
    assert tasks[0].request == "Pick a random fruit." and tasks[0].targets == ("apple", "banana")
    assert tasks[0].weights.tolist() == [0.25, 0.75] and tasks[1].uniform
    assert tasks[0].system == "Be random." and tasks[0].path == str(spec)
    assert tasks[0].sources == (str(tmp_path / "spec" / "../data/q.csv"),)


def test_request_column_and_fixed_choices_and_json_list_cells(tmp_path):
    spec = write_dataset(
        tmp_path,
        "request_column: kind\ndoc_to_choice: ['{1}', '{2}']\nlimit: 1\n",
    )
    (task,) = load_tasks([str(spec)])
    assert task.name == "q/1" and task.request == "fruit" and task.targets == ("{1}", "{2}")
    spec = write_dataset(
        tmp_path, "doc_to_text: kind\ntargets_column: answers\n", csv='kind,answers\nfruit,"[""a"", ""b""]"\n'
    )
    assert load_tasks([str(spec)])[0].targets == ("a", "b")


@pytest.mark.parametrize(
    "mapping, problem",
    [
        ("request_column: question\ntargets_column: answers\n", "request_column 'question' is not a column"),
        ("request_column: kind\n", "give exactly one of targets_column, doc_to_choice, targets"),
        ("request_column: kind\ntargets_column: answers\ncolumn: x\n", "unknown key 'column'"),
        (
            "request_column: kind\ntargets_column: answers\n",
            "row 1: column 'answers' holds 'apple|banana', not a list",
        ),
        (
            "doc_to_text: '{{ nope }}'\ntargets_column: answers\ntargets_separator: '|'\n",
            "row 1: doc_to_text:",
        ),
        (
            "request_column: kind\ntargets_column: answers\ntargets_separator: '|'\nweights: [1]\n",
            "row 1: weights has length 1, targets has 2",
        ),
    ],
)
def test_bad_mapping_is_one_line_error_naming_the_yaml_and_row(tmp_path, capsys, mapping, problem):
    spec = write_dataset(tmp_path, mapping)
    code = main(["measure", str(spec), "--model", "/nonexistent"])
    assert_one_line_error(code, capsys.readouterr().err, str(spec), problem)


def test_missing_data_file_and_bad_row_cells_are_named(tmp_path, capsys):
    spec = tmp_path / "q.yaml"
    spec.write_text("dataset_path: csv\ndata_files: nowhere.csv\nrequest_column: a\ntargets_column: b\n")
    code = main(["measure", str(spec), "--model", "/nonexistent"])
    assert_one_line_error(code, capsys.readouterr().err, str(spec), "data_files 'nowhere.csv': no such file")
    spec = write_dataset(
        tmp_path,
        "request_column: kind\ntargets_column: answers\ntargets_separator: '|'\nweights_column: w\n",
        csv='kind,answers,w\nfruit,"a|b",1|2\ncolour,"c|d",1|x\n',
    )
    with pytest.raises(TaskError, match=r"q.yaml: row 2: weight 'x' is not a number"):
        load_tasks([str(spec)])


def test_tasks_from_dataset_in_memory_rows():
    import datasets

    from diffuse_lm import tasks_from_dataset

    rows = [{"q": "Pick a or b.", "t": ["a", "b"]}, {"q": "Pick c or d.", "t": ["c", "d"]}]
    for data in (rows, datasets.Dataset.from_list(rows)):
        tasks = tasks_from_dataset(data, name="mem", request_column="q", targets_column="t")
        assert [(t.name, t.targets) for t in tasks] == [("mem/1", ("a", "b")), ("mem/2", ("c", "d"))]
    with pytest.raises(TaskError, match=r"dataset 'mem': row 2: duplicate target 'c'"):
        tasks_from_dataset(
            [*rows, {"q": "x", "t": ["c", "c"]}][1:], name="mem", request_column="q", targets_column="t"
        )


def test_a_dataset_built_from_a_local_csv_trains_two_steps(tmp_path, model_dir, monkeypatch):
    from diffuse_lm import train

    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    spec = write_dataset(
        tmp_path, "request_column: kind\ntargets_column: answers\ntargets_separator: '|'\nweights_column: w\n"
    )
    over = {
        "model": str(model_dir),
        "device": "cpu",
        "lr": 0.02,
        "alg_config": {"n_iters": 1, "batch_size": 2},  # 2 rows: 2 steps
    }
    summary = train(train_prompts=[str(spec)], output_dir=str(tmp_path / "run"), **over).summary
    assert summary["steps"] == 2 and (Path(summary["adapter_dir"]) / "adapter_model.safetensors").exists()
    assert [t["name"] for t in summary["after"]["tasks"]] == ["q/1", "q/2"]

    # the same rows as in-memory tasks: one JSONL task file in the cache, and the same run
    tasks = load_tasks([str(spec)])
    again = train(train_prompts=tasks, output_dir=str(tmp_path / "run2"), **over).summary
    assert len(list((tmp_path / "cache" / "tasks").glob("*.jsonl"))) == 1
    assert again["final_loss"] == pytest.approx(summary["final_loss"])


def test_an_unreachable_hub_id_fails_at_once_and_remote_code_is_refused(tmp_path, monkeypatch):
    import diffuse_lm.models as models

    monkeypatch.setattr(models, "_hub_reachable", lambda *a, **k: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    spec = tmp_path / "hub.yaml"
    spec.write_text("dataset_path: someorg/somedata\nrequest_column: q\ntargets_column: t\n")
    with pytest.raises(TaskError, match=r"hub.yaml: dataset_path 'someorg/somedata': .*not reachable"):
        load_tasks([str(spec)])
    spec = write_dataset(
        tmp_path, "request_column: kind\ndoc_to_choice: [a]\ndataset_kwargs: {trust_remote_code: true}\n"
    )
    with pytest.raises(TaskError, match="trust_remote_code is refused"):
        load_tasks([str(spec)])


def test_stats_finds_the_recorded_task_in_a_file_of_many(tmp_path):
    from diffuse_lm.commands.stats import resolve_task

    path = write_jsonl(tmp_path / "three.jsonl", THREE)
    meta = {"task": {"name": "xyz", "path": str(path)}}
    assert resolve_task(None, meta).targets == ("x", "y", "z")
    assert resolve_task(None, {"task": {"name": "three/3", "path": str(path)}}).name == "three/3"
