"""The distribution-matching loss, one optimizer step, and whole runs of `train` on a tiny random Llama."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import char_tokenizer, tiny_llama
from peft import LoraConfig, PeftModel, get_peft_model

from diffuse_lm import distribution_matching_loss, train
from diffuse_lm.cli import main
from diffuse_lm.config import config_from_dict
from diffuse_lm.encoding import encode_task
from diffuse_lm.errors import DiffuseError
from diffuse_lm.metrics import entropy, kl_divergence
from diffuse_lm.scoring import score_plain
from diffuse_lm.tasks import task_from_dict
from diffuse_lm.training_step import _shard, loss_floor, step_prompts, train_step

TASKS = {
    "digits": {
        "request": "Pick a random digit from 1 to 5: {d}.",
        "targets": ["{1}", "{2}", "{3}", "{4}", "{5}"],
    },
    "letters": {"request": "A letter?", "targets": ["a", "bb", "ccc"], "weights": [0.5, 0.3, 0.2]},
}


def save_tiny_model(folder: Path, seed: int = 0) -> Path:
    """A random tiny Llama and the character tokenizer saved as a model folder ``load_model`` accepts."""
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=seed).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_tasks(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in TASKS.items():
        (folder / f"{name}.json").write_text(json.dumps(data))
        paths.append(str(folder / f"{name}.json"))
    return paths


def tiny_config(tmp: Path, model_dir: Path, **over) -> dict:
    """A config that trains the tiny model hard enough to move in a few steps."""
    cfg = {
        "model": str(model_dir),
        "train_prompts": write_tasks(tmp / "tasks"),
        "output_dir": str(tmp / "run"),
        "device": "cpu",
        "lr": 0.02,
        "alg_config": {"n_iters": 4, "batch_size": 2},
        "checkpoint_every": 3,
    }
    for key, value in over.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and key in cfg else value
    return cfg


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


# --- the loss ------------------------------------------------------------------------------------


def test_loss_is_kl_plus_entropy_and_floor_is_reached_at_p_star():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(7))
    q = rng.dirichlet(np.ones(7))
    loss = distribution_matching_loss(torch.tensor(np.log(q)), torch.tensor(w))
    assert float(loss) == pytest.approx(kl_divergence(w, q) + entropy(w), rel=1e-9)
    at_floor = distribution_matching_loss(torch.tensor(np.log(w)), torch.tensor(w))
    assert float(at_floor) == pytest.approx(loss_floor(w), rel=1e-9)
    assert float(loss) > float(at_floor)


def test_loss_splits_over_micro_batches():
    logp, w = torch.randn(9), torch.rand(9)
    parts = sum(distribution_matching_loss(logp[i : i + 4], w[i : i + 4]) for i in range(0, 9, 4))
    assert torch.allclose(parts, distribution_matching_loss(logp, w))


# --- one step ------------------------------------------------------------------------------------


def _lora(model):
    cfg = LoraConfig(
        r=2,
        lora_alpha=4,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
    )
    return get_peft_model(model, cfg)


def test_train_step_gradient_is_the_plain_gradient_of_the_mean_prompt_loss(tokenizer):
    """With SGD(lr=1) and no clipping, one step moves each parameter by minus the gradient of
    mean_prompts(−Σ p* log p), computed here on the plain (full-sequence) scorer."""
    encs = [encode_task(tokenizer, task_from_dict(d, source=n)) for n, d in TASKS.items()]
    ref, fast = _lora(tiny_llama(len(tokenizer), seed=3)), _lora(tiny_llama(len(tokenizer), seed=3))
    fast.load_state_dict(ref.state_dict())
    loss = sum(
        distribution_matching_loss(score_plain(ref, e), torch.tensor(e.weights, dtype=torch.float32))
        for e in encs
    ) / len(encs)
    loss.backward()
    params = [p for p in fast.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    cfg = config_from_dict(
        {"train_prompts": ["x"], "output_dir": "x", "max_grad_norm": None, "alg_config": {"batch_size": 2}}
    )
    got = train_step(fast, torch.optim.SGD(params, lr=1.0), params, encs, cfg).loss
    assert got == pytest.approx(loss.item(), rel=1e-5)
    ref_grads = [p.grad for p in ref.parameters() if p.requires_grad]
    for b, p, g in zip(before, params, ref_grads, strict=True):
        torch.testing.assert_close(b - p.detach(), g, atol=1e-5, rtol=1e-4)


def test_mass_weighted_loss_is_eq5_with_its_mass_part_weighed():
    """L_α = −α·log M + KL(p* ‖ p_θ/M) + H(p*): its surrogate has the gradient of Eq. 5 + (1 − α)·log M, and
    α = 1 is Eq. 5's gradient."""
    from diffuse_lm.training_step import mass_weighted_surrogate

    rng = np.random.default_rng(1)
    w = torch.tensor(rng.dirichlet(np.ones(6)), dtype=torch.float32)
    logp = torch.tensor(np.log(rng.dirichlet(np.ones(6)) * 0.3), dtype=torch.float32, requires_grad=True)
    log_mass = torch.logsumexp(logp.detach(), 0)
    q = torch.exp(logp.detach() - log_mass)
    for alpha in (0.0, 0.3, 1.0, 2.0):
        plain = distribution_matching_loss(logp, w) + (1 - alpha) * torch.logsumexp(logp, 0)
        decomposed = -alpha * log_mass + (w * (w.log() - q.log())).sum() + (-(w * w.log()).sum())
        assert plain.item() == pytest.approx(decomposed.item(), rel=1e-5)
        want = torch.autograd.grad(plain, logp)[0]
        got = torch.autograd.grad(mass_weighted_surrogate(logp, w, log_mass, alpha), logp)[0]
        torch.testing.assert_close(got, want)
    eq5 = torch.autograd.grad(distribution_matching_loss(logp, w), logp)[0]
    torch.testing.assert_close(
        torch.autograd.grad(mass_weighted_surrogate(logp, w, log_mass, 1.0), logp)[0], eq5
    )


@pytest.mark.parametrize("batch_size", [2, 32])  # several micro-batches (mass scored first), one micro-batch
def test_train_step_with_a_mass_weight_moves_by_the_plain_gradient(tokenizer, batch_size):
    """alg_config.mass_weight α: one SGD(lr=1) step moves each parameter by minus the gradient of
    mean_prompts(−Σ p* log p + (1 − α)·log Σ p), computed on the plain scorer; the logged loss stays Eq. 5."""
    alpha = 0.25
    encs = [encode_task(tokenizer, task_from_dict(d, source=n)) for n, d in TASKS.items()]
    ref, fast = _lora(tiny_llama(len(tokenizer), seed=4)), _lora(tiny_llama(len(tokenizer), seed=4))
    fast.load_state_dict(ref.state_dict())
    eq5, objective = 0.0, 0.0
    for e in encs:
        logp = score_plain(ref, e)
        loss = distribution_matching_loss(logp, torch.tensor(e.weights, dtype=torch.float32))
        eq5 += loss.item() / len(encs)
        objective = objective + (loss + (1 - alpha) * torch.logsumexp(logp, 0)) / len(encs)
    objective.backward()
    params = [p for p in fast.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    cfg = config_from_dict(
        {
            "train_prompts": ["x"],
            "output_dir": "x",
            "max_grad_norm": None,
            "alg_config": {"batch_size": batch_size, "mass_weight": alpha},
        }
    )
    got = train_step(fast, torch.optim.SGD(params, lr=1.0), params, encs, cfg).loss
    assert got == pytest.approx(eq5, rel=1e-5)
    ref_grads = [p.grad for p in ref.parameters() if p.requires_grad]
    for b, p, g in zip(before, params, ref_grads, strict=True):
        torch.testing.assert_close(b - p.detach(), g, atol=1e-5, rtol=1e-4)


def test_mass_weight_schedule_goes_linearly_from_start_to_end(tokenizer):
    from diffuse_lm.training_step import mass_weight_at

    cfg = config_from_dict(
        {
            "train_prompts": ["x"],
            "output_dir": "x",
            "alg_config": {"mass_weight": 0.1, "mass_weight_end": 1.0},
        }
    )
    assert [round(mass_weight_at(cfg, s, 4), 6) for s in range(4)] == [0.1, 0.4, 0.7, 1.0]
    flat = config_from_dict({"train_prompts": ["x"], "output_dir": "x", "alg_config": {"mass_weight": 0.3}})
    assert {mass_weight_at(flat, s, 4) for s in range(4)} == {0.3}
    # the step uses the scheduled α: with α given as 1, a config of α 0.25 moves as plain Eq. 5 does
    encs = [encode_task(tokenizer, task_from_dict(d, source=n)) for n, d in TASKS.items()]
    a, b = _lora(tiny_llama(len(tokenizer), seed=4)), _lora(tiny_llama(len(tokenizer), seed=4))
    b.load_state_dict(a.state_dict())
    base = {"train_prompts": ["x"], "output_dir": "x", "max_grad_norm": None}
    quarter = config_from_dict({**base, "alg_config": {"mass_weight": 0.25}})
    for m, cfg, alpha in ((a, quarter, 1.0), (b, config_from_dict(base), None)):
        params = [p for p in m.parameters() if p.requires_grad]
        train_step(m, torch.optim.SGD(params, lr=1.0), params, encs, cfg, mass_weight=alpha)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_balanced_passes_visit_every_family_equally_and_every_prompt_in_turn():
    from collections import Counter

    from diffuse_lm.training_step import pass_length, pass_order

    families = ["big"] * 9 + ["small"] * 2 + ["mid"] * 4  # 15 prompts, 3 families: 5 a family a pass
    assert pass_length(15, families) == 15 and pass_length(15) == 15
    passes = [pass_order(15, 3, p, families) for p in range(4)]
    for order in passes:
        assert Counter(families[i] for i in order) == {"big": 5, "small": 5, "mid": 5}
    assert set(sum(passes[:2], [])) >= set(range(9))  # the big family's prompts all come in turn
    assert pass_order(15, 3, 1) == [int(i) for i in np.random.default_rng([3, 1]).permutation(15)]
    assert step_prompts(15, 4, 3, 5, families) == pass_order(15, 3, 1, families)[4:8]


def test_family_weights_scale_a_familys_share_of_each_pass():
    from collections import Counter

    from diffuse_lm.training_step import pass_length, pass_order

    families = ["big"] * 9 + ["small"] * 2 + ["mid"] * 4
    weights = {"big": 0.4, "small": 2.0}  # of a quota of 5: 2, 10, and mid's 5
    assert pass_length(15, families, weights) == 17
    for p in range(3):
        order = pass_order(15, 3, p, families, weights)
        assert Counter(families[i] for i in order) == {"big": 2, "small": 10, "mid": 5}
    assert pass_order(15, 3, 2, families, {}) == pass_order(15, 3, 2, families)  # no weights: as before
    assert step_prompts(15, 4, 3, 6, families, weights) == pass_order(15, 3, 1, families, weights)[4:8]


def test_family_weights_match_patterns_and_refuse_one_that_matches_nothing():
    from diffuse_lm.config import AlgConfig
    from diffuse_lm.training_setup import family_weights

    families = ["FORMAT-BARE", "FORMAT-JSON", "FRUITS", "COUNTRIES"]
    assert family_weights(families, {"format-*": 0.5, "Format-JSON": 2}) == {
        "FORMAT-BARE": 0.5,
        "FORMAT-JSON": 2,
    }
    with pytest.raises(DiffuseError, match="'planets' matches no family of the training tasks"):
        family_weights(families, {"planets": 1.0})
    with pytest.raises(ValueError, match="needs balance: families"):
        AlgConfig(family_weights={"FRUITS": 2})
    with pytest.raises(ValueError, match="must be > 0"):
        AlgConfig(balance="families", family_weights={"FRUITS": 0})


def test_shards_partition_the_targets(tokenizer):
    enc = encode_task(tokenizer, task_from_dict(TASKS["digits"], source="digits"))
    shards = [_shard(enc, r, 3) for r in range(3)]
    ids = sorted(tuple(t) for s in shards for t in s.target_ids)
    assert ids == sorted(tuple(t) for t in enc.target_ids)
    assert sum(s.weights.sum() for s in shards) == pytest.approx(1.0)
    assert _shard(enc, 5, 6) is None  # more processes than targets: some get none


def test_every_pass_visits_every_prompt_once_in_a_seeded_order():
    passes = [sum((step_prompts(7, 3, 11, p * 3 + k) for k in range(3)), []) for p in range(4)]
    assert all(sorted(p) == list(range(7)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled each pass
    assert step_prompts(7, 3, 11, 5) == step_prompts(7, 3, 11, 5)
    assert [step_prompts(7, 1, s, 0) for s in range(5)] != [step_prompts(7, 1, 0, 0)] * 5


# --- whole runs ----------------------------------------------------------------------------------


def test_run_moves_towards_p_star_and_leaves_its_files(tmp_path, model_dir):
    cfg = config_from_dict(tiny_config(tmp_path, model_dir, eval_every=2))
    s = train(cfg, progress=False).summary
    out = Path(s["output_dir"])
    assert s["steps"] == 8 and s["passes"] == 4 and not s["early_stopped"]
    assert s["floor"] == pytest.approx(np.log(5) + entropy(np.array([0.5, 0.3, 0.2])))
    kl = {
        r["name"]: (r["kl"], a["kl"]) for r, a in zip(s["before"]["tasks"], s["after"]["tasks"], strict=True)
    }
    assert sum(a for _, a in kl.values()) < sum(b for b, _ in kl.values()), kl
    for name in (
        "config.yaml",
        "before.json",
        "after.json",
        "summary.json",
        "checkpoint.json",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    ):
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == list(range(1, 9))
    pass_losses = [e["pass_loss"] for e in steps if "pass_loss" in e]
    assert len(pass_losses) == 4 and pass_losses[-1] < pass_losses[0]
    assert all(e["floor"] > 0 and e["seconds"] >= 0 and e["lr"] == 0.02 for e in steps)
    evals = [e for e in log if "eval" in e]
    assert [e["step"] for e in evals] == [2, 4, 6, 8] and set(evals[0]["eval"]) == {"digits", "letters"}
    assert yaml.safe_load((out / "config.yaml").read_text())["lr"] == 0.02
    assert not list(out.glob(".*tmp*")) and len(list(out.glob("checkpoint-*"))) == 2  # the last two kept


def test_step_budget_stops_mid_pass_and_a_larger_budget_resumes(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"max_steps": 3}, measure=False)
    s = train(config_from_dict(cfg), progress=False).summary
    assert s["steps"] == 3 and s["total_steps"] == 3 and s["passes"] == 2
    cfg["alg_config"]["max_steps"] = 5
    s = train(config_from_dict(cfg), progress=False).summary
    log = [json.loads(line) for line in (Path(s["output_dir"]) / "train_log.jsonl").read_text().splitlines()]
    assert s["steps"] == 5 and [e["step"] for e in log if e.get("kind") == "train"] == [1, 2, 3, 4, 5]


def test_a_run_balanced_by_family_logs_the_floor_of_the_prompts_it_visited(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"balance": "families", "n_iters": 1}, measure=False)
    s = train(config_from_dict(cfg), progress=False).summary
    log = [json.loads(line) for line in (Path(s["output_dir"]) / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if e.get("kind") == "train"]
    assert s["steps"] == len(steps) == 2  # two tasks of their own families: one each a pass
    assert steps[-1]["pass_floor"] == pytest.approx(sum(e["floor"] for e in steps))


def test_final_loss_is_read_against_the_floor_of_the_last_pass(tmp_path, model_dir):
    """With families balanced and weighted, a pass visits digits twice and letters once: the summary's floor is
    that pass's (what its final_loss sums over), not that of each prompt once."""
    alg = {"balance": "families", "family_weights": {"digits": 2}, "n_iters": 2}
    s = train(
        config_from_dict(tiny_config(tmp_path, model_dir, alg_config=alg, measure=False)), progress=False
    ).summary
    log = [json.loads(line) for line in (Path(s["output_dir"]) / "train_log.jsonl").read_text().splitlines()]
    ends = [e for e in log if "pass_floor" in e]
    assert len(ends) == 2 and s["final_loss"] == pytest.approx(ends[-1]["pass_loss"])
    assert s["floor"] == pytest.approx(ends[-1]["pass_floor"])
    each_once = np.log(5) + entropy(np.array([0.5, 0.3, 0.2]))
    assert s["floor"] == pytest.approx(2 * np.log(5) + entropy(np.array([0.5, 0.3, 0.2]))) != each_once


def test_adapter_loads_in_plain_peft_and_in_diffuse_measure(tmp_path, model_dir):
    s = train(config_from_dict(tiny_config(tmp_path, model_dir)), progress=False).summary
    from transformers import AutoModelForCausalLM

    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(model_dir), s["adapter_dir"]
    ).eval()
    enc = encode_task(char_tokenizer(), task_from_dict(TASKS["digits"], source="digits"))
    with torch.no_grad():
        logp = score_plain(tuned, enc)
    want = [t["logprob"] for t in s["after"]["tasks"][0]["targets"]]
    np.testing.assert_allclose(logp.numpy(), want, atol=1e-4)
    out = tmp_path / "m.json"
    task = s["after"]["tasks"][0]["path"]
    assert (
        main(["measure", task, "--model", str(model_dir), "--adapter", s["adapter_dir"], "-o", str(out)]) == 0
    )
    got = [t["logprob"] for t in json.loads(out.read_text())["tasks"][0]["targets"]]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_every_trainable_parameter_changes_and_only_those(tokenizer):
    """TRL's check: after two AdamW steps (LoRA B starts at zero, so A moves from the second) every
    trainable tensor has changed and no frozen one has."""
    model = get_peft_model(
        tiny_llama(len(tokenizer)),
        LoraConfig(
            r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        ),
    )
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    enc = encode_task(tokenizer, task_from_dict(TASKS["digits"], source="digits"))
    cfg = config_from_dict({"train_prompts": ["x"], "output_dir": "x", "lr": 0.01})
    opt = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=0.0)
    for _ in range(2):
        train_step(model, opt, params, [enc], cfg)
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != p.requires_grad, name


def test_early_stop_ends_at_the_first_pass_under_the_threshold(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 5, "early_stop": True, "gamma": 1000.0})
    s = train(config_from_dict(cfg), progress=False).summary
    assert s["early_stopped"] and s["steps"] == 2 and s["passes"] == 1
    assert s["final_loss"] <= s["floor"] * 1001


def test_prompts_per_step_averages_prompts_into_one_step(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 2, "prompts_per_step": 2})
    s = train(config_from_dict(cfg), progress=False).summary
    log = [json.loads(x) for x in (Path(s["output_dir"]) / "train_log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert s["steps"] == 2 and len(steps) == 2
    assert all(e["pass_loss"] == pytest.approx(2 * e["loss"]) for e in steps)


def test_finished_run_is_returned_and_extended_when_n_iters_grows(tmp_path, model_dir):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 2})
    first = train(config_from_dict(cfg), progress=False).summary
    log = Path(first["output_dir"]) / "train_log.jsonl"
    lines = log.read_text()
    assert train(config_from_dict(cfg), progress=False).summary["steps"] == 4
    assert log.read_text() == lines  # nothing retrained
    longer = train(
        config_from_dict(tiny_config(tmp_path, model_dir, alg_config={"n_iters": 3})), progress=False
    ).summary
    assert longer["steps"] == 6 and longer["before"] == first["before"]


def test_a_copied_run_folder_names_its_own_adapter(tmp_path, model_dir):
    import shutil

    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 1})
    first = train(config_from_dict(cfg), progress=False).summary
    copy = tmp_path / "copy"
    shutil.copytree(first["output_dir"], copy)
    shutil.rmtree(first["output_dir"])
    found = train(config_from_dict({**cfg, "output_dir": str(copy)}), progress=False)
    assert found.summary["steps"] == first["steps"]  # the finished run, not retrained
    assert found.summary["output_dir"] == str(copy)
    assert found.adapter_dir == copy / "adapter" and (found.adapter_dir / "adapter_config.json").exists()


def test_other_config_in_a_run_folder_is_refused(tmp_path, model_dir):
    train(config_from_dict(tiny_config(tmp_path, model_dir, alg_config={"n_iters": 1})), progress=False)
    with pytest.raises(DiffuseError, match="lr=0.02"):
        train(config_from_dict(tiny_config(tmp_path, model_dir, lr=0.5, alg_config={"n_iters": 1})))


def test_bf16_autocast_gives_nearly_the_fp32_loss(tmp_path, model_dir):
    fp32 = train(config_from_dict(tiny_config(tmp_path / "a", model_dir)), progress=False).summary
    bf16 = train(
        config_from_dict(tiny_config(tmp_path / "b", model_dir, mixed_precision="bf16")), progress=False
    ).summary
    assert bf16["final_loss"] == pytest.approx(fp32["final_loss"], rel=0.02)


def test_cli_train_writes_the_plot_and_bad_input_is_one_line(tmp_path, model_dir, capsys):
    cfg = tiny_config(tmp_path, model_dir, alg_config={"n_iters": 1})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "-q"]) == 0
    assert (Path(cfg["output_dir"]) / "before_after.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["train", str(path), "alg_config.n_itres=3", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'alg_config.n_itres'" in err
    other = f"output_dir={tmp_path / 'other'}"
    assert main(["train", "-q", str(path), other, "lora.target_modules=[nope]"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lora.target_modules" in err


def test_load_model_continues_an_existing_adapter(tmp_path, model_dir):
    first = train(config_from_dict(tiny_config(tmp_path / "a", model_dir)), progress=False).summary
    cont = tiny_config(
        tmp_path / "b", model_dir, load_model=True, ckpt_dir=first["adapter_dir"], alg_config={"n_iters": 1}
    )
    second = train(config_from_dict(cont), progress=False).summary
    for b, a in zip(second["before"]["tasks"], first["after"]["tasks"], strict=True):
        assert b["kl"] == pytest.approx(a["kl"], abs=1e-5)  # starts where the first run ended
    assert second["steps"] == 2
