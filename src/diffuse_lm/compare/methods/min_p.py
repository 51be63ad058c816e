"""Min-p sampling (Nguyen et al., 2024): at every step, tokens less probable than P times the most probable
one are dropped and the rest renormalised. Exact by teacher forcing; a target that needs a dropped token
has probability 0."""

from functools import partial

from diffuse_lm.compare.method import Method, number
from diffuse_lm.compare.methods.temperature import TINY

METHOD = Method(
    name="min_p",
    usage="min_p:P",
    kind="exact",
    about="min-p sampling, 0 < P <= 1",
    parse=number(
        "min_p", "P", lambda p: TINY <= p <= 1, f"in (0, 1], at least {TINY:.2g} (float32's smallest)"
    ),
    transform=lambda p: partial(_filter(), min_p=p),
)


def _filter():
    from diffuse_lm.sampling import min_p_filter  # torch: imported when the method runs

    return min_p_filter
