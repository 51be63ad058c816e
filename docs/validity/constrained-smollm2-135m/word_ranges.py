"""Random choices among a range of words ("a letter from D to K", "a zodiac sign from Gemini to Libra"), each in two
of the constrained tasks' seven formats, written as task files (family CONSTRAINED) to OUT/tasks, and a config that
trains the shipped six-task config with them added (OUT/config.yaml). No subject is one of `formats`' evaluation
subjects (days, months, seasons, continents, compass points).

    python docs/validity/constrained-smollm2-135m/word_ranges.py OUT
    diffuse train OUT/config.yaml
"""

import argparse
import json
import random
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
from make_constrained_tasks import FORMATS, _task  # noqa: E402

LETTERS = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
RAINBOW = "Red Orange Yellow Green Blue Indigo Violet".split()
NOTES = "C D E F G A B".split()
GREEK = "Alpha Beta Gamma Delta Epsilon Zeta Eta Theta Iota Kappa Lambda Mu".split()
ZODIAC = "Aries Taurus Gemini Cancer Leo Virgo Libra Scorpio Sagittarius Capricorn Aquarius Pisces".split()
WORDS = "one two three four five six seven eight nine ten eleven twelve".split()
NATO = "Alpha Bravo Charlie Delta Echo Foxtrot Golf Hotel India Juliett Kilo Lima".split()
RANKS = "Two Three Four Five Six Seven Eight Nine Ten Jack Queen King".split()

# name -> (what, every answer, first, last, question with {a} and {b})
RANGES = {
    "letter-d-k": ("letter", LETTERS, "D", "K", "Pick a random letter from {a} to {b}."),
    "letter-p-t": ("letter", LETTERS, "P", "T", "Choose a letter between {a} and {b} at random."),
    "rainbow-orange-blue": ("colour", RAINBOW, "Orange", "Blue", "Pick a colour of the rainbow from {a} to {b}, at random."),
    "note-d-a": ("note", NOTES, "D", "A", "Choose a random note of the C major scale from {a} up to {b}."),
    "greek-beta-eta": ("Greek letter", GREEK, "Beta", "Eta", "Name a Greek letter from {a} to {b}, chosen at random."),
    "zodiac-gemini-libra": ("zodiac sign", ZODIAC, "Gemini", "Libra", "Which zodiac sign from {a} to {b}? Pick one at random."),
    "word-four-nine": ("number word", WORDS, "four", "nine", "Pick a number from {a} to {b} at random and write it as a word."),
    "nato-charlie-hotel": ("code word", NATO, "Charlie", "Hotel", "Choose a NATO alphabet code word from {a} to {b} at random."),
    "rank-five-ten": ("card rank", RANKS, "Five", "Ten", "Pick a playing-card rank from {a} to {b} at random."),
}  # fmt: skip


def tasks() -> dict[str, str]:
    """File name -> text: each range in two formats (rotating through the constrained tasks' seven)."""
    out = {}
    for i, (name, (what, every, a, b, q)) in enumerate(sorted(RANGES.items())):
        chosen = every[every.index(a) : every.index(b) + 1]
        for k in (i, i + 3):
            fmt = FORMATS[k % len(FORMATS)]
            _, text = _task(
                fmt, name, what, every, chosen, q.format(a=a, b=b), random.Random(f"0/{name}/{fmt}")
            )
            data = {**json.loads(text), "name": f"word-range/{fmt}/{name}"}
            out[f"word-range-{fmt}-{name}.json"] = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    return out


def write_config(out: Path) -> Path:
    """OUT/config.yaml: the shipped six-task config with the task folder OUT/tasks added, run folder OUT/run."""
    cfg = yaml.safe_load((ROOT / "configs/smollm2-135m/six-tasks-keep.yaml").read_text())
    cfg["train_prompts"] = [*cfg["train_prompts"], str((out / "tasks").resolve())]
    cfg["output_dir"] = str((out / "run").resolve())
    (out / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out / "config.yaml"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for tasks/ and config.yaml")
    out = parser.parse_args().out
    if out.exists() and not out.is_dir():
        parser.error(f"{out}: not a folder")
    written = tasks()
    (out / "tasks").mkdir(parents=True, exist_ok=True)
    for name, text in written.items():
        (out / "tasks" / name).write_text(text)
    print(f"{len(written)} tasks in {out / 'tasks'}; train with: diffuse train {write_config(out)}")
