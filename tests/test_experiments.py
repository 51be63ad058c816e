"""The experiments of `diffuse reproduce` and their report, on a tiny random Llama with small task files;
training and sampling are fakes handed to the experiments' Context, except where the test is about them."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import char_tokenizer, tiny_llama

from diffuse_lm.config import TrainConfig
from diffuse_lm.encoding import encode_task
from diffuse_lm.experiments import (
    biographies,
    common,
    fig1,
    fig2,
    leave_one_out,
    table1,
    temperature,
    utility,
)
from diffuse_lm.experiments.common import Context
from diffuse_lm.experiments.scales import PAPER, QUICK, SCALE_DOC, choices, scale_fields
from diffuse_lm.tasks import builtin_groups, task_from_dict

STORED = Path(__file__).parents[1] / "docs" / "reproduce" / "quick-smollm2-135m"  # a real quick-scale run

TINY = replace(
    QUICK,
    passes=dict.fromkeys(QUICK.passes, 1),
    six_phrasings=None,
    six_max_targets=None,
    samples=6,
    loo_samples=3,
    bio_samples=3,
    fig2_highs=(3, 5),
    fig2_sizes=(4,),
    fig2_lows=3,
    temperatures=(0.5, 1.0, 4.0),
    temperature_samples=2,
    utility_max_new_tokens=4,
    batch_size=4,
    tradeoff=QUICK.tradeoff[:2],
    utility_questions=6,
)


def _write(folder: Path, name: str, data: dict) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data))
    return str(folder / f"{name}.json")


def braced(xs) -> list[str]:
    return [f"{{{x}}}" for x in xs]


def write_tasks(root: Path) -> dict[str, str]:
    """Small stand-ins for the built-in tasks the experiments name (common.TASKS)."""
    six = root / "six"
    subtasks = {
        "fruits/a": ["fig", "kiwi", "lime"],
        "days/a": ["Mon", "Tue"],
        "days/b": ["May", "Jun", "Jul", "Aug"],
        "babynames/train": ["Ann", "Bob"],
    }
    for sub, items in subtasks.items():
        for i in (0, 1) if sub != "days/b" else (0,):
            _write(
                six,
                f"{sub.replace('/', '-')}-p{i}",
                {
                    "name": f"{sub}/p{i}",
                    "request": f"Pick {sub} #{i}.",
                    "targets": braced(items),
                    "family": sub.split("/")[0],
                },
            )
    _write(root / "rngtrain", "a", {"request": "Number 1 to 3?", "targets": braced(range(1, 4))})
    _write(root / "rngtrain", "b", {"request": "Number 1 to 6?", "targets": braced(range(1, 7))})
    return {
        "rng": _write(root, "rng", {"request": "Pick a number from 1 to 5.", "targets": braced(range(1, 6))}),
        "rng_train": str(root / "rngtrain"),
        "babynames": _write(
            root,
            "names",
            {"request": "Name a baby.", "targets": braced(["Ann", "Bob", "Cy"]), "family": "babynames"},
        ),
        "natural": _write(
            root,
            "natural",
            {
                "request": "x",
                "targets": braced(["Ann", "Bob", "Cy", "Dee", "Eve"]),
                "weights": [5, 4, 3, 2, 1],
            },
        ),
        "six": str(six),
        "biographies": _write(
            root,
            "bios",
            {
                "request": "Bio?",
                "targets": ["{Ann Lee} {Female}", "{Bob Ray} {Male}"],
                "eos": False,
                "family": "biographies",
            },
        ),
    }


def fake_train(calls: list, vocab: int):
    """Stands in for diffuse_lm.training.train: a random (non-zero) LoRA adapter and a summary."""
    from peft import LoraConfig, get_peft_model

    def train(cfg, progress):
        out = Path(cfg.output_dir)
        calls.append(cfg)
        if not (out / "summary.json").exists():
            torch.manual_seed(len(calls))
            lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
            get_peft_model(tiny_llama(vocab), lora).save_pretrained(out / "adapter")
            summary = {
                "adapter_dir": str(out / "adapter"),
                "steps": 1,
                "passes": 1,
                "early_stopped": False,
                "final_loss": 1.5,
                "floor": 1.0,
                "train_seconds": 0.1,
            }
            (out / "summary.json").write_text(json.dumps(summary))
        return json.loads((out / "summary.json").read_text())

    return train


BIOS = [
    "{Ada Stone}\n{Female}\n{May 2, 1961}\n{Lyon, France}\n{Chemist}\n{Found a new dye.}",
    "{Bo Lind}\n{Male}\n{1970}\n{Oslo, Norway}\n{Painter}\n{Painted the fjords.}",
    "{Ada Stone}\n{Female}\n{1961}\n{Lyon}\n{Chemist}",
]


def fake_sampler(model, tokenizer, messages, n, *, seed=0, temperature=1.0, **kw):
    pool = (
        BIOS
        if "biography" in messages[-1]["content"]
        else ["{1}", "{2}", "{Ann}", "no answer", "{1}", "{Zed}"]
    )
    return [pool[(seed + i) % len(pool)] for i in range(n)]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A Context on a tiny random Llama saved to disk, small task files, fake training and sampling."""
    tok = char_tokenizer()
    model = tiny_llama(len(tok))
    model.config.max_position_embeddings = (
        2048  # ssot's prompt (calibration) is ~620 characters: one token each
    )
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    specs = write_tasks(tmp_path / "tasks")
    for key in common.TASKS:
        monkeypatch.setitem(common.TASKS, key, specs[key])
    calls: list = []
    scale = replace(TINY, natural_babynames=specs["natural"], temperature_babynames=specs["natural"])
    ctx = Context(
        model=str(tmp_path / "model"),
        scale=scale,
        out=tmp_path / "out",
        progress=False,
        trainer=fake_train(calls, len(tok)),
        sampler=fake_sampler,
    )
    return SimpleNamespace(ctx=ctx, calls=calls, tmp=tmp_path, fake_train=ctx.trainer)


# --- shared pieces -------------------------------------------------------------------------------


def test_choices_record_every_departure_from_the_paper():
    lines = choices(QUICK, ("samples", "passes.six", "passes.rng", "coverage_n", "six_phrasings"))
    assert any("1000 -> 200" in line for line in lines) and "training passes (six): 50 -> 2" in lines
    assert not any("(rng)" in line for line in lines)  # RNG trains for the paper's 50 passes at quick scale
    assert any("all -> 1" in line for line in lines)
    assert not any(SCALE_DOC["coverage_n"] in line for line in lines)  # the paper's at quick scale too
    assert choices(PAPER, scale_fields()) == []


def test_mean_ci_is_the_student_t_interval():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean, half = common.mean_ci(x)
    assert mean == 3.0 and half == pytest.approx(2.776 * np.std(x, ddof=1) / math.sqrt(5), rel=1e-3)
    assert common.mean_ci([2.0]) == (2.0, 0.0)


def test_sample_answers_counts_coverage_validity_and_entropy(tiny):
    task = task_from_dict({"request": "n?", "targets": braced(range(1, 6))}, source="t")
    texts = ["{1}", "{1}", "{2}", "junk", "{9}", "{ 2 }"]
    ctx = replace(tiny.ctx, sampler=lambda *a, **k: texts)
    s = common.sample_answers(ctx, None, None, task, len(texts))
    assert (s.parsed_rate, s.valid_rate) == (5 / 6, 4 / 6)
    assert (s.coverage, s.valid_coverage) == (3, 2)  # {1} {2} {9} parsed; {9} is not a valid answer
    assert s.entropy == pytest.approx(-(0.4 * math.log(0.4) * 2 + 0.2 * math.log(0.2)))
    assert s.top[0] == ("1", 2) or s.top[0] == ("2", 2)
    assert "seen_rate" not in s.to_json() and s.to_json()["coverage"] == 3


def test_sample_answers_and_diffuse_stats_count_the_same_answers(tiny):
    from diffuse_lm.parsing import sample_stats

    task = task_from_dict({"request": "n?", "targets": braced(range(1, 4)), "valid": ["{7}"]}, source="t")
    texts = ["{1}", "{7}", "{7}", "{9}", "junk", "{2}"]
    ctx = replace(tiny.ctx, sampler=lambda *a, **k: texts)
    s = common.sample_answers(ctx, None, None, task, len(texts))
    st = sample_stats([{"text": t} for t in texts], task)
    assert s.valid_rate == st["valid_rate"] == pytest.approx(4 / 6)  # {7}: a broader valid answer
    assert s.invented_rate == st["invented_rate"] == pytest.approx(1 / 6)
    assert (s.coverage, s.valid_coverage) == (st["distinct_answers"], st["coverage"]) == (4, 3)
    assert s.entropy == st["answers_entropy"]


def test_exact_takes_the_expected_coverage_measure_computes_at_the_experiments_n(tiny):
    from diffuse_lm.measuring import measure_tasks

    model, tok = common.base(tiny.ctx)
    task = task_from_dict({"request": "n?", "targets": braced(range(1, 6))}, source="t")
    (row,) = common.exact(model, tok, [task], 7)
    (ref,) = measure_tasks(model, tok, [task], coverage_n=7)["tasks"]
    assert row["expected_coverage"] == ref["expected_coverage_7"]
    assert "expected_coverage_1000" not in ref and "expected_coverage_7" not in row


def test_adapters_train_once_per_config(tiny):
    ctx = tiny.ctx
    a = common.adapter(ctx, "rng", [common.TASKS["rng"]], 1)
    b = common.adapter(ctx, "rng", [common.TASKS["rng"]], 1)
    assert a == b and len(tiny.calls) == 2 and ctx.trained["rng"]["cached"]
    c = common.adapter(replace(ctx, seed=1), "rng", [common.TASKS["rng"]], 1)
    d = common.adapter(ctx, "rng", [common.TASKS["babynames"]], 1)
    e = common.adapter(ctx, "rng", [common.TASKS["rng"]], 2)
    assert len({a, c, d, e}) == 4  # the seed, the tasks and the passes are part of the key
    assert tiny.calls[-1].alg_config.n_iters == 2 and tiny.calls[-1].lr == 5e-5  # not the default model
    f = common.adapter(ctx, "child", [common.TASKS["rng"]], 1, parent=a)
    assert tiny.calls[-1].load_model and tiny.calls[-1].ckpt_dir == str(a) and f != a


def test_early_stopping_is_on_for_open_ended_training_sets(tiny):
    common.adapter(tiny.ctx, "names", [common.TASKS["babynames"]], 1)
    common.adapter(tiny.ctx, "rng", [common.TASKS["rng"]], 1)
    assert [c.alg_config.early_stop for c in tiny.calls] == [True, False]


def test_using_attaches_and_removes_the_adapter(tiny):
    ctx = tiny.ctx
    path = common.adapter(ctx, "rng", [common.TASKS["rng"]], 1)
    x = torch.tensor([[5, 6, 7, 8]])
    model, _ = common.base(ctx)
    before = model(x).logits
    with common.using(ctx, path) as (tuned, _):
        inside = tuned(x).logits
    after = common.base(ctx)[0](x).logits
    assert not torch.allclose(before, inside) and torch.equal(before, after)


# --- experiments ---------------------------------------------------------------------------------


def test_table1_and_fig1(tiny):
    res = table1.run(tiny.ctx)
    rng, names = res.tasks["RNG"], res.tasks["BABYNAMES"]
    assert rng.natural.entropy == pytest.approx(math.log(5))
    assert names.train_targets == 3 and names.natural.n_targets == 5
    assert names.base.exact.n_targets == 5 and names.base.exact_train_targets.n_targets == 3
    assert rng.base.sampled.n == TINY.samples and rng.base.sampled.seen_rate is None
    # fake samples {1} {2} {Ann} - {1} {Zed}: one of six is a training name, and a natural one
    assert names.base.sampled.seen_rate == names.base.sampled.valid_rate == pytest.approx(1 / 6)
    assert rng.base.exact.entropy != pytest.approx(rng.tuned.exact.entropy)
    # one expected coverage a row, at the experiment's N (the samples), not measure's fixed 1000 beside it
    row = res.to_json()["tasks"]["RNG"]["base"]["exact"]
    assert "expected_coverage" in row and not any(k.startswith("expected_coverage_") for k in row)
    assert len(tiny.calls) == 2
    res1 = fig1.run(tiny.ctx)
    assert len(tiny.calls) == 4 and all(tiny.ctx.trained[k]["cached"] for k in ("rng-1-10", "babynames"))
    dist = res1.tasks["BABYNAMES"].tuned.distribution
    probs = [p for _, p in dist]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0)
    assert res1.tasks["BABYNAMES"].natural[0] == ("{Ann}", pytest.approx(5 / 15))


def test_at_temperature_gives_the_probabilities_of_temperature_sampling(tiny):
    model, tok = common.base(tiny.ctx)
    task = task_from_dict({"request": "n?", "targets": braced(range(1, 4))}, source="t")
    enc = encode_task(tok, task)
    t = 2.5
    manual = []
    with torch.no_grad():
        for ids in enc.target_ids:
            seq = torch.tensor([enc.prompt_ids + ids])
            logp = torch.log_softmax(model(seq).logits[0].float() / t, dim=-1)
            p = len(enc.prompt_ids)
            manual.append(sum(float(logp[p - 1 + j, tok_id]) for j, tok_id in enumerate(ids)))
    with temperature.at_temperature(model, t):
        row = common.exact(model, tok, [task], 10)[0]
    assert [r["logprob"] for r in row["targets"]] == pytest.approx(manual, abs=1e-4)
    assert common.exact(model, tok, [task], 10)[0]["targets"][0]["logprob"] != pytest.approx(
        manual[0], abs=1e-4
    )


def test_matching_temperature_bisects_the_first_crossing():
    def sweep(ts):
        return [SimpleNamespace(temperature=t, entropy=math.log(t)) for t in ts]

    found = temperature.matching_temperature(math.log, math.log(3.0), sweep([1.0, 2.0, 5.0, 10.0]))
    assert found == pytest.approx(3.0, rel=0.02) and found >= 3.0
    assert temperature.matching_temperature(math.log, 5.0, sweep([1.0, 2.0])) is None
    assert temperature.matching_temperature(math.log, -1.0, sweep([1.0, 2.0])) == 1.0


def test_temperature_run(tiny):
    res = temperature.run(tiny.ctx)
    r = res.tasks["RNG"]
    assert [p.temperature for p in r.sweep] == list(TINY.temperatures)
    assert r.sweep[1].entropy == pytest.approx(table1.run(tiny.ctx).tasks["RNG"].base.exact.entropy)
    if r.matching_temperature is not None:
        assert r.base_at_shown.entropy >= r.tuned.entropy - 1e-9
    assert len(r.base_samples.texts) == TINY.temperature_samples


def test_fig2(tiny):
    b1, b2 = fig2.points_b((4, 8), 3, seed=0), fig2.points_b((4, 8), 3, seed=0)
    assert b1 == b2 and all(
        1 <= lo <= fig2.MAX_LOW and hi - lo + 1 == s
        for g, s in zip(b1, (4, 8), strict=True)
        for lo, hi, _ in g
    )
    res = fig2.run(tiny.ctx)
    assert res.a.x == [3, 5] and res.a.ideal == pytest.approx([math.log(3), math.log(5)])
    for panel in (res.a, res.b):
        for c in (panel.base, panel.tuned):
            assert len(c.mean) == len(panel.x) and all(h >= 0 for h in c.ci)
            assert all(v <= i + 1e-9 for vs, i in zip(c.values, panel.ideal, strict=True) for v in vs)
    assert len(res.a.base.values[0]) == 5 and len(res.b.base.values[0]) == 3


def test_six_tasks_subset_keeps_every_family(tiny):
    def names(**kw):
        return [t.name for t in leave_one_out.six_tasks(replace(tiny.ctx, scale=replace(TINY, **kw)))]

    assert len(names()) == 7
    assert names(six_phrasings=1, six_max_targets=3) == ["babynames/train/p0", "days/a/p0", "fruits/a/p0"]
    assert names(six_phrasings=1, six_max_targets=1) == [
        "babynames/train/p0",
        "days/a/p0",
        "days/b/p0",
        "fruits/a/p0",
    ]
    assert names(six_phrasings=1, six_max_targets=1, six_subtasks=1) == [
        "babynames/train/p0",
        "days/a/p0",
        "fruits/a/p0",
    ]
    assert len(names(six_subtasks=1)) == 6  # both phrasings of the first sub-task of each family


def test_smoke_scale_one_subtask_a_family_ten_questions_a_kind_and_every_experiment_takes_it():
    from collections import Counter

    from diffuse_lm import experiments
    from diffuse_lm.experiments.scales import SCALES, SMOKE

    groups = leave_one_out.families(leave_one_out.six_tasks(Context(scale=SMOKE)))
    assert len(groups) == 6 and all(len(ts) == 1 for ts in groups.values())  # 6 training prompts
    asked = utility.per_kind(utility.load_questions()[1], SMOKE.utility_questions)
    assert Counter(q["kind"] for q in asked) == {"factual": 10, "arithmetic": 10}
    assert utility.per_kind(asked, None) == asked
    assert SCALES["smoke"] is SMOKE and SMOKE.six_recipe.retain == 0  # no retention term: ~9x faster steps
    for name in experiments.NAMES:
        uses = experiments.experiment(name).uses
        assert set(choices(SMOKE, uses)) <= set(choices(SMOKE, scale_fields()))  # every setting documented
    assert "sub-tasks of each of the six tasks: all -> 1" in choices(SMOKE, scale_fields())


def test_leave_one_out_holds_each_task_out(tiny):
    res = leave_one_out.run(tiny.ctx)
    assert sorted(res.families) == ["babynames", "days", "fruits"]
    trained = tiny.ctx.trained
    extra = tiny.ctx.scale.six_recipe.extra_tasks()  # the recipe's determinate questions, in every model
    assert extra and all(
        t.startswith(("determinate/", "random-mix/", "random-format/", "random-phrasing/", "formats/"))
        for t in extra
    )
    assert len(trained) == 4 and trained["paper-six"]["train_prompts"][7:] == extra
    # the recipe's learning rate is relative to the model's (here TrainConfig's default: not the default model)
    factor, default = tiny.ctx.scale.six_recipe.lr_factor, TrainConfig.model_fields["lr"].default
    assert factor != 1.0 and len(tiny.calls) == 4
    assert all(c.lr == pytest.approx(factor * default) for c in tiny.calls)
    # the run folder found without training is the one trained (tradeoff keys its points by it), and a recipe
    # that differs only in its rate is another run
    recipe = tiny.ctx.scale.six_recipe
    assert leave_one_out.six_task_run(tiny.ctx) == Path(trained["paper-six"]["folder"])
    assert leave_one_out.six_task_run(tiny.ctx, replace(recipe, lr_factor=1.0)) != Path(
        trained["paper-six"]["folder"]
    )
    for fam in res.families:
        specs = trained[f"paper-six-without-{fam}"]["train_prompts"]
        assert specs[len(specs) - len(extra) :] == extra
        specs = specs[: len(specs) - len(extra)]
        assert len(specs) == 7 - res.n_prompts[fam] and not any(f"{fam}-" in s for s in specs)
        for label in ("baseline", "ID", "OOD"):
            r = res.results[fam][label]
            assert len(r.prompts) == res.n_prompts[fam] and r.sampled_coverage <= TINY.loo_samples
    assert res.results["fruits"]["ID"].entropy != pytest.approx(res.results["fruits"]["baseline"].entropy)


def test_biographies_continue_tuned_ood(tiny):
    res = biographies.run(tiny.ctx)
    assert list(res.models) == ["Base", "Tuned-OOD", "Tuned-ID"]
    for m in res.models.values():
        assert m.report["n"] == TINY.bio_samples and m.report["n_valid"] == 2
        assert m.records[0]["text"] == BIOS[0] and m.records[0]["first_name"] == "Ada"
        shares = m.recovered  # beside the strict metrics: "{Lyon}" alone is no place to the tolerant parser
        assert shares.strict["birth_place"] == 1.0 and shares.tolerant["birth_place"] == 2 / 3
    assert res.to_json()["models"]["Base"]["recovered"]["tolerant"]["birth_place"] == 2 / 3
    assert "| birth_place | 100% / 67% | 100% / 67% | 100% / 67% |" in biographies.section(res, tiny.tmp)
    child = tiny.calls[-1]
    assert child.load_model and Path(child.ckpt_dir).parent.name.startswith("paper-six-")


def test_utility_grading():
    assert utility.normalize("  The Pacific Ocean. ") == "pacific ocean"
    assert utility.normalize("H₂O") == "h2o"
    assert utility.grade("Sure! {Paris}", ["Paris"]) == {"exact": True, "correct": True}
    assert utility.grade("It is Paris, I think", ["Paris"]) == {"exact": False, "correct": True}
    assert utility.grade("{Parisian}", ["Paris"]) == {"exact": False, "correct": False}
    assert utility.grade("{Lyon}\nor Paris", ["Paris"]) == {"exact": False, "correct": False}
    assert utility.grade("The answer is\n{5}", ["5", "five"]) == {"exact": True, "correct": True}
    instructions, questions = utility.load_questions()
    assert len(utility.load_prompts()) == 20 and len(questions) >= 250
    assert "{" in instructions["braced"] and "{" not in instructions["free"]


QUESTIONS = [
    {"kind": "factual", "question": "Capital of France?", "answers": ["Paris"]},
    {"kind": "factual", "question": "Capital of Peru?", "answers": ["Lima"]},
    {"kind": "arithmetic", "question": "What is 2 + 3?", "answers": ["5", "five"]},
]


def test_utility_kl_is_zero_for_an_identity_adapter_and_positive_otherwise(tiny, monkeypatch):
    from peft import LoraConfig, get_peft_model

    monkeypatch.setattr(
        utility, "load_questions", lambda: ({"braced": "In {braces}.", "free": "Brief."}, QUESTIONS)
    )
    res = utility.run(tiny.ctx)
    assert res.kl.mean_per_token > 0 and len(res.kl.prompts) == 20
    acc = res.qa.accuracy
    assert set(acc["base"]) == {"braced", "free"} and set(acc["base"]["free"]) == {
        "all",
        "factual",
        "arithmetic",
    }
    assert acc["base"]["braced"]["all"].n == 3 and len(res.qa.items) == 6
    lo, hi = acc["tuned"]["free"]["all"].ci95
    assert 0 <= lo <= acc["tuned"]["free"]["all"].correct <= hi <= 1
    identity = tiny.tmp / "identity"  # LoRA B = 0: the tuned model is the base model
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
    get_peft_model(tiny_llama(len(char_tokenizer())), lora).save_pretrained(identity)
    monkeypatch.setattr(utility, "six_task_adapter", lambda ctx: identity)
    res = utility.run(tiny.ctx)
    assert res.kl.mean_per_token == pytest.approx(0.0, abs=1e-6) and res.kl.top1_agreement == 1.0
    assert all(q["base"] == q["tuned"] for q in res.qa.items)


def test_weighted_recipe_carries_family_weights_and_a_schedule_into_a_valid_training_config():
    """Recipe `weighted` (and `constrained`, the standard scale's, built on it) sets alg_config.family_weights and lr_scheduler, and the config it
    makes validates; recipes without them add neither key (their adapters' cache keys stay as they were)."""
    from diffuse_lm.experiments.scales import RECIPES, STANDARD

    settings = STANDARD.six_recipe.settings(1e-3)
    cfg = TrainConfig(**settings, train_prompts=["formats-mix"], output_dir="x")
    assert (cfg.lr, cfg.lr_scheduler) == (pytest.approx(8e-4), "cosine")
    assert cfg.alg_config.family_weights == {"FORMAT-*": 0.5} and cfg.alg_config.balance == "families"
    for name, recipe in RECIPES.items():
        if recipe.lr_scheduler is None:
            s = recipe.settings(1e-3)
            assert "lr_scheduler" not in s and "family_weights" not in s.get("alg_config", {}), name
    bad = replace(STANDARD.six_recipe, balance_families=False).settings(1e-3)
    with pytest.raises(ValueError, match="family_weights needs balance: families"):
        TrainConfig(**bad, train_prompts=["formats-mix"], output_dir="x")


def test_wide_recipe_sets_the_lora_rank_and_no_other_recipe_touches_it():
    """Recipe `wide` is `constrained` with LoRA rank 16 and alpha 32 in its training config; every other recipe
    leaves the `lora` block out, so the cache keys of their adapters stay as they were."""
    from diffuse_lm.experiments.scales import RECIPES

    wide = RECIPES["wide"].settings(1e-3)
    cfg = TrainConfig(**wide, train_prompts=["formats-mix"], output_dir="x")
    assert (cfg.lora.r, cfg.lora.alpha) == (16, 32.0)
    assert {k: v for k, v in wide.items() if k != "lora"} == RECIPES["constrained"].settings(1e-3)
    assert [n for n, r in RECIPES.items() if "lora" in r.settings(1e-3)] == ["wide"]


def test_constrained_recipe_mixes_in_the_constrained_tasks_and_formats_keeps_those_of_kept_formats(tiny):
    """Recipe `constrained` (the standard scale's) trains on the constrained-mix tasks besides formats-mix; its
    format-only models of `formats` keep the constrained tasks of every format but the held-out one. Quick's
    recipe has neither."""
    from diffuse_lm.experiments import formats
    from diffuse_lm.experiments.scales import QUICK, RECIPES, STANDARD
    from diffuse_lm.tasks import builtin_groups

    mix = builtin_groups()["constrained-mix"]
    assert STANDARD.six_recipe is RECIPES["constrained"]
    assert set(mix) <= set(STANDARD.six_recipe.extra_tasks())
    assert not set(mix) & set(QUICK.six_recipe.extra_tasks())
    for scale, kept in ((STANDARD, True), (QUICK, False)):
        ctx = replace(tiny.ctx, scale=replace(scale, format_subjects=2))
        for fmt in ("json", "letter"):
            names = [n for n in formats.training_tasks(ctx, fmt) if n.startswith("constrained/")]
            assert bool(names) == kept
            assert all(n.split("/")[1] != fmt for n in names)
            assert len(names) == (len([n for n in mix if n.split("/")[1] != fmt]) if kept else 0)


def test_ordered_recipe_adds_the_ordered_sets_and_formats_holds_their_format_out(tiny):
    """Recipe `ordered` is `constrained` with the ordered-mix tasks (28 subjects with a conventional order, each in
    two trained formats, none an evaluation subject of `formats`); its format-only models keep those asked in every
    format but the held-out one. No other recipe trains on them."""
    from diffuse_lm.experiments import formats
    from diffuse_lm.experiments.scales import RECIPES, STANDARD
    from diffuse_lm.tasks import builtin_groups, builtin_tasks

    mix = builtin_groups()["ordered-mix"]
    subjects = {n.split("/")[3] for n in mix}
    trained = {n.split("/")[2] for n in builtin_tasks() if n.startswith("formats/train/")}
    evaluated = {n.split("/")[3] for n in builtin_tasks() if n.startswith("formats/eval/")}
    assert len(subjects) == 28 and len(mix) == 56 and not subjects & evaluated
    assert {n.split("/")[2] for n in mix} <= trained
    assert all(sum(n.split("/")[3] == s for n in mix) == 2 for s in subjects)
    ordered = RECIPES["ordered"]
    assert set(mix) <= set(ordered.extra_tasks())
    assert [n for n, r in RECIPES.items() if set(mix) & set(r.extra_tasks())] == ["ordered"]
    assert ordered.settings(1e-3) == RECIPES["constrained"].settings(1e-3)  # the same training keys
    ctx = replace(tiny.ctx, scale=replace(STANDARD, six_recipe=ordered, format_subjects=2))
    for fmt in ("braces", "answer"):
        names = [n for n in formats.training_tasks(ctx, fmt) if n.startswith("formats/ordered/")]
        assert sorted(names) == sorted(n for n in mix if n.split("/")[2] != fmt)
        assert len(names) < len(mix)


def test_tradeoff_points_and_recipes(tiny, monkeypatch):
    from diffuse_lm.experiments import tradeoff
    from diffuse_lm.experiments.scales import PAPER_RECIPE, Recipe

    monkeypatch.setattr(
        utility, "load_questions", lambda: ({"braced": "In {braces}.", "free": "Brief."}, QUESTIONS)
    )
    keep = Recipe("keep", retain=2.0, determinate=3)
    tiny.ctx.scale = replace(tiny.ctx.scale, tradeoff=(PAPER_RECIPE, keep))
    res = tradeoff.run(tiny.ctx)
    assert res.recipes == [str(PAPER_RECIPE), "keep"]
    p = res.points["keep"]
    fams = p.leave_one_out
    assert p.n_families == len(fams) and 0 <= p.families_entropy_up <= len(fams)
    f = next(iter(fams))
    assert p.ood_gain["entropy"][f] == pytest.approx(fams[f]["OOD"].entropy - fams[f]["baseline"].entropy)
    # the recipe reaches training: retention config and 3 determinate questions in both formats
    kept = [c for c in tiny.calls if c.retain is not None]
    assert kept and all(c.retain.weight == 2.0 for c in kept)
    extra = [t for t in kept[0].train_prompts if t.startswith("determinate/")]
    assert len(extra) == 6 and len({t.rsplit("/", 1)[1] for t in extra}) == 3
    assert not any(
        c.retain for c in tiny.calls if not any(t.startswith("determinate/") for t in c.train_prompts)
    )
    # a finished point is read back without training its models again, even when they are gone
    shutil.rmtree(tiny.ctx.out / "adapters")
    n_calls = len(tiny.calls)
    again = tradeoff.run(tiny.ctx)
    assert len(tiny.calls) == n_calls and json.dumps(again.to_json()) == json.dumps(res.to_json())


# --- report --------------------------------------------------------------------------------------


def test_report_tables_and_figures(tiny):
    from diffuse_lm.experiments import NAMES
    from diffuse_lm.experiments.report import write_report
    from diffuse_lm.experiments.runner import run_experiment

    out = tiny.ctx.out
    out.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        (out / f"{name}.json").write_text(json.dumps(run_experiment(name, tiny.ctx)))
    text = write_report(out).read_text()
    assert all(f"## {name}" in text for name in NAMES)
    assert "| RNG | base |" in text and "Coverage-6" in text
    assert "training passes (rng): 50 -> 1" in text  # the quick-scale choices are in the report
    assert "| first_name | 2 / 0.64 |" in text and "637 / 5.58" in text  # ours beside Llama-2's (Table 7)
    figures = [
        "fig1_distributions",
        "fig2_rng_generalization",
        "fig3_leave_one_out",
        "fig4_biographies",
        "fig5_birthplaces_base",
        "fig5_birthplaces_tuned-ood",
        "temperature_sweep",
    ]
    for png in figures:
        assert (out / "figures" / f"{png}.png").stat().st_size > 1000 and f"figures/{png}.png" in text


def test_report_without_results_is_an_error(tmp_path):
    from diffuse_lm.errors import DiffuseError
    from diffuse_lm.experiments.report import write_report

    with pytest.raises(DiffuseError, match="holds no results"):
        write_report(tmp_path)
    bad = {
        "model": "m",
        "scale": "quick",
        "seed": 0,
        "wall_s": 1,
        "device": None,
        "versions": {},
        "result": {},
    }
    (tmp_path / "fig1.json").write_text(json.dumps(bad))
    with pytest.raises(DiffuseError, match=r"fig1.json: not a fig1 results file \(top: Field required\)"):
        write_report(tmp_path)


def test_stored_results_load_write_back_unchanged_and_render_the_stored_report(tmp_path):
    """The typed records read every results file of a real quick-scale run and write back the same JSON, and
    the report rendered from those files is the report stored beside them, byte for byte."""
    from diffuse_lm.experiments import NAMES, experiment
    from diffuse_lm.experiments.report import write_report

    stored = [name for name in NAMES if (STORED / f"{name}.json").exists()]
    # every experiment of the paper has stored results; the newer ones (open-ended, formats) once re-run
    # (calibration's quick-scale results are under docs/calibration)
    assert set(NAMES) - set(stored) <= {"open-ended", "formats", "calibration"}, stored
    for name in stored:
        record = json.loads((STORED / f"{name}.json").read_text())
        result = experiment(name).result.from_json(record["result"])
        assert json.loads(json.dumps(result.to_json())) == record["result"], name
        shutil.copy(STORED / f"{name}.json", tmp_path)
    assert write_report(tmp_path).read_text() == (STORED / "report.md").read_text()


def test_each_experiment_is_one_module_registered_once():
    from diffuse_lm import experiments

    assert experiments.in_all() == [
        n for n in experiments.NAMES if n not in ("tradeoff", "compare", "calibration")
    ]
    for name in experiments.NAMES:
        exp = experiments.experiment(name)
        assert exp.name == name and exp.claim and exp.run.__module__ == exp.section.__module__
        assert all(u.split(".")[0] in SCALE_DOC for u in exp.uses)
    with pytest.raises(KeyError):
        experiments.experiment("table9")


def test_default_model_training_mirrors_its_config():
    import yaml

    cfg = Path(__file__).parents[1] / "configs" / "smollm2-135m" / "rng-1-10.yaml"
    assert yaml.safe_load(cfg.read_text())["lr"] == common.DEFAULT_MODEL_TRAINING["lr"]


def test_every_builtin_task_the_experiments_name_exists():
    from diffuse_lm.tasks import load_tasks

    specs = list(common.TASKS.values()) + [
        getattr(s, f) for s in (QUICK, PAPER) for f in ("natural_babynames", "temperature_babynames")
    ]
    assert all(load_tasks([spec]) for spec in specs)
    assert len(load_tasks([common.TASKS["rng"]])) == 1 and len(load_tasks([common.TASKS["babynames"]])) == 1


def test_compare_experiment_puts_tuned_beside_the_other_methods(tiny):
    from diffuse_lm.experiments import compare

    res = compare.run(tiny.ctx)
    assert set(res.root) == {"six tasks", "RNG"}
    for result in res.root.values():
        methods = [m["method"] for m in result.methods]
        assert methods[:6] == compare.METHODS.split(",") and methods[6].startswith("tuned:")
        assert len(result.rows) == len(methods) * len(result.tasks)
    md = compare.section(res, tiny.tmp)
    assert "| tuned | exact |" in md and (tiny.tmp / "compare_rng.png").stat().st_size > 1000


def test_open_ended_counts_answer_like_outputs_of_base_and_tuned(tiny):
    from diffuse_lm.experiments import open_ended

    answers = ["Peanut", "Biscuit", "I would call it Peanut because it is small", "Peanut"]
    ctx = replace(
        tiny.ctx,
        scale=replace(tiny.ctx.scale, open_ended_samples=4, open_ended_prompts=3),
        sampler=lambda m, t, msgs, n, seed=0, **kw: [answers[(seed + i) % 4] for i in range(n)],
    )
    res = open_ended.run(ctx)
    assert list(res.models) == ["base", "tuned"] and res.n_prompts == 3 and res.k == 4
    for m in res.models.values():
        assert m.answer_like_rate == pytest.approx(0.75) and m.distinct == 2.0
        assert [p.prompt for p in m.prompts] == open_ended.prompts()[:3]
    assert "paper-six" in ctx.trained  # the tuned model is the six-task model
    md = open_ended.section(res, tiny.tmp)
    assert (tiny.tmp / "open_ended.png").exists() and "answer-like" in md


def test_formats_holds_each_format_out_of_training(tiny):
    from diffuse_lm.experiments import formats

    ctx = replace(
        tiny.ctx, scale=replace(tiny.ctx.scale, formats_held_out=("bare", "json"), format_subjects=2)
    )
    res = formats.run(ctx)
    assert res.formats == ["bare", "json"]
    mix = builtin_groups()["formats-mix"]
    first = sorted({n.split("/")[3] for n in mix})[:2]
    for fmt in res.formats:
        specs = ctx.trained[f"formats-without-{fmt}"]["train_prompts"]
        # the format mix's tasks of its first two subjects, less those asked in the held-out format
        assert set(specs) == {n for n in mix if n.split("/")[3] in first and n.split("/")[2] != fmt}
        assert specs and fmt not in {s.split("/")[2] for s in specs}
        cells = res.results[fmt]
        assert list(cells) == list(formats.MODELS)
        assert all(len(c.tasks) == 5 and 0 < c.mass <= 1 for c in cells.values())
    assert res.results["bare"]["held out"].mass != pytest.approx(res.results["bare"]["base"].mass)
    # formats no training task uses: base and the six-task model on each
    assert list(res.unseen) == formats.unseen_formats() and len(res.unseen) >= 6
    assert all(list(c) == ["base", "six-task"] and len(c["base"].tasks) == 5 for c in res.unseen.values())
    assert not {n.split("/")[2] for n in mix} & set(res.unseen)
    # a cell's mass is on every valid answer: the sentence without its period counts, a bare word has no extra
    sentence, bare = res.unseen["i-choose"]["base"], res.results["bare"]["base"]
    assert sentence.mass > sum(t["mass"] for t in sentence.tasks) / 5
    assert bare.mass == pytest.approx(sum(t["mass"] for t in bare.tasks) / 5)
    md = formats.section(res, tiny.tmp)
    assert (tiny.tmp / "formats.png").exists() and "| bare |" in md and "| yaml |" in md
    # an older result without the unseen formats still makes its section
    old = formats.FormatsResult.from_json({k: v for k, v in res.to_json().items() if k != "unseen"})
    assert "formats/unseen" not in formats.section(old, tiny.tmp)


def test_formats_held_out_models_train_on_every_other_trained_format(tiny):
    from diffuse_lm.experiments import formats

    ctx = replace(tiny.ctx, scale=replace(tiny.ctx.scale, format_subjects=None))
    trained = {n.split("/")[2] for n in builtin_groups()["formats-mix"]}
    assert set(formats.FORMATS) < trained and len(trained) >= 16
    for fmt in formats.FORMATS:
        used = {n.split("/")[2] for n in formats.training_tasks(ctx, fmt) if n.startswith("formats/")}
        assert used == trained - {fmt}
