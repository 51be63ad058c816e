"""The tolerant biography parser: what it recovers from text off the six-braced-lines format, and what it
does not invent."""

from __future__ import annotations

from test_biographies import EXAMPLE

from diffuse_lm.biographies import parse_biography
from diffuse_lm.biography_recovery import parse_biography_tolerant, recovery

FIELDS = ("name", "gender", "birth_date", "birth_place", "profession", "accomplishments")


def fields(text: str) -> dict:
    r = parse_biography_tolerant(text)
    return {k: r[k] for k in FIELDS if r[k] is not None}


def test_a_well_formed_biography_parses_as_the_strict_parser_parses_it():
    r = parse_biography_tolerant(EXAMPLE)
    assert {k: v for k, v in r.items() if k != "recovered"} == parse_biography(EXAMPLE)
    assert set(r["recovered"].values()) == {"braces"}


def test_labelled_lines_and_a_name_on_the_first_line():
    r = parse_biography_tolerant(
        "Maria Lopez\nGender: female\nBorn: 1960\nPlace of birth: Lyon, France\nOccupation - Chemist"
    )
    assert (r["first_name"], r["last_name"], r["gender"], r["birth_year"]) == (
        "Maria",
        "Lopez",
        "Female",
        1960,
    )
    assert (r["birth_city"], r["birth_country"], r["profession"]) == ("Lyon", "France", "Chemist")
    assert r["accomplishments"] is None and not r["valid"]  # the strict verdict on the format stays
    assert r["recovered"] == {
        "name": "shape",
        "gender": "label",
        "birth_date": "label",
        "birth_place": "label",
        "profession": "label",
    }


def test_one_comma_separated_line_and_a_numbered_list():
    assert fields("Dillon Cassell, Male, March 30, 1960, Cambridge, MA, USA") == {
        "name": "Dillon Cassell",
        "gender": "Male",
        "birth_date": "March 30, 1960",
        "birth_place": "Cambridge, MA, USA",
    }
    got = fields(
        "1. Ada Stone\n2. Female\n3. 2 May 1961\n4. Oslo, Norway\n5. Painter\n6. Painted the fjords."
    )
    assert got == {
        "name": "Ada Stone",
        "gender": "Female",
        "birth_date": "2 May 1961",
        "birth_place": "Oslo, Norway",
        "profession": "Painter",
        "accomplishments": "Painted the fjords",
    }


def test_braced_fields_out_of_place_are_found_by_their_shape():
    """Braced fields count in their place only while the order holds; after that, by shape and order."""
    r = parse_biography_tolerant(
        "{John Skremberg}\n{Male}\n{Bridlecooney, Tennessee, USA}\n{Neuroscientist}\n{Mapped the cortex.}"
    )
    assert (r["name"], r["gender"], r["birth_date"]) == ("John Skremberg", "Male", None)
    assert r["birth_place"] == "Bridlecooney, Tennessee, USA" and r["birth_region"] == "Tennessee"
    assert (r["profession"], r["accomplishments"]) == ("Neuroscientist", "Mapped the cortex")


def test_nothing_is_invented_from_prose_chatter_or_a_name_alone():
    assert fields("I'm here to help you craft a biography sketch of someone famous.") == {}
    assert fields("Great job! This is exactly what you are looking for, in 2020 or so.") == {}
    assert fields("David Hippocampus") == {"name": "David Hippocampus"}
    # a profession is only taken from a label or right after a birth place, never from prose
    assert "profession" not in fields("Ann Lee\nShe worked as a chemist in Lyon for years.")
    # a lone state code is no birth place, a lone gender letter no gender
    assert fields("Bo Lind\nM\nMA") == {"name": "Bo Lind"}
    # prose gives a date or place only after "born"
    got = fields("Meet Ann Lee, a chemist you will never forget. She was born in 1961 in Lyon, France.")
    assert got == {"birth_date": "1961", "birth_place": "Lyon, France"}


def test_recovery_shares_strict_vs_tolerant():
    texts = [EXAMPLE, "Maria Lopez\nBorn: 1960", "No biography here."]
    r = recovery(texts)
    assert r["n"] == 3
    assert r["strict"]["name"] == 1 / 3 and r["tolerant"]["name"] == 2 / 3
    assert r["strict"]["birth_year"] == 1 / 3 and r["tolerant"]["birth_year"] == 2 / 3
    assert r["tolerant"]["accomplishments"] == 1 / 3
