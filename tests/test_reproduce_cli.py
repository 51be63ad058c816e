"""`diffuse reproduce`: bad input is one line and exit 2; a run writes its results with what they depend
on, skips finished experiments, and writes the report."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import test_experiments
import torch

from diffuse_lm.cli import main

tiny = test_experiments.tiny  # a fixture shared with the experiments


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["reproduce", "table9"], "unknown experiment 'table9'"),
        (["reproduce", "table1", "--scale", "huge"], "--scale huge: expected one of quick, paper"),
        (["reproduce", "table1", "--seed", "-1"], "--seed -1: must be >= 0"),
        (
            ["reproduce", "utility", "--recipe", "magic"],
            "--recipe magic: expected one of paper, determinate, keep",
        ),
        (["reproduce", "table1", "--dtype", "int3"], "--dtype int3"),
        (["reproduce", "all", "--jobs", "0"], "--jobs 0: must be >= 1"),
        (
            ["reproduce", "table1", "--adapters", __file__],
            f"--adapters {__file__}: exists and is not a folder",
        ),
        pytest.param(
            ["reproduce", "all", "--device", "cuda"],
            "--device cuda: CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here"),
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffuse: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_folder_and_report_needs_results(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert main(["reproduce", "table1", "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["reproduce", "table1", "--jobs", "2", "--out", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "logs" in err[0], err
    assert main(["reproduce", "report", "--out", str(tmp_path)]) == 2
    assert "holds no results" in capsys.readouterr().err


def test_run_writes_results_skips_finished_and_reports(tiny, capsys, monkeypatch):
    from diffuse_lm import sampling, training
    from diffuse_lm.experiments import scales

    ctx = tiny.ctx
    monkeypatch.setitem(scales.SCALES, "quick", ctx.scale)  # the tiny scale, under the name `quick`
    # The command builds its own Context, whose default trainer and sampler call these
    monkeypatch.setattr(  # training.train returns a TrainResult; the context's trainer takes its summary
        training, "train", lambda cfg, progress: SimpleNamespace(summary=tiny.fake_train(cfg, progress))
    )
    monkeypatch.setattr(sampling, "generate", test_experiments.fake_sampler)
    argv = ["reproduce", "table1", "--model", ctx.model, "--out", str(ctx.out), "--seed", "3"]
    assert main(argv) == 0
    record = json.loads((ctx.out / "table1.json").read_text())
    assert (record["experiment"], record["model"], record["scale"], record["seed"]) == (
        "table1",
        ctx.model,
        "quick",
        3,
    )
    assert record["versions"]["torch"] and record["wall_s"] >= 0
    assert "samples per model and task for Coverage-N and entropy (Table 1): 1000 -> 6" in record["choices"]
    assert set(record["adapters"]) == {"rng-1-10", "babynames"} and record["result"]["tasks"]["RNG"]["base"]
    assert (ctx.out / "report.md").exists() and len(tiny.calls) == 2
    capsys.readouterr()
    assert main(argv) == 0 and len(tiny.calls) == 2  # finished: skipped
    assert "already in" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0 and len(tiny.calls) == 4  # rerun, adapters from the cache
    assert main([*argv[:-1], "4"]) == 0 and len(tiny.calls) == 6  # another seed is another run
    assert record["recipe"] == str(ctx.scale.six_recipe)
    assert main([*argv[:-1], "4", "--recipe", "paper"]) == 0 and len(tiny.calls) == 8  # another recipe too


def test_smoke_scale_trains_a_few_real_steps_and_its_report_says_so(tiny, monkeypatch):
    from dataclasses import replace

    from diffuse_lm import sampling
    from diffuse_lm.experiments import scales

    ctx = tiny.ctx
    natural = {k: getattr(ctx.scale, k) for k in ("natural_babynames", "temperature_babynames")}
    smoke = replace(scales.SMOKE, **natural)  # the tiny task files for the natural distribution
    monkeypatch.setitem(scales.SCALES, "smoke", smoke)
    monkeypatch.setattr(sampling, "generate", test_experiments.fake_sampler)  # training is real
    argv = ["reproduce", "table1", "--scale", "smoke", "--model", ctx.model, "--output", str(ctx.out)]
    assert main(argv) == 0
    record = json.loads((ctx.out / "table1.json").read_text())
    assert record["scale"] == "smoke" and record["recipe"] == str(scales.PAPER_RECIPE)
    trained = record["adapters"]
    assert trained["rng-1-10"]["steps"] == smoke.passes["rng"] == 10
    assert 1 <= trained["babynames"]["steps"] <= smoke.passes["babynames"] == 3  # early stopping may end it
    assert record["result"]["n_samples"] == 50
    assert "samples per model and task for Coverage-N and entropy (Table 1): 1000 -> 50" in record["choices"]
    report = (ctx.out / "report.md").read_text()
    assert "**Smoke scale**" in report and "not meant to reproduce anything" in report
    assert "Smoke-scale choices (paper -> here): training passes (rng): 50 -> 10" in report


def test_jobs_plan_the_adapters_and_train_them_side_by_side(tiny, capsys):
    """`--jobs`: the adapters the experiments train from the base model are found without training any (the
    six-task model once, the model with a parent not at all), then trained as `diffuse train` processes."""
    from diffuse_lm.experiments import runner

    ctx = tiny.ctx
    names = ["table1", "fig2", "leave-one-out", "biographies", "utility"]
    todo = runner.planned_adapters(names, ctx)
    assert tiny.calls == []  # planned, none trained
    labels = [name for name, _, _ in todo]
    assert len({folder for _, folder, _ in todo}) == len(todo)
    assert labels.count("paper-six") == 1 and "biographies-id" not in labels  # it starts from paper-six
    assert {"rng-1-10", "babynames", "rng-train"} <= set(labels)
    assert sum(name.startswith("paper-six-without-") for name in labels) >= 2  # one per family
    assert all(cfg.measure is False for _, _, cfg in todo)

    runner.train_side_by_side(["table1", "fig2"], ctx, 2, ctx.out / "logs")
    shown = capsys.readouterr().out
    assert "training 3 adapters, 2 at a time" in shown and shown.count(": done in") == 3, shown
    assert runner.planned_adapters(["table1", "fig2"], ctx) == []  # trained: nothing left to plan
    for _, folder, _ in [j for j in todo if j[0] in ("rng-1-10", "babynames", "rng-train")]:
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["steps"] >= 1 and summary["before"] is None  # measure off
        assert (folder / "adapter" / "adapter_model.safetensors").exists()


def test_a_failing_side_by_side_command_is_one_line_naming_its_log(tmp_path, capsys):
    from diffuse_lm.errors import DiffuseError
    from diffuse_lm.experiments.runner import side_by_side

    with pytest.raises(DiffuseError, match="bad failed: see .*bad.log") as e:
        side_by_side([("good", ["--version"]), ("bad", ["reproduce", "table9"])], 2, tmp_path / "logs")
    assert "\n" not in str(e.value)
    assert "unknown experiment 'table9'" in (tmp_path / "logs" / "bad.log").read_text()
    assert "diffuse-lm" in (tmp_path / "logs" / "good.log").read_text()
    shown = capsys.readouterr().out
    assert "good: done" in shown and "bad: FAILED (exit 2)" in shown
