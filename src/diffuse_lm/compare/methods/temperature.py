"""Sampling at temperature T draws each token from softmax(logits / T): teacher forcing with the logits
divided by T gives every target's probability under it exactly (after any family soft-capping, as the
sampler sees the logits)."""

from functools import partial

from diffuse_lm.compare.method import Method, number

# torch.finfo(torch.float32).tiny, written out so that this module (read by ``compare --help``) needs no torch:
# logits are scored in float32, where a smaller T rounds to 0
TINY = 2.0**-126

METHOD = Method(
    name="temperature",
    usage="temperature:T",
    kind="exact",
    about="sampling at temperature T > 0",
    parse=number("temperature", "T", lambda t: t >= TINY, f"> 0, at least {TINY:.2g} (float32's smallest)"),
    transform=lambda t: partial(_scale(), temperature=t),
)


def _scale():
    from diffuse_lm.decoding import scale_logits  # torch: imported when the method runs

    return scale_logits
