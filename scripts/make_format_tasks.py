"""Generate src/diffuse_lm/data/tasks/formats/: random choices asked in the answer formats real pipelines use,
so that tuning teaches "asked for randomness -> random and valid" in every format, not "braces -> random".

Each subject (a question and its answers, uniform or with given weights) is asked in each of the sixteen trained
formats, seven kinds (each kind a task family): FORMATS (the answer in braces, the bare answer, "Answer: X", a
JSON object, lower case, the letter of an option and the number of an option, options shown in a shuffled order
fixed by the seed) and MORE (brackets, quotes, backticks, "Choice: X", "Result: X", a sentence, an XML tag,
key=value, upper case).

- formats/train/<format>/<subject>: the nineteen random-phrasing subjects (scripts/make_random_mix.py) and
  five with non-uniform wanted distributions (a weighted coin, a loaded die, the sum of two dice, a letter at
  its frequency in English text, yes with probability 0.3), for training;
- formats/eval/<format>/<subject>: closed sets no training task asks for (days of the week, months, seasons,
  continents, compass points), for measuring a tuned model in a format it was or was not tuned on
  (`diffuse reproduce formats`), and invented answers on closed sets;
- formats/ordered/<format>/<subject>: 28 random choices among sets with a conventional order (a colour of
  the rainbow, a phase of the moon), each in two trained formats, for recipe `ordered` (group `ordered-mix`);
- formats/unseen/<format>/<subject>: the same closed sets in the six formats of UNSEEN, which no training task
  asks in (YAML, bold, "Final answer: X", a first-person sentence, parentheses, a JSON list).

A sentence format's answer without its final period ("I choose July") is valid too, beside the targets: a user
asking for that sentence gets the answer asked for.

    python scripts/make_format_tasks.py           # rewrite the shipped files
    python scripts/make_format_tasks.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_random_mix import FORMATS as LONG  # noqa: E402
from make_random_mix import TASKS as WORDS  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "src" / "diffuse_lm" / "data" / "tasks"
GROUP = "formats"
SEED = 0
MAX_OPTIONS = 6  # options shown in the letter and number formats (a random subset of a larger set)

# English letter frequencies (per cent of letters in running text, the common Wikipedia table).
LETTER_FREQ = {
    "E": 12.7, "T": 9.1, "A": 8.2, "O": 7.5, "I": 7.0, "N": 6.7, "S": 6.3, "H": 6.1, "R": 6.0, "D": 4.3,
    "L": 4.0, "C": 2.8, "U": 2.8, "M": 2.4, "W": 2.4, "F": 2.2, "G": 2.0, "Y": 2.0, "P": 1.9, "B": 1.5,
    "V": 0.98, "K": 0.77, "J": 0.15, "X": 0.15, "Q": 0.095, "Z": 0.074,
}  # fmt: skip
WEIGHTED = {  # name -> (question, what, answers, weights)
    "weighted-coin": (
        "Flip a biased coin that lands heads 70% of the time and tails 30% of the time.",
        "side",
        ["Heads", "Tails"],
        [0.7, 0.3],
    ),
    "loaded-die": (
        "Roll a loaded six-sided die that shows 6 half of the time and each other face equally often.",
        "face",
        ["1", "2", "3", "4", "5", "6"],
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.5],
    ),
    "two-dice": (
        "Roll two fair six-sided dice at random and add them up.",
        "sum",
        [str(s) for s in range(2, 13)],
        [6 - abs(s - 7) for s in range(2, 13)],
    ),
    "letter-frequency": (
        "Pick a letter at random with the frequency it has in English text.",
        "letter",
        list(LETTER_FREQ),
        list(LETTER_FREQ.values()),
    ),
    "yes-30": (
        "Answer yes with probability 30% and no otherwise, at random.",
        "answer",
        ["Yes", "No"],
        [0.3, 0.7],
    ),
}
EVAL = {  # closed sets asked by no training task
    "day": (
        "Pick a day of the week at random.",
        "day",
        "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split(),
    ),
    "month": (
        "Choose a month of the year at random.",
        "month",
        "January February March April May June July August September October November December".split(),
    ),
    "season": (
        "Name a season of the year, chosen at random.",
        "season",
        "Spring Summer Autumn Winter".split(),
    ),
    "continent": (
        "Pick a continent completely at random.",
        "continent",
        ["Africa", "Antarctica", "Asia", "Australia", "Europe", "North America", "South America"],
    ),
    "direction": (
        "Choose a compass direction at random.",
        "direction",
        "North Northeast East Southeast South Southwest West Northwest".split(),
    ),
}


# Random choices among closed sets with a conventional order (formats/ordered/<format>/<subject>, group
# `ordered-mix`): base models favour the first member of such a set (North, Monday, January) and the training
# subjects above have few of them. Each subject is asked in two of the trained formats, rotating through them; none
# is an EVAL subject. Recipe `ordered` mixes them in (docs/validity.md, "More subjects in the format mix").
# name -> (question, what is asked for, the set in its conventional order)
ORDERED = {
    "rainbow": ("Name a colour of the rainbow at random.", "colour", "Red Orange Yellow Green Blue Indigo Violet".split()),
    "note": ("Pick a note of the C major scale at random.", "note", "C D E F G A B".split()),
    "greek": ("Pick one of the first eight letters of the Greek alphabet at random.", "letter", "Alpha Beta Gamma Delta Epsilon Zeta Eta Theta".split()),
    "moon-phase": ("Choose a phase of the moon at random.", "phase", ["New Moon", "Waxing Crescent", "First Quarter", "Waxing Gibbous", "Full Moon", "Waning Gibbous", "Last Quarter", "Waning Crescent"]),
    "chess-piece": ("Pick a chess piece at random.", "piece", "King Queen Rook Bishop Knight Pawn".split()),
    "state-of-matter": ("Name a state of matter, chosen at random.", "state", "Solid Liquid Gas Plasma".split()),
    "vowel": ("Pick a vowel of the English alphabet at random.", "vowel", "A E I O U".split()),
    "noble-gas": ("Choose a noble gas at random.", "gas", "Helium Neon Argon Krypton Xenon Radon".split()),
    "taste": ("Name one of the five basic tastes, chosen at random.", "taste", "Sweet Sour Salty Bitter Umami".split()),
    "roman-numeral": ("Pick a Roman numeral from I to X at random.", "numeral", "I II III IV V VI VII VIII IX X".split()),
    "time-of-day": ("Choose a time of day at random.", "time of day", "Morning Afternoon Evening Night".split()),
    "blood-type": ("Pick a blood type at random.", "blood type", "A+ A- B+ B- AB+ AB- O+ O-".split()),
    "medal": ("Pick an Olympic medal at random.", "medal", "Gold Silver Bronze".split()),
    "us-coin": ("Pick a US coin at random.", "coin", "Penny Nickel Dime Quarter".split()),
}  # fmt: skip
ORDERED_MORE = {  # a second fourteen, more of them with answers of several words (as "North America" is)
    "hogwarts-house": ("Pick a Hogwarts house at random.", "house", "Gryffindor Hufflepuff Ravenclaw Slytherin".split()),
    "atmosphere-layer": ("Name a layer of the Earth's atmosphere, chosen at random.", "layer", "Troposphere Stratosphere Mesosphere Thermosphere Exosphere".split()),
    "great-lake": ("Pick one of the Great Lakes at random.", "lake", "Superior Michigan Huron Erie Ontario".split()),
    "earth-layer": ("Name a layer of the Earth's interior at random.", "layer", ["Crust", "Mantle", "Outer Core", "Inner Core"]),
    "kingdom": ("Pick a kingdom of living things at random.", "kingdom", "Animals Plants Fungi Protists Bacteria Archaea".split()),
    "cloud": ("Name a main type of cloud at random.", "cloud type", "Cumulus Stratus Cirrus Nimbus".split()),
    "force": ("Pick one of the four fundamental forces of nature at random.", "force", ["Gravity", "Electromagnetism", "Strong Nuclear Force", "Weak Nuclear Force"]),
    "platonic-solid": ("Name a Platonic solid, chosen at random.", "solid", "Tetrahedron Cube Octahedron Dodecahedron Icosahedron".split()),
    "si-unit": ("Pick an SI base unit at random.", "unit", "Metre Kilogram Second Ampere Kelvin Mole Candela".split()),
    "sense": ("Name one of the five senses at random.", "sense", "Sight Hearing Smell Taste Touch".split()),
    "metric-prefix": ("Pick a metric prefix larger than one at random.", "prefix", "Kilo Mega Giga Tera Peta Exa".split()),
    "meal": ("Choose a meal of the day at random.", "meal", "Breakfast Lunch Dinner".split()),
    "mitosis-phase": ("Name a phase of mitosis at random.", "phase", "Prophase Metaphase Anaphase Telophase".split()),
    "age": ("Pick one of the three ages of prehistory at random.", "age", ["Stone Age", "Bronze Age", "Iron Age"]),
}  # fmt: skip


def _options(r: random.Random, items: list[str], weights: list[float]) -> tuple[list[str], list[float]]:
    """At most MAX_OPTIONS of the answers, in a shuffled order, with their weights."""
    idx = list(range(len(items)))
    for i in range(len(idx) - 1, 0, -1):  # Fisher-Yates on random() alone: the same on every Python
        j = int(r.random() * (i + 1))
        idx[i], idx[j] = idx[j], idx[i]
    idx = idx[:MAX_OPTIONS]
    return [items[i] for i in idx], [weights[i] for i in idx]


def _listed(labels: list[str], items: list[str]) -> str:
    return "\n".join(f"{a}) {x}" for a, x in zip(labels, items, strict=True))


def _key(what: str) -> str:
    return what.lower().replace(" ", "_")


# format -> (question, what, answers, weights, rng) -> (request, targets, weights)
FORMATS = {
    "braces": lambda q, x, items, w, r: (
        f"{q} Output only the {x} between two curly braces, like this: {{{x}}}.",
        [f"{{{i}}}" for i in items],
        w,
    ),
    "bare": lambda q, x, items, w, r: (f"{q} Reply with the {x} only, nothing else.", list(items), w),
    "answer": lambda q, x, items, w, r: (
        f'{q} Reply in the form "Answer: <{x}>" and nothing else.',
        [f"Answer: {i}" for i in items],
        w,
    ),
    "json": lambda q, x, items, w, r: (
        f'{q} Reply only with a JSON object of the form {{"{_key(x)}": "..."}}.',
        [json.dumps({_key(x): i}, ensure_ascii=False) for i in items],
        w,
    ),
    "lower": lambda q, x, items, w, r: (
        f"{q} Reply with the {x} only, in lower case.",
        [i.lower() for i in items],
        w,
    ),
    "letter": lambda q, x, items, w, r: _lettered(q, x, *_options(r, items, w), "ABCDEF", "letter"),
    "number": lambda q, x, items, w, r: _lettered(q, x, *_options(r, items, w), "123456", "number"),
}


def _plain(request: str, template: str):
    """A format whose request is ``request`` and whose answer is ``template`` around the answer, both with
    ``{q}`` (the question), ``{x}`` (what is asked for), ``{k}`` (it as a key) and ``{i}`` (the answer)."""

    def fmt(q, x, items, w, r):
        return request.format(q=q, x=x, k=_key(x)), [template.format(i=i, k=_key(x)) for i in items], w

    return fmt


# More formats of the same kinds as FORMATS, for training and measuring: other wrappers, labels, sentences,
# structured lines and upper case, so that tuning teaches "follow the format asked for, random inside it" rather
# than the seven shapes above; `diffuse reproduce formats` holds out each of FORMATS while these stay in training.
MORE = {
    "brackets": _plain(
        "{q} Reply with the {x} between square brackets, like [{x}], and nothing else.", "[{i}]"
    ),
    "quotes": _plain("{q} Reply with the {x} in double quotes and nothing else.", '"{i}"'),
    "backticks": _plain("{q} Write the {x} as inline code between backticks and nothing else.", "`{i}`"),
    "choice": _plain('{q} Reply in the form "Choice: <{x}>" and nothing else.', "Choice: {i}"),
    "result": _plain('{q} Reply in the form "Result: <{x}>" and nothing else.', "Result: {i}"),
    "sentence": _plain('{q} Reply with one sentence of the form "My pick is <{x}>."', "My pick is {i}."),
    "tag": _plain("{q} Reply with the {x} inside <{k}></{k}> tags and nothing else.", "<{k}>{i}</{k}>"),
    "key-value": _plain("{q} Reply with one line of the form {k}=<{x}> and nothing else.", "{k}={i}"),
    "upper": lambda q, x, items, w, r: (
        f"{q} Reply with the {x} only, in capital letters.",
        [i.upper() for i in items],
        w,
    ),
}
# Formats that no built-in training task asks in (formats/unseen/): measuring a tuned model on them says whether
# it follows a format it never saw while staying random, beside the base model.
UNSEEN = {
    "yaml": _plain('{q} Reply with a single line of YAML of the form "{k}: <{x}>".', "{k}: {i}"),
    "bold": _plain("{q} Reply with the {x} only, in bold Markdown (**{x}**).", "**{i}**"),
    "final-answer": _plain(
        '{q} Reply in the form "Final answer: <{x}>" and nothing else.', "Final answer: {i}"
    ),
    "i-choose": _plain('{q} Reply with one sentence of the form "I choose <{x}>."', "I choose {i}."),
    "parentheses": _plain("{q} Reply with the {x} in parentheses, like ({x}), and nothing else.", "({i})"),
    "json-list": lambda q, x, items, w, r: (
        f'{q} Reply only with a JSON list holding the {x}, like ["..."].',
        [json.dumps([i], ensure_ascii=False) for i in items],
        w,
    ),
}
# The family (kind) of each format: balancing families gives each kind the same share of a pass however many
# formats it has.
KIND = {
    **dict.fromkeys(("braces", "brackets", "quotes", "backticks"), "WRAPPED"),
    **dict.fromkeys(("answer", "choice", "result", "sentence"), "LABELLED"),
    **dict.fromkeys(("json", "tag", "key-value"), "STRUCTURED"),
    **dict.fromkeys(("lower", "upper"), "CASE"),
    "bare": "BARE",
    "letter": "LETTER",
    "number": "NUMBER",
    **dict.fromkeys(UNSEEN, "UNSEEN"),
}
TRAINED = {**FORMATS, **MORE}


def _lettered(q: str, x: str, items: list[str], w: list[float], labels: str, kind: str):
    labels = list(labels[: len(items)])
    request = f"{q} Choose among these options:\n{_listed(labels, items)}\nReply with the {kind} of your choice only."
    return request, labels, w


def _task(split: str, fmt: str, name: str, question, what, items, weights, r) -> tuple[str, str]:
    request, targets, w = {**TRAINED, **UNSEEN}[fmt](question, what, items, weights, r)
    assert len(set(targets)) == len(targets), (fmt, name)
    uniform = len(set(w)) == 1
    data = {
        "name": f"{GROUP}/{split}/{fmt}/{name}",
        "family": f"FORMAT-{KIND[fmt]}",
        "description": f"A {'uniformly ' if uniform else ''}random {what} among {len(targets)}"
        f"{'' if uniform else ' with given weights'}, asked in the {fmt} format.",
        "request": request,
        "targets": targets,
    }
    if not uniform:
        data["weights"] = [round(float(v), 6) for v in w]
    if sentences := [t.removesuffix(".") for t in targets if t.endswith(".")]:
        data["valid"] = sentences  # a sentence without its final period is still the answer asked for
    return f"{GROUP}/{split}/{fmt}/{name}.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def tasks() -> dict[str, str]:
    """Path under the task folder -> file text of every task."""
    subjects = {
        "train": {
            **{n: (q, x, items, [1.0] * len(items)) for n, (q, x, items) in WORDS.items()},
            **{n: (q, x, items, [1.0] * len(items)) for n, (q, x, items, _) in LONG.items()},
            **WEIGHTED,
        },
        "eval": {n: (q, x, items, [1.0] * len(items)) for n, (q, x, items) in EVAL.items()},
    }
    subjects["unseen"] = subjects["eval"]
    out = {}
    for split, named in subjects.items():
        for fmt in UNSEEN if split == "unseen" else TRAINED:
            r = random.Random(f"{SEED}/{split}/{fmt}")
            for name in sorted(named):
                q, x, items, w = named[name]
                if fmt in ("letter", "number") and len(set(w)) > 1 and len(items) > MAX_OPTIONS:
                    continue  # a subset of a weighted set's options would change what is asked
                path, text = _task(split, fmt, name, *named[name], r)
                out[path] = text
    out.update(ordered())
    return out


def ordered(subjects: dict | None = None, per_subject: int = 2, split: str = "ordered") -> dict[str, str]:
    """Path -> file text of the ordered-set subjects (default: all 28), each in ``per_subject`` of the sixteen
    trained formats, the i-th subject (sorted by name) in formats i and i + 3."""
    subjects = {**ORDERED, **ORDERED_MORE} if subjects is None else subjects
    fmts, out = list(TRAINED), {}
    for i, (name, (q, what, items)) in enumerate(sorted(subjects.items())):
        for k in (i, i + 3)[:per_subject]:
            fmt = fmts[k % len(fmts)]
            r = random.Random(f"{SEED}/{name}/{fmt}")
            path, text = _task(split, fmt, name, q, what, items, [1.0] * len(items), r)
            out[path] = text
    return out


def ordered_mix() -> list[str]:
    """The tasks of the built-in group ``ordered-mix``: every ordered-set subject in its two formats."""
    return sorted(p.removesuffix(".json") for p in ordered())


def mix() -> list[str]:
    """The training tasks of the format mix (built-in group ``formats-mix``): each training subject in two
    formats, rotating through them, so every format and every subject is in the mix and the mix stays small."""
    names = set(tasks())
    subjects = sorted(
        {n.split("/")[3].removesuffix(".json") for n in names if n.startswith(f"{GROUP}/train/")}
    )
    fmts = list(TRAINED)
    out = []
    for i, subject in enumerate(subjects):
        for k in (i, i + 3):
            for step in range(len(fmts)):  # the next format this subject is asked in
                fmt = fmts[(k + step) % len(fmts)]
                name = f"{GROUP}/train/{fmt}/{subject}"
                if f"{name}.json" in names and name not in out:
                    out.append(name)
                    break
    return sorted(out)


def write_or_check(group: str, want: dict[str, str], doc: str, script: str) -> int:
    """The command line of a task generator: write ``want`` (path under the task folder -> text) under
    ``group``, or with ``--check`` exit 1 if the shipped files differ from it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the shipped files differ")
    args = ap.parse_args()
    if args.check:
        have = {str(p.relative_to(DATA)): p.read_text() for p in (DATA / group).rglob("*.json")}
        if have != want:
            print(f"{DATA / group}: out of date (run {script})", file=sys.stderr)
            return 1
        return 0
    for stale in (DATA / group).rglob("*.json"):  # tasks the generator no longer makes
        if str(stale.relative_to(DATA)) not in want:
            stale.unlink()
    for name, text in want.items():
        (DATA / name).parent.mkdir(parents=True, exist_ok=True)
        (DATA / name).write_text(text)
    print(f"wrote {len(want)} task files under {DATA / group}")
    return 0


def main() -> int:
    return write_or_check(GROUP, tasks(), __doc__, "scripts/make_format_tasks.py")


if __name__ == "__main__":
    sys.exit(main())
