"""Generate src/diffuse_lm/data/tasks/random-mix/, random-format/ and random-phrasing/: small uniform
random-choice tasks outside the six task families of the paper's Section 5 (no numbers in a range, countries,
fruits, days or dates, occupations or names), mixed into training to teach "asked for randomness -> spread"
on more than the tasks evaluated. random-mix answers are one word; random-format answers run to several tokens (cards, clock times,
years, chess squares, names of several words) and each prompt shows one valid answer as its example, so that
training teaches neither "close the brace after the first token" nor "copy the example". random-phrasing holds
the same nineteen tasks with each phrasing asking for answers of both lengths (see PLACEHOLDER_FORMATS).

    python scripts/make_random_mix.py           # rewrite the shipped files
    python scripts/make_random_mix.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "src" / "diffuse_lm" / "data" / "tasks"
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
EXAMPLE_FORMAT = (
    "Output only the {x} between two curly braces, for example: {{{example}}}. Don't output code."
)
RANKS = ["Ace", *map(str, range(2, 11)), "Jack", "Queen", "King"]
FORMATS = {  # name -> (question, what, answers, the example shown: one of the answers)
    "card": (
        "Draw a card at random from a shuffled standard 52-card deck.",
        "card",
        [f"{r} of {s}" for s in ("Hearts", "Diamonds", "Clubs", "Spades") for r in RANKS],
        "Queen of Hearts",
    ),
    "year": (
        "Pick a year between 1950 and 2009 at random.",
        "year",
        [str(y) for y in range(1950, 2010)],
        "1984",
    ),
    "clock-time": (
        "Pick a random time on a 12-hour clock, to the quarter hour.",
        "time",
        [f"{h}:{m:02d}" for h in range(1, 13) for m in (0, 15, 30, 45)],
        "7:45",
    ),
    "chess-square": (
        "Choose a square of a chessboard completely at random.",
        "square",
        [f"{f}{r}" for f in "abcdefgh" for r in range(1, 9)],
        "e4",
    ),
    "board-game": (
        "Name a board game, chosen at random.",
        "game",
        [
            "Chess",
            "Checkers",
            "Monopoly",
            "Scrabble",
            "Backgammon",
            "Snakes and Ladders",
            "Connect Four",
            "Trivial Pursuit",
            "Chinese Checkers",
            "Battleship",
            "Risk",
            "Clue",
            "Go",
            "Settlers of Catan",
            "Ticket to Ride",
            "Mahjong",
        ],
        "Snakes and Ladders",
    ),
    "dog-breed": (
        "Pick a dog breed at random.",
        "breed",
        [
            "Golden Retriever",
            "Labrador Retriever",
            "German Shepherd",
            "Beagle",
            "Poodle",
            "Bulldog",
            "Siberian Husky",
            "Border Collie",
            "Dachshund",
            "Boxer",
            "Great Dane",
            "Chihuahua",
            "Yorkshire Terrier",
            "Cocker Spaniel",
            "Shih Tzu",
            "Bernese Mountain Dog",
        ],
        "Border Collie",
    ),
    "movie-genre": (
        "Choose a movie genre completely at random.",
        "genre",
        [
            "Action",
            "Comedy",
            "Drama",
            "Horror",
            "Science Fiction",
            "Romantic Comedy",
            "Thriller",
            "Documentary",
            "Animation",
            "Western",
            "Film Noir",
            "Musical",
        ],
        "Science Fiction",
    ),
}


def _task(group: str, name: str, x: str, items: list[str], request: str) -> str:
    data = {
        "name": f"{group}/{name}",
        "family": group.upper(),
        "description": f"A uniformly random {x} among {len(items)}.",
        "request": request,
        "targets": [f"{{{i}}}" for i in items],
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


# random-phrasing/: the same nineteen tasks with the phrasing no longer telling the answer's length: in
# random-mix every "like this: {placeholder}" prompt has a one-word answer and in random-format every
# "for example: {answer}" prompt a long one, and a model tuned on both learnt "placeholder phrasing -> close the
# brace after one token" (held-out NUMBERS, phrased that way, then named only one-digit numbers). Here each
# phrasing asks for answers of one token and of several, the digit-bearing ones in the placeholder phrasing.
PLACEHOLDER_FORMATS = ("year", "clock-time", "card", "chess-square")
EXAMPLES = {  # one-word tasks asked with an example: the example shown, one of the answers
    "animal": "Horse",
    "color": "Green",
    "element": "Carbon",
    "instrument": "Violin",
    "planet": "Mars",
    "sport": "Tennis",
}


def _request(question: str, x: str, items: list[str], example: str | None) -> str:
    """The prompt: the question, then the answer format, with ``example`` (one of the answers) when given."""
    if example is None:
        return f"{question} {FORMAT.format(x=x)}"
    assert example in items, example
    return f"{question} {EXAMPLE_FORMAT.format(x=x, example=example)}"


def tasks() -> dict[str, str]:
    """Path under the task folder -> file text of every task."""
    words = {name: (*task, None) for name, task in TASKS.items()}  # one-word answers, no example
    asked = {  # group -> name -> (question, what, answers, the example shown or None)
        "random-mix": words,
        "random-format": FORMATS,
        "random-phrasing": {
            **{name: (q, x, items, EXAMPLES.get(name)) for name, (q, x, items, _) in words.items()},
            **{
                name: (q, x, items, None if name in PLACEHOLDER_FORMATS else example)
                for name, (q, x, items, example) in FORMATS.items()
            },
        },
    }
    out = {}
    for group, specs in asked.items():
        for name, (question, x, items, example) in specs.items():
            request = _request(question, x, items, example)
            out[f"{group}/{name}.json"] = _task(group, name, x, items, request)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    want = tasks()
    if args.check:
        have = {
            str(p.relative_to(DATA)): p.read_text()
            for group in ("random-mix", "random-format", "random-phrasing")
            for p in (DATA / group).glob("*.json")
        }
        if have != want:
            print(
                f"{DATA}: random-mix/random-format/random-phrasing out of date (run scripts/make_random_mix.py)",
                file=sys.stderr,
            )
            return 1
        return 0
    for name, text in want.items():
        (DATA / name).parent.mkdir(parents=True, exist_ok=True)
        (DATA / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
