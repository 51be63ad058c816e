"""Sampling at temperature T draws each token from softmax(logits / T): teacher forcing with the logits
divided by T gives every target's probability under it exactly (after any family soft-capping, as the
sampler sees the logits)."""

import torch

from diffuse_lm.compare.method import Method, number
from diffuse_lm.decoding import scale_logits

TINY = torch.finfo(torch.float32).tiny  # logits are scored in float32: a smaller T rounds to 0 there

METHOD = Method(
    name="temperature",
    usage="temperature:T",
    kind="exact",
    about="sampling at temperature T > 0",
    parse=number("temperature", "T", lambda t: t >= TINY, f"> 0, at least {TINY:.2g} (float32's smallest)"),
    transform=lambda t: lambda logits: scale_logits(logits, t),
)
