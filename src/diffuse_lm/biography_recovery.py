"""Biography fields from generations that miss the paper's six-braced-lines format (Section 6).

The embedded 135M model almost never writes six braced lines, yet it often writes some fields: a name on
the first line, labelled lines (``Born: 1960``, ``Gender - Male``), numbered lists, or one comma-separated
line. :func:`parse_biography_tolerant` recovers those; a value is taken only from a label, from its
place in the prompt's order where it also has the field's shape, or by its shape alone for names (the
first line), genders, dates and places; nothing is guessed from prose but ``born in/on``. A well-formed
biography parses exactly as :func:`diffuse_lm.biographies.parse_biography` parses it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from diffuse_lm.biographies import GENDERS, _clean, _countries, _country, parse_biography, record_of
from diffuse_lm.paper_prompts import BIOGRAPHY_FIELDS

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_YEAR4 = r"(?:1\d{3}|20\d{2})"
_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+{_YEAR4}"  # June 30, 1960
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+{_YEAR4}"  # 30 June 1960
    rf"|{_YEAR4}[-/.]\d{{1,2}}[-/.]\d{{1,2}}"  # 1960-06-30
    rf"|\d{{1,2}}[-/.]\d{{1,2}}[-/.]{_YEAR4}"  # 06/30/1960
    rf"|{_YEAR4},?\s+{_MONTH}\s+\d{{1,2}}"  # 1960 June 30
    rf"|{_MONTH},?\s+{_YEAR4}"  # June 1960
    rf"|{_YEAR4}s?)\b",  # 1960
    re.IGNORECASE,
)
_BORN_DATE = re.compile(rf"\bborn\b[^.;]{{0,30}}?\b(?:in|on)\s+({_DATE.pattern[2:-2]})\b", re.IGNORECASE)
_BORN_PLACE = re.compile(r"\bborn\b[^.;]{0,40}?\bin\s+([A-Z][^.;()\d]{1,60})")
# Labels the model writes before a value, by field ("birth_country": a country alone).
_LABELS = {
    "name": r"full name|first and last name|first name and last name|name",
    "gender": r"gender|sex",
    "birth_date": r"date and year of birth|date of birth|time of birth|year of birth|birth ?date|birthday|"
    r"born on|born|dob",
    "birth_place": r"city and country of birth|place of birth|city of birth|birth ?place|born in|hometown",
    "birth_country": r"country of birth|country",
    "profession": r"profession|occupation|job title|job",
    "accomplishments": r"accomplishments?|achievements?|known for",
}
_LABEL = re.compile(
    r"^(?:" + "|".join(f"(?P<{k}>{v})" for k, v in _LABELS.items()) + r")\s*(?:[:=]|\s[-–—]\s?|[-–—])\s*",
    re.IGNORECASE,
)
_ANY_LABEL = re.compile(r"^[\w ]{1,30}\s*[:=]\s*\S")  # "Title: …", "Person = …": some field of its own
_NUMBERING = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•>#]+)\s+")
_NOT_NAMES = {
    "biography",
    "example",
    "title",
    "output",
    "university",
    "institute",
    "college",
    "school",
    "company",
    "hello",
    "sure",
    "here",
    "great",
}
GENDER_WORDS = {k for k in GENDERS if len(k) > 1}  # "m" or "f" alone is too easily something else


def _segments(text: str) -> list[str]:
    """The text cut at line breaks, braces, ``|`` and symbols such as emoji; numbering, quotes and stray
    punctuation stripped; empty pieces dropped."""
    cut = "".join("\n" if unicodedata.category(ch) == "So" or ch in "{}|" else ch for ch in text)
    out = []
    for piece in cut.split("\n"):
        piece = _NUMBERING.sub("", piece).strip(" \t\"'`“”‘’*_,;")
        if any(ch.isalnum() for ch in piece):
            out.append(" ".join(piece.split()))
    return out


def _items(segment: str) -> list[str] | None:
    """A segment's comma-separated items when it is a list of short items (each at most 4 words), else
    None (prose)."""
    items = [i.strip(" .") for i in segment.split(",")]
    return items if all(0 < len(i.split()) <= 4 for i in items) else None


def is_name(text: str, fewest: int = 2) -> bool:
    """``fewest`` (to four) capitalised words of letters (initials and hyphens allowed), none a month or a
    gender."""
    words = text.strip(" .").split()
    if not fewest <= len(words) <= 4 or len(text) > 40:
        return False
    for w in words:
        bare = w.replace("-", "").replace("'", "").replace(".", "")
        if not (bare.isalpha() and w[0].isupper()) or w.lower().strip(".") in _NOT_NAMES | GENDER_WORDS:
            return False
    return not _DATE.fullmatch(text.strip())


def _gender(text: str) -> str | None:
    key = text.lower().strip(" .!")
    return GENDERS[key] if key in GENDER_WORDS else None


def _is_region(text: str) -> bool:
    """A country (or its alias) or a US state, as written."""
    from diffuse_lm.biographies import _us_states

    text = text.strip(" .")
    if _country(text)[0] is not None:
        return True
    try:
        states = _us_states()
    except ImportError:
        return False
    codes = set(states.values()) | {code for code, _ in _countries().values()}
    return text.lower() in states or text in codes  # a code only in capitals: "MA", "HK"


def _place_in(items: list[str]) -> str | None:
    """``City, Region, Country`` at the end of a list of items: the last item that is a country or state and
    up to two word-only items before it."""
    for end in range(len(items) - 1, -1, -1):
        if _is_region(items[end]):
            start = end
            while start > max(end - 2, 0) and re.fullmatch(r"[^\W\d_][\w .'-]*", items[start - 1]):
                if _DATE.search(items[start - 1]) or _gender(items[start - 1]):
                    break
                start -= 1
            if start == end and _country(items[end])[0] is None:
                return None  # alone, only a country will do (not "MA", not a state)
            return ", ".join(items[start : end + 1])
    return None


def _date_in(segment: str) -> str | None:
    """The date a list-like segment holds, or the date after ``born in/on`` in prose."""
    if _items(segment) is not None:
        m = _DATE.search(segment)
        return m.group(0) if m else None
    m = _BORN_DATE.search(segment)
    return m.group(1) if m else None


def _shape(field: str, value: str | None) -> bool:
    """Does a value have its field's shape? (Used for strict fields of malformed records.)"""
    if not value:
        return False
    if field == "name":  # one word will do in the name's braces
        return is_name(value, fewest=1)
    if field == "gender":
        return _gender(value) is not None
    if field == "birth_date":
        return _DATE.search(value) is not None
    if field == "birth_place":
        items = _items(value)
        return items is not None and _place_in(items) == ", ".join(items)
    if field == "profession":
        return len(value.split()) <= 5 and re.fullmatch(r"[^\W\d_][^\d{}#@/:=]*", value) is not None
    return len(value.split()) >= 2  # accomplishments


def parse_biography_tolerant(text: str) -> dict:
    """A record with the keys of ``parse_biography`` (``valid`` and ``problems`` are its verdict on the
    format) and ``recovered``: field -> how it was found (``braces``, ``label``, ``shape``, ``position``)."""
    strict = parse_biography(text)
    if strict["valid"]:
        return {**strict, "recovered": dict.fromkeys(BIOGRAPHY_FIELDS, "braces")}
    segs = _segments(text)
    found: dict[str, tuple[str, int, str]] = {}  # field -> (value, segment index, how)
    for k in BIOGRAPHY_FIELDS:  # braced fields in their place, while each has its field's shape
        if not _shape(k, strict[k]):
            break
        found[k] = (strict[k], _index(segs, strict[k]), "braces")
    for i, s in enumerate(segs):
        m = _LABEL.match(s)
        if m:
            field = m.lastgroup
            value = _clean(s[m.end() :]).strip(" .")
            if field == "gender":
                value = value.split()[0] if value.split() else ""
            if value and (field != "gender" or _gender(value)):
                found.setdefault(field, (value, i, "label"))
    _by_shape(segs, found)
    _by_position(segs, found)
    values = {k: found[k][0] for k in BIOGRAPHY_FIELDS if k in found}
    rec = record_of(values)
    country = found.get("birth_country")
    if country and not rec["birth_country"]:
        rec["birth_country"] = _country(country[0])[1]
    if rec["birth_place"] and _country(rec["birth_place"])[0] and "," not in rec["birth_place"]:
        rec["birth_city"], rec["birth_country"] = None, _country(rec["birth_place"])[1]  # a country alone
    rec["valid"], rec["problems"] = strict["valid"], strict["problems"]
    rec["recovered"] = {k: found[k][2] for k in BIOGRAPHY_FIELDS if k in found}
    return rec


def _index(segs: list[str], value: str) -> int:
    return next((i for i, s in enumerate(segs) if value in s), -1)


def _by_shape(segs: list[str], found: dict) -> None:
    """Name (the first segment, or its first item), gender, date and place by their shape alone."""
    taken = {i for _, i, _ in found.values()}
    if "name" not in found and segs:
        first = (_items(segs[0]) or [segs[0]])[0]
        if is_name(first) and not _ANY_LABEL.match(segs[0]):
            found["name"] = (first, 0, "shape")
    for i, s in enumerate(segs):
        if i in taken or _ANY_LABEL.match(s):  # a labelled line is its label's (or no field's)
            continue
        items = _items(s)
        if "gender" not in found:
            g = next((x for x in items or [s] if _gender(x)), None)
            if g:
                found["gender"] = (g, i, "shape")
        if "birth_date" not in found:
            d = _date_in(s)
            if d:
                found["birth_date"] = (d, i, "shape")
        if "birth_place" not in found:
            p = _place_in(items) if items is not None else None
            if p is None and items is None:
                m = _BORN_PLACE.search(s)
                inner = _items(m.group(1).strip()) if m else None
                p = _place_in(inner) if inner else None
            if p:
                found["birth_place"] = (p, i, "shape")


def _by_position(segs: list[str], found: dict) -> None:
    """Profession and accomplishments in the prompt's order: the unlabelled segment right after the birth
    place (a short one, no digits) and the one after the profession (two words or more)."""
    for field, after in (("profession", "birth_place"), ("accomplishments", "profession")):
        if field in found or after not in found or found[after][2] == "label" or found[after][1] < 0:
            continue
        i = found[after][1] + 1
        used = {j for _, j, _ in found.values()}
        if i < len(segs) and i not in used and not _ANY_LABEL.match(segs[i]) and _shape(field, segs[i]):
            found[field] = (segs[i].strip(" ."), i, "position")


def field_shares(records: Sequence[dict]) -> dict[str, float]:
    """Share of records that have each of the six fields (and a birth year)."""
    n = len(records)
    keys = (*BIOGRAPHY_FIELDS, "birth_year")
    return {k: (sum(r.get(k) is not None for r in records) / n if n else 0.0) for k in keys}


def recovery(texts: Sequence[str]) -> dict:
    """Per field, the share of ``texts`` from which the strict parser and the tolerant one recover it."""
    strict = [parse_biography(t) for t in texts]
    tolerant = [parse_biography_tolerant(t) for t in texts]
    return {"n": len(texts), "strict": field_shares(strict), "tolerant": field_shares(tolerant)}
