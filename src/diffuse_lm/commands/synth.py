"""``diffuse synth biographies``: a synthetic dataset from the paper's biography prompt (Section 6): samples,
parsed records (JSONL, CSV), a report (JSON, Markdown) and a map of birth places."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from diffuse_lm.api import BIOGRAPHY_MAX_NEW_TOKENS, DiffuseError
from diffuse_lm.commands.common import (
    add_model_args,
    add_sampling_args,
    check_replaceable,
    check_sampling_args,
    load_for_sampling,
    sampling_kwargs,
)


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


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import BIOGRAPHY_OUTPUTS, check_samples_file, samples_sidecar, synth_biographies
    from diffuse_lm.present.console import print_biography_summary

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
    check_samples_file(folder / "generations.jsonl")  # before the model load, which takes a while
    ours = samples_sidecar(folder / "generations.jsonl").is_file()  # an earlier run of this command
    check_replaceable(folder, BIOGRAPHY_OUTPUTS, ours, "synth biographies")

    model, tokenizer = load_for_sampling(args)
    max_new = args.max_new_tokens or BIOGRAPHY_MAX_NEW_TOKENS
    kw = sampling_kwargs(args, max_new)
    keys = ("n", "model", "adapter", "temperature", "top_p", "top_k", "seed", "backend")
    report, written = synth_biographies(
        model,
        tokenizer,
        folder,
        args.n,
        parse=args.parse,
        as_csv=args.csv,
        settings={k: getattr(args, k) for k in keys},
        **kw,
    )
    print_biography_summary(report, written)
    return 0
