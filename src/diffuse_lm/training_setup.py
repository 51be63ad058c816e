"""Optional training plumbing, taken from the libraries rather than written by hand: the learning-rate schedule
(``transformers.get_scheduler``), gradient checkpointing, metric trackers (accelerate's: TensorBoard, W&B) and
4-bit QLoRA loading (bitsandbytes). Each is off by default, and off it costs nothing per step."""

from __future__ import annotations

import importlib.util
import math

import torch

from diffuse_lm.config import TrainConfig
from diffuse_lm.errors import DiffuseError

TRACKER_DIR = "tensorboard"  # the TensorBoard event files, in output_dir


def scheduler(cfg: TrainConfig, opt, total_steps: int):
    """The lr schedule of ``cfg`` over ``total_steps``, or None for today's constant lr without warmup (then
    nothing runs per step). ``warmup_ratio`` is a share of ``total_steps``, rounded up."""
    warmup = cfg.warmup_steps or math.ceil(cfg.warmup_ratio * total_steps)
    if cfg.lr_scheduler == "constant" and warmup == 0:
        return None
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.lr_scheduler == "constant" else cfg.lr_scheduler
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=total_steps)


def scheduler_state(sched) -> dict:
    """What a checkpoint keeps of a schedule (JSON: step counts and lrs; the lr functions are rebuilt)."""
    state = sched.state_dict()
    return {**state, "lr_lambdas": [None] * len(state.get("lr_lambdas", ()))}


def enable_gradient_checkpointing(model) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping them (non-reentrant
    checkpoints: LoRA's frozen inputs need no ``requires_grad`` hook)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise DiffuseError(f"gradient_checkpointing: {type(base).__name__} does not support it")
    kwargs = {"use_reentrant": False}
    if hasattr(base, "activation_checkpointing_enable"):  # the name from transformers 5.x on
        base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def check_report_to(report_to: str) -> None:
    """Fail before the model loads when the tracker's library is missing."""
    needs = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}
    if report_to in needs and importlib.util.find_spec(needs[report_to][0]) is None:
        module, package = needs[report_to]
        raise DiffuseError(f"report_to: {report_to} needs the {module} package (pip install {package})")


def tracker_config(cfg: TrainConfig) -> dict:
    """The config flattened to scalars (dotted keys; lists and None as text), as trackers take hyperparameters."""

    def flat(d: dict, pre: str = "") -> dict:
        out = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{pre}{k}."))
            else:
                out[f"{pre}{k}"] = v if isinstance(v, bool | int | float | str) else str(v)
        return out

    return flat(cfg.model_dump(mode="json"))


def check_4bit(cfg: TrainConfig) -> None:
    """``load_in_4bit`` (QLoRA) needs bitsandbytes and a CUDA device: one line otherwise, before any loading."""
    if not cfg.load_in_4bit:
        return
    if importlib.util.find_spec("bitsandbytes") is None:
        raise DiffuseError(
            "load_in_4bit: needs the bitsandbytes package (pip install bitsandbytes) and a GPU"
        )
    if not torch.cuda.is_available() or (cfg.device or "cuda").startswith("cpu"):
        raise DiffuseError(
            "load_in_4bit: needs a CUDA GPU (bitsandbytes 4-bit weights do not run on CPU here)"
        )


def quantization_config(cfg: TrainConfig):
    """QLoRA's 4-bit NF4 weights with double quantization, computing in bf16 (Dettmers et al., 2023)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
