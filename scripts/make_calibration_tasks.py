"""Generate src/diffuse_lm/data/tasks/calibration/: the built-in distribution families of
src/diffuse_lm/data/families.yaml as task files (every phrasing in every format, with p* and the values of
the support), and the multiple-choice answer-position tasks (calibration/mcq/): write a question with
options A-D, first marking the correct one, whose wanted distribution over the marked letter is uniform.

    python scripts/make_calibration_tasks.py           # rewrite the shipped files
    python scripts/make_calibration_tasks.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from diffuse_lm.distributions import family_task_dicts  # noqa: E402

DATA = ROOT / "src" / "diffuse_lm" / "data"
OUT = DATA / "tasks" / "calibration"

# The marked letter comes first, so its distribution is exact by teacher forcing: the question the model
# writes after it cannot change it. eos: false leaves the turn open after the letter.
MCQ_TOPICS = ("geography", "biology", "world history", "arithmetic")
MCQ_PHRASINGS = (
    "Write a multiple-choice question about {topic} with four options, A, B, C and D, exactly one of them "
    "correct. Start your reply with the letter of the correct option between two curly braces, like this: "
    "{{letter}}; then write the question and the four options.",
    "I am building a quiz on {topic}. Give me one question with four answer options labelled A to D, only "
    "one of which is right. First write which letter will be the right one, in curly braces like {{letter}}, "
    "then the question and its options.",
)


def mcq_tasks() -> dict[str, dict]:
    out = {}
    for topic in MCQ_TOPICS:
        slug = topic.replace(" ", "-")
        for k, phrasing in enumerate(MCQ_PHRASINGS):
            name = f"calibration/mcq/{slug}/p{k}"
            out[name] = {
                "name": name,
                "family": "MCQ",
                "description": "The position of the correct option of a multiple-choice question the model "
                "writes: uniform over A-D (a balanced quiz), marked before the question is written.",
                "request": phrasing.format(topic=topic),
                "targets": ["{A}", "{B}", "{C}", "{D}"],
                "eos": False,
            }
    return out


def tasks() -> dict[str, str]:
    """Relative path under data/tasks -> file text, for every task this script writes."""
    specs = yaml.safe_load((DATA / "families.yaml").read_text())
    found = {}
    for split, items in specs.items():
        for spec in items:
            for data in family_task_dicts(spec, source=f"families.yaml: {split}"):
                data["name"] = f"calibration/{split}/{data['name']}"
                found[data["name"]] = data
    found.update(mcq_tasks())
    return {
        f"{name}.json": json.dumps(data, indent=1, ensure_ascii=False) + "\n" for name, data in found.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the shipped files differ")
    args = ap.parse_args()
    want = tasks()
    root = DATA / "tasks"
    if args.check:
        have = {str(p.relative_to(root)): p.read_text() for p in OUT.rglob("*.json")}
        if have != want:
            print(f"{OUT}: out of date (run scripts/make_calibration_tasks.py)", file=sys.stderr)
            return 1
        return 0
    shutil.rmtree(OUT, ignore_errors=True)
    for name, text in want.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    print(f"wrote {len(want)} task files under {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
