"""Top-p (nucleus) sampling (Holtzman et al., 2020): at every step, only the smallest set of most probable
tokens whose mass reaches P is kept, renormalised. Exact by teacher forcing; a target that needs a dropped
token has probability 0."""

from functools import partial

from diffuse_lm.compare.method import Method, number
from diffuse_lm.compare.methods.temperature import TINY

METHOD = Method(
    name="top_p",
    usage="top_p:P",
    kind="exact",
    about="top-p (nucleus) sampling, 0 < P <= 1",
    parse=number(
        "top_p", "P", lambda p: TINY <= p <= 1, f"in (0, 1], at least {TINY:.2g} (float32's smallest)"
    ),
    transform=lambda p: partial(_filter(), top_p=p),
)


def _filter():
    from diffuse_lm.sampling import top_p_filter  # torch: imported when the method runs

    return top_p_filter
