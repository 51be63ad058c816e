"""The built-in task library: every task loads and says what the paper asks, groups resolve, natural
distributions are distributions, the generator reproduces the shipped files, and `diffuse tasks` works."""

from __future__ import annotations

import calendar
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from diffuse_lm import load_tasks
from diffuse_lm.cli import main
from diffuse_lm.errors import DiffuseError
from diffuse_lm.paper_prompts import BIOGRAPHY_PROMPT, RNG_FORMATS, rng_task
from diffuse_lm.tasks import builtin_dir, builtin_groups, builtin_tasks

ROOT = Path(__file__).resolve().parents[1]
DATA = builtin_dir().parent
MANIFEST = json.loads((DATA / "generated.json").read_text())
GENERATED = sorted(f[len("tasks/") : -len(".json")] for f in MANIFEST["files"] if f.startswith("tasks/"))
PAPER_SIX = {"BABYNAMES", "COUNTRIES", "FRUITS", "DAYS AND DATES", "NUMBERS", "OCCUPATIONS"}


@pytest.fixture(scope="module")
def tasks():
    return {t.name: t for t in load_tasks(GENERATED)}


def test_every_generated_task_loads_with_its_own_name_and_braced_targets(tasks):
    assert set(GENERATED) <= set(builtin_tasks())
    assert len(tasks) == len(GENERATED) > 50
    for name, t in tasks.items():
        assert json.loads(Path(t.path).read_text())["name"] == name
        assert t.family and t.description
        assert all(x.startswith("{") and x.endswith("}") for x in t.targets), name
        assert "braces" in t.request, name
    families = Counter(t.family for t in tasks.values())
    assert set(families) == PAPER_SIX | {"RNG", "BIOGRAPHIES"}


def test_each_task_has_several_phrasings_of_the_same_targets(tasks):
    by_task = {}
    for name, t in tasks.items():
        if name.rsplit("/", 1)[-1].startswith("p"):
            by_task.setdefault(name.rsplit("/", 1)[0], []).append(t)
    for stem in (
        "fruits/fruit",
        "countries/africa",
        "days-dates/june",
        "numbers/prime",
        "occupations/any",
        "babynames/train",
    ):
        variants = by_task[stem]
        assert len(variants) >= 3 and len({t.request for t in variants}) == len(variants)
        assert len({t.targets for t in variants}) == 1
    assert len(load_tasks(["fruits/fruit"])) == len(by_task["fruits/fruit"])  # a prefix selects them all


def test_groups_resolve_to_what_the_experiments_need():
    groups = builtin_groups()
    assert {"paper-six", "rng-train", "rng-formats"} <= set(groups)
    for name in groups:
        assert load_tasks([name])
    six = load_tasks(["paper-six"])
    assert {t.family for t in six} == PAPER_SIX
    assert {t.name.rsplit("/", 1)[0] for t in six if t.family == "BABYNAMES"} == {"babynames/train"}
    train = load_tasks(["rng-train"])
    assert [t.name for t in train] == ["rng/1-10", "rng/1-100"]
    assert all(t.request == rng_task(1, len(t.targets)).request for t in train)  # the paper's prompt
    formats = load_tasks(["rng-formats"])
    assert len(formats) == 10 and {t.name[-2:] for t in formats} == {f"p{k}" for k in range(1, 6)}
    assert [t.name for t in load_tasks(["rng/1-10"])] == ["rng/1-10"]  # a name beats a folder prefix
    assert {t.name for t in load_tasks(["babynames"])} == {f"babynames/train/p{k}" for k in range(3)}


def test_weighted_tasks_are_distributions_and_the_natural_head_is_the_natural_renormalised(tasks):
    weighted = [t for t in tasks.values() if not t.uniform]
    assert {t.family for t in weighted} == {"BABYNAMES"}
    for t in weighted:
        assert abs(t.weights.sum() - 1) < 1e-9 and (t.weights > 0).all()
    natural = tasks["babynames-natural/all"]
    head = tasks["babynames-natural/top1000"]
    assert head.targets == natural.targets[:1000]
    np.testing.assert_allclose(
        head.weights, natural.weights[:1000] / natural.weights[:1000].sum(), rtol=1e-12
    )
    assert np.all(np.diff(natural.weights) <= 0)  # most common first
    train = tasks["babynames/train/p0"]
    assert len(train.targets) == 200 and set(train.targets) <= set(natural.targets)
    raw = json.loads(Path(train.path).read_text())["weights"]
    assert all(isinstance(w, int) and w >= 1 for w in raw)  # draw counts: the sample's empirical weights


def test_rng_task_builds_any_range_in_every_paper_format(tasks):
    for fmt in range(len(RNG_FORMATS)):
        shipped = tasks["rng/1-10" if fmt == 0 else f"rng/formats/1-10/p{fmt}"]
        built = rng_task(1, 10, fmt)
        assert (built.request, built.targets, built.name) == (shipped.request, shipped.targets, shipped.name)
    t = rng_task(154, 204, 3)
    assert (
        t.name == "rng/formats/154-204/p3"
        and rng_task(5, 9).name == "rng/5-9"
        and len(t.targets) == 51
        and t.targets[0] == "{154}"
    )
    assert "between 154 and 204" in t.request and "bweet" in t.request  # Appendix B.1's typo, verbatim
    assert "[154, 204]" in rng_task(154, 204, 4).request
    assert rng_task(1, 10).request.startswith("Generate a random number between 1 and 10.")
    for bad in ((10, 1, 0), (1, 10, 6), (1, 10, -1), (1.0, 10, 0)):
        with pytest.raises(DiffuseError):
            rng_task(*bad)


def test_numbers_and_dates_are_exactly_the_valid_answers(tasks):
    primes = [n for n in range(2, 51) if all(n % d for d in range(2, n))]
    assert tasks["numbers/prime/p0"].targets == tuple(f"{{{n}}}" for n in primes)
    assert "prime number between 1 and 50" in tasks["numbers/prime/p0"].request  # the paper's prompt
    assert tasks["numbers/even/p1"].targets == tuple(f"{{{n}}}" for n in range(2, 51, 2))
    assert tasks["numbers/odd/p2"].targets == tuple(f"{{{n}}}" for n in range(1, 50, 2))
    assert len(tasks["days-dates/day/p0"].targets) == 7
    assert (
        tasks["days-dates/june/p0"].targets[-1] == "{June 30}"
        and len(tasks["days-dates/june/p0"].targets) == 30
    )
    assert len(tasks["days-dates/december/p0"].targets) == 31
    assert (
        len(tasks["days-dates/date/p0"].targets) == 366
        and "{February 29}" in tasks["days-dates/date/p0"].targets
    )
    assert tasks["days-dates/month/p0"].targets == tuple(f"{{{m}}}" for m in calendar.month_name[1:])


def test_countries_fruits_and_occupations_are_large_enough(tasks):
    sizes = {
        c: len(tasks[f"countries/{c}/p0"].targets)
        for c in ("africa", "asia", "europe", "north-america", "south-america", "oceania")
    }
    assert sizes["africa"] == 54 and sizes["south-america"] == 12 and sum(sizes.values()) == 195
    everywhere = [x for c in sizes for x in tasks[f"countries/{c}/p0"].targets]
    assert len(set(everywhere)) == len(everywhere)  # each country on one continent
    assert len(tasks["fruits/fruit/p0"].targets) >= 80
    letter_a = tasks["occupations/letter-a/p0"]
    assert len(letter_a.targets) >= 17 and all(x.startswith("{A") for x in letter_a.targets)
    assert 'starts with the letter "A"' in letter_a.request
    assert set(letter_a.targets) < set(tasks["occupations/any/p0"].targets)


def test_biography_training_set_is_balanced_and_continues_the_paper_prompt(tasks):
    t = tasks["biographies/train"]
    assert t.request == BIOGRAPHY_PROMPT and not t.eos and len(t.targets) == 210
    assert BIOGRAPHY_PROMPT.startswith("Generate a random biography sketch of a fictional, notable person.")
    fields = [x.split("\n") for x in t.targets]
    assert all(len(f) == 4 and all(v.startswith("{") and v.endswith("}") for v in f) for f in fields)
    assert Counter(f[1] for f in fields) == {"{Female}": 70, "{Male}": 70, "{Non-binary}": 70}
    years = Counter(int(f[2][-5:-1]) for f in fields)
    assert set(years) == set(range(1900, 2005)) and set(years.values()) == {2}
    continent_of = {
        x[1:-1]: c
        for c in ("africa", "asia", "europe", "north-america", "south-america", "oceania")
        for x in tasks[f"countries/{c}/p0"].targets
    }
    per_continent = Counter(continent_of[f[3][1:-1].rsplit(", ", 1)[1]] for f in fields)
    assert set(per_continent.values()) == {35}


def test_generator_reproduces_the_shipped_files(tmp_path):
    for pkg, version in MANIFEST["packages"].items():
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"{pkg} is not installed (pip install -e '.[data]')")
        if metadata.version(pkg) != version:
            pytest.skip(f"{pkg} {metadata.version(pkg)} installed; the files were made with {version}")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_tasks.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    made = json.loads((tmp_path / "generated.json").read_text())
    assert made["files"] == MANIFEST["files"]
    for rel in MANIFEST["files"] + ["generated.json"]:
        assert (tmp_path / rel).read_bytes() == (DATA / rel).read_bytes(), rel


def test_cli_lists_and_shows_tasks(capsys, tmp_path):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "rng/1-10" in out and "paper-six" in out and "weighted" in out
    assert main(["tasks", "show", "rng/formats/1-10/p3"]) == 0
    assert "bweet" in capsys.readouterr().out
    assert main(["tasks", "show", "babynames/train/p0", "--limit", "3"]) == 0
    assert "3 of 200" in capsys.readouterr().out
    assert main(["tasks", "show", "rng-train"]) == 0
    assert "2 tasks" in capsys.readouterr().out
    own = tmp_path / "mine.json"
    own.write_text(json.dumps({"request": "Pick a colour. Output {colour}.", "targets": ["{red}", "{blue}"]}))
    assert main(["tasks", "show", str(own)]) == 0 and "{blue}" in capsys.readouterr().out
    assert main(["tasks", "show", "no/such/task"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffuse: error: no/such/task") and err.count("\n") == 1


@pytest.mark.slow
def test_every_builtin_task_is_prefix_free_under_the_default_tokenizer(tasks):
    from transformers import AutoTokenizer

    from diffuse_lm.encoding import encode_tasks
    from diffuse_lm.models import default_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_dir()))
    encoded = encode_tasks(tokenizer, list(tasks.values()))  # raises on a target that prefixes another
    assert sum(e.n_targets for e in encoded) == sum(len(t.targets) for t in tasks.values())
    bio = next(e for e in encoded if e.task.name == "biographies/train")
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert all(ids[-1] != eot for ids in bio.target_ids)  # eos: false leaves the turn open
