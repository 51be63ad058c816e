"""The reproduction report: Markdown tables (the paper's numbers beside ours where it prints them) and PNG
figures, built from the results files that ``diffuse reproduce`` writes (OUT/<experiment>.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffuse_lm.errors import DiffuseError  # noqa: E402
from diffuse_lm.experiments import EXPERIMENTS  # noqa: E402
from diffuse_lm.experiments.paper_numbers import CLAIMS, TABLE5_COVERAGE, TABLE78  # noqa: E402

COLORS = {
    "natural": "0.55",
    "base": "tab:red",
    "tuned": "tab:blue",
    "baseline": "tab:red",
    "ID": "tab:green",
    "OOD": "tab:blue",
    "Base": "tab:red",
    "Tuned-OOD": "tab:blue",
    "Tuned-ID": "tab:green",
}


def load_results(out: Path) -> dict[str, dict]:
    """Experiment name -> its results record, for each results file present in ``out``."""
    found = {}
    for name in EXPERIMENTS:
        path = Path(out) / f"{name}.json"
        if path.exists():
            try:
                found[name] = json.loads(path.read_text())
            except ValueError:
                raise DiffuseError(f"{path}: not a valid results file (malformed JSON)") from None
    return found


def write_report(out: str | Path) -> Path:
    """Write ``out/report.md`` and ``out/figures/*.png`` from the results in ``out``; returns the report."""
    out = Path(out)
    results = load_results(out)
    if not results:
        raise DiffuseError(f"{out}: holds no results (run `diffuse reproduce EXPERIMENT --out {out}` first)")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    parts = [header(results)]
    for name, record in results.items():
        parts.append(f"## {name}\n\n*Paper:* {CLAIMS[name]}\n\n{settings(record)}\n")
        parts.append(SECTIONS[name](record["result"], figures))
    path = out / "report.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path


def header(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    total = sum(r["wall_s"] for r in results.values())
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    return (
        f"# Reproduction of *Forcing Diffuse Distributions out of Language Models*\n\n"
        f"Model **{first['model']}**, scale **{first['scale']}**, seed {first['seed']}; "
        f"{len(results)} experiment(s), {total / 60:.1f} min in all. {versions}.\n\n"
        "Entropies are in nats. *Exact* numbers are computed by teacher forcing over the task's valid "
        "answers (renormalised over them; *mass* is the probability the model puts on them at all); "
        "*sampled* ones from generations at temperature 1, as in the paper.\n"
    )


def settings(record: dict) -> str:
    lines = [f"Ran in {record['wall_s']:.0f} s on {record['device'] or 'the default device'}."]
    for name, a in record.get("adapters", {}).items():
        how = "reused from cache" if a.get("cached") else f"trained in {a.get('train_seconds') or 0:.0f} s"
        loss = (
            f", final pass loss {a['final_loss']:.3f} vs floor {a['floor']:.3f}"
            if a.get("final_loss")
            else ""
        )
        stop = ", early-stopped" if a.get("early_stopped") else ""
        lines.append(
            f"Adapter `{name}`: {a.get('steps')} steps ({a.get('passes')} passes){stop}{loss}; {how}."
        )
    if record.get("choices"):
        lines.append("Quick-scale choices (paper -> here): " + "; ".join(record["choices"]) + ".")
    return " ".join(lines)


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


def _save(fig, path: Path) -> str:
    if fig.legends:  # a figure legend placed by its section keeps the layout it set
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return f"![{path.stem}](figures/{path.name})\n"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![{path.stem}](figures/{path.name})\n"


# --- Section 4 ------------------------------------------------------------------------------------


def table1_section(res: dict, figures: Path) -> str:
    n = res["n_samples"]
    rows = []
    for task, r in res["tasks"].items():
        for label in ("base", "tuned"):
            s, e = r[label]["sampled"], r[label]["exact"]
            rows.append(
                [
                    task,
                    label,
                    s["coverage"],
                    s["entropy"],
                    s["valid_rate"],
                    s.get("seen_rate"),
                    e["kl"],
                    e["entropy"],
                    e["mass"],
                    e["expected_coverage"],
                    ", ".join(f"{a} ({c})" for a, c in s["top"][:3]),
                ]
            )
        nat = r["natural"]
        rows.append(
            [task, "natural", None, None, None, None, 0.0, nat["entropy"], None, nat["expected_coverage"], ""]
        )
    head = [
        "task",
        "model",
        f"Coverage-{n}",
        "entropy (sampled)",
        "valid rate",
        "in training set",
        "KL (exact)",
        "entropy (exact)",
        "mass",
        f"E[Coverage-{n}] (exact)",
        "top answers (sampled)",
    ]
    return table(head, rows) + (
        "\nThe paper's Table 1 itself is an image in the text we have; the claims above are from its prose.\n"
    )


def fig1_section(res: dict, figures: Path) -> str:
    tasks = res["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.6))
    axes = [axes] if len(tasks) == 1 else list(axes)
    rows = []
    for ax, (task, r) in zip(axes, tasks.items(), strict=True):
        few = len(r["natural"]) <= 20  # grouped bars; long tails as lines on a log scale
        for i, label in enumerate(("natural", "base", "tuned")):
            dist = r[label] if label == "natural" else r[label]["distribution"]
            probs = [p for _, p in dist]
            if few:
                ax.bar(
                    [k + (i - 1) * 0.27 for k in range(1, len(probs) + 1)],
                    probs,
                    0.27,
                    color=COLORS[label],
                    label=label,
                )
            else:
                ax.plot(range(1, len(probs) + 1), probs, color=COLORS[label], label=label)
            rows.append([task, label, ", ".join(f"{t} {p:.2f}" for t, p in dist[:5])])
        shown = "" if few else f", top {len(r['natural'])} shown"
        ax.set(
            title=f"{task} ({r['n_targets']} answers{shown})",
            xlabel="answers, by decreasing probability",
            ylabel="probability (renormalised)",
            yscale="linear" if few else "log",
        )
        ax.legend()
    return (
        _save(fig, figures / "fig1_distributions.png") + "\n" + table(["task", "distribution", "top 5"], rows)
    )


def fig2_section(res: dict, figures: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    titles = {
        "a": "(a) ranges [1, high], five prompt formats",
        "b": "(b) ranges [low, low+size-1], random low",
    }
    xlabels = {"a": "high", "b": "size of the range"}
    md = []
    for ax, key in zip(axes, ("a", "b"), strict=True):
        panel = res[key]
        ax.plot(panel["x"], panel["ideal"], "k--", marker="_", lw=1, label="uniform (log n)")
        for label in ("base", "tuned"):
            mean, ci = panel[label]["mean"], panel[label]["ci"]
            ax.errorbar(
                panel["x"], mean, yerr=ci, color=COLORS[label], marker="o", ms=3, capsize=3, label=label
            )
        ax.set(title=titles[key], xlabel=xlabels[key], ylabel="entropy (nats)")
        ax.set_ylim(bottom=0)
        ax.legend()
        rows = [
            [x, f"{b:.3f} ± {bc:.3f}", f"{t:.3f} ± {tc:.3f}", i]
            for x, b, bc, t, tc, i in zip(
                panel["x"],
                panel["base"]["mean"],
                panel["base"]["ci"],
                panel["tuned"]["mean"],
                panel["tuned"]["ci"],
                panel["ideal"],
                strict=True,
            )
        ]
        md.append(
            f"Figure 2{key}:\n\n"
            + table([xlabels[key], "base entropy (95% CI)", "tuned entropy (95% CI)", "uniform"], rows)
        )
    return _save(fig, figures / "fig2_rng_generalization.png") + "\n" + "\n".join(md)


def temperature_section(res: dict, figures: Path) -> str:
    tasks = res["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 3.6))
    axes = [axes] if len(tasks) == 1 else list(axes)
    md = []
    for ax, (task, r) in zip(axes, tasks.items(), strict=True):
        ts = [p["temperature"] for p in r["sweep"]]
        ax.plot(ts, [p["entropy"] for p in r["sweep"]], "o-", color=COLORS["base"], label="base, entropy")
        ax.axhline(r["tuned"]["entropy"], color=COLORS["tuned"], ls="--", label="tuned at T=1")
        if r["matching_temperature"]:
            ax.axvline(r["matching_temperature"], color="0.5", lw=1)
        ax2 = ax.twinx()
        ax2.plot(
            ts, [p["mass"] for p in r["sweep"]], "s:", color="tab:orange", ms=3, label="base, mass (right)"
        )
        ax2.set(ylabel="mass on valid answers", yscale="log")
        ax.set(title=task, xscale="log", xlabel="sampling temperature", ylabel="entropy (nats)")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        ax.legend(handles=handles, loc="lower right", fontsize=8)
        t_star = r["matching_temperature"]
        found = f"at T = {t_star:.2f}" if t_star else f"at no temperature up to T = {max(ts):g}"
        if t_star and t_star <= 1:
            found = f"already at T = {t_star:g}: over the valid answers alone it is no less diffuse"
        rows = [[p["temperature"], p["entropy"], p["mass"], p["kl"]] for p in r["sweep"]]
        rows.append(["tuned, T=1", r["tuned"]["entropy"], r["tuned"]["mass"], r["tuned"]["kl"]])
        shown = r["base_samples"]
        md.append(
            f"**{task}**: the base model matches the tuned model's entropy ({r['tuned']['entropy']:.3f}) "
            f"{found}. At T = {r['shown_temperature']:.2f} the base model's mass on valid answers is "
            f"{r['base_at_shown']['mass']:.2g} and {shown['valid_rate']:.0%} of {shown['n']} samples are "
            f"valid (tuned at T = 1: {r['tuned']['mass']:.2g} and {r['tuned_samples']['valid_rate']:.0%}).\n\n"
            + table(["T", "entropy", "mass", "KL"], rows)
            + "\nBase samples at that temperature:\n\n```\n"
            + "\n".join(t.replace("\n", " ")[:100] for t in shown["texts"])
            + "\n```\n"
        )
    return _save(fig, figures / "temperature_sweep.png") + "\n" + "\n".join(md)


# --- Sections 5 and 6 ----------------------------------------------------------------------------


def leave_one_out_section(res: dict, figures: Path) -> str:
    fams, labels = res["families"], ("baseline", "ID", "OOD")
    fig, axes = plt.subplots(1, len(fams), figsize=(2.3 * len(fams), 3.2), squeeze=False)
    for ax, f in zip(axes[0], fams, strict=True):
        vals = [res["results"][f][lab]["entropy"] for lab in labels]
        ax.bar(labels, vals, color=[COLORS[lab] for lab in labels])
        ax.set(title=f, ylabel="entropy (nats)" if f == fams[0] else None)
        ax.tick_params(axis="x", labelsize=8)
    md = _save(fig, figures / "fig3_leave_one_out.png")
    metrics = {"entropy": "entropy", "expected_coverage": "E[Cov]", "mass": "mass"}
    head = ["task"] + [f"{lab} {short}" for short in metrics.values() for lab in labels]
    rows = [[f] + [res["results"][f][lab][m] for m in metrics for lab in labels] for f in fams]
    md += (
        f"\nExact entropy over each prompt's targets, expected Coverage-{res['coverage_n']} of valid answers and "
        "mass on them, mean over the task's prompts (Figure 3, Table 6):\n\n" + table(head, rows)
    )
    if "sampled_coverage" in res["results"][fams[0]]["baseline"]:
        papers = list(TABLE5_COVERAGE)
        head = ["task"] + [f"ours {lab}" for lab in labels] + [f"{p} base / OOD" for p in papers]
        rows = [
            [f]
            + [res["results"][f][lab]["sampled_coverage"] for lab in labels]
            + [" / ".join(f"{v:g}" for v in TABLE5_COVERAGE[p].get(f.upper(), ())) or None for p in papers]
            for f in fams
        ]
        md += "\nSampled coverage, mean over prompts (Table 5; the paper's N is larger):\n\n" + table(
            head, rows
        )
    return md


def biographies_section(res: dict, figures: Path) -> str:
    from diffuse_lm.biographies import plot_birthplaces

    models = list(res["models"])
    reports = {m: res["models"][m]["report"] for m in models}
    attrs = list(reports[models[0]]["attributes"])
    head = ["attribute"] + [f"{m} cov / H" for m in models] + [f"Llama-2 {m} cov / H" for m in models]
    rows = []
    for a in attrs:
        ours = [
            f"{reports[m]['attributes'][a]['coverage']} / {reports[m]['attributes'][a]['entropy'] + 0.0:.2f}"
            for m in models
        ]
        paper = [" / ".join(map(str, TABLE78[a][m])) if a in TABLE78 else None for m in models]
        rows.append([a] + ours + paper)
    md = f"{res['n_samples']} biographies per model (the paper: 1000).\n\nTables 7–8:\n\n" + table(head, rows)
    top = [
        [a, m, ", ".join(f"{v} ({c})" for v, c in reports[m]["attributes"][a]["top"][:5])]
        for a in attrs
        for m in models
    ]
    md += "\nTable 2, top five values:\n\n" + table(["attribute", "model", "top 5 (count)"], top)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        a1.bar(
            [j + i * width for j in range(len(attrs))],
            [reports[m]["attributes"][a]["coverage"] for a in attrs],
            width,
            label=m,
            color=COLORS[m],
        )
        div = reports[m]["unigram_diversity"]
        a2.bar([j + i * width for j in range(len(div))], list(div.values()), width, color=COLORS[m])
    a1.set(
        xticks=[j + 0.4 - width / 2 for j in range(len(attrs))],
        xticklabels=attrs,
        ylabel="coverage",
        title="(a) coverage of categorical attributes",
    )
    a2.set(
        xticks=[j + 0.4 - width / 2 for j in range(len(div))],
        xticklabels=list(div),
        ylabel="unigram diversity",
        title="(b) normalised unigram diversity",
    )
    a1.legend()
    md += "\n" + _save(fig, figures / "fig4_biographies.png")
    for m in models:
        name = f"fig5_birthplaces_{m.lower()}.png"
        plot_birthplaces(res["models"][m]["records"], figures / name)
        md += f"\nFigure 5, {m}:\n\n![{m}](figures/{name})\n"
    return md


def utility_section(res: dict, figures: Path) -> str:
    kl = res["kl"]
    md = (
        f"KL(base ‖ tuned) of next-token distributions along the base model's greedy answers to "
        f"{len(kl['prompts'])} general prompts ({kl['tokens']} tokens): mean {kl['mean_per_token']:.4f} "
        f"nats/token (median {kl['median_per_token']:.4f}), at the first token {kl['first_token']:.4f}; "
        f"the two models' most probable next token agrees at {kl['top1_agreement']:.1%} of positions.\n\n"
    )
    acc = res["qa"]["accuracy"]

    def pct(a: dict) -> str:
        return f"{a['correct']:.1%} [{a['ci95'][0]:.0%}, {a['ci95'][1]:.0%}]"

    rows = [
        [fmt, kind, a["n"], pct(a), pct(acc["tuned"][fmt][kind])]
        + ([a["exact"], acc["tuned"][fmt][kind]["exact"]] if fmt == "braced" else [None, None])
        for fmt in acc["base"]
        for kind, a in acc["base"][fmt].items()
    ]
    md += (
        f"Greedy answers to {rows[0][2]} questions, asked once for the answer in braces (the training tasks' "
        "format) and once free-form. *Correct*: the answer (braced, else the first line) contains an "
        "accepted one, with its 95% Wilson interval; *exact*: the braced answer is an accepted one.\n\n"
        + table(
            ["format", "questions", "n", "base correct", "tuned correct", "base exact", "tuned exact"], rows
        )
    )
    changed = [q for q in res["qa"]["items"] if q["base_grade"]["correct"] != q["tuned_grade"]["correct"]]
    if changed:
        md += f"\nQuestions whose correctness changed ({len(changed)}; the first 30):\n\n" + table(
            ["format", "question", "base", "tuned"],
            [
                [
                    q.get("format"),
                    q["question"],
                    q["base"].replace("\n", " ")[:60],
                    q["tuned"].replace("\n", " ")[:60],
                ]
                for q in changed[:30]
            ],
        )
    return md


def _tradeoff_section(res: dict, figures: Path) -> str:
    from diffuse_lm.experiments.tradeoff import section

    return section(res, figures)


def _compare_section(res: dict, figures: Path) -> str:
    from diffuse_lm.experiments.compare import section

    return section(res, figures)


SECTIONS = {
    "table1": table1_section,
    "fig1": fig1_section,
    "fig2": fig2_section,
    "leave-one-out": leave_one_out_section,
    "biographies": biographies_section,
    "temperature": temperature_section,
    "utility": utility_section,
    "tradeoff": _tradeoff_section,
    "compare": _compare_section,
}
