"""Generate src/diffuse_lm/data/tasks/constrained/: random choices under a constraint on the answer (its first
letter, a range, a multiple), each asked in one of the seven answer formats of scripts/make_format_tasks.py.

A model tuned on random choices without constraints learns "asked for randomness -> spread over the subject" and
then ignores a constraint it was never taught to keep: held out of training, OCCUPATIONS "starting with M" was
answered `Data Scientist`, `Foreman` (docs/validity.md). These tasks teach "random *among the answers that satisfy
the constraint*". They share no subject with the six tasks of the paper (no occupations, names, countries,
fruits, dates) nor with the closed sets `diffuse reproduce formats` measures on (days, months, seasons,
continents, compass points).

- constrained/<format>/<subject>-<constraint>: uniform over the subject's answers that satisfy the constraint.
  In the letter and number formats the options shown mix answers that satisfy it with answers that do not, and
  the targets are the labels of those that do.

    python scripts/make_constrained_tasks.py           # rewrite the shipped files
    python scripts/make_constrained_tasks.py --check   # exit 1 if the shipped files differ
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_format_tasks import FORMATS as FORMATTED  # noqa: E402
from make_format_tasks import write_or_check  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "src" / "diffuse_lm" / "data" / "tasks"
GROUP = "constrained"
FAMILY = "CONSTRAINED"
SEED = 0
FORMATS = ("braces", "bare", "answer", "json", "lower", "letter", "number")
OPTIONS_IN, OPTIONS_OUT = 3, 3  # options shown in the letter and number formats: satisfying, not satisfying

ELEMENTS = """Hydrogen Helium Lithium Beryllium Boron Carbon Nitrogen Oxygen Fluorine Neon Sodium Magnesium Aluminium
Silicon Phosphorus Sulfur Chlorine Argon Potassium Calcium Scandium Titanium Vanadium Chromium Manganese Iron Cobalt
Nickel Copper Zinc Gallium Germanium Arsenic Selenium Bromine Krypton Rubidium Strontium Yttrium Zirconium Niobium
Molybdenum Technetium Ruthenium Rhodium Palladium Silver Cadmium Indium Tin Antimony Tellurium Iodine Xenon Caesium
Barium Lanthanum Cerium Praseodymium Neodymium Promethium Samarium Europium Gadolinium Terbium Dysprosium Holmium
Erbium Thulium Ytterbium Lutetium Hafnium Tantalum Tungsten Rhenium Osmium Iridium Platinum Gold Mercury Thallium
Lead Bismuth Polonium Astatine Radon Francium Radium Actinium Thorium Protactinium Uranium Neptunium Plutonium
Americium Curium Berkelium Californium Einsteinium Fermium Mendelevium Nobelium Lawrencium Rutherfordium Dubnium
Seaborgium Bohrium Hassium Meitnerium Darmstadtium Roentgenium Copernicium Nihonium Flerovium Moscovium Livermorium
Tennessine Oganesson""".split()
SPELLINGS = {"Aluminium": ["Aluminum"], "Caesium": ["Cesium"], "Sulfur": ["Sulphur"]}  # also valid
ANIMALS = """Aardvark Albatross Alligator Alpaca Anteater Antelope Armadillo Baboon Badger Bat Bear Beaver Bison Boar
Buffalo Butterfly Camel Capybara Caribou Cat Chameleon Cheetah Chicken Chimpanzee Chinchilla Cobra Cougar Cow Coyote
Crab Crocodile Crow Deer Dingo Dog Dolphin Donkey Dove Dragonfly Duck Eagle Eel Elephant Elk Emu Falcon Ferret
Flamingo Fox Frog Gazelle Gecko Gerbil Giraffe Goat Goose Gorilla Grasshopper Hamster Hare Hawk Hedgehog Heron
Hippopotamus Horse Hummingbird Hyena Ibis Iguana Impala Jackal Jaguar Jellyfish Kangaroo Koala Kingfisher Ladybug
Lemur Leopard Lion Lizard Llama Lobster Lynx Macaw Magpie Manatee Meerkat Mole Mongoose Monkey Moose Mouse Mule
Narwhal Newt Nightingale Octopus Opossum Orangutan Ostrich Otter Owl Ox Panda Panther Parrot Peacock Pelican
Penguin Pig Pigeon Platypus Porcupine Puma Quail Rabbit Raccoon Rat Raven Reindeer Rhinoceros Salamander Salmon
Seal Shark Sheep Skunk Sloth Snail Snake Sparrow Spider Squid Squirrel Starfish Stork Swan Tapir Tiger Toad Tortoise
Toucan Turkey Turtle Vulture Walrus Wasp Weasel Whale Wolf Wombat Woodpecker Yak Zebra""".split()
STATES = """Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|Hawaii|Idaho|
Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|Michigan|Minnesota|Mississippi|Missouri|
Montana|Nebraska|Nevada|New Hampshire|New Jersey|New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|
Pennsylvania|Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|
West Virginia|Wisconsin|Wyoming""".replace("\n", "").split("|")

# subject -> (what, every answer, first letters asked for, phrasing with {L})
LETTERED = {
    "element": ("element", ELEMENTS, "BCNPS", 'Name a random chemical element whose name starts with "{L}".'),
    "animal": (
        "animal",
        ANIMALS,
        "BCGHMPST",
        'Pick an animal whose name starts with "{L}", chosen at random.',
    ),
    "state": ("state", STATES, "IMNW", 'Choose a U.S. state that starts with the letter "{L}", at random.'),
}
TIMES = [f"{h}:{m:02d}" for h in range(1, 13) for m in (0, 15, 30, 45)]
# subject -> (what, every answer the options draw from, the satisfying ones, phrasing)
RANGED = {
    "multiple-3": ("number", range(1, 61), range(3, 61, 3), "Pick a random multiple of 3 between 1 and 60."),
    "multiple-5": ("number", range(1, 101), range(5, 101, 5), "Choose a multiple of 5 from 5 to 100 at random."),
    "multiple-7": ("number", range(1, 100), range(7, 100, 7), "Name a random multiple of 7 below 100."),
    "square": ("number", range(1, 101), [i * i for i in range(1, 11)], "Pick a perfect square from 1 to 100 at random."),
    "between-40-60": ("number", range(1, 101), range(40, 61), "Pick a whole number from 40 to 60, chosen at random."),
    "between-100-130": ("number", range(80, 151), range(100, 131), "Randomly pick an integer from 100 to 130."),
    "year-1960s": ("year", range(1950, 2010), range(1960, 1970), "Pick a random year in the 1960s."),
    "year-1980s": ("year", range(1950, 2010), range(1980, 1990), "Choose a year of the 1980s completely at random."),
    "morning-time": (
        "time",
        TIMES,
        [t for t in TIMES if t.split(":")[0] in ("8", "9", "10", "11")],
        "Pick a random time between 8:00 and 11:45 in the morning, to the quarter hour.",
    ),
}  # fmt: skip


def _shuffled(r: random.Random, items: list) -> list:
    items = list(items)
    for i in range(len(items) - 1, 0, -1):  # Fisher-Yates on random() alone: the same on every Python
        j = int(r.random() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def _options(fmt: str, q: str, what: str, every: list[str], chosen: list[str], r: random.Random):
    """The letter or number format: some answers that satisfy the constraint, some that do not, shuffled; the
    targets are the labels of those that do."""
    shown = _shuffled(
        r,
        _shuffled(r, chosen)[:OPTIONS_IN] + _shuffled(r, [x for x in every if x not in chosen])[:OPTIONS_OUT],
    )
    labels = list(("ABCDEF" if fmt == "letter" else "123456")[: len(shown)])
    listed = "\n".join(f"{a}) {x}" for a, x in zip(labels, shown, strict=True))
    request = f"{q} Choose among these options:\n{listed}\nReply with the {fmt} of your choice only."
    return request, [a for a, x in zip(labels, shown, strict=True) if x in chosen], []


def _task(fmt: str, name: str, what: str, every: list[str], chosen: list[str], q: str, r: random.Random):
    if fmt in ("letter", "number"):
        request, targets, valid = _options(fmt, q, what, every, chosen, r)
    else:
        request, targets, _ = FORMATTED[fmt](q, what, chosen, [1.0] * len(chosen), r)
        alt = [s for x in chosen for s in SPELLINGS.get(x, [])]
        valid = FORMATTED[fmt](q, what, alt, [1.0] * len(alt), r)[1] if alt else []
    assert len(targets) >= 2 and len(set(targets)) == len(targets), name
    data = {
        "name": f"{GROUP}/{fmt}/{name}",
        "family": FAMILY,
        "description": f"A uniformly random {what} among the {len(targets)} that satisfy a constraint, asked in "
        f"the {fmt} format.",
        "request": request,
        "targets": targets,
    }
    if valid:
        data["valid"] = valid
    return f"{GROUP}/{fmt}/{name}.json", json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def subjects() -> dict[str, tuple[str, list[str], list[str], str]]:
    """Task name -> (what, every answer of the subject, the answers that satisfy the constraint, question)."""
    out = {}
    for subject, (what, every, letters, phrasing) in LETTERED.items():
        for letter in letters:
            chosen = [x for x in every if x.startswith(letter)]
            out[f"{subject}-{letter.lower()}"] = (what, every, chosen, phrasing.format(L=letter))
    for subject, (what, every, chosen, question) in RANGED.items():
        out[subject] = (what, [str(x) for x in every], [str(x) for x in chosen], question)
    return out


def tasks() -> dict[str, str]:
    """Path under the task folder -> file text of every task: each subject in one format, rotating."""
    out = {}
    for i, (name, (what, every, chosen, question)) in enumerate(sorted(subjects().items())):
        fmt = FORMATS[i % len(FORMATS)]
        path, text = _task(fmt, name, what, every, chosen, question, random.Random(f"{SEED}/{name}"))
        out[path] = text
    return out


def mix() -> list[str]:
    """The task names of the built-in group ``constrained-mix``: every task of this generator."""
    return sorted(p.removesuffix(".json") for p in tasks())


def main() -> int:
    return write_or_check(GROUP, tasks(), __doc__, "scripts/make_constrained_tasks.py")


if __name__ == "__main__":
    sys.exit(main())
