"""diffuse-lm: measure and fix how far a language model's distribution over valid answers is from the
wanted one (Zhang et al., "Forcing Diffuse Distributions out of Language Models")."""

from diffuse_lm.errors import DiffuseError

__version__ = "0.1.0"
__all__ = ["DiffuseError", "__version__"]
