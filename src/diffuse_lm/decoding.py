"""The decoding rules of sampling: the settings (the paper's pure sampling by default), each sample's seed, the
prompt a model continues, where a generation stops, and the next-token pick (temperature, top-k, min-p, top-p
by inverse-CDF sampling with one uniform a token)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from diffuse_lm.encoding import end_of_turn_ids, prompt_messages, render_prompt
from diffuse_lm.errors import DiffuseError


@dataclass(frozen=True)
class SampleConfig:
    """Decoding settings; the paper's are the defaults (pure sampling from the model)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 32
    seed: int = 0
    min_p: float = 0.0  # last, so positional construction keeps its meaning

    def check(self) -> SampleConfig:
        if not 0 <= self.temperature < math.inf:
            raise DiffuseError(
                f"--temperature {self.temperature}: must be a finite number >= 0 (0 is greedy)"
            )
        if self.temperature:
            check_in_dtype("--temperature", self.temperature, "use 0 for greedy decoding")
        if not 0 < self.top_p <= 1:
            raise DiffuseError(f"--top-p {self.top_p}: must be in (0, 1]")
        check_in_dtype("--top-p", self.top_p, "top-p 1.2e-38 already keeps only the most probable token")
        if not 0 <= self.min_p <= 1:
            raise DiffuseError(f"--min-p {self.min_p}: must be in [0, 1] (0 turns it off)")
        check_in_dtype("--min-p", self.min_p, "use 0 to turn it off")
        if self.top_k < 0:
            raise DiffuseError(f"--top-k {self.top_k}: must be >= 0 (0 turns it off)")
        if self.max_new_tokens < 1:
            raise DiffuseError(f"--max-new-tokens {self.max_new_tokens}: must be >= 1")
        if self.seed < 0:
            raise DiffuseError(f"--seed {self.seed}: must be >= 0")
        return self


COMPUTE_DTYPE = torch.float32  # what sampling and teacher forcing compute logits in, whatever the model's


def check_in_dtype(name: str, value: float, hint: str) -> None:
    """Refuse a positive setting below the smallest normal number of :data:`COMPUTE_DTYPE` (1.2e-38): it
    passes a check in Python's float64 yet rounds to 0 (or loses precision) where it is used."""
    tiny = torch.finfo(COMPUTE_DTYPE).tiny
    if 0 < value < tiny:
        raise DiffuseError(
            f"{name} {value:g}: below {tiny:.2g}, the smallest float32 sampling computes in; {hint}"
        )


def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits (..., V) at ``temperature``, as float32: the row's largest is subtracted first, so a tiny
    temperature sends the others to -inf (greedy) rather than every logit to ±inf (NaN probabilities)."""
    logits = logits.to(COMPUTE_DTYPE)
    return (logits - logits.max(-1, keepdim=True).values) / temperature


def sample_seed(seed: int, index: int) -> int:
    """The seed of sample ``index``: a hash of (seed, index), so neighbouring samples are independent."""
    a, b = np.random.SeedSequence([seed, index]).generate_state(2)
    return int((int(a) << 32 | int(b)) & (2**63 - 1))


def prompt_ids(tokenizer, messages: list[dict], prefix: str = "") -> list[int]:
    """Token ids the model continues: the chat template with its generation prompt (the one
    :func:`diffuse_lm.encoding.encode_task` scores from), then the assistant's response prefix, if any."""
    text = render_prompt(tokenizer, prompt_messages(tokenizer, messages))
    return tokenizer(text + prefix, add_special_tokens=False)["input_ids"]


def stop_ids(model, tokenizer) -> set[int]:
    """End-of-turn ids: the tokenizer's (see encoding) and the model's generation config's EOS ids."""
    ids = set(end_of_turn_ids(tokenizer))
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update([eos] if isinstance(eos, int) else list(eos or []))
    return ids


def min_p_filter(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    """Min-p sampling's rule on logits (..., V): drop every token less probable than ``min_p`` times the most
    probable one (p / p_max < min_p, i.e. logit < max logit + log min_p); the rest renormalise in the softmax."""
    threshold = logits.max(-1, keepdim=True).values + math.log(min_p)
    return logits.masked_fill(logits < threshold, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Top-p (nucleus) sampling's rule on logits (..., V): keep the smallest set of most probable tokens whose
    mass reaches ``top_p`` -- the set :func:`pick_tokens` keeps -- and drop the rest (-inf)."""
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    drop = probs.cumsum(-1) - probs >= top_p  # in sorted order, as pick_tokens computes it
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def pick_tokens(logits: torch.Tensor, u: torch.Tensor, cfg: SampleConfig) -> torch.Tensor:
    """Next token of each row (B, V) -> (B,) by inverse-CDF sampling with uniforms ``u`` (B,).
    Rules apply in the order temperature, top-k, min-p, top-p."""
    if cfg.temperature == 0:
        return logits.argmax(-1)
    logits = scale_logits(logits, cfg.temperature)
    if 0 < cfg.top_k < logits.shape[-1]:
        kth = logits.topk(cfg.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.min_p > 0:
        logits = min_p_filter(logits, cfg.min_p)
    probs = torch.softmax(logits, dim=-1)
    order = None
    if cfg.top_p < 1:  # keep the smallest set of most probable tokens whose mass reaches top_p
        probs, order = probs.sort(dim=-1, descending=True)
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= cfg.top_p, 0.0)
    cdf = probs.cumsum(-1)
    x = (u.to(cdf.device, cdf.dtype)[:, None] * cdf[:, -1:]).contiguous()
    choice = torch.searchsorted(cdf, x, right=True).clamp_max(cdf.shape[-1] - 1)  # (B, 1)
    return (order.gather(1, choice) if order is not None else choice).squeeze(1)


def decode_rows(
    n: int,
    logits: torch.Tensor,
    choose: Callable[[torch.Tensor, list[int], int], torch.Tensor],
    step: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    stop: set[int],
    max_new_tokens: int,
) -> Iterator[tuple[int, list[int], bool]]:
    """The decode loop every batched generator here runs: ``choose(logits, active rows, t)`` picks the next
    token of each row still generating; a row ends at a ``stop`` token (not kept; ``stopped``) or at
    ``max_new_tokens``, and ``(row, token ids, stopped)`` is yielded as it ends. Finished rows leave the batch:
    ``step(chosen tokens, kept)`` runs the model on the rows that go on (``kept``: their positions in the last
    step's batch, ``None`` when all go on, for the caller to cut its cache and masks) and returns their logits."""
    active = list(range(n))
    tokens: list[list[int]] = [[] for _ in range(n)]
    for t in range(max_new_tokens):
        chosen = choose(logits, active, t)
        keep = []
        for j, (row, tok) in enumerate(zip(active, chosen.tolist(), strict=True)):
            if tok in stop:
                yield row, tokens[row], True
                continue
            tokens[row].append(tok)
            if t == max_new_tokens - 1:
                yield row, tokens[row], False
            else:
                keep.append(j)
        if not keep:
            return
        kept = None
        if len(keep) < len(active):  # finished rows leave the batch
            kept = torch.tensor(keep, device=chosen.device)
            chosen, active = chosen[kept], [active[j] for j in keep]
        logits = step(chosen, kept)
