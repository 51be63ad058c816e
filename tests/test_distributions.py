"""Distribution families as tasks (p* against closed forms, bad specs one line and exit 2) and the exact
distances of ordered supports (TV, KS, Wasserstein-1, mean and sd) against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_cli_measure import isolated_cli_state, run_cli, tiny_model_dir  # noqa: F401 (fixtures)

from diffuse_lm import metrics
from diffuse_lm.distributions import family_tasks
from diffuse_lm.tasks import TaskError, load_tasks


def one(spec: dict, **kw):
    return family_tasks({**spec, **kw}, source="spec")[0]


def test_normal_spec_is_the_rounded_truncated_normal_in_every_phrasing_and_format(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text("family: normal\nmean: 50\nsd: 10\nsupport: [20, 80]\nstep: 1\n")
    tasks = load_tasks([str(path)])
    assert [t.name for t in tasks][:2] == ["normal-50-10/braced/p0", "normal-50-10/braced/p1"]
    assert len(tasks) == 6 and {t.path for t in tasks} == {str(path)}
    t = tasks[0]
    assert t.targets[0] == "{20}" and t.targets[-1] == "{80}" and tasks[3].targets[0] == "20"
    assert "mean 50" in t.request and "standard deviation 10" in t.request and "20 to 80" in t.request
    phi = lambda x: 0.5 * (1 + math.erf((x - 50) / (10 * math.sqrt(2))))  # noqa: E731
    want = np.array([phi(x + 0.5) - phi(x - 0.5) for x in range(20, 81)])
    np.testing.assert_allclose(t.weights, want / want.sum(), rtol=1e-9)
    assert t.values == tuple(float(x) for x in range(20, 81))


def test_discrete_families_match_their_pmfs_and_steps_write_decimals():
    b = one({"family": "binomial", "n": 10, "p": 0.3})
    pmf = np.array([math.comb(10, k) * 0.3**k * 0.7 ** (10 - k) for k in range(11)])
    np.testing.assert_allclose(b.weights, pmf / pmf.sum(), rtol=1e-9)
    p = one({"family": "poisson", "rate": 4})
    assert p.values[0] == 0 and 1 - sum(math.exp(-4) * 4**k / math.factorial(int(k)) for k in p.values) < 1e-6
    np.testing.assert_allclose(p.weights[4] / p.weights[0], 4**4 / 24, rtol=1e-9)
    g = one({"family": "geometric", "p": 0.5}, support=[1, 4])
    np.testing.assert_allclose(g.weights, np.array([8, 4, 2, 1]) / 15)
    u = one({"family": "uniform", "support": [0, 2], "step": 0.5})
    assert u.targets == ("{0}", "{0.5}", "{1}", "{1.5}", "{2}") and u.uniform
    c = one({"family": "categorical", "choices": {"red": 5, "green": 3, "blue": 2}})
    assert c.targets == ("{red}", "{green}", "{blue}") and c.values is None
    assert c.weights.tolist() == [0.5, 0.3, 0.2] and "red 50%" in c.request


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("family: lognormal\nmean: 1\n", "unknown distribution family 'lognormal'"),
        ("family: [normal]\nmean: 1\n", "unknown distribution family"),
        ("family: normal\nmean: 50\nsd: 10\nsupport: [80, 20]\n", "is empty"),
        ("family: normal\nmean: 50\nsd: 10\nsupport: [0, 100000]\n", "at most 1,000"),
        ("family: normal\nmean: .nan\nsd: 10\nsupport: [0, 10]\n", "mean is nan (must be finite)"),
        ("family: normal\nmean: 5\nsd: .inf\nsupport: [0, 10]\n", "sd is inf"),
        ("family: normal\nmean: 5\nsd: 0\nsupport: [0, 10]\n", "sd must be > 0"),
        ("family: normal\nmean: 5\nsd: 1\n", "needs a support"),
        ("family: uniform\nsupport: [-1.0e308, 1.0e308]\n", "too many values"),
        ("family: uniform\nsupport: [0, 1]\nstep: 1.0e-300\n", "at most 1,000"),
        ("family: poisson\nrate: 1e300\n", "at most 1,000"),
        ("family: poisson\nrate: many\n", "rate must be a number, got 'many'"),
        ("family: geometric\np: 1.0e-12\n", "at most 1,000"),
        ("family: binomial\nn: 5000\np: 0.5\n", "at most 1,000"),
        ("family: normal\nmean: 5000\nsd: 1\nsupport: [0, 10]\n", "p* is zero on every value"),
        ("family: binomial\nn: 2.5\np: 0.3\n", "n must be a whole number"),
        ("family: poisson\nrate: 1\nsupport: [0, 1.5]\n", "whole numbers"),
        ("family: normal\nmean: 5\nsd: 1\nsupport: [0, 10]\nskew: 2\n", "unknown key 'skew'"),
        ("family: categorical\nchoices: {a: 0, b: 0}\n", "weights are all zero"),
        ("family: normal\nmean: 5\nsd: 1\nsupport: [0, 10]\nformats: [latex]\n", "formats must be"),
    ],
)
def test_bad_spec_is_one_line_exit_2(tmp_path, capsys, spec, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(spec)
    with pytest.raises(TaskError, match="bad.yaml"):
        load_tasks([str(path)])
    code, _, err = run_cli(capsys, str(path), "--model", str(tmp_path / "never-loaded"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def test_a_list_of_specs_and_tasks_in_one_file(tmp_path):
    path = tmp_path / "mix.yaml"
    path.write_text(
        "- {family: binomial, n: 4, p: 0.5, formats: [plain]}\n"
        "- {request: Pick a or b., targets: [a, b]}\n"
        "- {family: poisson, rate: 2, phrasings: [true]}\n"
    )
    with pytest.raises(TaskError, match=r"mix.yaml: item 3 \(line 3\): phrasings must be"):
        load_tasks([str(path)])
    path.write_text(path.read_text().replace("phrasings: [true]", "phrasings: [1]"))
    tasks = load_tasks([str(path)])
    names = [t.name for t in tasks]
    want = [
        *(f"binomial-4-0.5/plain/p{k}" for k in range(3)),
        "mix/2",
        "poisson-2/braced/p1",
        "poisson-2/plain/p1",
    ]
    assert names == want and {t.path for t in tasks} == {str(path)}


def test_task_values_are_validated(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"request": "x", "targets": ["a", "b"], "values": [1, 1]}))
    with pytest.raises(TaskError, match="values must be distinct"):
        load_tasks([str(path)])
    path.write_text(json.dumps({"request": "x", "targets": ["a", "b"], "values": [1]}))
    with pytest.raises(TaskError, match="values must be a list of 2 numbers"):
        load_tasks([str(path)])


# --- distances of ordered supports ------------------------------------------------------------------


def test_distances_against_hand_computations():
    x = np.array([3.0, 1.0, 2.0])  # unsorted on purpose: distances follow the values, not the order
    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.2, 0.2])
    # sorted by value: p = (.5, .3, .2), q = (.2, .2, .6); CDFs (.5, .8, 1), (.2, .4, 1)
    assert metrics.total_variation(p, q) == pytest.approx(0.4)
    assert metrics.ks_distance(x, p, q) == pytest.approx(0.4)
    assert metrics.wasserstein1(x, p, q) == pytest.approx(0.3 + 0.4)
    assert metrics.mean_sd(x, p) == pytest.approx((1.7, math.sqrt(0.61)))
    assert metrics.wasserstein1(np.array([0.0, 10.0]), np.array([1, 0]), np.array([0, 1])) == 10.0


def test_ks_pvalue_and_pass_share():
    assert metrics.kolmogorov_pvalue(0.0, 100, 100) == 1.0
    # the 5% critical value of two samples of 100 is 1.36 * sqrt(2 / 100) = 0.192
    assert metrics.kolmogorov_pvalue(0.17, 100, 100) > 0.05 > metrics.kolmogorov_pvalue(0.21, 100, 100)
    x = np.arange(10.0)
    uniform = np.full(10, 0.1)
    same, (lo, hi) = metrics.ks_pass_share(x, uniform, uniform, runs=500)
    assert same >= 0.95 and lo <= same <= hi  # discrete data: the test is conservative
    point = np.eye(10)[4]
    assert metrics.ks_pass_share(x, point, uniform, runs=500)[0] == 0.0


def test_measure_reports_ordered_distances_equal_to_hand_computation(capsys, tmp_path, tiny_model_dir):  # noqa: F811
    spec = tmp_path / "n.yaml"
    spec.write_text(
        "family: normal\nmean: 50\nsd: 10\nsupport: [20, 80]\nstep: 1\nformats: [braced]\nphrasings: [0]\n"
    )
    out = tmp_path / "m.json"
    code, printed, _ = run_cli(capsys, str(spec), "--model", tiny_model_dir, "--output", str(out))
    assert code == 0
    row = json.loads(out.read_text())["tasks"][0]
    assert "KS pass @100" in printed and row["name"] in printed
    p = np.array([t["prob"] for t in row["targets"]])
    w = np.array([t["weight"] for t in row["targets"]])
    x = np.arange(20.0, 81.0)
    assert p.sum() == pytest.approx(1.0) and not np.allclose(p, w)
    cp, cw = np.cumsum(p), np.cumsum(w)
    mean = sum(pi * xi for pi, xi in zip(p, x, strict=True))
    assert row["tv"] == pytest.approx(sum(abs(a - b) for a, b in zip(p, w, strict=True)) / 2)
    assert row["ks"] == pytest.approx(max(abs(a - b) for a, b in zip(cp, cw, strict=True)))
    assert row["w1"] == pytest.approx(sum(abs(a - b) for a, b in zip(cp[:-1], cw[:-1], strict=True)))
    assert row["kl"] == pytest.approx(sum(b * math.log(b / a) for a, b in zip(p, w, strict=True)))
    assert row["mean"] == pytest.approx(mean)
    assert row["sd"] == pytest.approx(
        math.sqrt(sum(pi * (xi - mean) ** 2 for pi, xi in zip(p, x, strict=True)))
    )
    assert row["target_mean"] == pytest.approx(50.0) and 9.5 < row["target_sd"] < 10
    assert 0 <= row["ks_pass_100"] <= 1 and 0 < row["mass"] < 1


# --- the built-in families and the multiple-choice position tasks ------------------------------------


def test_builtin_families_are_the_generated_files_and_split_train_from_held_out():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "make_calibration_tasks.py"
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True).returncode == 0
    train, held = load_tasks(["calibration/train"]), load_tasks(["calibration/held-out"])
    assert len(train) == 5 * 6 and len(held) == 6 * 6
    kinds = lambda ts: {t.family for t in ts}  # noqa: E731
    assert kinds(held) - kinds(train) == {"GEOMETRIC", "EXPONENTIAL"}
    normal = load_tasks(["calibration/held-out/normal-50-10/braced/p0"])[0]
    assert normal.weights.sum() == pytest.approx(1.0) and len(normal.values) == 61
    assert all(t.values is not None for t in held if t.family != "CATEGORICAL")


def test_mcq_tasks_ask_for_the_marked_letter_first_uniform_over_a_to_d():
    mcq = load_tasks(["calibration/mcq"])
    assert len(mcq) == 8 and len({t.request for t in mcq}) == 8
    for t in mcq:
        assert t.targets == ("{A}", "{B}", "{C}", "{D}") and t.uniform and t.eos is False
        assert t.family == "MCQ" and "{letter}" in t.request


def test_sample_stats_of_a_family_task_give_sampled_distances_p_value_and_pass_share_of_runs():
    import io

    from rich.console import Console

    from diffuse_lm.parsing import sample_stats
    from diffuse_lm.present.console import print_stats

    task = one({"family": "uniform", "support": [1, 4], "formats": ["braced"], "phrasings": [0]})
    even = [{"text": f"{{{1 + i % 4}}}"} for i in range(200)] + [{"text": "no answer"}] * 5
    o = sample_stats(even, task)["ordered"]
    assert o["tv"] == pytest.approx(0) and o["ks"] == pytest.approx(0) and o["ks_pvalue"] == 1.0
    assert o["mean"] == pytest.approx(2.5) and o["ks_runs_100"] == 2 and o["ks_pass_100"] == 1.0
    ones = [{"text": "{1}"}] * 150 + [{"text": "{3}"}] * 50
    o = sample_stats(ones, task)["ordered"]
    # samples (.75, 0, .25, 0) against uniform: CDFs (.75, .75, 1, 1) and (.25, .5, .75, 1)
    assert o["ks"] == pytest.approx(0.5) and o["tv"] == pytest.approx(0.5) and o["w1"] == pytest.approx(1.0)
    assert o["ks_pvalue"] < 1e-6 and o["ks_pass_100"] == 0.0 and o["ks_pass_100_interval"][1] < 0.9
    con = Console(file=io.StringIO(), width=160)
    print_stats(sample_stats(ones, task), task=task, con=con)
    printed = con.file.getvalue()
    assert "KS pass @100" in printed and "0% of 2 runs" in printed and "KS p-value" in printed


@pytest.mark.slow
def test_every_calibration_task_is_prefix_free_under_the_default_tokenizer():
    from transformers import AutoTokenizer

    from diffuse_lm.encoding import encode_tasks
    from diffuse_lm.models import default_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_dir()))
    tasks = load_tasks(["calibration"])
    encoded = encode_tasks(tokenizer, tasks)  # raises on a target that prefixes another
    assert sum(e.n_targets for e in encoded) == sum(len(t.targets) for t in tasks) > 1000
