"""``diffuse synth biographies``: a synthetic dataset from the paper's biography prompt (Section 6): samples,
parsed records (JSONL, CSV), a report (JSON, Markdown) and a map of birth places."""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from diffuse_lm.commands.common import (
    add_model_args,
    add_sampling_args,
    check_replaceable,
    check_sampling_args,
    load_for_sampling,
    sampling_kwargs,
)
from diffuse_lm.errors import DiffuseError
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
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # first characters a spreadsheet may read as a formula


def register(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="build a synthetic dataset (biographies) from a model's samples",
        description="Sample a synthetic dataset and report its diversity.",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    b = kinds.add_parser(
        "biographies",
        help="fictional biographies from the paper's prompt (its Table 3)",
        description="Sample biographies with the paper's prompt, parse their fields (malformed "
        "records are kept and flagged), and write records, a report with per-attribute "
        "coverage and entropy, top values, gender shares, unigram diversity and a map of "
        "birth places. Re-running the same command resumes the sampling.",
    )
    b.add_argument("--output", "-o", required=True, help="folder for the dataset and the report")
    b.add_argument(
        "--csv",
        action="store_true",
        help="also write the records as biographies.csv, with the columns of biographies.jsonl (a text cell "
        "starting with = + - @, a tab or CR gets a leading ' so that spreadsheets do not run it as a formula)",
    )
    b.add_argument(
        "--parse",
        choices=("tolerant", "strict"),
        default="tolerant",
        help="strict: only the paper's six braced lines fill a record's fields; tolerant: also labelled "
        "lines (Born: 1960), a name on the first line, numbered or comma-separated fields (what small models "
        "write). `valid` is the strict verdict either way; the report gives both parsers' shares per field",
    )
    add_sampling_args(b, max_new_tokens_help=f"default {BIOGRAPHY_MAX_NEW_TOKENS}")
    add_model_args(b)
    b.set_defaults(func=run)


def _write_atomic(path: Path, write) -> None:
    """``write(f)`` into a text file written whole or not at all (a full disk is one line, no partial file)."""
    from diffuse_lm.files import _write_atomic as write_atomic

    write_atomic(path, "w", write)


def csv_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (it starts with ``= + - @``, a tab or a carriage
    return) gets a leading single quote, as the usual CSV-injection guidance says; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_records(records: list[dict], folder: Path, *, as_csv: bool) -> list[Path]:
    """``biographies.jsonl`` (and ``biographies.csv``) in ``folder``, both with :data:`COLUMNS` in that order
    (``problems`` a list in JSONL, joined by ``; `` in CSV); returns the paths written."""
    records = [{k: r.get(k) for k in COLUMNS} for r in records]
    out = [folder / "biographies.jsonl"]
    _write_atomic(out[0], lambda f: f.writelines(dumps(r, ensure_ascii=False) + "\n" for r in records))
    if as_csv:
        out.append(folder / "biographies.csv")

        def write_csv(f) -> None:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(
                {k: csv_safe(v) for k, v in {**r, "problems": "; ".join(r["problems"] or ())}.items()}
                for r in records
            )

        _write_atomic(out[1], write_csv)
    return out


def run(args: argparse.Namespace) -> int:

    from diffuse_lm.biographies import (
        ATTRIBUTES,
        BIOGRAPHY_PROMPT,
        biography_report,
        parse_biography,
        plot_birthplaces,
    )
    from diffuse_lm.biography_recovery import parse_biography_tolerant, recovery
    from diffuse_lm.present.markdown import biography_markdown
    from diffuse_lm.samples_file import check_not_locked, meta_path
    from diffuse_lm.sampling import sample_to_jsonl

    check_sampling_args(args)
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise DiffuseError(f"--output {folder}: is a file, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DiffuseError(f"--output {folder}: cannot create ({e.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise DiffuseError(f"--output {folder}: not writable")
    check_not_locked(folder / "generations.jsonl")  # before the model load, which takes a while
    ours = meta_path(folder / "generations.jsonl").is_file()  # an earlier run of this command
    check_replaceable(folder, OUTPUTS, ours, "synth biographies")

    model, tokenizer = load_for_sampling(args)
    messages = [{"role": "user", "content": BIOGRAPHY_PROMPT}]
    max_new = args.max_new_tokens or BIOGRAPHY_MAX_NEW_TOKENS
    out = folder / "generations.jsonl"
    kw = sampling_kwargs(args, max_new)
    samples = sample_to_jsonl(model, tokenizer, messages, args.n, out, what="biographies", **kw)
    parse = parse_biography_tolerant if args.parse == "tolerant" else parse_biography
    records = [{"index": s["index"], **parse(s["text"]), "text": s["text"]} for s in samples]
    written = write_records(records, folder, as_csv=args.csv)
    report = biography_report(records)
    report["parse"] = args.parse
    report["recovered"] = recovery([s["text"] for s in samples])
    report["map"] = plot_birthplaces(records, folder / "birthplaces.png")
    keys = ("n", "model", "adapter", "temperature", "top_p", "top_k", "seed", "backend")
    report["settings"] = {**{k: getattr(args, k) for k in keys}, "max_new_tokens": max_new}
    _write_atomic(
        folder / "report.json", lambda f: f.write(dumps(report, indent=1, ensure_ascii=False) + "\n")
    )
    md = biography_markdown(report, map_file="birthplaces.png")
    _write_atomic(folder / "report.md", lambda f: f.write(md))

    from diffuse_lm.present.console import table_console

    con = table_console()
    con.print(
        f"{report['n']} biographies, {report['n_valid']} well formed ({args.parse} parse); "
        f"{report['map']['placed']} birth places on the map"
    )
    for key, a in report["attributes"].items():
        top = ", ".join(f"{str(v)[:30]} ({c})" for v, c in a["top"][:3])
        con.print(
            f"  {ATTRIBUTES[key]:<14} coverage {a['coverage']:>4}  entropy {a['entropy']:.2f}  {top}",
            markup=False,
            highlight=False,
        )
    rec = report["recovered"]
    con.print(
        "  fields recovered, strict -> tolerant parse: "
        + ", ".join(f"{k} {rec['strict'][k]:.0%} -> {rec['tolerant'][k]:.0%}" for k in rec["strict"]),
        markup=False,
        highlight=False,
    )
    for p in [*written, folder / "report.md", folder / "report.json", folder / "birthplaces.png"]:
        con.print(f"wrote {p}", markup=False, highlight=False)
    return 0
