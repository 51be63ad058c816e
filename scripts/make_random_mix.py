"""Generate src/diffuse_lm/data/tasks/random-mix/: twelve small uniform random-choice tasks outside the six
task families of the paper's Section 5 (no numbers, countries, fruits, days or dates, occupations or names),
mixed into training to teach "asked for randomness -> spread" on more than the tasks evaluated.

    python scripts/make_random_mix.py           # rewrite the shipped files
    python scripts/make_random_mix.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "diffuse_lm" / "data" / "tasks" / "random-mix"
FORMAT = "Output only the {x} between two curly braces, like this: {{{x}}}. Don't output code."
TASKS = {
    "letter": (
        "Pick a letter of the English alphabet completely at random.",
        "letter",
        [chr(c) for c in range(65, 91)],
    ),
    "color": (
        "Name a color, chosen at random.",
        "color",
        "Red Orange Yellow Green Blue Purple Pink Brown Black White Gray".split(),
    ),
    "animal": (
        "Randomly pick an animal.",
        "animal",
        "Dog Cat Horse Cow Pig Sheep Goat Chicken Duck Rabbit Lion Tiger Elephant Giraffe Zebra Monkey Bear Wolf Fox Deer".split(),
    ),
    "planet": (
        "Choose a planet of the solar system at random.",
        "planet",
        "Mercury Venus Earth Mars Jupiter Saturn Uranus Neptune".split(),
    ),
    "element": (
        "Name a random chemical element among the first twenty.",
        "element",
        "Hydrogen Helium Lithium Beryllium Boron Carbon Nitrogen Oxygen Fluorine Neon Sodium Magnesium Aluminum Silicon Phosphorus Sulfur Chlorine Argon Potassium Calcium".split(),
    ),
    "sport": (
        "Pick a sport at random.",
        "sport",
        "Soccer Basketball Tennis Baseball Golf Swimming Volleyball Hockey Cricket Rugby Boxing Cycling".split(),
    ),
    "instrument": (
        "Randomly choose a musical instrument.",
        "instrument",
        "Piano Guitar Violin Drums Flute Trumpet Cello Saxophone Clarinet Harp Banjo Ukulele".split(),
    ),
    "shape": (
        "Name a geometric shape, chosen completely at random.",
        "shape",
        "Circle Square Triangle Rectangle Pentagon Hexagon Octagon Oval Star Diamond".split(),
    ),
    "coin": ("Flip a fair coin.", "side", ["Heads", "Tails"]),
    "yes-no": ("Answer yes or no, completely at random.", "answer", ["Yes", "No"]),
    "zodiac": (
        "Pick a zodiac sign at random.",
        "sign",
        "Aries Taurus Gemini Cancer Leo Virgo Libra Scorpio Sagittarius Capricorn Aquarius Pisces".split(),
    ),
    "suit": ("Draw a random card suit.", "suit", ["Hearts", "Diamonds", "Clubs", "Spades"]),
}


def tasks() -> dict[str, str]:
    """File name -> file text of every task."""
    out = {}
    for name, (question, x, items) in TASKS.items():
        data = {
            "name": f"random-mix/{name}",
            "family": "RANDOM-MIX",
            "description": f"A uniformly random {x} among {len(items)}.",
            "request": f"{question} {FORMAT.format(x=x)}",
            "targets": [f"{{{i}}}" for i in items],
        }
        out[f"{name}.json"] = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    want = tasks()
    if args.check:
        have = {p.name: p.read_text() for p in OUT.glob("*.json")}
        if have != want:
            print(f"{OUT}: out of date (run scripts/make_random_mix.py)", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in want.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
