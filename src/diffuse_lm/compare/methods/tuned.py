"""A tuned model: the base model with a PEFT LoRA adapter attached (e.g. one ``diffuse train`` saved),
measured exactly; the adapter is taken off again afterwards, so later methods see the base model."""

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


def with_adapter(model, folder: str):
    """The model with the adapter at ``folder`` for the block: :func:`diffuse_lm.models.adapter_attached`."""
    from diffuse_lm.models import adapter_attached  # torch: imported when the method runs

    return adapter_attached(model, folder)


METHOD = Method(
    name="tuned",
    usage="tuned:PATH",
    kind="exact",
    about="the model with a LoRA adapter attached (a folder diffuse train saved)",
    parse=adapter_folder,
    attach=with_adapter,
)
