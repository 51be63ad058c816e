"""``reproduce calibration`` on a tiny model: base and tuned on every split, the sampled baselines beside,
the report's tables and CDF figure; and (slow) the exact KS pass share of the default model agrees with the
share of real runs of 100 samples that pass."""

from __future__ import annotations

import numpy as np
import pytest
from test_experiments import tiny  # noqa: F401 (fixture)

from diffuse_lm.experiments import calibration


def test_calibration_measures_every_split_and_reports_ks_per_held_out_family(tiny, monkeypatch):  # noqa: F811
    monkeypatch.setitem(calibration.SETTINGS, tiny.ctx.scale.name, calibration.SETTINGS["smoke"])
    res = calibration.run(tiny.ctx)
    assert set(res.splits) == set(calibration.SPLITS)
    trained = res.settings["train"]
    assert len(trained) == 10 and all("/braced/p0" in n or "/braced/p1" in n for n in trained)
    evaluated = {n for names in res.splits.values() for n in names}
    held_out = evaluated - set(res.splits["trained prompts"])
    assert set(res.splits["trained prompts"]) <= set(trained) and not held_out & set(trained)
    rows = {(r["method"].split(":")[0], r["task"]): r for r in res.exact["rows"]}
    assert len(rows) == 2 * len(evaluated)
    normal = "calibration/held-out/normal-50-10/braced/p0"
    assert rows["tuned", normal]["ks"] != rows["base", normal]["ks"]
    assert {"tv", "w1", "mean", "sd", "ks_pass_100"} <= set(rows["base", normal])
    assert [m["method"] for m in res.sampled["methods"]] == ["ssot", "in-one:5"]
    assert len(calibration.held_out_ks(res)) == 10  # 5 numeric held-out families, 2 formats
    md = calibration.section(calibration.Calibration.from_json(res.to_json()), tiny.tmp)
    assert "prompts with an ordered support" in md and "| multiple choice (A-D) | tuned |" in md
    assert "| ssot |" in md and (tiny.tmp / "calibration_cdf.png").stat().st_size > 1000


@pytest.mark.slow
def test_exact_ks_pass_share_agrees_with_real_runs_of_100_samples(tmp_path):
    """The share of runs of 100 generations that a two-sample KS test passes lies in the Wilson interval
    around the share simulated from the exact distribution, and the pooled samples are within a KS test of
    the exact distribution. The default model answers almost nothing valid untuned (mass 0.03 at most on the
    calibration prompts), so it is first tuned briefly on the prompt; the samples are tested against a
    distribution between the model's and the uniform one, chosen so that the pass share is near 1/2, where a
    disagreement would show most."""
    from diffuse_lm import load_model
    from diffuse_lm.config import config_from_dict
    from diffuse_lm.measuring import measure_task
    from diffuse_lm.metrics import KS_ALPHA, ks_critical, ks_distance, ks_pass_share, wilson_interval
    from diffuse_lm.models import attach_adapter
    from diffuse_lm.sampling import generate_records
    from diffuse_lm.tasks import load_tasks
    from diffuse_lm.training import train

    name = "calibration/train/binomial-10-0.5/plain/p2"
    cfg = {"model": "default", "train_prompts": [name], "lr": 1e-3, "alg_config": {"n_iters": 12}}
    run = train(config_from_dict({**cfg, "output_dir": str(tmp_path / "run"), "measure": False}, source="t"))
    model, tok = load_model()
    model = attach_adapter(model, run.summary["adapter_dir"]).eval()
    task = load_tasks([name])[0]
    row = measure_task(model, tok, task)
    assert row["mass"] > 0.3, row["mass"]
    p, x = np.array([t["prob"] for t in row["targets"]]), np.array(task.values)
    blends = [w * p + (1 - w) * np.full(len(x), 1 / len(x)) for w in np.linspace(0, 1, 21)]
    q = min(blends, key=lambda b: abs(ks_pass_share(x, p, b)[0] - 0.5))
    exact, _ = ks_pass_share(x, p, q)
    assert 0.2 < exact < 0.8

    index = {a: j for j, a in enumerate(task.targets)}
    records = generate_records(model, tok, task.messages(), 2000, max_new_tokens=6, seed=0, batch_size=250)
    valid = [index[r["text"].strip()] for r in records if r["stopped"] and r["text"].strip() in index]
    runs = len(valid) // 100
    assert runs >= 8, f"only {len(valid)} valid answers"
    rng = np.random.default_rng(1)
    crit = ks_critical(100, 100, KS_ALPHA)
    passed = 0
    for r in range(runs):
        a = np.bincount(valid[100 * r : 100 * (r + 1)], minlength=len(x))
        passed += ks_distance(x, a / 100, rng.multinomial(100, q) / 100) < crit
    lo, hi = wilson_interval(passed, runs)
    assert lo <= exact <= hi, (passed, runs, exact)
    pooled = np.bincount(valid, minlength=len(x)) / len(valid)
    assert ks_distance(x, pooled, p) < ks_critical(len(valid), None, 0.01)  # sampling = teacher forcing


def test_stored_quick_results_load_write_back_and_render_the_stored_report(tmp_path):
    """The quick-scale run behind docs/calibration.md loads as a record, writes back the same JSON, and
    renders the report stored beside it, byte for byte."""
    import json
    import shutil
    from pathlib import Path

    from diffuse_lm.experiments.report import write_report

    stored = Path(__file__).resolve().parents[1] / "docs" / "calibration" / "quick-smollm2-135m"
    record = json.loads((stored / "calibration.json").read_text())
    result = calibration.Calibration.from_json(record["result"])
    assert json.loads(json.dumps(result.to_json())) == record["result"]
    shutil.copy(stored / "calibration.json", tmp_path)
    assert write_report(tmp_path).read_text() == (stored / "report.md").read_text()


def test_paper_scale_adds_the_six_tasks_to_the_training_mix(tiny, monkeypatch):  # noqa: F811
    from diffuse_lm.experiments.leave_one_out import six_tasks

    assert calibration.SETTINGS["paper"]["six"] and not calibration.SETTINGS["quick"]["six"]
    name = tiny.ctx.scale.name
    monkeypatch.setitem(calibration.SETTINGS, name, {**calibration.SETTINGS["smoke"], "six": False})
    families = calibration.train_specs(tiny.ctx)
    monkeypatch.setitem(calibration.SETTINGS, name, {**calibration.SETTINGS["smoke"], "six": True})
    both = calibration.train_specs(tiny.ctx)
    assert both[: len(families)] == families and len(both) == len(families) + len(six_tasks(tiny.ctx))
