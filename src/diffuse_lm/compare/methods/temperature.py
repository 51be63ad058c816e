"""Sampling at temperature T draws each token from softmax(logits / T): teacher forcing with the logits
divided by T gives every target's probability under it exactly (after any family soft-capping, as the
sampler sees the logits)."""

from diffuse_lm.compare.method import Method, number

METHOD = Method(
    name="temperature",
    usage="temperature:T",
    kind="exact",
    about="sampling at temperature T > 0",
    parse=number("temperature", "T", lambda t: t > 0, "> 0"),
    transform=lambda t: lambda logits: logits / t,
)
