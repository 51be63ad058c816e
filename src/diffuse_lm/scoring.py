"""Exact log p(target | prompt) for every target of a task, by teacher forcing — the one quantity
everything else (metrics, the training loss, the tests) is built on.

Fast path: the prompt runs once and its KV cache is shared by every micro-batch of targets; logits are
computed only at positions that predict a target token. With gradients on and an ``on_batch`` loss, each
micro-batch is backpropagated at once into detached copies of the prompt's cache, and the prompt is
backpropagated a single time at the end, so memory is bounded by one micro-batch however many targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from diffuse_lm.encoding import EncodedTask

DEFAULT_BATCH_TOKENS = 8192  # sequence positions (prompt + target) held in one micro-batch

OnBatch = Callable[[list[int], torch.Tensor], torch.Tensor | None]


def _unwrap(model):
    """The plain ``*ForCausalLM`` under DDP / PEFT wrappers (PEFT's LoRA layers live inside it)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _head_logprobs(lm, hidden: torch.Tensor) -> torch.Tensor:
    """Log-softmax of the LM head on ``hidden`` (..., H) -> (..., V), float32, with family logit tweaks."""
    logits = lm.get_output_embeddings()(hidden).float()
    cfg = lm.config
    if getattr(cfg, "logit_scale", None):  # Cohere
        logits = logits * cfg.logit_scale
    if getattr(cfg, "logits_scaling", None):  # Granite
        logits = logits / cfg.logits_scaling
    if getattr(cfg, "final_logit_softcapping", None):  # Gemma 2
        cap = cfg.final_logit_softcapping
        logits = torch.tanh(logits / cap) * cap
    return F.log_softmax(logits, dim=-1)


def _batches(
    order: list[int], lengths: list[int], prompt_len: int, max_tokens: int, max_targets: int | None
) -> Iterator[list[int]]:
    """Group targets (sorted by length) so that batch size × (prompt + longest target) fits the budget."""
    batch: list[int] = []
    for i in order:
        longest = max([lengths[j] for j in batch] + [lengths[i]])
        full = max_targets is not None and len(batch) >= max_targets
        if batch and (full or (len(batch) + 1) * (prompt_len + longest) > max_tokens):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _batch_logprobs(
    lm, kv, first: torch.Tensor, targets: list[list[int]], starts: list[int], prompt_len: int
) -> torch.Tensor:
    """Sequence log-probabilities of one micro-batch of targets that all continue the cached prompt."""
    device = first.device
    n, longest = len(targets), max(len(t) for t in targets)
    ids = torch.zeros(n, longest, dtype=torch.long, device=device)
    for b, t in enumerate(targets):
        ids[b, : len(t)] = torch.tensor(t, device=device)
    lengths = torch.tensor([len(t) for t in targets], device=device)
    starts_t = torch.tensor(starts, device=device)
    # Token 0 of every target is predicted by the prompt's last position, shared by the batch.
    total = torch.where(starts_t == 0, first[ids[:, 0]], torch.zeros((), device=device))
    if longest > 1:
        cache = DynamicCache(
            ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in kv],
            config=lm.config,
        )
        positions = torch.arange(prompt_len, prompt_len + longest - 1, device=device).expand(n, -1)
        # Right padding needs no attention mask: causal attention never lets a real token see a later pad.
        hidden = lm.get_decoder()(
            input_ids=ids[:, :-1], past_key_values=cache, position_ids=positions, use_cache=True
        ).last_hidden_state  # (n, longest-1, H)
        j = torch.arange(1, longest, device=device)  # index of the token each position predicts
        keep = (j[None, :] < lengths[:, None]) & (j[None, :] >= starts_t[:, None])  # (n, longest-1)
        logp = _head_logprobs(lm, hidden[keep])  # (N, V): only where a target token is predicted
        token_logp = logp.gather(1, ids[:, 1:][keep][:, None]).squeeze(1)
        rows = torch.arange(n, device=device)[:, None].expand(-1, longest - 1)[keep]
        total = total.index_add(0, rows, token_logp)
    return total


def score_task(
    model,
    enc: EncodedTask,
    *,
    max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch_targets: int | None = None,
    on_batch: OnBatch | None = None,
) -> torch.Tensor:
    """log p(target_i | prompt) for every target of ``enc``, in target order, shape (n_targets,).

    ``on_batch(indices, logprobs)`` is called for every micro-batch; if gradients are enabled and it
    returns a loss, that loss is backpropagated right away (see module docstring) and the result is
    detached. Without ``on_batch``, the result carries the whole graph when gradients are enabled.
    """
    lm = _unwrap(model)
    prompt = torch.tensor([enc.prompt_ids], device=lm.get_input_embeddings().weight.device)
    out = lm.get_decoder()(input_ids=prompt, use_cache=True)
    kv = [(layer[0], layer[1]) for layer in out.past_key_values]
    first = _head_logprobs(lm, out.last_hidden_state[0, -1])  # (V,)

    backward_each = on_batch is not None and torch.is_grad_enabled()
    if backward_each:
        roots = [t for pair in kv for t in pair] + [first]
        # A root without a graph (a cache computed by frozen weights only, e.g. LoRA on q/v leaves layer 0's
        # keys frozen) gets no gradient and is left out of the final backward.
        leaves = [t.detach().requires_grad_(t.requires_grad) for t in roots]
        kv, first = list(zip(leaves[:-1:2], leaves[1:-1:2], strict=True)), leaves[-1]

    lengths = [len(t) for t in enc.target_ids]
    order = sorted(range(enc.n_targets), key=lengths.__getitem__)
    pieces, done = [], []
    for batch in _batches(order, lengths, len(enc.prompt_ids), max_batch_tokens, max_batch_targets):
        logp = _batch_logprobs(
            lm,
            kv,
            first,
            [enc.target_ids[i] for i in batch],
            [enc.starts[i] for i in batch],
            len(enc.prompt_ids),
        )
        if on_batch is not None:
            loss = on_batch(batch, logp)
            if backward_each and loss is not None and loss.requires_grad:
                loss.backward()
        pieces.append(logp.detach() if backward_each else logp)
        done += batch
    if backward_each:  # one backward through the prompt with the gradients its cache collected
        pairs = [(r, leaf.grad) for r, leaf in zip(roots, leaves, strict=True) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])
    flat = torch.cat(pieces)
    inverse = torch.empty(len(done), dtype=torch.long, device=flat.device)
    inverse[torch.tensor(done, device=flat.device)] = torch.arange(len(done), device=flat.device)
    return flat[inverse]


def score(model, tasks: Sequence[EncodedTask], **kw) -> list[torch.Tensor]:
    """log p(target | prompt) for every target of every task (one tensor per task); see :func:`score_task`."""
    return [score_task(model, enc, **kw) for enc in tasks]


def score_plain(model, enc: EncodedTask) -> torch.Tensor:
    """Reference scorer: every full sequence on its own with full-vocabulary logits at every position.
    Slow and memory-hungry; it exists to check the fast path and as the benchmark's baseline."""
    device = _unwrap(model).get_input_embeddings().weight.device
    p = len(enc.prompt_ids)
    out = []
    for ids, start in zip(enc.target_ids, enc.starts, strict=True):
        seq = torch.tensor([enc.prompt_ids + ids], device=device)
        logits = model(input_ids=seq).logits[0].float()  # (p + L, V)
        logp = F.log_softmax(logits[p - 1 + start : p + len(ids) - 1], dim=-1)
        out.append(logp.gather(1, seq[0, p + start :, None]).sum())
    return torch.stack(out)
