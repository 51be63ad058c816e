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
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))
from make_format_tasks import ORDERED, ORDERED_MORE, ordered  # noqa: E402
from word_ranges import write_config  # noqa: E402  (this script's folder is on sys.path)


def tasks(subjects: dict, per_subject: int = 2) -> dict[str, str]:
    """Path under OUT/tasks -> file text: each subject in ``per_subject`` formats, rotating through the
    sixteen (the tasks of group `ordered-mix`, named formats/extra/... so they differ from those)."""
    written = ordered(subjects, per_subject, split="extra")
    return {p.removeprefix("formats/extra/"): text for p, text in written.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for tasks/")
    parser.add_argument("--all", action="store_true", help="the 28 subjects (default: the first fourteen)")
    parser.add_argument("--per-subject", type=int, choices=(1, 2), default=2, help="formats a subject")
    args = parser.parse_args()
    out = args.out
    if out.exists() and not out.is_dir():
        parser.error(f"{out}: not a folder")
    written = tasks({**ORDERED, **ORDERED_MORE} if args.all else ORDERED, args.per_subject)
    for name, text in written.items():
        (out / "tasks" / name).parent.mkdir(parents=True, exist_ok=True)
        (out / "tasks" / name).write_text(text)
    print(f"{len(written)} tasks in {out / 'tasks'}; the six-task config with them: {write_config(out)}")
