"""The synthetic biography dataset (``diffuse synth biographies``, Section 6): biographies sampled with the
paper's prompt into a resumable file, parsed into records (JSONL, CSV), and reported (JSON, Markdown, a map
of birth places)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffuse_lm.files import write_atomic, write_csv_atomic
from diffuse_lm.strict_json import dumps

BIOGRAPHY_MAX_NEW_TOKENS = 200
COLUMNS = (  # of biographies.jsonl and biographies.csv alike, in this order
    "index",
    "name",
    "first_name",
    "last_name",
    "gender",
    "birth_date",
    "birth_year",
    "birth_place",
    "birth_city",
    "birth_region",
    "birth_country",
    "profession",
    "accomplishments",
    "valid",
    "problems",
    "text",
)
# What a run writes beside generations.jsonl: replaced only in a folder an earlier run wrote.
OUTPUTS = ("biographies.jsonl", "biographies.csv", "report.json", "report.md", "birthplaces.png")


def write_records(records: list[dict], folder: Path, *, as_csv: bool) -> list[Path]:
    """``biographies.jsonl`` (and ``biographies.csv``) in ``folder``, both with :data:`COLUMNS` in that order
    (``problems`` a list in JSONL, joined by ``; `` in CSV); returns the paths written."""
    records = [{k: r.get(k) for k in COLUMNS} for r in records]
    out = [folder / "biographies.jsonl"]
    write_atomic(out[0], "".join(dumps(r, ensure_ascii=False) + "\n" for r in records))
    if as_csv:
        out.append(folder / "biographies.csv")
        rows = [{**r, "problems": "; ".join(r["problems"] or ())} for r in records]
        write_csv_atomic(out[1], rows, fieldnames=COLUMNS)
    return out


def synth_biographies(
    model,
    tokenizer,
    folder: str | Path,
    n: int,
    *,
    parse: str = "tolerant",
    as_csv: bool = False,
    max_new_tokens: int = BIOGRAPHY_MAX_NEW_TOKENS,
    settings: dict[str, Any] | None = None,
    **sampling: Any,
) -> tuple[dict, list[Path]]:
    """Sample ``n`` biographies into ``folder/generations.jsonl`` (resumed), parse them (``tolerant`` or
    ``strict``; ``valid`` is the strict verdict either way), and write the records, ``report.json``,
    ``report.md`` and ``birthplaces.png``. ``sampling``: settings of
    :func:`diffuse_lm.sampling.sample_to_jsonl`; ``settings``: what the report records of them. Returns the
    report and the files written."""
    from diffuse_lm.biographies import BIOGRAPHY_PROMPT, biography_report, parse_biography, plot_birthplaces
    from diffuse_lm.biography_recovery import parse_biography_tolerant, recovery
    from diffuse_lm.present.markdown import biography_markdown
    from diffuse_lm.sampling import sample_to_jsonl

    folder = Path(folder)
    messages = [{"role": "user", "content": BIOGRAPHY_PROMPT}]
    out = folder / "generations.jsonl"
    samples = sample_to_jsonl(
        model, tokenizer, messages, n, out, what="biographies", max_new_tokens=max_new_tokens, **sampling
    )
    parser = parse_biography_tolerant if parse == "tolerant" else parse_biography
    records = [{"index": s["index"], **parser(s["text"]), "text": s["text"]} for s in samples]
    written = write_records(records, folder, as_csv=as_csv)
    report = biography_report(records)
    report["parse"] = parse
    report["recovered"] = recovery([s["text"] for s in samples])
    report["map"] = plot_birthplaces(records, folder / "birthplaces.png")
    report["settings"] = {**(settings or {}), "max_new_tokens": max_new_tokens}
    write_atomic(folder / "report.json", dumps(report, indent=1, ensure_ascii=False) + "\n")
    md = biography_markdown(report, map_file="birthplaces.png")
    write_atomic(folder / "report.md", md)
    return report, [*written, folder / "report.md", folder / "report.json", folder / "birthplaces.png"]
