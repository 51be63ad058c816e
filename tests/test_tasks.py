"""Task files: the original study's JSON loads unchanged, YAML and folders load, every bad input is one
line naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffuse_lm import load_tasks
from diffuse_lm.tasks import TaskError, read_task_file

ROOT = Path(__file__).resolve().parents[1]
RNG_REQUEST = (
    "Generate a random number between 1 and 10. Output only the number between two curly braces, "
    "like this: {number}. Don't output code."
)
ORIGINAL_RNG = {"request": RNG_REQUEST, "response": [""], "targets": [f"{{{i}}}" for i in range(1, 11)]}


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_original_study_json_loads_unchanged(tmp_path):
    task = read_task_file(write(tmp_path, "rng.json", json.dumps(ORIGINAL_RNG)))
    assert task.name == "rng"
    assert task.request == RNG_REQUEST
    assert task.targets == tuple(ORIGINAL_RNG["targets"])
    assert task.responses == ("",)
    assert task.eos is True and task.system is None
    np.testing.assert_allclose(task.weights, np.full(10, 0.1))
    assert task.messages() == [{"role": "user", "content": RNG_REQUEST}]


def test_shipped_example_is_the_papers_rng_task():
    (task,) = load_tasks([str(ROOT / "examples/tasks/rng-1-10.json")])
    assert task.targets == tuple(ORIGINAL_RNG["targets"]) and task.uniform


def test_yaml_equals_json(tmp_path):
    yaml_text = (
        "system: Be brief.\nrequest: Pick a colour.\nresponse: 'Colour: '\n"
        "targets: ['red', 'green', 'blue']\nweights: [2, 1, 1]\neos: false\n"
    )
    data = {
        "system": "Be brief.",
        "request": "Pick a colour.",
        "response": "Colour: ",
        "targets": ["red", "green", "blue"],
        "weights": [2, 1, 1],
        "eos": False,
    }
    a = read_task_file(write(tmp_path, "c.yaml", yaml_text))
    b = read_task_file(write(tmp_path, "c.json", json.dumps(data)))
    for t in (a, b):
        assert t.targets == ("red", "green", "blue") and t.responses == ("Colour: ",) and not t.eos
        np.testing.assert_allclose(t.weights, [0.5, 0.25, 0.25])
        assert t.messages()[0] == {"role": "system", "content": "Be brief."}
    assert (a.request, a.system) == (b.request, b.system)


def test_response_list_is_chosen_per_target(tmp_path):
    data = {**ORIGINAL_RNG, "response": ["A: ", "B: "]}
    task = read_task_file(write(tmp_path, "r.json", json.dumps(data)))
    assert [task.response_for(i) for i in range(4)] == ["A: ", "B: ", "A: ", "B: "]


def test_folder_loads_every_task_file_with_unique_names(tmp_path):
    write(tmp_path, "a.json", json.dumps(ORIGINAL_RNG))
    write(tmp_path, "sub/a.yaml", "request: r\ntargets: ['x', 'y']\n")
    write(tmp_path, "sub/b.YML", "request: r\ntargets: ['x']\nname: custom\n")
    write(tmp_path, "notes.txt", "not a task")
    tasks = load_tasks([str(tmp_path)])
    assert [t.name for t in tasks] == ["a", "a#2", "custom"]
    assert [len(t.targets) for t in tasks] == [10, 2, 1]
    assert tasks[1].path == str(tmp_path / "sub/a.yaml")


def test_same_file_twice_gets_distinct_names(tmp_path):
    path = str(write(tmp_path, "t.json", json.dumps(ORIGINAL_RNG)))
    assert [t.name for t in load_tasks([path, path])] == ["t", "t#2"]
    named = str(write(tmp_path, "n.json", json.dumps({**ORIGINAL_RNG, "name": "t#2"})))
    names = [t.name for t in load_tasks([path, path, named])]
    assert names == ["t", "t#3", "t#2"] and len(set(names)) == 3


BAD = [
    ("bin.json", b"\x80\x81\xfe binary", "cannot read task file (not UTF-8"),
    ("m.json", '{"request": "x", "targets": ["a"', "malformed JSON (line 1"),
    ("m.yaml", "request: x\ntargets: [1, 2\n", "malformed YAML (line"),
    ("empty.yaml", "", "empty task file"),
    ("list.json", '["a", "b"]', "item 1 (line 1): expected a mapping of task keys, got str"),
    ("noreq.json", '{"targets": ["a"]}', "missing request"),
    ("blankreq.json", '{"request": "  ", "targets": ["a"]}', "missing request"),
    ("notargets.json", '{"request": "x"}', "empty targets"),
    ("emptytargets.json", '{"request": "x", "targets": []}', "empty targets"),
    ("dup.json", '{"request": "x", "targets": ["a", "b", "a"]}', "duplicate target 'a'"),
    ("int.yaml", "request: x\ntargets: [1, 2]\n", "target 1 is int 1, not a string"),
    ("emptystr.json", '{"request": "x", "targets": ["a", ""]}', "target 2 is an empty string"),
    (
        "wlen.json",
        '{"request": "x", "targets": ["a", "b"], "weights": [1]}',
        "weights has length 1, targets has 2",
    ),
    ("wtype.json", '{"request": "x", "targets": ["a"], "weights": {"a": 1}}', "weights must be a list"),
    ("wneg.json", '{"request": "x", "targets": ["a", "b"], "weights": [1, -1]}', "weight 2 is negative"),
    ("wnan.json", '{"request": "x", "targets": ["a", "b"], "weights": [1, NaN]}', "weight 2 is nan"),
    ("wnan.yaml", "request: x\ntargets: [a, b]\nweights: [.nan, 1]\n", "weight 1 is nan"),
    ("wstr.json", '{"request": "x", "targets": ["a"], "weights": ["1"]}', "weight 1 is '1', not a number"),
    ("wzero.json", '{"request": "x", "targets": ["a", "b"], "weights": [0, 0]}', "weights are all zero"),
    (
        "prefix.json",
        '{"request": "x", "targets": ["{10}", "1", "10"], "eos": false}',
        "with eos: false, target '1' is a prefix of '10'",
    ),
    ("eos.json", '{"request": "x", "targets": ["a"], "eos": "yes"}', "eos must be true or false"),
    ("resp.json", '{"request": "x", "targets": ["a"], "response": []}', "response must be a string"),
    ("key.json", '{"request": "x", "targets": ["a"], "target": ["b"]}', "unknown key 'target'"),
    ("sys.json", '{"request": "x", "targets": ["a"], "system": 3}', "system must be a string"),
]


@pytest.mark.parametrize("name,content,problem", BAD, ids=[b[0] for b in BAD])
def test_bad_task_file_is_one_line_naming_file_and_problem(tmp_path, name, content, problem):
    path = write(tmp_path, name, content)
    with pytest.raises(TaskError) as err:
        load_tasks([str(path)])
    msg = str(err.value)
    assert msg.startswith(f"{path}: "), msg
    assert problem in msg, msg
    assert "\n" not in msg


def test_eos_true_allows_prefix_targets(tmp_path):
    task = read_task_file(write(tmp_path, "p.json", '{"request": "x", "targets": ["1", "10"]}'))
    assert task.targets == ("1", "10")


def test_missing_spec_and_empty_folder(tmp_path):
    with pytest.raises(TaskError, match="no such task file, folder or built-in task"):
        load_tasks([str(tmp_path / "nope.json")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match="folder holds no task files"):
        load_tasks([str(tmp_path / "empty")])


def test_a_folder_too_large_to_be_a_task_folder_is_refused_early(tmp_path, monkeypatch):
    """A folder such as `/` is refused once the walk passes the limit, not after walking the whole disk."""
    import diffuse_lm.files as files_module

    for i in range(3):
        write(tmp_path, f"d{i}/t.json", json.dumps(ORIGINAL_RNG))
    assert len(load_tasks([str(tmp_path)])) == 3
    monkeypatch.setattr(files_module, "MAX_FOLDER_ENTRIES", 6)  # 3 folders, 3 files: just within
    assert len(load_tasks([str(tmp_path)])) == 3
    monkeypatch.setattr(files_module, "MAX_FOLDER_ENTRIES", 5)
    with pytest.raises(TaskError, match=f"^{tmp_path}: more than 5 files and folders below it"):
        load_tasks([str(tmp_path)])


def test_bad_file_inside_folder_is_named(tmp_path):
    write(tmp_path, "good.json", json.dumps(ORIGINAL_RNG))
    bad = write(tmp_path, "z/bad.json", '{"request": "x", "targets": []}')
    with pytest.raises(TaskError, match=f"^{bad}: empty targets"):
        load_tasks([str(tmp_path)])


def test_a_folder_entry_named_like_a_task_that_is_no_file_is_an_error_and_an_empty_name_too(tmp_path):
    import os

    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "one.json").write_text('{"request": "x", "targets": ["a"]}')
    assert [t.request for t in load_tasks([str(folder)])] == ["x"]
    (folder / "broken.json").symlink_to(tmp_path / "nonexistent.json")
    with pytest.raises(TaskError, match="broken.json: named like a task file but not a readable file"):
        load_tasks([str(folder)])
    (folder / "broken.json").unlink()
    os.mkfifo(folder / "pipe.yaml")  # reading it would block
    with pytest.raises(TaskError, match="pipe.yaml: named like a task file"):
        load_tasks([str(folder)])
    with pytest.raises(TaskError, match="an empty task name"):
        load_tasks([""])
