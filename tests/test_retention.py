"""The retention term: KL(base ‖ tuned) along the base model's answers, against a plain computation; the
config block; training with it on and off."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import char_tokenizer, tiny_llama
from test_training import _lora, model_dir, tiny_config  # noqa: F401  (model_dir is a fixture)

from diffuse_lm import train
from diffuse_lm.config import config_from_dict
from diffuse_lm.errors import DiffuseError
from diffuse_lm.models import shared_prefix
from diffuse_lm.retention import (
    RetainExample,
    base_answers_with_states,
    encode_examples,
    load_retain_prompts,
    load_states,
    retention_kl,
    save_states,
)

PROMPTS = ["Say hi.", "What is two plus two? Explain.", "Name a colour"]
ANSWERS = ["Hello there!", "4", "Blue, like the sky on a clear day."]


def plain_kl(model, examples: list[RetainExample]) -> torch.Tensor:
    """Σ_tokens KL(base ‖ tuned), one unpadded sequence at a time, full-vocabulary logits everywhere."""
    total = torch.zeros(())
    for e in examples:
        ids = torch.tensor([e.prompt_ids + e.response_ids])
        n = len(e.response_ids)
        with torch.no_grad(), model.disable_adapter():
            base = torch.log_softmax(model(input_ids=ids).logits[0, -n - 1 : -1], -1)
        tuned = torch.log_softmax(model(input_ids=ids).logits[0, -n - 1 : -1], -1)
        total = total + (base.exp() * (base - tuned)).sum()
    return total


@pytest.mark.parametrize("packed", [True, False], ids=["one-packed-row", "padded-rows"])
def test_retention_kl_equals_the_plain_computation_values_and_gradients(tokenizer, packed, monkeypatch):
    import diffuse_lm.scoring

    examples = encode_examples(tokenizer, PROMPTS, ANSWERS)
    assert len({len(e.prompt_ids + e.response_ids) for e in examples}) == 3  # padding is exercised
    assert shared_prefix([e.prompt_ids for e in examples]) >= 3  # so is the shared beginning of a packed row
    ref, fast = _lora(tiny_llama(len(tokenizer), seed=5)), _lora(tiny_llama(len(tokenizer), seed=5))
    assert diffuse_lm.scoring.can_pack(fast)
    if not packed:  # the path of decoders that take no packed row
        monkeypatch.setattr(diffuse_lm.scoring, "can_pack", lambda model, length=0: False)
    fast.load_state_dict(ref.state_dict())
    want = plain_kl(ref, examples)
    want.backward()
    got, n = retention_kl(fast, examples)
    got.backward()
    assert n == sum(len(e.response_ids) for e in examples)
    assert float(want.detach()) > 1e-3  # the random LoRA moved the model: a real KL, not zero
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    grads = [
        (p.grad, q.grad) for p, q in zip(ref.parameters(), fast.parameters(), strict=True) if p.requires_grad
    ]
    assert all(a is not None and b is not None for a, b in grads)
    for a, b in grads:
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def test_kept_base_states_give_the_plain_kl_without_a_second_decoder_pass(tmp_path, monkeypatch):
    """The states the greedy decoding kept stand for the base side: the KL and its gradients are the plain
    computation's, and the decoder runs once (the tuned side), not twice."""
    from tokenizers import decoders

    import diffuse_lm.retention as retention

    tokenizer = char_tokenizer()
    tokenizer.backend_tokenizer.decoder = decoders.Fuse()  # text tokenizes back to the decoded tokens

    prompts = [*PROMPTS, "Tell me about cats.", "Why is ice cold?", "Count to three."]
    ref, fast = _lora(tiny_llama(len(tokenizer), seed=4)), _lora(tiny_llama(len(tokenizer), seed=4))
    fast.load_state_dict(ref.state_dict())
    texts, states, _ = base_answers_with_states(fast, tokenizer, prompts, 8, cache=tmp_path)
    examples = [e for e in encode_examples(tokenizer, prompts, texts, states) if e.base_states is not None]
    assert len(examples) >= 4  # answers that tokenize back to their tokens keep their states
    assert all(e.base_states.shape == (len(e.response_ids), 32) for e in examples)  # (tokens, hidden)
    passes = []
    forward = retention._forward_logprobs
    monkeypatch.setattr(retention, "_forward_logprobs", lambda m, b: passes.append(len(b)) or forward(m, b))
    examples[1] = dataclasses.replace(examples[1], base_states=None)  # one without: its base side computed
    want = plain_kl(ref, examples)
    want.backward()
    got, _ = retention_kl(fast, examples)
    got.backward()
    assert passes == [1, len(examples)]  # the one without states, then the tuned side
    assert float(want.detach()) > 1e-3
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for p, q in zip(ref.parameters(), fast.parameters(), strict=True):
        if p.requires_grad:
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-6)
    # the cache keeps them; read back, they are the same tensors
    cached = list(tmp_path.glob("retain-*.safetensors"))
    assert len(cached) == 1
    texts2, states2, file = base_answers_with_states(fast, tokenizer, prompts, 8, cache=tmp_path)
    assert texts2 == texts and file == cached[0]
    assert [s is None for s in states2] == [s is None for s in states]
    assert all(torch.equal(a, b) for a, b in zip(states, states2, strict=True) if a is not None)


def test_kept_states_of_other_answers_or_a_torn_file_are_not_used(tmp_path):
    path = tmp_path / "retain.safetensors"
    states = [torch.ones(2, 4), None, torch.zeros(1, 4)]
    save_states(path, PROMPTS, ANSWERS, states)
    back = load_states(path, PROMPTS, ANSWERS)
    assert back[1] is None and torch.equal(back[0], states[0]) and torch.equal(back[2], states[2])
    assert load_states(path, PROMPTS, ["Hi", "5", "Red"]) == [None] * 3  # other answers: not theirs
    linked, other = tmp_path / "linked.safetensors", tmp_path / "other.safetensors"
    save_states(linked, PROMPTS, ANSWERS, states, same_as=path)  # the same states: one file, two names
    assert linked.stat().st_ino == path.stat().st_ino
    save_states(
        other, PROMPTS, ["Hi", "5", "Red"], [torch.ones(1, 4)] * 3, same_as=path
    )  # not the same: written
    assert (
        other.stat().st_ino != path.stat().st_ino
        and load_states(other, PROMPTS, ["Hi", "5", "Red"])[0] is not None
    )
    path.write_bytes(path.read_bytes()[:40])  # torn
    assert load_states(path, PROMPTS, ANSWERS) == [None] * 3
    assert load_states(tmp_path / "missing.safetensors", PROMPTS, ANSWERS) == [None] * 3
    save_states(path, PROMPTS, ANSWERS, [None] * 3)  # nothing kept: a file that says so
    assert path.is_file() and load_states(path, PROMPTS, ANSWERS) == [None] * 3


def test_retention_kl_is_zero_with_the_adapter_at_its_start(tokenizer):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(len(tokenizer)), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    kl, _ = retention_kl(model, encode_examples(tokenizer, PROMPTS, ANSWERS))
    assert abs(float(kl)) < 1e-6  # LoRA B starts at zero: tuned == base


def test_retain_prompt_files_and_their_errors(tmp_path):
    assert len(load_retain_prompts("general")) >= 250
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert load_retain_prompts(str(tmp_path / "p.txt")) == ["one", "two"]
    (tmp_path / "p.yaml").write_text("- a\n- {prompt: b}\n")
    assert load_retain_prompts(str(tmp_path / "p.yaml")) == ["a", "b"]
    # task specs give their requests; a list joins its sources in order, without repeats
    both = load_retain_prompts(["general", "determinate/braced", "general"])
    assert len(both) == len(load_retain_prompts("general")) + 60 and both[-1].startswith("What")
    (tmp_path / "t.json").write_text('{"request": "Pick one.", "targets": ["a", "b"]}')
    assert load_retain_prompts(str(tmp_path / "t.json")) == ["Pick one."]
    for name, text, problem in [
        ("missing.yaml", None, "cannot read"),
        ("bad.yaml", "- a\n  - : [", "malformed"),
        ("map.json", '{"a": 1}', "expected a list"),
        ("num.json", "[1, 2]", "item 0"),
        ("empty.txt", "\n", "no prompt"),
    ]:
        if text is not None:
            (tmp_path / name).write_text(text)
        with pytest.raises(DiffuseError, match=problem) as e:
            load_retain_prompts(str(tmp_path / name))
        assert name in str(e.value) and "\n" not in str(e.value)


def _params(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run / "adapter" / "adapter_model.safetensors")


def test_retain_off_or_zero_weight_trains_bit_identically(tmp_path, model_dir):  # noqa: F811
    plain = train(config_from_dict(tiny_config(tmp_path / "a", model_dir)), progress=False).summary
    zero = train(
        config_from_dict(tiny_config(tmp_path / "b", model_dir, retain={"weight": 0.0})), progress=False
    ).summary

    def log(s):
        return [json.loads(x) for x in (Path(s["output_dir"]) / "train_log.jsonl").read_text().splitlines()]

    assert [e.get("loss") for e in log(plain)] == [e.get("loss") for e in log(zero)]
    assert not any("retain_kl" in e for e in log(zero))
    a, b = _params(Path(plain["output_dir"])), _params(Path(zero["output_dir"]))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def exact_model_dir(tmp_path_factory) -> Path:
    """The tiny model folder, its tokenizer decoding tokens back to the text they came from (the test
    tokenizer otherwise spaces them out), so that base answers keep their decoder states."""
    from tokenizers import decoders

    folder = tmp_path_factory.mktemp("tiny-model-exact")
    tok = char_tokenizer()
    tok.backend_tokenizer.decoder = decoders.Fuse()
    tiny_llama(len(tok), seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_training_with_retention_logs_it_keeps_closer_to_base_and_resumes(tmp_path, exact_model_dir):
    prompts = tmp_path / "general.txt"
    prompts.write_text("\n".join(PROMPTS + ["Tell me about cats.", "Why is ice cold?"]))
    retain = {"weight": 5.0, "prompts": str(prompts), "max_new_tokens": 6, "per_step": 2}
    plain = train(config_from_dict(tiny_config(tmp_path / "a", exact_model_dir)), progress=False).summary
    cfg = tiny_config(tmp_path / "b", exact_model_dir, retain=retain)
    kept = train(config_from_dict(cfg), progress=False).summary
    out = Path(kept["output_dir"])
    saved = json.loads((out / "retain.json").read_text())
    assert saved["prompts"] == prompts.read_text().splitlines() and len(saved["responses"]) == 5
    states = load_states(out / "retain.safetensors", saved["prompts"], saved["responses"])
    assert any(s is not None for s in states)  # the base states travel with the answers, for a resumed run
    steps = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    kls = [e["retain_kl"] for e in steps if "loss" in e]
    assert len(kls) == kept["steps"] and kls[0] == pytest.approx(0.0, abs=1e-6) and max(kls) > 0

    # the retention term holds the adapter closer to zero (the base model) than Eq. 5 alone
    def norm(s):
        return sum(float(v.norm()) for v in _params(Path(s["output_dir"])).values())

    assert norm(kept) < norm(plain)
    # a run interrupted after its checkpoint resumes to the same adapter
    cfg2 = tiny_config(tmp_path / "c", exact_model_dir, retain=retain)
    short = {**cfg2, "alg_config": {**cfg2["alg_config"], "n_iters": 2}}
    train(config_from_dict(short), progress=False)
    resumed = train(config_from_dict(cfg2), progress=False).summary
    a, b = _params(out), _params(Path(resumed["output_dir"]))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bad_retain_config_is_one_line(tmp_path, model_dir):  # noqa: F811
    with pytest.raises(DiffuseError, match="retain.weight"):
        config_from_dict(tiny_config(tmp_path, model_dir, retain={"weight": -1}))
    with pytest.raises(DiffuseError, match="unknown key 'retain.wieght'"):
        config_from_dict(tiny_config(tmp_path, model_dir, retain={"wieght": 1}))
    cfg = config_from_dict(tiny_config(tmp_path, model_dir, retain={"prompts": str(tmp_path / "nope.yaml")}))
    with pytest.raises(DiffuseError, match="nope.yaml"):
        train(cfg, progress=False)
    assert not (tmp_path / "run" / "config.yaml").exists()  # failed before anything was written


def test_non_finite_numbers_are_refused_and_a_diverging_run_stops_before_saving(tmp_path, model_dir):  # noqa: F811
    for key, value in [
        ("lr", float("inf")),
        ("max_grad_norm", float("nan")),
        ("retain", {"weight": float("inf")}),
    ]:
        with pytest.raises(DiffuseError, match=key):
            config_from_dict(tiny_config(tmp_path, model_dir, **{key: value}))
    cfg = tiny_config(tmp_path, model_dir, lr=1e30, max_grad_norm=None, checkpoint_every=1)
    with pytest.raises(DiffuseError, match="not finite") as e:
        train(config_from_dict(cfg), progress=False)
    assert "\n" not in str(e.value)
    out = Path(cfg["output_dir"])
    assert not (out / "adapter").exists() and not (out / "summary.json").exists()
    for line in (out / "train_log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_train_log_lines_are_strict_json():
    from diffuse_lm.strict_json import strict_json as _strict

    entry = {"step": 1, "eval": {"t": {"kl": float("inf"), "mass": 0.5}}, "x": [float("nan"), 1.0]}
    assert json.loads(json.dumps(_strict(entry), allow_nan=False)) == {
        "step": 1,
        "eval": {"t": {"kl": None, "mass": 0.5, "nonfinite": {"kl": "+Infinity"}}},
        "x": [None, 1.0],
        "nonfinite": {"x": "1 of 2 entries were not finite (first: NaN)"},
    }


def test_prepared_retention_answers_are_the_ones_a_run_reads(tmp_path, exact_model_dir, monkeypatch):
    """`prepare_retention` (what `reproduce --jobs` calls before its side-by-side runs) caches the base
    model's answers under the key a run of the same config looks up: the run computes none again."""
    import diffuse_lm.sampling as sampling
    from diffuse_lm import training

    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "cache"))
    prompts = tmp_path / "general.txt"
    prompts.write_text("\n".join(PROMPTS))
    retain = {"weight": 5.0, "prompts": str(prompts), "max_new_tokens": 6, "per_step": 2}
    cfg = config_from_dict(tiny_config(tmp_path / "run", exact_model_dir, retain=retain))
    training.prepare_retention(cfg)
    cached = list((tmp_path / "cache" / "retain").glob("retain-*.json"))
    assert len(cached) == 1 and cached[0].with_suffix(".safetensors").is_file()
    calls = []
    monkeypatch.setattr(sampling, "greedy_texts", lambda *a, **k: calls.append(a) or [])  # would be computing
    summary = train(cfg, progress=False).summary
    saved = json.loads((Path(summary["output_dir"]) / "retain.json").read_text())
    assert calls == [] and saved["responses"] == json.loads(cached[0].read_text())["responses"]
    # the run's states file is the cache's, hard-linked (runs that share a cache do not copy its bytes)
    states = Path(summary["output_dir"]) / "retain.safetensors"
    assert states.stat().st_ino == cached[0].with_suffix(".safetensors").stat().st_ino
