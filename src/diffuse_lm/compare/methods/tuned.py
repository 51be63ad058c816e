"""A tuned model: the base model with a PEFT LoRA adapter attached (e.g. one ``diffuse train`` saved),
measured exactly; the adapter is taken off again afterwards, so later methods see the base model."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from diffuse_lm.compare.method import Method
from diffuse_lm.errors import DiffuseError, shorten


def adapter_folder(arg: str | None) -> str:
    """The adapter folder of ``tuned:PATH``, checked before the model loads."""
    if not arg:
        raise DiffuseError("--methods tuned: needs the adapter folder (tuned:PATH)")
    folder = Path(arg)
    for need, problem in (
        (folder, "no such folder"),
        (folder / "adapter_config.json", "no adapter_config.json there (not a PEFT adapter folder)"),
        (
            folder / "adapter_model.safetensors",
            "no adapter_model.safetensors (only safetensors adapters load)",
        ),
    ):
        if not need.exists():
            raise DiffuseError(f"--methods tuned:{shorten(arg)}: {problem}")
    return arg


@contextmanager
def with_adapter(model, folder: str) -> Iterator:
    from diffuse_lm.models import attach_adapter  # torch: imported when the method runs

    tuned = attach_adapter(model, folder)
    tuned.eval()
    try:
        yield tuned
    finally:
        tuned.unload()  # the LoRA layers out again: the base model's own modules
        if hasattr(model, "peft_config"):
            del model.peft_config  # left by peft on the wrapped model; a later adapter starts clean


METHOD = Method(
    name="tuned",
    usage="tuned:PATH",
    kind="exact",
    about="the model with a LoRA adapter attached (a folder diffuse train saved)",
    parse=adapter_folder,
    attach=with_adapter,
)
