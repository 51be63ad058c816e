"""``diffuse compare``: exact temperature / min-p / top-p log-probabilities equal a plain computation and
agree with sampling; verbalized lists parse; sampled metrics carry intervals; bad method specs are one-line
errors before any model loads; the command writes its three files. Tiny random models only."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import char_tokenizer, tiny_llama
from tokenizers import decoders

from diffuse_lm.cli import main
from diffuse_lm.compare import Draws, compare_tasks, parse_methods
from diffuse_lm.compare.methods.verbalized import parse_list
from diffuse_lm.compare.run import exact_row, sampled_row
from diffuse_lm.encoding import EncodedTask, encode_task
from diffuse_lm.metrics import distribution_metrics, renormalize, wilson_interval
from diffuse_lm.sampling import generate_records
from diffuse_lm.scoring import score_task
from diffuse_lm.tasks import Task, task_from_dict

RULES = ["temperature:0.6", "temperature:1.5", "min_p:0.15", "min_p:0.3", "top_p:0.5", "top_p:0.9"]


def transform_of(label: str):
    (spec,) = parse_methods(label)
    return spec.method.transform(spec.value)


# --- exact = plain ----------------------------------------------------------------------------------


def plain_transformed(model, enc: EncodedTask, transform) -> torch.Tensor:
    """Each full sequence on its own, full logits at every position, transformed and log-softmaxed there."""
    p = len(enc.prompt_ids)
    out = []
    for ids, start in zip(enc.target_ids, enc.starts, strict=True):
        seq = torch.tensor([enc.prompt_ids + ids])
        logits = model(input_ids=seq).logits[0].float()[p - 1 + start : p + len(ids) - 1]
        out.append(F.log_softmax(transform(logits), dim=-1).gather(1, seq[0, p + start :, None]).sum())
    return torch.stack(out)


def random_task(vocab: int, seed: int, n: int = 12) -> EncodedTask:
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, vocab, (9,), generator=g).tolist()
    targets = [
        torch.randint(0, vocab, (int(k),), generator=g).tolist()
        for k in torch.randint(1, 5, (n,), generator=g)
    ]
    starts = [1 if len(t) > 2 and i % 4 == 0 else 0 for i, t in enumerate(targets)]
    task = Task(name="t", request="r", targets=tuple(map(str, range(n))), weights=np.full(n, 1 / n))
    return EncodedTask(task, prompt, targets, starts, task.weights)


@pytest.mark.parametrize("pack", [False, True], ids=["cache", "packed"])
@pytest.mark.parametrize("label", RULES)
def test_exact_rules_equal_the_plain_computation(label, pack):
    model = tiny_llama(12, seed=7)
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)  # peaked next-token distributions, so min-p and top-p cut tokens
        enc = random_task(12, seed=7)
        transform = transform_of(label)
        fast = score_task(model, enc, transform=transform, pack=pack, max_batch_tokens=40)
        plain = plain_transformed(model, enc, transform)
        base = score_task(model, enc)
    torch.testing.assert_close(fast, plain, atol=1e-4, rtol=0)
    assert (fast - base).abs().max() > 1e-2  # the rule changes something
    if label in ("min_p:0.3", "top_p:0.9"):
        assert torch.isinf(fast).any() and torch.isfinite(fast).any()  # some targets need a dropped token


def test_no_transform_is_the_untouched_path():
    model = tiny_llama(12, seed=8)
    enc = random_task(12, seed=8)
    with torch.no_grad():
        assert torch.equal(score_task(model, enc), score_task(model, enc, transform=None))
        torch.testing.assert_close(
            score_task(model, enc, transform=transform_of("temperature:1")), score_task(model, enc)
        )


# --- exact = sampled --------------------------------------------------------------------------------

DIGITS = "123"
N_SAMPLES = 4000


@pytest.fixture(scope="module")
def digits():
    """A tiny model that writes only 1, 2, 3 or ends its turn, with context-dependent odds, and a task whose
    targets are every answer of up to 3 digits: the exact distribution is checkable by sampling."""
    tok = char_tokenizer()
    tok.backend_tokenizer.decoder = decoders.Fuse()  # decode characters without spaces between them
    model = tiny_llama(len(tok), seed=3)
    head = torch.nn.Linear(32, len(tok), bias=True)
    allowed = [tok.convert_tokens_to_ids(t) for t in [*DIGITS, "<|im_end|>"]]
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight * 40.0)
        head.bias.fill_(-40.0)
        head.bias[allowed] = 0.0
        head.bias[allowed[-1]] = 1.0
    model.lm_head = head
    targets = ["".join(t) for k in (1, 2, 3) for t in itertools.product(DIGITS, repeat=k)]
    task = task_from_dict({"request": "Write a few digits.", "targets": targets}, source="digits")
    return model, tok, task


def sampled_counts(records: list[dict], targets) -> np.ndarray:
    """How many finished samples are each target, in target order."""
    index = {t: i for i, t in enumerate(targets)}
    counts = np.zeros(len(index))
    for r in records:
        if r["stopped"] and r["text"] in index:
            counts[index[r["text"]]] += 1
    return counts


def tv_distance(exact: np.ndarray, counts: np.ndarray, n: int) -> float:
    """TV between the exact raw probabilities of the targets (+ the rest) and the sampled frequencies."""
    p = np.append(exact, max(1 - exact.sum(), 0.0))  # the rest (rounding can leave it at -1e-16)
    f = np.append(counts, n - counts.sum()) / n
    return 0.5 * float(np.abs(p - f).sum())


# E|f - p| <= sqrt(p (1 - p) / n) for each frequency, so the expected TV is at most half the sum over the 40
# outcomes; we allow twice that. With these models' distributions (mass 0.5-0.8 on the 39 answers) and 4000
# samples the bound is 0.026-0.038; the TV measured is 0.009-0.015, and the base distribution (no rule) is
# 0.09-0.27 away from the same samples.
def tv_bound(exact: np.ndarray, n: int) -> float:
    p = np.append(exact, max(1 - exact.sum(), 0.0))
    return 2 * 0.5 * float(np.sqrt(p * (1 - p) / n).sum())


@pytest.mark.parametrize(
    "label,settings",
    [
        ("temperature:1.5", {"temperature": 1.5}),
        ("temperature:0.7", {"temperature": 0.7}),
        ("min_p:0.3", {"min_p": 0.3}),
        ("top_p:0.8", {"top_p": 0.8}),
    ],
)
def test_exact_distribution_agrees_with_sampling(digits, label, settings):
    model, tok, task = digits
    enc = encode_task(tok, task)
    with torch.no_grad():
        exact = score_task(model, enc, transform=transform_of(label)).double().exp().numpy()
        base = score_task(model, enc).double().exp().numpy()
    records = generate_records(
        model, tok, task.messages(), N_SAMPLES, max_new_tokens=4, batch_size=1000, seed=1, **settings
    )
    counts = sampled_counts(records, task.targets)
    assert 0.3 < exact.sum() < 0.98  # many samples are valid, and some are not
    tv, bound = tv_distance(exact, counts, N_SAMPLES), tv_bound(exact, N_SAMPLES)
    assert tv < bound, (tv, bound)
    assert tv_distance(base, counts, N_SAMPLES) > 1.5 * bound  # the test can tell the rule from no rule


# --- verbalized ---------------------------------------------------------------------------------------


def test_verbalized_lists_parse():
    text = "Here are five:\n1. {3} 0.2\n2. {7} (30%)\n- {3}: 1/10\n{9}\n{x} probability 0\nnot a line 0.4"
    assert parse_list(text, braces=True) == [("3", 0.2), ("7", 0.3), ("3", 0.1)]
    assert parse_list("1. Apple: 0.5\n2) Banana - 25%\nCherry (0.25)\nDate", braces=False) == [
        ("Apple", 0.5),
        ("Banana", 0.25),
        ("Cherry", 0.25),
    ]
    assert parse_list("I think {5} is a good number.", braces=True) == []
    assert parse_list("", braces=False) == []


def test_sampled_metrics_and_intervals():
    weights = np.full(4, 0.25)
    task = Task(name="t", request="r", targets=("a", "b", "c", "d"), weights=weights)
    rng = np.random.default_rng(0)
    q = rng.dirichlet(np.ones(4), size=200) * 0.8  # each list: 80% on valid answers
    q[::5] = 0.0  # every fifth generation unusable
    followed = q.sum(1) > 0
    row = sampled_row(task, Draws(q=q, tokens=np.full(200, 10.0), followed=followed), coverage_n=100)
    want = distribution_metrics(np.log(q.mean(0)), weights, coverage_n=100)
    for key in ("mass", "kl", "entropy", "normalized_entropy", "expected_coverage_100"):
        assert row[key] == pytest.approx(want[key])
        lo, hi = row["intervals"][key]
        assert lo <= row[key] <= hi and lo < hi
    assert row["mass"] == pytest.approx(0.64)
    assert row["format_rate"] == 0.8 and row["format_interval"] == list(wilson_interval(160, 200))
    assert row["tokens_per_valid"] == pytest.approx(2000 / (0.64 * 200))


def test_metrics_of_a_distribution_with_no_valid_answer():
    assert not renormalize(np.full(3, -np.inf)).any()
    m = distribution_metrics(np.array([-np.inf, -np.inf]), np.array([0.5, 0.5]))
    assert m["mass"] == 0 and m["kl"] == np.inf and m["entropy"] == 0
    assert wilson_interval(0, 10)[0] == 0 and wilson_interval(10, 10)[1] == 1
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_verbalized_method_runs_end_to_end(digits):
    model, tok, task = digits
    (spec,) = parse_methods("verbalized:3")
    draws = spec.method.sample(model, tok, task, spec.value, n=6, seed=0, batch_size=6)
    assert draws.q.shape == (6, len(task.targets)) and len(draws.tokens) == 6
    assert not draws.followed.any() and not draws.q.any()  # digits without braces or probabilities: no list
    assert "list 3 different possible answers" in draws.details["request"]


# --- tuned and system prompt --------------------------------------------------------------------------


@pytest.fixture
def adapter(tmp_path) -> str:
    from peft import LoraConfig, get_peft_model

    tok = char_tokenizer()
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_llama(len(tok), seed=1), lora).save_pretrained(tmp_path / "adapter")
    return str(tmp_path / "adapter")


def test_tuned_attaches_and_detaches_and_system_prompt_changes_the_prompt(adapter):
    tok = char_tokenizer()
    model = tiny_llama(len(tok), seed=1)
    task = task_from_dict({"request": "Pick one", "targets": ["{a}", "{b}", "{c}"]}, source="t")
    specs = parse_methods(f"base,tuned:{adapter},system-prompt,tuned:{adapter}/")
    result = compare_tasks(model, tok, [task], specs, samples=2)
    rows = {r["method"]: r for r in result["rows"]}
    logp = {k: np.array([t["logprob"] for t in r["targets"]]) for k, r in rows.items()}
    assert not np.allclose(logp[f"tuned:{adapter}"], logp["base"], atol=1e-4)
    np.testing.assert_allclose(logp[f"tuned:{adapter}"], logp[f"tuned:{adapter}/"], atol=1e-5)
    assert not np.allclose(logp["system-prompt"], logp["base"], atol=1e-4)
    again = compare_tasks(model, tok, [task], parse_methods("base"), samples=2)["rows"][0]
    np.testing.assert_allclose([t["logprob"] for t in again["targets"]], logp["base"], atol=1e-6)
    assert not hasattr(model, "peft_config")  # the adapter is gone again
    row = exact_row(model, tok, task, specs[2], 10)
    system = specs[2].method.prompt(task, None).messages()[0]
    assert system["role"] == "system" and system["content"].startswith("You are a fair random generator")
    assert row["mean_valid_tokens"] == pytest.approx(4.0)  # "{a}" and the end-of-turn token
    assert row["tokens_per_valid"] == pytest.approx(4.0 / row["mass"])


# --- the command ------------------------------------------------------------------------------------


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("diffuse: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize(
    "methods,needle",
    [
        ("base,nucleus:0.9", "unknown method 'nucleus'"),
        ("temperature:abc", "T must be a finite number > 0"),
        ("temperature:-1", "T must be a finite number > 0"),
        ("temperature:0", "T must be a finite number > 0"),
        ("temperature:nan", "T must be a finite number > 0"),
        ("temperature:inf", "T must be a finite number > 0"),
        ("temperature", "needs a parameter"),
        ("min_p:2", "P must be a finite number in (0, 1]"),
        ("top_p:0", "P must be a finite number in (0, 1]"),
        ("verbalized:0", "k must be a whole number in [1, 100]"),
        ("verbalized:2.5", "k must be a whole number in [1, 100]"),
        ("base:1", "base takes no parameter"),
        ("system-prompt:x", "takes no parameter"),
        ("tuned:/no/such/adapter", "tuned:'/no/such/adapter': no such folder"),
        ("tuned", "needs the adapter folder"),
        ("base,,min_p:0.1", "empty method name"),
        ("base,temperature:2,base", "'base' is listed twice"),
    ],
)
def test_bad_methods_are_one_line_errors_before_the_model_loads(
    methods, needle, capsys, tmp_path, monkeypatch
):
    monkeypatch.setattr(
        "diffuse_lm.commands.compare.load_from_args", lambda args: pytest.fail("model loaded")
    )
    code = main(["compare", "rng/1-10", "--methods", methods, "--output", str(tmp_path / "out")])
    assert_one_line_error(code, capsys.readouterr().err, needle)


def test_adapter_folder_without_config_and_bad_flags(capsys, tmp_path, monkeypatch, adapter):
    monkeypatch.setattr(
        "diffuse_lm.commands.compare.load_from_args", lambda args: pytest.fail("model loaded")
    )
    (tmp_path / "empty").mkdir()
    out = str(tmp_path / "out")
    code = main(["compare", "rng/1-10", "--methods", f"tuned:{tmp_path / 'empty'}", "--output", out])
    assert_one_line_error(code, capsys.readouterr().err, "no adapter_config.json")
    for flags, needle in (
        (["--samples", "0"], "--samples 0"),
        (["--adapter", adapter, "--methods", f"base,tuned:{adapter}"], "give adapters one way"),
        (["--seed", "-1"], "--seed -1"),
    ):
        code = main(["compare", "rng/1-10", "--methods", "base", "--output", out, *flags])
        assert_one_line_error(code, capsys.readouterr().err, needle)
    (tmp_path / "file").write_text("x")
    code = main(["compare", "rng/1-10", "--methods", "base", "--output", str(tmp_path / "file")])
    assert_one_line_error(code, capsys.readouterr().err, "cannot write")


@pytest.fixture
def tiny_model_dir(tmp_path) -> str:
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=1).save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    return str(tmp_path / "model")


def test_the_command_writes_json_table_and_figure(tiny_model_dir, adapter, tmp_path, capsys):
    out = tmp_path / "cmp"
    methods = f"base,temperature:1.5,min_p:0.1,top_p:0.9,system-prompt,verbalized:2,tuned:{adapter}"
    code = main(
        ["compare", "rng/1-10", "rng/formats/1-10/p1", "--model", tiny_model_dir, "--methods", methods]
        + ["--output", str(out), "--samples", "4"]
    )
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads((out / "compare.json").read_text())
    assert len(result["rows"]) == 7 * 2 and result["samples"] == 4
    kinds = {r["method"]: r["kind"] for r in result["rows"]}
    assert kinds["verbalized:2"] == "sampled" and kinds["min_p:0.1"] == "exact"
    verbal = next(r for r in result["rows"] if r["method"] == "verbalized:2")
    assert len(verbal["details"]["generations"]) == 4 and "intervals" in verbal and "format_rate" in verbal
    assert all(r["wall_s"] >= 0 and "tokens_per_valid" in r for r in result["rows"])
    table = (out / "compare.md").read_text()
    assert table.count("\n| rng/1-10 |") == 7 and "| verbalized:2 | sampled |" in table
    assert "| rng/1-10 | base | exact |" in printed
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_markdown_table_keeps_a_pipe_in_a_name_inside_its_cell():
    from diffuse_lm.compare import markdown_table

    row = {
        "task": "a|b",
        "method": "tuned:runs/x|y/adapter",
        "kind": "exact",
        "mass": 0.5,
        "kl": 0.1,
        "entropy": 1.0,
        "normalized_entropy": 0.9,
        "expected_coverage_10": 3.0,
        "tokens_per_valid": 2.0,
        "wall_s": 0.1,
    }
    result = {
        "model": "m",
        "samples": 0,
        "seed": 0,
        "coverage_n": 10,
        "tasks": [{"name": "a|b"}],
        "rows": [row],
    }
    line = next(x for x in markdown_table(result).splitlines() if x.startswith("| a"))
    cells = [c for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    assert len(cells) == 11 and cells[0].strip() == "a\\|b" and cells[1].strip() == "tuned:runs/x\\|y/adapter"
