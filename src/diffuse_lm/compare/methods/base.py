"""The model as it is, sampled at temperature 1: the reference every other method is compared with."""

from diffuse_lm.compare.method import Method, no_parameter

METHOD = Method(
    name="base",
    usage="base",
    kind="exact",
    about="the model as it is (temperature 1)",
    parse=no_parameter("base"),
)
