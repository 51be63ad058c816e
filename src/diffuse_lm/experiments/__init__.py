"""The paper's experiments, one module each. Every module has ``run(ctx) -> dict`` that returns results and
writes nothing; ``USES`` names the scale settings it depends on (recorded with its results).
``diffuse reproduce`` runs them and ``diffuse_lm.report_figures`` turns their results into a report."""

# Experiment name -> module under diffuse_lm.experiments, in the order `all` runs them: experiments that
# share a tuned model come next to each other so the cached adapter is reused while it is fresh.
EXPERIMENTS = {
    "table1": "table1",
    "fig1": "fig1",
    "temperature": "temperature",
    "fig2": "fig2",
    "leave-one-out": "leave_one_out",
    "biographies": "biographies",
    "utility": "utility",
    "tradeoff": "tradeoff",
    "compare": "compare",
}
# Not in `all`: tradeoff trains seven models a recipe; compare is beyond the paper.
IN_ALL = [name for name in EXPERIMENTS if name not in ("tradeoff", "compare")]
