"""Sampling: the sampler draws from the model's distribution, samples are reproducible per index whatever
the batching, the JSONL writer resumes after a kill, and bad settings are one-line errors."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import char_tokenizer, tiny_llama
from tokenizers import decoders

from diffuse_lm.cli import main
from diffuse_lm.encoding import encode_task
from diffuse_lm.errors import DiffuseError
from diffuse_lm.models import shared_prefix
from diffuse_lm.sampling import (
    SampleConfig,
    _prefill,
    _transformers_rows,
    generate,
    greedy_texts,
    load_vllm,
    meta_path,
    pick_tokens,
    prompt_ids,
    read_samples,
    sample_seed,
    sample_stats,
    sample_to_jsonl,
)
from diffuse_lm.tasks import task_from_dict

MESSAGES = [{"role": "user", "content": "Pick a number between 1 and 5 like {3}."}]


@pytest.fixture
def tok():
    t = char_tokenizer()
    t.backend_tokenizer.decoder = decoders.Fuse()  # decode characters without spaces between them
    return t


def biased(tok, token: str, layers: int = 1):
    """A tiny model that (almost) always emits ``token``: a bias on the LM head."""
    m = tiny_llama(len(tok), layers=layers)
    head = torch.nn.Linear(32, len(tok), bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[tok.convert_tokens_to_ids(token)] = 50.0
    m.lm_head = head
    return m


def test_pick_tokens_follows_the_distribution_and_its_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(20000, -1)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    freq = np.bincount(pick_tokens(logits, u, SampleConfig()).numpy(), minlength=4) / 20000
    assert np.allclose(freq, [0.5, 0.3, 0.15, 0.05], atol=0.015)
    nucleus = pick_tokens(logits, u, SampleConfig(top_p=0.6)).numpy()
    assert set(nucleus) == {0, 1}  # the smallest set whose mass reaches 0.6
    assert np.isclose((nucleus == 0).mean(), 0.5 / 0.8, atol=0.015)
    assert set(pick_tokens(logits, u, SampleConfig(top_k=2)).numpy()) == {0, 1}
    assert set(pick_tokens(logits, u, SampleConfig(temperature=0)).numpy()) == {0}
    hot = np.bincount(pick_tokens(logits, u, SampleConfig(temperature=1e6)).numpy(), minlength=4) / 20000
    assert np.allclose(hot, 0.25, atol=0.015)


def test_first_token_frequencies_match_the_model(tok):
    """Pure sampling draws from the model's own next-token distribution (chi-square over the vocabulary)."""
    model = tiny_llama(len(tok))
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)  # a peaked distribution, so a wrong sampler shows
    prompt = prompt_ids(tok, MESSAGES)
    prefill = _prefill(model, prompt)
    p = torch.softmax(prefill[1], -1).double().numpy()
    n = 6000
    seeds = [sample_seed(0, i) for i in range(n)]
    cfg = SampleConfig(max_new_tokens=1)
    first = [ids[0] if ids else -1 for _, ids, _ in _transformers_rows(model, prefill, seeds, cfg, set())]
    counts = np.bincount(first, minlength=len(p))
    keep = p * n >= 5
    chi2 = (((counts[keep] - n * p[keep]) ** 2) / (n * p[keep])).sum()
    assert p.max() > 0.1 and keep.sum() >= 3
    assert chi2 < keep.sum() + 6 * np.sqrt(2 * keep.sum())  # about 6 standard deviations above its mean


def test_greedy_equals_transformers_generate(tok):
    model = tiny_llama(len(tok))
    ids = torch.tensor([prompt_ids(tok, MESSAGES)])
    ref = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=[2, 4], pad_token_id=2)
    text = tok.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    assert generate(model, tok, MESSAGES, 2, temperature=0, max_new_tokens=12) == [text, text]


def test_samples_do_not_depend_on_batching_and_follow_the_seed(tok):
    model = tiny_llama(len(tok))
    kw = {"max_new_tokens": 10}
    a = generate(model, tok, MESSAGES, 7, batch_size=3, **kw)
    assert a == generate(model, tok, MESSAGES, 7, batch_size=1, **kw)
    assert a[:4] == generate(model, tok, MESSAGES, 4, batch_size=7, **kw)
    assert len(set(a)) > 1
    assert generate(model, tok, MESSAGES, 7, seed=1, **kw) != a


CONVERSATIONS = [
    [{"role": "user", "content": "hi"}],
    MESSAGES,
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "abc def"}],
    [{"role": "user", "content": "x" * 40}],
    [{"role": "user", "content": "Why?"}],
    [{"role": "user", "content": "The quick brown fox jumps over the lazy dog, twice."}],
]


@pytest.mark.parametrize("seed", [0, 2])  # seed 0: rows end at different steps; seed 2: most run to the cap
def test_greedy_texts_equal_one_prompt_greedy_generate_whatever_the_batching(tok, seed):
    model = tiny_llama(len(tok), seed=seed)
    ref = [generate(model, tok, m, 1, temperature=0.0, max_new_tokens=16)[0] for m in CONVERSATIONS]
    assert len(set(ref)) > 1
    assert shared_prefix([prompt_ids(tok, m) for m in CONVERSATIONS]) > 0  # a beginning run once a batch
    assert greedy_texts(model, tok, CONVERSATIONS, max_new_tokens=16, batch_size=4) == ref
    assert greedy_texts(model, tok, CONVERSATIONS, max_new_tokens=16, batch_size=1) == ref
    assert greedy_texts(biased(tok, "<|im_end|>"), tok, CONVERSATIONS[:3], batch_size=2) == ["", "", ""]
    assert greedy_texts(biased(tok, "x"), tok, CONVERSATIONS[:3], max_new_tokens=4) == ["xxxx"] * 3
    assert greedy_texts(model, tok, []) == []


def test_greedy_texts_with_a_peft_model_and_its_adapter_disabled(tok):
    from peft import LoraConfig, get_peft_model

    base = tiny_llama(len(tok), seed=2)
    plain = greedy_texts(base, tok, CONVERSATIONS, max_new_tokens=12, batch_size=4)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, lora_alpha=64)
    model = get_peft_model(base, lora)
    ref = [generate(model, tok, m, 1, temperature=0.0, max_new_tokens=12)[0] for m in CONVERSATIONS]
    assert greedy_texts(model, tok, CONVERSATIONS, max_new_tokens=12, batch_size=4) == ref != plain
    with model.disable_adapter():
        assert greedy_texts(model, tok, CONVERSATIONS, max_new_tokens=12, batch_size=4) == plain


def test_prompt_ids_match_the_scoring_prompt(tok):
    task = task_from_dict(
        {"request": "Pick {1} or {2}", "targets": ["{1}", "{2}"], "system": "Be random."}, source="t"
    )
    assert prompt_ids(tok, task.messages()) == encode_task(tok, task).prompt_ids


def test_generation_stops_at_end_of_turn_and_at_max_tokens(tok):
    stopped = generate(biased(tok, "<|im_end|>"), tok, MESSAGES, 3, max_new_tokens=5)
    assert stopped == ["", "", ""]
    assert generate(biased(tok, "x"), tok, MESSAGES, 2, max_new_tokens=5) == ["xxxxx", "xxxxx"]


def test_jsonl_records_validity_and_meta(tok, tmp_path):
    task = task_from_dict({"request": "Say {x}", "targets": ["{x}", "{y}"]}, source="t")
    out = tmp_path / "s.jsonl"
    recs = sample_to_jsonl(biased(tok, "x"), tok, task.messages(), 4, out, task=task, max_new_tokens=3)
    assert [r["index"] for r in recs] == [0, 1, 2, 3]
    assert all(r["text"] == "xxx" and r["answer"] is None and r["valid"] is False for r in recs)
    assert all(r["seed"] == sample_seed(0, r["index"]) for r in recs)
    assert len(out.read_text().splitlines()) == 4
    meta = json.loads(meta_path(out).read_text())
    assert meta["task"]["name"] == "t" and meta["temperature"] == 1.0 and meta["messages"] == task.messages()


def test_resume_generates_only_what_is_missing_and_repairs_a_torn_line(tok, tmp_path, monkeypatch):
    model = tiny_llama(len(tok))
    kw = {"max_new_tokens": 6, "batch_size": 3}
    ref = generate(model, tok, MESSAGES, 10, **kw)
    out = tmp_path / "s.jsonl"
    sample_to_jsonl(model, tok, MESSAGES, 10, out, **kw)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3] + lines[5:7]) + lines[7][:9])  # lost lines, and a line torn by a kill
    recs = sample_to_jsonl(model, tok, MESSAGES, 10, out, **kw)
    assert [r["text"] for r in recs] == ref
    on_disk = read_samples(out)
    assert len(out.read_text().splitlines()) == 10 and sorted(r["index"] for r in on_disk) == list(range(10))

    import diffuse_lm.sampling as sampling

    monkeypatch.setattr(sampling, "_samples", lambda *a, **k: pytest.fail("nothing should be generated"))
    assert [r["text"] for r in sample_to_jsonl(model, tok, MESSAGES, 10, out, **kw)] == ref


def test_other_settings_or_a_foreign_file_are_refused(tok, tmp_path):
    model = tiny_llama(len(tok))
    out = tmp_path / "s.jsonl"
    sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3)
    with pytest.raises(DiffuseError, match="temperature=1.0, not temperature=0.7"):
        sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3, temperature=0.7)
    with pytest.raises(DiffuseError, match=r"sampled with prompt \[\{.*, not prompt \[\{"):
        sample_to_jsonl(model, tok, [{"role": "user", "content": "other"}], 2, out, max_new_tokens=3)
    with pytest.raises(DiffuseError, match="seed=0, not seed=5"):
        sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3, seed=5)
    with pytest.raises(DiffuseError, match="batch_size=16, not batch_size=4"):  # another run's numerics
        sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3, batch_size=4)
    with pytest.raises(DiffuseError, match="dtype='float32', not dtype='bfloat16'"):
        sample_to_jsonl(model.to(torch.bfloat16), tok, MESSAGES, 2, out, max_new_tokens=3)
    model.float()
    meta = json.loads(meta_path(out).read_text())
    old = {k: v for k, v in meta.items() if k not in ("dtype", "device", "batch_size")}
    meta_path(out).write_text(json.dumps(old))  # a file sampled before these were recorded still resumes
    assert len(sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3, batch_size=4)) == 2
    meta_path(out).unlink()
    with pytest.raises(DiffuseError, match="no s.jsonl.meta.json"):
        sample_to_jsonl(model, tok, MESSAGES, 2, out, max_new_tokens=3)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"index": 0, "text": "a"}\nnot json\n{"index": 1, "text": "b"}\n')
    with pytest.raises(DiffuseError, match="holds data but no bad.jsonl.meta.json"):
        sample_to_jsonl(model, tok, MESSAGES, 2, bad, max_new_tokens=3)
    meta_path(bad).write_text(json.dumps({"format": "diffuse-samples/1", "n": 2}))
    with pytest.raises(DiffuseError, match="line 2 is not a sample record"):
        sample_to_jsonl(model, tok, MESSAGES, 2, bad, max_new_tokens=3)
    assert bad.read_text().count("\n") == 3  # never rewritten


def test_a_file_being_written_is_refused(tok, tmp_path):
    out = tmp_path / "s.jsonl"
    with open(out, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(DiffuseError, match="another process"):
            sample_to_jsonl(tiny_llama(len(tok)), tok, MESSAGES, 2, out, max_new_tokens=2)


CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from conftest import char_tokenizer, tiny_llama
    from tokenizers import decoders
    import diffuse_lm.sampling as s
    tok = char_tokenizer(); tok.backend_tokenizer.decoder = decoders.Fuse()
    real = s._samples
    def dying(*a, **k):
        for i, rec in enumerate(real(*a, **k)):
            if i == {kill_at}:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-run, a batch in flight
            yield rec
    s._samples = dying
    s.sample_to_jsonl(tiny_llama(len(tok)), tok, {messages!r}, {n}, {out!r}, max_new_tokens=6, batch_size=4)
""")


def test_sigkill_then_rerun_ends_with_exactly_n_samples(tok, tmp_path):
    out, n = tmp_path / "s.jsonl", 30
    code = CHILD.format(tests=str(Path(__file__).parent), kill_at=13, messages=MESSAGES, n=n, out=str(out))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert 0 < len(read_samples(out)) < n
    recs = sample_to_jsonl(tiny_llama(len(tok)), tok, MESSAGES, n, out, max_new_tokens=6, batch_size=4)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == n and sorted(r["index"] for r in lines) == list(range(n))
    assert [r["text"] for r in recs] == generate(tiny_llama(len(tok)), tok, MESSAGES, n, max_new_tokens=6)


def test_bad_settings_are_one_line_errors(tok, tmp_path, capsys):
    model = tiny_llama(len(tok))
    for kw, flag in [
        ({"temperature": -1}, "--temperature"),
        ({"top_p": 0}, "--top-p"),
        ({"top_k": -2}, "--top-k"),
        ({"max_new_tokens": 0}, "--max-new-tokens"),
        ({"batch_size": 0}, "--batch-size"),
    ]:
        with pytest.raises(DiffuseError, match=flag):
            generate(model, tok, MESSAGES, 1, **kw)
    out = str(tmp_path / "x.jsonl")
    for argv, msg in [
        (["sample", "--output", out], "give a TASK or --prompt"),
        (["sample", "--prompt", "hi", "--n", "0", "--output", out], "--n 0"),
        (["sample", "--prompt", "hi", "--top-p", "2", "--output", out], "--top-p 2"),
        (["sample", "nonexistent-task-xyz", "--output", out], "nonexistent-task-xyz"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("diffuse: error:") and msg in err and err.count("\n") == 1
    assert not os.path.exists(out)


def test_vllm_missing_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(DiffuseError, match="pip install vllm"):
        load_vllm()
    argv = ["sample", "--prompt", "hi", "--backend", "vllm", "--output", str(tmp_path / "x.jsonl")]
    assert main(argv) == 2
    assert "pip install vllm" in capsys.readouterr().err


def test_sample_and_stats_commands_end_to_end(tok, tmp_path, capsys):
    model_dir = tmp_path / "tiny"
    tiny_llama(len(tok)).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"request": "Pick", "targets": ["{a}", "{b}", "{c}"]}))
    out = tmp_path / "s.jsonl"
    argv = [
        "sample",
        str(task),
        "--model",
        str(model_dir),
        "--n",
        "6",
        "--max-new-tokens",
        "3",
        "--output",
        str(out),
        "--stats-output",
        str(tmp_path / "st.json"),
    ]
    assert main(argv) == 0
    stats = json.loads((tmp_path / "st.json").read_text())
    assert stats["stats"]["n"] == 6 and stats["exact"]["n_targets"] == 3
    assert len(out.read_text().splitlines()) == 6
    assert main(argv) == 0  # resumed: nothing to do, same file
    assert len(out.read_text().splitlines()) == 6
    capsys.readouterr()
    assert main(["stats", str(out)]) == 0  # finds the task and the model in the sidecar
    printed = capsys.readouterr().out
    assert "Coverage-6" in printed and "exact p" in printed and "{a}" not in printed.split("answers")[0]


@pytest.mark.slow
def test_default_model_greedy_matches_transformers_and_samples_ignore_batching(default_model):
    model, tokenizer = default_model
    messages = [
        {
            "role": "user",
            "content": "Generate a random number between 1 and 10. Output only the number "
            "between two curly braces, like this: {number}. Don't output code.",
        }
    ]
    ids = torch.tensor([prompt_ids(tokenizer, messages)])
    ref = model.generate(ids, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(ref[0, ids.shape[1] :], skip_special_tokens=True)
    assert generate(model, tokenizer, messages, 1, temperature=0, max_new_tokens=12) == [text]
    a = generate(model, tokenizer, messages, 4, max_new_tokens=10, batch_size=4)
    assert a == generate(model, tokenizer, messages, 4, max_new_tokens=10, batch_size=2)
    assert len(set(a)) > 1


# --- issue 12: a resumed run gives the samples of an uninterrupted one -----------------------------------


def _stopping_model(tok, *, batch_dependent: bool):
    """A tiny model whose rows end at their end-of-turn token after about ten tokens (so rows leave their
    batch at different steps); ``batch_dependent`` adds to each row's logits (by up to 0.5) a function of the
    batch size and of the row's place in the batch: what float kernels do by a few ulps on a real model,
    where it changed 3 of 200 resumed samples, made large enough to change most on a tiny one."""
    model = tiny_llama(len(tok))
    head = torch.nn.Linear(32, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tok.convert_tokens_to_ids("<|im_end|>")] = 2.5
    model.lm_head = head

    def hook(module, args, kwargs, output):
        b, v = output.logits.shape[0], output.logits.shape[-1]
        place = torch.arange(b, dtype=torch.float32)[:, None, None]
        output.logits = output.logits + 0.5 * torch.sin(torch.arange(v) * (b + 1) + place)
        return output

    if batch_dependent:
        model.register_forward_hook(hook, with_kwargs=True)
    return model


@pytest.mark.parametrize("batch_dependent", [False, True], ids=["tiny", "batch-dependent-numerics"])
def test_interrupted_and_resumed_sampling_equals_an_uninterrupted_run_sample_by_sample(
    tok, tmp_path, batch_dependent
):
    model = _stopping_model(tok, batch_dependent=batch_dependent)
    kw = {"max_new_tokens": 32, "batch_size": 32, "responses": ("", "{")}
    ref = sample_to_jsonl(model, tok, MESSAGES, 300, tmp_path / "ref.jsonl", **kw)
    assert 0 < sum(r["stopped"] for r in ref) < 300 and len({r["text"] for r in ref}) > 100
    out = tmp_path / "s.jsonl"
    sample_to_jsonl(model, tok, MESSAGES, 300, out, **kw)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:100]))  # killed after 100 of 300 samples, a batch in flight
    resumed = sample_to_jsonl(model, tok, MESSAGES, 300, out, **kw)
    differ = [i for i in range(300) if resumed[i]["text"] != ref[i]["text"]]
    assert differ == [], f"{len(differ)} resumed samples differ: {differ[:10]}"
    assert sorted(r["index"] for r in read_samples(out)) == list(range(300))
    assert len(out.read_text().splitlines()) == 300  # regenerated rows already on file are not written again


def test_no_past_key_values_deprecation_warning_and_older_transformers_keep_their_keyword(tok):
    import inspect
    import warnings

    from peft import LoraConfig, get_peft_model

    from diffuse_lm.models import cache_kwargs
    from diffuse_lm.scoring import score_task

    model = tiny_llama(len(tok))
    task = task_from_dict({"request": "Pick", "targets": ["{1}", "{22}", "{333}", "{4444}"]}, source="t")
    enc = encode_task(tok, task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate(model, tok, MESSAGES, 3, max_new_tokens=4, batch_size=2)
        greedy_texts(model, tok, CONVERSATIONS[:3], max_new_tokens=4, batch_size=2)
        with torch.no_grad():
            for pack in (True, False):  # packed rows and padded rows, both on the shared prompt cache
                score_task(model, enc, max_batch_targets=2, pack=pack)
        lora = get_peft_model(tiny_llama(len(tok)), LoraConfig(r=2, target_modules=["q_proj"]))
        generate(lora, tok, MESSAGES, 2, max_new_tokens=4)
    deprecated = [str(w.message) for w in caught if "past_key_values" in str(w.message)]
    assert deprecated == []

    class Older(torch.nn.Module):  # a forward from before transformers renamed the keyword
        def forward(self, input_ids=None, past_key_values=None, use_cache=None):
            return input_ids

    assert list(cache_kwargs(Older(), "kv")) == ["past_key_values"]
    want = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    assert list(cache_kwargs(model, "kv")) == list(cache_kwargs(lora, "kv")) == [want]


def test_jsonl_records_count_a_broader_valid_answer_valid_as_stats_does(tok, tmp_path):
    task = task_from_dict({"request": "Say it", "targets": ["y"], "valid": ["xxx"]}, source="t")
    out = tmp_path / "s.jsonl"
    recs = sample_to_jsonl(biased(tok, "x"), tok, task.messages(), 2, out, task=task, max_new_tokens=3)
    assert all(r["answer"] == "xxx" and r["valid"] is True for r in recs)
    assert sample_stats(recs, task)["n_valid"] == 2


def test_the_one_decode_loop_lets_finished_rows_leave_the_batch():
    from diffuse_lm.decoding import decode_rows

    script = {0: [5, 6, 7], 1: [9], 2: [4, 9]}  # row -> its tokens; 9 stops
    steps = []

    def choose(logits, active, t):
        return torch.tensor([script[row][t] for row in active])

    def step(chosen, kept):
        steps.append((chosen.tolist(), None if kept is None else kept.tolist()))
        return torch.zeros(len(chosen), 1)

    ended = list(decode_rows(3, torch.zeros(3, 1), choose, step, {9}, 3))
    assert ended == [(1, [], True), (2, [4], True), (0, [5, 6, 7], False)]
    assert steps == [([5, 4], [0, 2]), ([6], [0])]  # the batch shrinks as rows finish
