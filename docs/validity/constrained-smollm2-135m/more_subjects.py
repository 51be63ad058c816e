"""Random choices among more closed sets with a conventional order ("a colour of the rainbow", "a phase of the
moon", "one of the first eight Greek letters"), written as format-mix training tasks: each subject in two of the
sixteen trained formats, rotating as `formats-mix` does, to OUT/tasks/<format>/<subject>.json (family
FORMAT-<kind>). Base models favour the first member of such a set (North, Monday, January); the format mix has few
of them. No subject is one of `formats`' evaluation subjects (days, months, seasons, continents, compass points)
or of the user requests in user-tasks/ (metals, oceans, vegetables, weekdays). OUT/config.yaml is the shipped
six-task config with the tasks added.

    python docs/validity/constrained-smollm2-135m/more_subjects.py OUT [--all] [--per-subject 1]
    python docs/validity/constrained-smollm2-135m/formats_passes.py OUT 4 braces answer --extra OUT/tasks
    diffuse train OUT/config.yaml alg_config.n_iters=4
"""

import argparse
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
from make_format_tasks import TRAINED, _task  # noqa: E402
from word_ranges import write_config  # noqa: E402  (this script's folder is on sys.path)

# name -> (question, what is asked for, the set in its conventional order)
SUBJECTS = {
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
MORE = {  # a second fourteen, more of them with answers of several words (as "North America" is)
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


def tasks(subjects: dict, per_subject: int = 2) -> dict[str, str]:
    """Path under OUT/tasks -> file text: each subject in ``per_subject`` formats, rotating through the
    sixteen."""
    fmts, out = list(TRAINED), {}
    for i, (name, (q, what, items)) in enumerate(sorted(subjects.items())):
        for k in (i, i + 3)[:per_subject]:
            fmt = fmts[k % len(fmts)]
            _, text = _task(
                "extra", fmt, name, q, what, items, [1.0] * len(items), random.Random(f"0/{name}/{fmt}")
            )
            out[f"{fmt}/{name}.json"] = text
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for tasks/")
    parser.add_argument("--all", action="store_true", help="the 28 subjects (default: the first fourteen)")
    parser.add_argument("--per-subject", type=int, choices=(1, 2), default=2, help="formats a subject")
    args = parser.parse_args()
    out = args.out
    if out.exists() and not out.is_dir():
        parser.error(f"{out}: not a folder")
    written = tasks({**SUBJECTS, **MORE} if args.all else SUBJECTS, args.per_subject)
    for name, text in written.items():
        (out / "tasks" / name).parent.mkdir(parents=True, exist_ok=True)
        (out / "tasks" / name).write_text(text)
    print(f"{len(written)} tasks in {out / 'tasks'}; the six-task config with them: {write_config(out)}")
