"""Sampling generations from a model: pure sampling by default (temperature 1, no top-k, top-p 1, as in the
paper), batched, reproducible per sample, and written to a resumable JSONL file.

Sample ``i`` draws its random numbers from its own generator seeded by ``(seed, i)`` (inverse-CDF
sampling, one uniform per token). All rows of a batch share one prompt: it runs once and its KV cache is
expanded to the batch, so no padding is needed; finished rows leave the batch at their end-of-turn token.

What is promised: a resumed run writes exactly the samples an uninterrupted run with the same settings,
``--batch-size`` and machine would have written. The batch of sample ``i`` is fixed by its index (block
``(i // len(responses)) // batch_size`` of its response prefix), and a batch cut short by a kill is
generated again whole, its rows already on file discarded, so every row is computed in the same company,
through the same rows leaving. This matters because float kernels give a row slightly different logits in
batches of other sizes or at another place in the batch; a token whose uniform falls within that rounding of
a boundary of the cumulative distribution then differs (3 of 200 resumed samples did, before). With another
``--batch-size``, another device, dtype or thread count, samples are drawn from the same distribution and
nearly all are identical, but not all are promised to be; so resuming a file with another dtype, device type
or ``--batch-size`` is refused, as other settings are (the file would hold two runs' numerics under one record).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

import torch

from diffuse_lm.decoding import (  # noqa: F401  (imported from here)
    SampleConfig,
    decode_rows,
    min_p_filter,
    pick_tokens,
    prompt_ids,
    sample_seed,
    stop_ids,
    top_p_filter,
)
from diffuse_lm.encoding import check_context, end_of_turn_ids, model_context
from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import sha256_file
from diffuse_lm.model_info import model_label
from diffuse_lm.models import cache_kwargs, output_cache, prefix_cache, shared_prefix
from diffuse_lm.parsing import AnswerKey, sample_stats
from diffuse_lm.provenance import provenance, weights_sha256
from diffuse_lm.samples_file import meta_path, open_samples, read_meta, read_samples
from diffuse_lm.tasks import Task
from diffuse_lm.vllm_backend import VLLMModel, load_vllm, vllm_rows

__all__ = [
    "generate",
    "generate_records",
    "greedy_texts",
    "sample_to_jsonl",
    "sample_stats",
    "read_samples",
    "read_meta",
    "meta_path",
    "load_vllm",
]


@torch.inference_mode()
def _prefill(model, prompt: list[int]):
    device = next(model.parameters()).device
    out = model(input_ids=torch.tensor([prompt], device=device), use_cache=True, logits_to_keep=1)
    kv = [(layer[0], layer[1]) for layer in output_cache(out)]
    return kv, out.logits[0, -1].float()


@torch.inference_mode()
def _transformers_rows(
    model, prefill, seeds: list[int], cfg: SampleConfig, stop: set[int]
) -> Iterator[tuple[int, list[int], bool]]:
    """Sample one batch (one row per seed) from a prefilled prompt; yield ``(row, token ids, stopped)`` as
    each row ends, at an end-of-turn token (``stopped``) or at ``max_new_tokens``."""
    from transformers import DynamicCache

    kv, first = prefill
    n = len(seeds)
    config = getattr(model, "config", None)
    cache = DynamicCache(
        ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv], config=config
    )
    uniforms = torch.stack(
        [torch.rand(cfg.max_new_tokens, generator=torch.Generator().manual_seed(s)) for s in seeds]
    )  # (n, T), from each sample's own stream

    def step(chosen: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
        if kept is not None:
            cache.batch_select_indices(kept)
        return model(input_ids=chosen[:, None], use_cache=True, **cache_kwargs(model, cache)).logits[:, -1]

    yield from decode_rows(
        n,
        first.expand(n, -1),
        lambda logits, active, t: pick_tokens(logits, uniforms[active, t], cfg),
        step,
        stop,
        cfg.max_new_tokens,
    )


# --- the shared loop --------------------------------------------------------------------------------


def room(model, tokenizer, messages: list[dict], responses: Sequence[str], max_new_tokens: int) -> int:
    """``max_new_tokens`` bounded by the model's context after the prompt (with its longest response prefix):
    positions past the context are garbage, and ``--max-new-tokens 10**12`` would allocate for all of them. A
    prompt that leaves no room at all is refused."""
    context = None if isinstance(model, VLLMModel) else model_context(model)  # vLLM bounds its own
    if context is None:
        return max_new_tokens
    prompt = max(len(prompt_ids(tokenizer, messages, prefix)) for prefix in responses)
    check_context(model, prompt + 1, "the prompt and one generated token")
    return min(max_new_tokens, context - prompt)


def _samples(
    model,
    tokenizer,
    messages: list[dict],
    indices: Sequence[int],
    cfg: SampleConfig,
    *,
    responses: Sequence[str] = ("",),
    batch_size: int = 16,
    n: int | None = None,
) -> Iterator[dict]:
    """Yield one record per index as soon as it is generated. Sample ``i`` continues the response prefix
    ``responses[i % len(responses)]``; indices are grouped by prefix so a batch shares one prompt, and each
    batch is the block of ``0..n-1`` (``n``: the run's sample count, default ``max(indices) + 1``) that
    :func:`_batches` gives, generated whole even when only some of its indices are asked for (module
    docstring: that is what makes a resumed run equal an uninterrupted one)."""
    if batch_size < 1:
        raise DiffuseError(f"--batch-size {batch_size}: must be >= 1")
    cfg = replace(cfg, max_new_tokens=room(model, tokenizer, messages, responses, cfg.max_new_tokens))
    vllm = isinstance(model, VLLMModel)
    stop = set(end_of_turn_ids(tokenizer)) if vllm else stop_ids(model, tokenizer)
    wanted = set(indices)
    n = max(wanted, default=-1) + 1 if n is None else n
    for v, prefix in enumerate(responses):
        batches = _batches(wanted, v, len(responses), batch_size, n)
        if not batches:
            continue
        prompt = prompt_ids(tokenizer, messages, prefix)
        prefill = None if vllm else _prefill(model, prompt)
        for batch in batches:
            seeds = [sample_seed(cfg.seed, i) for i in batch]
            if vllm:
                rows = vllm_rows(model, prompt, seeds, cfg, stop)
            else:
                rows = _transformers_rows(model, prefill, seeds, cfg, stop)
            for row, ids, stopped in rows:
                if batch[row] not in wanted:  # a row of a batch cut short, already on file
                    continue
                text = prefix + _decode(tokenizer, ids)
                yield {
                    "index": batch[row],
                    "seed": seeds[row],
                    "text": text,
                    "answer": None,
                    "valid": None,
                    "stopped": stopped,
                    "n_tokens": len(ids),
                }


def _batches(wanted: set[int], prefix: int, n_prefixes: int, batch_size: int, n: int) -> list[list[int]]:
    """The batches of response prefix ``prefix`` that hold a ``wanted`` index, each whole: the indices
    ``prefix, prefix + n_prefixes, …`` below ``n``, cut into consecutive blocks of ``batch_size``."""
    blocks = sorted({(i // n_prefixes) // batch_size for i in wanted if i % n_prefixes == prefix})
    step = n_prefixes * batch_size
    return [list(range(prefix + b * step, min(n, prefix + (b + 1) * step), n_prefixes)) for b in blocks]


def _decode(tokenizer, ids: list[int]) -> str:
    """The text of generated token ids (special tokens dropped), as every sampler here returns it."""
    return tokenizer.decode(ids, skip_special_tokens=True)


def _progress(total: int, initial: int, enabled: bool, desc: str, unit: str = "sample"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def generate_records(
    model,
    tokenizer,
    messages: list[dict],
    n: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float = 0.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
    responses: Sequence[str] = ("",),
    what: str = "prompt",
) -> list[dict]:
    """``n`` sampled generations of ``messages`` as records (``text``, ``n_tokens``: tokens generated before
    the end-of-turn token, ``stopped``: whether it came, ``seed``), in sample order; reproducible by seed.
    ``what`` names the task for the progress bar."""
    cfg = SampleConfig(temperature, top_p, top_k, max_new_tokens, seed, min_p).check()
    records: list[dict | None] = [None] * n
    with _progress(n, 0, progress, f"sample {model_label(model, short=True)}: {what}") as bar:
        for rec in _samples(
            model, tokenizer, messages, range(n), cfg, responses=responses, batch_size=batch_size
        ):
            records[rec["index"]] = rec
            bar.update(1)
    return records  # type: ignore[return-value]


def generate(model, tokenizer, messages: list[dict], n: int, **kw) -> list[str]:
    """``n`` sampled generations (decoded text) of ``messages``, in sample order; reproducible by seed.
    Settings as :func:`generate_records`."""
    return [rec["text"] for rec in generate_records(model, tokenizer, messages, n, **kw)]


def greedy_texts(model, tokenizer, conversations: Sequence[list[dict]], **settings) -> list[str]:
    """Greedy (temperature 0) answers to many different prompts, batched with left padding; the decoded
    text of each (up to its end-of-turn token), in input order: the same text as
    ``generate(model, tokenizer, messages, 1, temperature=0.0, max_new_tokens=max_new_tokens)[0]``.
    Prompts are sorted by length into batches (less padding); finished rows leave their batch. ``settings``:
    those of :func:`greedy_answers` (``max_new_tokens``, ``batch_size``, ``progress``, ``desc``)."""
    return [a.text for a in greedy_answers(model, tokenizer, conversations, **settings)]


class GreedyAnswer(NamedTuple):
    """One greedy answer: its text, its token ids (the end-of-turn token not kept) and, when asked for, the
    decoder's last hidden state at each position that predicted one of them, (len(ids), H)."""

    text: str
    ids: list[int]
    hidden: torch.Tensor | None


@torch.inference_mode()
def greedy_answers(
    model,
    tokenizer,
    conversations: Sequence[list[dict]],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 64,
    progress: bool = False,
    desc: str | None = None,
    hidden: bool = False,
) -> list[GreedyAnswer]:
    """:func:`greedy_texts` with each answer's token ids and, with ``hidden``, the hidden states the decoding
    computed anyway: what a later pass along the answer would compute again (the retention term's base side)."""
    if batch_size < 1 or max_new_tokens < 1:
        raise DiffuseError(
            f"greedy_texts: batch_size {batch_size}, max_new_tokens {max_new_tokens}: must be >= 1"
        )
    stop = stop_ids(model, tokenizer)
    prompts = [prompt_ids(tokenizer, messages) for messages in conversations]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list[GreedyAnswer | None] = [None] * len(prompts)
    desc = desc or f"greedy {model_label(model, short=True)}"  # the progress bar's: "greedy <model>: <task>"
    with _progress(len(prompts), 0, progress, desc, unit="prompt") as bar:
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]  # input indices of the batch's rows
            for row, ids, _, states in _greedy_rows(
                model, tokenizer, [prompts[i] for i in rows], stop, max_new_tokens, hidden
            ):
                kept = torch.stack(states[: len(ids)]) if hidden and ids else None
                answers[rows[row]] = GreedyAnswer(_decode(tokenizer, ids), list(ids), kept)
            bar.update(len(rows))
    return answers  # type: ignore[return-value]


def _greedy_rows(
    model, tokenizer, prompts: list[list[int]], stop: set[int], max_new_tokens: int, hidden: bool = False
) -> Iterator[tuple[int, list[int], bool, list[torch.Tensor]]]:
    """Greedy decoding of one batch of prompts; ``(row, token ids, stopped, hidden states)`` as each row ends
    (with ``hidden``, the decoder's last hidden state at each step of the row, the step that chose each token;
    else no states). The prompts' common beginning (a chat template's system turn) runs once; the rest of each
    is left-padded after it."""
    from transformers import DynamicCache

    from diffuse_lm.scoring import _unwrap

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    c = shared_prefix(prompts)
    rests = [p[c:] for p in prompts]
    width = max(len(p) for p in rests)
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in rests], device=device)
    mask = torch.tensor([[1] * c + [0] * (width - len(p)) + [1] * len(p) for p in rests]).to(device)
    if c:
        cache = prefix_cache(model, prompts[0][:c], len(prompts))
    else:
        cache = DynamicCache(config=getattr(model, "config", None))
    last: list[torch.Tensor] = []  # the decoder's output at the last position, of the latest forward
    states: list[list[torch.Tensor]] = [[] for _ in prompts]

    def keep_last(module, args, output) -> None:
        last[:] = [output.last_hidden_state[:, -1]]

    def forward(ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        kw = cache_kwargs(model, cache)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kw, logits_to_keep=1
        )
        return out.logits[:, -1]

    def step(chosen: torch.Tensor, kept: torch.Tensor | None) -> torch.Tensor:
        nonlocal mask
        if kept is not None:
            cache.batch_select_indices(kept)
            mask = mask[kept]
        mask = torch.cat([mask, mask.new_ones(len(chosen), 1)], dim=1)
        return forward(chosen[:, None], mask, mask.sum(-1, keepdim=True) - 1)

    def choose(logits: torch.Tensor, active: list[int], t: int) -> torch.Tensor:
        if hidden:
            for j, row in enumerate(active):
                states[row].append(last[0][j])
        return logits.argmax(-1)

    hook = _unwrap(model).get_decoder().register_forward_hook(keep_last) if hidden else None
    try:
        first = forward(ids, mask, (mask.cumsum(-1) - 1).clamp_min(0)[:, c:])
        for row, tokens, stopped in decode_rows(len(prompts), first, choose, step, stop, max_new_tokens):
            yield row, tokens, stopped, states[row]
    finally:
        if hook is not None:
            hook.remove()


def adapter_fingerprint(model) -> str | None:
    """A short hash of the LoRA weights of a PEFT model (``None`` without one): a resumed file must come
    from the same adapter, not just the same adapter folder name."""
    if isinstance(model, VLLMModel):
        if not model.adapter:
            return None
        return sha256_file(Path(model.adapter) / "adapter_model.safetensors")[:16]
    if not hasattr(model, "peft_config"):
        return None
    return weights_sha256(model, "adapter")[:16]


def sample_to_jsonl(
    model,
    tokenizer,
    messages: list[dict],
    n: int,
    output: str | Path,
    *,
    task: Task | None = None,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    max_new_tokens: int = 32,
    seed: int = 0,
    batch_size: int = 16,
    progress: bool = False,
    responses: Sequence[str] | None = None,
    meta: dict | None = None,
    min_p: float = 0.0,
    what: str | None = None,
) -> list[dict]:
    """Sample into ``output`` (one JSON object a line), resuming: only indices missing from the file are
    generated, each appended as soon as it ends. Returns the records of indices ``0..n-1``, by index.

    A sidecar ``<output>.meta.json`` holds the settings; resuming with other settings is an error.
    ``meta`` adds informational fields to it (e.g. the adapter folder). ``what`` names the task for the
    progress bar (default: the task's name).
    """
    cfg = SampleConfig(temperature, top_p, top_k, max_new_tokens, seed, min_p).check()
    if responses is None:
        responses = task.responses if task is not None else ("",)
    backend = "vllm" if isinstance(model, VLLMModel) else "transformers"
    identity = {
        "model": model.label if isinstance(model, VLLMModel) else model_label(model),
        "adapter": adapter_fingerprint(model),
        "messages": messages,
        "responses": list(responses),
        "backend": backend,
        # min_p only when set: files sampled before it existed resume
        **{k: v for k, v in asdict(cfg).items() if k != "min_p" or v},
    }
    if backend == "transformers":  # the numerics: a resume may not mix two (the file would not be one run's)
        weights = next(model.parameters())
        identity.update(
            dtype=str(weights.dtype).removeprefix("torch."), device=weights.device.type, batch_size=batch_size
        )
    info = {"task": {"name": task.name, "path": task.path} if task else None, **(meta or {})}
    if backend == "transformers":  # informational, as the rest of info: a resumed run rewrites it
        info["provenance"] = provenance(model, [task] if task else [])
    key = AnswerKey(task)  # what sample_stats counts as valid, the record says
    bounded = room(model, tokenizer, messages, responses, max_new_tokens)  # before the file is touched
    if bounded < max_new_tokens:
        print(
            f"warning: --max-new-tokens {max_new_tokens:,}: {bounded:,} at most, as the model's context ends there",
            file=sys.stderr,
        )
    with open_samples(Path(output), identity, info, n) as (records, append):
        missing = [i for i in range(n) if i not in records]
        kw = {"responses": responses, "batch_size": batch_size, "n": n}
        samples = _samples(model, tokenizer, messages, missing, cfg, **kw) if missing else ()
        desc = f"sample {model_label(model, short=True)}: {what or (task.name if task else 'prompt')}"
        with _progress(n, n - len(missing), progress and bool(missing), desc) as bar:
            for rec in samples:
                answer = key.answer(rec["text"])
                rec["answer"], rec["valid"] = answer, key.is_valid(answer)
                append(rec)
                records[rec["index"]] = rec
                bar.update(1)
    return [records[i] for i in range(n)]
