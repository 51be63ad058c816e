"""Validity as a first-class result: yields, broader valid sets than the targets, invented answers in samples,
answer-like outputs of open-ended requests, and the format tasks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffuse_lm import metrics as M
from diffuse_lm.experiments.open_ended import answer_like, prompts, summarize, summarize_prompt
from diffuse_lm.measuring import measure_tasks, with_valid
from diffuse_lm.parsing import sample_stats, valid_answers
from diffuse_lm.tasks import TaskError, load_tasks, task_from_dict

ROOT = Path(__file__).resolve().parents[1]


def test_yield_is_the_expected_number_of_distinct_valid_answers_by_simulation():
    rng = np.random.default_rng(0)
    p = np.array([0.3, 0.2, 0.1, 0.05])  # 0.35 on answers outside the valid set
    exact = M.expected_yield(np.log(p), 20)
    draws = rng.choice(5, size=(20_000, 20), p=[*p, 1 - p.sum()])
    simulated = np.mean([len(set(d) - {4}) for d in draws])
    assert exact == pytest.approx(simulated, abs=0.02)
    # spreading the same valid mass more evenly raises the yield; losing valid mass lowers it
    assert M.expected_yield(np.log(np.full(4, 0.65 / 4)), 20) > exact
    assert M.expected_yield(np.log(p / 10), 20) < exact


def test_metrics_report_valid_mass_and_yield_over_targets_and_broader_valid_answers():
    lp = np.log([0.2, 0.2])
    m = M.distribution_metrics(lp, np.array([0.5, 0.5]), valid_logprobs=np.log([0.3, 0.1]))
    assert m["mass"] == pytest.approx(0.4) and m["valid_mass"] == pytest.approx(0.8)
    assert m["n_targets"] == 2 and m["n_valid"] == 4
    assert m["normalized_entropy"] == pytest.approx(1.0)  # over the targets, renormalised
    assert m["yield_20"] == pytest.approx(M.expected_coverage(np.array([0.2, 0.2, 0.3, 0.1]), 20))
    alone = M.distribution_metrics(lp, np.array([0.5, 0.5]))
    assert alone["valid_mass"] == alone["mass"] and alone["yield_100"] == pytest.approx(2.0, abs=1e-6)


def test_valid_key_takes_a_list_or_a_task_name_and_leaves_the_targets_out(tmp_path):
    t = task_from_dict(
        {"request": "r", "targets": ["{a}", "{b}"], "valid": ["{b}", "{c}", "{c}"]}, source="t.json"
    )
    assert t.valid == ("{c}",) and t.valid_set == ("{a}", "{b}", "{c}")
    (tmp_path / "names.json").write_text(json.dumps({"request": "q", "targets": ["{a}", "{x}", "{y}"]}))
    src = str(tmp_path / "t.json")
    t = task_from_dict({"request": "r", "targets": ["{a}"], "valid": "names.json"}, source=src)
    assert t.valid == ("{x}", "{y}")
    t = load_tasks(["babynames/train/p0"])[0]
    assert len(t.valid) > 500 and not set(t.valid) & set(t.targets)
    for bad, why in ((["{a}", 3], "list of non-empty strings"), ("nosuch/task", "no built-in task")):
        with pytest.raises(TaskError, match=why):
            task_from_dict({"request": "r", "targets": ["{a}"], "valid": bad}, source="t.json")
    with pytest.raises(TaskError, match="prefix"):
        task_from_dict({"request": "r", "targets": ["ab"], "valid": ["a"], "eos": False}, source="t.json")


def test_measure_scores_the_valid_answers_like_targets(model, tokenizer):
    tok = tokenizer
    t = task_from_dict({"request": "pick", "targets": ["{a}", "{b}"], "valid": ["{c}", "{dd}"]}, source="t")
    every = task_from_dict({"request": "pick", "targets": ["{a}", "{b}", "{c}", "{dd}"]}, source="t")
    row = measure_tasks(model, tok, [t])["tasks"][0]
    ref = measure_tasks(model, tok, [every])["tasks"][0]
    lps = np.array([x["logprob"] for x in ref["targets"]])
    assert len(row["targets"]) == 2  # the targets' list stays the targets'
    assert row["mass"] == pytest.approx(np.exp(lps[:2]).sum(), rel=1e-5)
    assert row["valid_mass"] == pytest.approx(ref["mass"], rel=1e-5)
    assert row["yield_100"] == pytest.approx(ref["yield_100"], rel=1e-5)
    assert with_valid(every) is every


def test_task_sets_score_each_shared_task_once_with_the_same_rows(model, tokenizer, monkeypatch):
    import diffuse_lm.measuring as measuring

    a = task_from_dict({"request": "pick", "targets": ["{a}", "{b}"], "valid": ["{c}"]}, source="t", name="a")
    b = task_from_dict({"request": "choose", "targets": ["{x}", "{yy}"]}, source="t", name="b")
    alone = [measure_tasks(model, tokenizer, [t])["tasks"][0] for t in (a, b)]
    scored = []
    real = measuring.score_task
    monkeypatch.setattr(
        measuring, "score_task", lambda m, enc, **kw: scored.append(enc) or real(m, enc, **kw)
    )
    test, train = measuring.measure_task_sets(model, tokenizer, [[a], [b, a]])
    assert len(scored) == 2  # a, shared by both sets, once
    assert [t["name"] for t in test["tasks"]] == ["a"] and [t["name"] for t in train["tasks"]] == ["b", "a"]
    assert train["tasks"][1] == test["tasks"][0]
    assert train["tasks"][0]["mass"] == pytest.approx(alone[1]["mass"], rel=1e-5)
    assert test["tasks"][0]["valid_mass"] == pytest.approx(alone[0]["valid_mass"], rel=1e-5)


def test_sample_stats_count_invented_answers_against_the_broad_set():
    t = task_from_dict({"request": "r", "targets": ["{Apple}", "{Pear}"], "valid": ["{Fig}"]}, source="t")
    texts = ["{Apple}", "{Fig}", "{Redbanberry}", "{Redbanberry}", "no braces", "{Pear}"]
    s = sample_stats([{"text": x} for x in texts], t)
    assert s["n_valid"] == 3 and s["n_invented"] == 2 and s["invented_rate"] == pytest.approx(2 / 6)
    assert s["invented_examples"] == ["Redbanberry"]
    assert valid_answers(t) == ({"Apple", "Pear", "Fig"}, True)


def test_answer_like_keeps_short_answers_and_drops_prose():
    assert answer_like("Whiskers") == "whiskers"
    assert answer_like('  "Captain Nibbles!"\n') == "captain nibbles"
    assert answer_like("Answer: **Mango**") == "mango"
    assert answer_like("Sure! Here is a random name for your hamster: Peanut. It is a cute") is None
    assert answer_like("Peanut\n\nPeanut is a great name because it is small and cute") is None
    assert answer_like("") is None and answer_like("...") is None
    r = summarize_prompt("p", ["Peanut", "peanut.", "Biscuit", "I think you should name it Peanut, a cute"])
    assert (r.answer_like_rate, r.distinct, r.top_share) == (0.75, 2, 0.5)
    s = summarize([r, summarize_prompt("q", ["a"] * 3 + ["b"])])
    assert s.dominated == 0.5 and s.distinct == 2.0


def test_open_ended_prompts_are_many_and_ask_for_one_short_thing():
    asked = prompts()
    assert len(asked) >= 60 and len(set(asked)) == len(asked)
    assert all("only" in p for p in asked)


def _satisfies(name: str, request: str, answer: str) -> bool:
    """Whether ``answer`` (the bare answer) keeps the constraint the task asks for: read from the request (a
    quoted first letter) or the task's name (a range, a multiple), not from the generator's lists."""
    import re

    letter = re.search(r'starts with (?:the letter )?"([A-Z])"', request)
    if letter:
        return answer.lower().startswith(letter.group(1).lower())
    subject = name.rsplit("/", 1)[1]
    if subject == "morning-time":
        return answer.split(":")[0] in ("8", "9", "10", "11")
    n = int(answer)
    if subject.startswith("multiple-"):
        return n % int(subject.split("-")[1]) == 0 and 1 <= n <= 100
    if subject.startswith("between-"):
        lo, hi = map(int, subject.split("-")[1:])
        return lo <= n <= hi
    if subject.startswith("year-"):
        return subject[5:8] == str(n)[:3]
    return subject == "square" and round(n**0.5) ** 2 == n


def test_constrained_tasks_are_generated_and_every_target_keeps_its_constraint():
    """Each constrained task's targets are the answers that keep the constraint asked for, in every format;
    where options are shown, the labels of exactly those options that keep it."""
    import json as _json
    import re

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_constrained_tasks.py"), "--check"])
    assert done.returncode == 0, "shipped constrained tasks differ from scripts/make_constrained_tasks.py's"
    tasks = load_tasks(["constrained-mix"])
    assert len(tasks) >= 20 and {t.family for t in tasks} == {"CONSTRAINED"}
    assert {t.name.split("/")[1] for t in tasks} == {
        "braces",
        "bare",
        "answer",
        "json",
        "lower",
        "letter",
        "number",
    }
    unwrap = {
        "braces": lambda x: x[1:-1],
        "bare": lambda x: x,
        "answer": lambda x: x.removeprefix("Answer: "),
        "json": lambda x: next(iter(_json.loads(x).values())),
        "lower": lambda x: x,
    }
    for t in tasks:
        fmt = t.name.split("/")[1]
        assert len(t.targets) >= 2 and t.uniform, t.name
        if fmt in unwrap:
            assert all(_satisfies(t.name, t.request, unwrap[fmt](x)) for x in t.targets), t.name
            continue
        shown = dict(re.findall(r"^(\w)\) (.+)$", t.request, flags=re.M))
        keeps = {label for label, answer in shown.items() if _satisfies(t.name, t.request, answer)}
        assert set(t.targets) == keeps and 0 < len(keeps) < len(shown), t.name
    # no constrained task asks for a subject of the six tasks or of the closed sets `formats` measures on
    asked = " ".join(t.request.lower() for t in tasks)
    for word in (
        "occupation",
        "name for a baby",
        "country",
        "fruit",
        "date",
        "day of the week",
        "month",
        "season",
    ):
        assert word not in asked, word


def test_format_tasks_are_generated_and_cover_every_format():
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_format_tasks.py"), "--check"])
    assert done.returncode == 0, "shipped format tasks differ from scripts/make_format_tasks.py's"
    tasks = load_tasks(["formats/train", "formats/eval"])
    fmts = {t.name.split("/")[2] for t in tasks}
    assert {"braces", "bare", "answer", "json", "lower", "letter", "number"} < fmts and len(fmts) >= 16
    for split in ("train", "eval"):
        for fmt in fmts:
            assert load_tasks([f"formats/{split}/{fmt}"]), (split, fmt)
    # formats no training task asks in, measured on the eval subjects only
    unseen = load_tasks(["formats/unseen"])
    assert {t.name.split("/")[2] for t in unseen} & fmts == set() and len(unseen) >= 30
    assert {t.name.split("/")[3] for t in unseen} == {
        t.name.split("/")[3] for t in tasks if "/eval/" in t.name
    }
    # the format mix asks every trained format; families are the seven kinds, whatever the number of formats
    mix = load_tasks(["formats-mix"])
    assert {t.name.split("/")[2] for t in mix} == fmts
    assert len({t.family for t in tasks}) == 7 and all(t.family.startswith("FORMAT-") for t in tasks)
    assert any(not t.uniform for t in tasks)  # weighted coins and dice, natural frequencies
    by_name = {t.name: t for t in tasks}
    assert by_name["formats/eval/json/day"].targets[0] == '{"day": "Monday"}'
    assert by_name["formats/eval/answer/month"].targets[-1] == "Answer: December"
    assert by_name["formats/eval/tag/day"].targets[0] == "<day>Monday</day>"
    assert by_name["formats/eval/upper/season"].targets[0] == "SPRING"
    # a sentence answer without its final period is valid (not wanted by p*), and nothing else is added
    for t in [*tasks, *unseen]:
        assert list(t.valid or []) == [x[:-1] for x in t.targets if x.endswith(".")], t.name
    assert "I choose July" in {u.name: u for u in unseen}["formats/unseen/i-choose/month"].valid
