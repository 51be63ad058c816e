"""Exact log p(target | prompt) for every target of a task, by teacher forcing — the one quantity
everything else (metrics, the training loss, the tests) is built on.

Fast path: the prompt runs once and its KV cache is shared by every micro-batch of targets; a micro-batch's
targets are packed into one row as a prefix tree, so a beginning that several targets share is computed once;
logits are computed only at positions that predict a target token. With gradients on and an ``on_batch``
loss, each micro-batch is backpropagated at once into detached copies of the prompt's cache, and the prompt
is backpropagated a single time at the end, so memory is bounded by one micro-batch however many targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from diffuse_lm.encoding import EncodedTask, check_context
from diffuse_lm.errors import DiffuseError
from diffuse_lm.models import cache_kwargs, output_cache

DEFAULT_BATCH_TOKENS = 8192  # sequence positions (prompt + target) held in one micro-batch
MAX_PACK_TOKENS = 512  # longest packed row of target tokens (with the prompt, if it leads the row)
MIN_PER_ROW = 4  # fewer targets per packed row on average: padded rows instead (unless pack=True)
# Decoders that take position_ids and a ready 4-D additive mask as they are (RoPE, create_causal_mask).
PACKABLE = frozenset(
    "llama mistral mixtral qwen2 qwen2_moe qwen3 qwen3_moe gemma gemma2 gemma3_text phi3 granite olmo olmo2 "
    "starcoder2 cohere smollm3".split()
)

OnBatch = Callable[[list[int], torch.Tensor], torch.Tensor | None]
# A sampling rule on next-token logits (..., V) -> (..., V): ÷ temperature, min-p's cut (-inf drops a token).
Transform = Callable[[torch.Tensor], torch.Tensor]


def _unwrap(model):
    """The plain ``*ForCausalLM`` under DDP / PEFT wrappers (PEFT's LoRA layers live inside it)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _head_logprobs(lm, hidden: torch.Tensor, transform: Transform | None = None) -> torch.Tensor:
    """Log-softmax of the LM head on ``hidden`` (..., H) -> (..., V), float32, with family logit tweaks,
    then ``transform`` (a sampling rule applied to the logits a sampler sees; -inf drops a token)."""
    logits = lm.get_output_embeddings()(hidden).float()
    cfg = lm.config
    if getattr(cfg, "logit_scale", None):  # Cohere
        logits = logits * cfg.logit_scale
    if getattr(cfg, "logits_scaling", None):  # Granite
        logits = logits / cfg.logits_scaling
    if getattr(cfg, "final_logit_softcapping", None):  # Gemma 2
        cap = cfg.final_logit_softcapping
        logits = torch.tanh(logits / cap) * cap
    if transform is not None:
        logits = transform(logits)
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


def _prefixes(target: list[int]) -> list[tuple[int, ...]]:
    """The input prefixes of a target, ``t[:1] .. t[:-1]``: one packed position each (the last token is only
    predicted, never read)."""
    return [tuple(target[:j]) for j in range(1, len(target))]


def _packs(
    order: list[int], targets: list[list[int]], max_tokens: int, max_targets: int | None, shared: bool = True
) -> Iterator[list[int]]:
    """Group targets so that each packed row fits ``max_tokens``: a row holds each distinct input prefix of
    its targets once (:func:`_trie`), so targets taken in token order share their common beginnings
    (``shared=False``: every target's prefixes counted as its own)."""
    batch: list[int] = []
    held: set[tuple[int, ...]] = set()
    for i in order:
        mine = [(i, q) for q in _prefixes(targets[i])] if not shared else _prefixes(targets[i])
        new = set(mine) - held
        full = max_targets is not None and len(batch) >= max_targets
        if batch and (full or len(held) + len(new) > max_tokens):
            yield batch
            batch, held, new = [], set(), set(mine)
        batch.append(i)
        held |= new
    if batch:
        yield batch


def _trie(
    targets: list[list[int]], shared: bool = True
) -> tuple[list[int], list[int], list[int], list[list[int]]]:
    """The targets' input tokens as a prefix tree, in first-seen order (a parent before its children): each
    node's token, its parent (-1: it continues the prompt), its depth, and for each target the node that ends
    each of its prefixes ``t[:j]``, j = 1 .. len(t) - 1. A node stands for every target that shares its
    prefix, so a task's common beginnings (an opening brace, a first syllable) are computed once.
    ``shared=False``: no sharing, each target's tokens a chain of their own (the benchmark's baseline)."""
    index: dict[tuple[int, int, int], int] = {}
    tokens: list[int] = []
    parents: list[int] = []
    depths: list[int] = []
    paths: list[list[int]] = []
    for i, t in enumerate(targets):
        path, parent = [], -1
        for token in t[:-1]:
            key = (0 if shared else i, parent, token)
            node = index.get(key)
            if node is None:
                node = index[key] = len(tokens)
                tokens.append(token)
                parents.append(parent)
                depths.append(len(path))
            path.append(node)
            parent = node
        paths.append(path)
    return tokens, parents, depths, paths


def _ancestry(parents: list[int], depths: list[int], device) -> torch.Tensor:
    """(n, n) bool: node q may attend to node k, i.e. k is q or one of its ancestors. Built a depth at a
    time: a node's row is its parent's row plus itself."""
    n = len(parents)
    seen = torch.eye(n, dtype=torch.bool, device=device)
    parent_t = torch.tensor(parents, device=device)
    depth_t = torch.tensor(depths, device=device)
    for d in range(1, max(depths, default=0) + 1):
        at = torch.nonzero(depth_t == d).squeeze(1)
        seen[at] |= seen[parent_t[at]]
    return seen


def can_pack(model, length: int = 0) -> bool:
    """Whether ``model``'s decoder takes a packed row exactly: a known RoPE family with eager or SDPA
    attention, and sequences of ``length`` within its sliding window, if it has one (a custom mask replaces the
    window's, so a packed row would see further back than the model does)."""
    cfg = _unwrap(model).config
    window = getattr(cfg, "sliding_window", None)
    if window and length > window:
        return False
    return cfg.model_type in PACKABLE and cfg._attn_implementation in ("eager", "sdpa")


def tree_hidden(lm, kv, lead: list[int], p: int, inputs: list[int], parents: list[int], depths: list[int]):
    """The decoder's last hidden states along one packed row: ``lead`` (the ``p`` prompt tokens, when ``kv``
    does not cache them; else empty), causal, then the nodes of a prefix tree (:func:`_trie`), each at position
    ``p`` + its depth, seeing the prompt and its own ancestors only."""
    device = lm.get_input_embeddings().weight.device
    n, m = len(lead), len(inputs)
    seen = torch.zeros(n + m, p + m, dtype=torch.bool, device=device)
    seen[:n, :p] = torch.ones(n, p, dtype=torch.bool, device=device).tril()  # the leading prompt: causal
    seen[n:, :p] = True  # every node sees the whole prompt
    seen[n:, p:] = _ancestry(parents, depths, device)
    dtype = lm.get_input_embeddings().weight.dtype
    mask = torch.zeros(seen.shape, dtype=dtype, device=device).masked_fill(~seen, torch.finfo(dtype).min)
    cache = None if kv is None else DynamicCache(ddp_cache_data=list(kv), config=lm.config)
    return lm.get_decoder()(
        input_ids=torch.tensor([lead + inputs], device=device),
        position_ids=torch.tensor([list(range(n)) + [p + d for d in depths]], device=device),
        attention_mask=mask[None, None],
        use_cache=False,
        **cache_kwargs(lm.get_decoder(), cache),
    ).last_hidden_state[0]


def _packed_logprobs(
    lm,
    kv,
    first,
    prompt_ids: list[int],
    targets: list[list[int]],
    starts: list[int],
    transform=None,
    shared: bool = True,
) -> torch.Tensor:
    """Sequence log-probabilities of one micro-batch of targets packed into one row as a prefix tree
    (:func:`_trie`): each node sits at its own position after the prompt and attends to the prompt and to its
    ancestors only, so it computes what it would at the end of its prefix alone; the LM head runs once
    for each node that predicts a scored token. With ``kv`` the prompt is cached and the row holds only the
    targets; with ``kv=None`` the prompt leads the row."""
    device = lm.get_input_embeddings().weight.device
    p = len(prompt_ids)
    inputs, parents, depths, paths = _trie(targets, shared)
    lead = prompt_ids if kv is None else []
    hidden = None
    if lead or inputs:
        hidden = tree_hidden(lm, kv, lead, p, inputs, parents, depths)
        if kv is None:
            first = _head_logprobs(lm, hidden[p - 1], transform)
            hidden = hidden[p:]
    starts_t = torch.tensor(starts, device=device)
    t0 = torch.tensor([t[0] for t in targets], device=device)
    total = torch.where(starts_t == 0, first[t0], torch.zeros((), device=device))
    nodes, tokens, who = [], [], []  # the node predicting a scored token j >= 1, that token, its target
    for i, (t, s, path) in enumerate(zip(targets, starts, paths, strict=True)):
        for j in range(max(s, 1), len(t)):
            nodes.append(path[j - 1])
            tokens.append(t[j])
            who.append(i)
    if nodes:
        used, row = torch.unique(torch.tensor(nodes, device=device), return_inverse=True)
        logp = _head_logprobs(lm, hidden[used], transform)
        token_logp = logp[row, torch.tensor(tokens, device=device)]
        total = total.index_add(0, torch.tensor(who, device=device), token_logp)
    return total


def _batch_logprobs(
    lm, kv, first: torch.Tensor, targets: list[list[int]], starts: list[int], prompt_len: int, transform=None
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
            input_ids=ids[:, :-1],
            position_ids=positions,
            use_cache=True,
            **cache_kwargs(lm.get_decoder(), cache),
        ).last_hidden_state  # (n, longest-1, H)
        j = torch.arange(1, longest, device=device)  # index of the token each position predicts
        keep = (j[None, :] < lengths[:, None]) & (j[None, :] >= starts_t[:, None])  # (n, longest-1)
        logp = _head_logprobs(lm, hidden[keep], transform)  # (N, V): only where a target token is predicted
        token_logp = logp.gather(1, ids[:, 1:][keep][:, None]).squeeze(1)
        rows = torch.arange(n, device=device)[:, None].expand(-1, longest - 1)[keep]
        total = total.index_add(0, rows, token_logp)
    return total


def check_fits(model, enc: EncodedTask) -> None:
    """Refuse a task whose prompt and longest target do not fit the model's context (every scorer checks)."""
    longest = max(map(len, enc.target_ids), default=0)
    check_context(
        _unwrap(model), len(enc.prompt_ids) + longest, f"task {enc.task.name}: its prompt and longest target"
    )


def score_task(
    model,
    enc: EncodedTask,
    *,
    max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
    max_batch_targets: int | None = None,
    on_batch: OnBatch | None = None,
    pack: bool | None = None,
    transform: Transform | None = None,
    prompt_per_batch: bool = False,
    share_prefixes: bool = True,
) -> torch.Tensor:
    """log p(target_i | prompt) for every target of ``enc``, in target order, shape (n_targets,).

    ``on_batch(indices, logprobs)`` is called for every micro-batch; if gradients are enabled and it
    returns a loss, that loss is backpropagated right away (see module docstring) and the result is
    detached. Without ``on_batch``, the result carries the whole graph when gradients are enabled.
    ``pack`` packs each micro-batch into one row (default: where :func:`can_pack`, i.e. where it is exact).
    ``transform`` is applied to the logits of every predicting position before the softmax: the result is
    then the probability of sampling each target under that rule (``-inf`` where a token is dropped).
    ``prompt_per_batch``: no shared prompt cache; the prompt leads every packed row (gradient checkpointing
    drops KV caches in training mode, so it needs this; only for models that pack).
    ``share_prefixes=False`` packs each target's tokens whole, beginnings not shared (the benchmark's baseline).
    """
    lm = _unwrap(model)
    p = len(enc.prompt_ids)
    check_fits(model, enc)
    lengths = [len(t) for t in enc.target_ids]
    order = sorted(range(enc.n_targets), key=lengths.__getitem__)
    in_token_order = sorted(
        range(enc.n_targets), key=enc.target_ids.__getitem__
    )  # shared beginnings adjacent
    if prompt_per_batch and not can_pack(lm, p + max(lengths)):
        raise DiffuseError(
            f"gradient_checkpointing: needs a decoder that takes packed rows ({', '.join(sorted(PACKABLE))} "
            f"with eager or SDPA attention), not {lm.config.model_type}"
        )
    packed = prompt_per_batch or (can_pack(lm, p + max(lengths)) if pack is None else pack)
    budget = min(max_batch_tokens, MAX_PACK_TOKENS)
    row_budget = max(budget - p, max(lengths)) if prompt_per_batch else budget  # the prompt is in each row
    batches = (
        list(_packs(in_token_order, enc.target_ids, row_budget, max_batch_targets, share_prefixes))
        if packed
        else []
    )
    # The prompt leads the row, with no separate prompt pass, when the whole task fits one row.
    one_row = prompt_per_batch or (
        packed and len(batches) == 1 and p + len(_trie(enc.target_ids, share_prefixes)[0]) <= budget
    )
    if packed and pack is None and not one_row and len(lengths) < MIN_PER_ROW * len(batches):
        packed = False  # long targets: a few per row would waste more on attention than padding does
    if not packed:
        batches = list(_batches(order, lengths, p, max_batch_tokens, max_batch_targets))

    kv, first = None, None
    backward_each = on_batch is not None and torch.is_grad_enabled()
    detached_prompt = backward_each and not one_row  # micro-batches backpropagate into a detached cache
    if not one_row:
        prompt = torch.tensor([enc.prompt_ids], device=lm.get_input_embeddings().weight.device)
        out = lm.get_decoder()(input_ids=prompt, use_cache=True)
        kv = [(layer[0], layer[1]) for layer in output_cache(out)]
        first = _head_logprobs(lm, out.last_hidden_state[0, -1], transform)  # (V,)
    if detached_prompt:
        roots = [t for pair in kv for t in pair] + [first]
        # A root without a graph (a cache computed by frozen weights only, e.g. LoRA on q/v leaves layer 0's
        # keys frozen) gets no gradient and is left out of the final backward.
        leaves = [t.detach().requires_grad_(t.requires_grad) for t in roots]
        kv, first = list(zip(leaves[:-1:2], leaves[1:-1:2], strict=True)), leaves[-1]

    pieces, done = [], []
    for batch in batches:
        targets, starts = [enc.target_ids[i] for i in batch], [enc.starts[i] for i in batch]
        if packed:
            logp = _packed_logprobs(lm, kv, first, enc.prompt_ids, targets, starts, transform, share_prefixes)
        else:
            logp = _batch_logprobs(lm, kv, first, targets, starts, p, transform)
        if on_batch is not None:
            loss = on_batch(batch, logp)
            if backward_each and loss is not None and loss.requires_grad:
                loss.backward()
        pieces.append(logp.detach() if backward_each else logp)
        done += batch
    if detached_prompt:  # one backward through the prompt with the gradients its cache collected
        pairs = [(r, leaf.grad) for r, leaf in zip(roots, leaves, strict=True) if leaf.grad is not None]
        if pairs:
            torch.autograd.backward([r for r, _ in pairs], [g for _, g in pairs])
    flat = torch.cat(pieces)
    inverse = torch.empty(len(done), dtype=torch.long, device=flat.device)
    inverse[torch.tensor(done, device=flat.device)] = torch.arange(len(done), device=flat.device)
    return flat[inverse]


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
