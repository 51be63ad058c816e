"""Synthetic biographies: record parsing, the per-attribute report, offline geocoding and the map."""

from __future__ import annotations

import csv
import json
import math

import pytest
from conftest import char_tokenizer, tiny_llama

from diffuse_lm.biographies import (
    BIOGRAPHY_PROMPT,
    biography_report,
    geocode,
    parse_biography,
    plot_birthplaces,
)
from diffuse_lm.cli import main
from diffuse_lm.present.markdown import biography_markdown

EXAMPLE = (
    "{David Hippocampus}\n{Male}\n{June 30, 1960}\n{Cambridge, Massachusetts, USA}\n{Neuroscientist}\n"
    "{Revolutionized cognitive science by elucidating the mechanisms underlying memory formation}"
)


def test_the_prompt_is_the_papers():
    assert BIOGRAPHY_PROMPT.startswith("Generate a random biography sketch of a fictional, notable person.")
    assert "{Gender - Female/Male/Non-binary}" in BIOGRAPHY_PROMPT


def test_parse_the_papers_example():
    r = parse_biography(EXAMPLE)
    assert (r["first_name"], r["last_name"], r["gender"], r["birth_year"]) == (
        "David",
        "Hippocampus",
        "Male",
        1960,
    )
    assert (r["birth_city"], r["birth_region"], r["birth_country"]) == (
        "Cambridge",
        "Massachusetts",
        "United States",
    )
    assert r["profession"] == "Neuroscientist" and r["accomplishments"].startswith("Revolutionized")
    assert r["valid"] and r["problems"] == []


def test_labels_and_spellings_are_normalised():
    r = parse_biography(
        "{Name: Ada  Lovelace} {Gender: female} {Born: 10/12/1815} {London, England} "
        "{Profession: Mathematician} {Wrote the first program.}"
    )
    assert (r["first_name"], r["last_name"], r["gender"], r["birth_year"]) == (
        "Ada",
        "Lovelace",
        "Female",
        1815,
    )
    assert r["birth_country"] == "United Kingdom" and r["valid"]


def test_malformed_records_are_kept_and_flagged():
    short = parse_biography("{Plato}\n{Robot}\n{sometime}\n{Athens}")
    assert not short["valid"]
    assert "4 fields, not 6" in short["problems"] and "missing accomplishments" in short["problems"]
    assert "unknown gender 'Robot'" in short["problems"] and "no year in birth date" in short["problems"]
    assert "no last name" in short["problems"] and "birth place has no country" in short["problems"]
    assert (
        short["first_name"] == "Plato" and short["birth_city"] == "Athens" and short["birth_country"] is None
    )
    empty = parse_biography("I cannot do that.")
    assert not empty["valid"] and empty["first_name"] is None and "0 fields, not 6" in empty["problems"]


def test_report_counts_coverage_entropy_top_values_and_genders():
    bios = [
        EXAMPLE,
        EXAMPLE.replace("David", "Maria").replace("{Male}", "{Female}"),
        EXAMPLE.replace("David", "Maria").replace("{Male}", "{female}"),
        "garbage",
    ]
    records = [{**parse_biography(t), "text": t} for t in bios]
    rep = biography_report(records)
    assert (rep["n"], rep["n_valid"]) == (4, 3)
    first = rep["attributes"]["first_name"]
    assert (first["present"], first["coverage"], first["top"]) == (3, 2, [["Maria", 2], ["David", 1]])
    assert first["entropy"] == pytest.approx(-(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    assert rep["attributes"]["birth_place"]["top"] == [["Cambridge, United States", 3]]
    assert rep["attributes"]["birth_year"]["coverage"] == 1
    assert rep["gender_shares"] == {"Female": 0.5, "Male": 0.25, "missing": 0.25}
    assert 0 < rep["unigram_diversity"]["accomplishments"] < rep["unigram_diversity"]["biography"] <= 1
    md = biography_markdown(rep, map_file="birthplaces.png")
    assert (
        "| First name | 3 | 2 | 0.64 |" in md
        and "Maria (2)" in md
        and "![birth places](birthplaces.png)" in md
    )


def test_geocoding_is_offline_and_uses_the_country():
    us = geocode(parse_biography(EXAMPLE))
    uk = geocode(parse_biography(EXAMPLE.replace("Massachusetts, USA", "UK")))
    assert us and -72 < us[0] < -70 and 42 < us[1] < 43  # Cambridge, MA
    assert uk and -1 < uk[0] < 1 and 52 < uk[1] < 53  # Cambridge, England
    assert geocode(parse_biography(EXAMPLE.replace("Cambridge", "Zzyzxville"))) is None


def test_map_png(tmp_path):
    records = [
        parse_biography(EXAMPLE),
        parse_biography(EXAMPLE.replace("Cambridge, Massachusetts, USA", "Nairobi, Kenya")),
        {"birth_city": None},
    ]
    out = plot_birthplaces(records, tmp_path / "map.png")
    assert out == {"placed": 2, "distinct_places": 2, "not_placed": 1}
    assert (tmp_path / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synth_biographies_command(tmp_path):
    tok = char_tokenizer()
    model_dir = tmp_path / "tiny"
    model = tiny_llama(len(tok), layers=1)
    model.config.max_position_embeddings = 1024  # the prompt is 764 characters: one token each
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    out = tmp_path / "bios"
    argv = [
        "synth",
        "biographies",
        "--model",
        str(model_dir),
        "--n",
        "4",
        "--max-new-tokens",
        "4",
        "--output",
        str(out),
        "--csv",
    ]
    assert main(argv) == 0
    lines = (out / "biographies.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(not json.loads(x)["valid"] for x in lines)  # random text: kept, flagged
    with open(out / "biographies.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[0]["valid"] == "False" and rows[0]["text"]
    assert list(rows[0]) == list(json.loads(lines[0])) and "name" in rows[0]  # the same columns, in order
    assert [json.loads(x)["index"] for x in lines] == [0, 1, 2, 3]
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 4 and report["map"]["placed"] == 0
    assert (out / "report.md").exists() and (out / "birthplaces.png").exists()
    assert len((out / "generations.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("parse", ["tolerant", "strict"])
def test_synth_fills_fields_by_the_parser_asked_and_reports_both_shares(tmp_path, monkeypatch, parse):
    import diffuse_lm.sampling as sampling

    texts = [EXAMPLE, "Maria Lopez\nGender: Female\nBorn: 1960", "Sure! Here you go."]
    monkeypatch.setattr(
        sampling,
        "sample_to_jsonl",
        lambda *a, **k: [{"index": i, "text": t} for i, t in enumerate(texts)],
    )
    tok = char_tokenizer()
    tiny_llama(len(tok), layers=1).save_pretrained(tmp_path / "tiny")
    tok.save_pretrained(tmp_path / "tiny")
    out = tmp_path / "bios"
    argv = ["synth", "biographies", "--model", str(tmp_path / "tiny"), "--n", "3", "--output", str(out)]
    assert main([*argv, "--parse", parse]) == 0
    rows = [json.loads(x) for x in (out / "biographies.jsonl").read_text().splitlines()]
    assert [r["valid"] for r in rows] == [True, False, False]  # the strict verdict either way
    assert rows[1]["first_name"] == ("Maria" if parse == "tolerant" else None)
    assert rows[1]["birth_year"] == (1960 if parse == "tolerant" else None)
    assert rows[2]["name"] is None
    report = json.loads((out / "report.json").read_text())
    assert report["parse"] == parse and report["attributes"]["first_name"]["present"] == (
        2 if parse == "tolerant" else 1
    )
    shares = report["recovered"]
    assert shares["strict"]["gender"] == pytest.approx(1 / 3) and shares["tolerant"][
        "gender"
    ] == pytest.approx(2 / 3)
    assert "| gender | 33% | 67% |" in (out / "report.md").read_text()
