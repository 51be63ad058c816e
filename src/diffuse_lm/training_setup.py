"""The setup steps of a training run (:func:`diffuse_lm.training.train`): the model with its LoRA adapter, the
data (tasks, their encoding and loss floors, the retention examples) and the optimizer; and the optional
plumbing taken from the libraries rather than written by hand: the learning-rate schedule
(``transformers.get_scheduler``), gradient checkpointing, metric trackers (accelerate's: TensorBoard, W&B) and
4-bit QLoRA loading (bitsandbytes). Each option is off by default, and off it costs nothing per step."""

from __future__ import annotations

import fnmatch
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from diffuse_lm.config import TrainConfig
from diffuse_lm.encoding import EncodedTask, encode_tasks
from diffuse_lm.errors import DiffuseError
from diffuse_lm.retention import (
    BaseAnswers,
    RetainExample,
    base_answers_with_states,
    encode_examples,
    load_retain_prompts,
)
from diffuse_lm.scoring import check_fits
from diffuse_lm.tasks import Task, load_tasks, task_family
from diffuse_lm.training_step import loss_floor, pass_length

if TYPE_CHECKING:
    from diffuse_lm.training_run import Run

TRACKER_DIR = "tensorboard"  # the TensorBoard event files, in output_dir


# --- the setup steps -------------------------------------------------------------------------------


def setup_model(cfg: TrainConfig, device: str, held=None):
    """Base model + a fresh LoRA adapter (or the one in ``ckpt_dir`` when ``load_model``), trainable. ``held``
    is a model the caller passed: wrapped where it is (peft injects the LoRA layers in place), not loaded."""
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.models import attach_adapter, load_model, peft_wrapping

    tokenizer = None
    if held is None:
        model, tokenizer = load_model(
            cfg.model,
            device=device,
            dtype=cfg.dtype,
            trust_remote_code=cfg.trust_remote_code,
            adapter=cfg.ckpt_dir if cfg.load_model else None,
            trainable_adapter=True,
            quantization_config=quantization_config(cfg) if cfg.load_in_4bit else None,
        )
    else:
        model = attach_adapter(held, cfg.ckpt_dir, trainable=True) if cfg.load_model else held
    if cfg.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if not cfg.load_model:
        lora = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
        try:
            with peft_wrapping():  # peft reads a deprecated transformers property (a FutureWarning)
                model = get_peft_model(model, lora)
        except ValueError as e:
            raise DiffuseError(f"lora.target_modules: {str(e).splitlines()[0]}") from None
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model, tokenizer


@dataclass
class TrainData:
    """What a run trains on: its tasks (encoded, with each prompt's loss floor), the prompts' families when
    passes balance them, and the retention term's examples."""

    train_tasks: list[Task]
    eval_tasks: list[Task]
    families: list[str] | None
    family_weights: dict[str, float] | None
    retain_prompts: list[str]
    prompts_per_step: int
    encoded: list[EncodedTask] = field(default_factory=list)
    floors: list[float] = field(default_factory=list)
    retain: list[RetainExample] = field(default_factory=list)

    @property
    def pass_len(self) -> int:
        return pass_length(len(self.train_tasks), self.families, self.family_weights)

    @property
    def steps_per_pass(self) -> int:
        return math.ceil(self.pass_len / self.prompts_per_step)


def load_data(cfg: TrainConfig, tasks: Sequence[Task] | None, eval_tasks: Sequence[Task] | None) -> TrainData:
    """The run's tasks (given, or loaded from the config) and retention prompts, before any model loads."""
    train_tasks = list(tasks) if tasks is not None else load_tasks(cfg.train_prompts)
    if eval_tasks is None:
        eval_tasks = load_tasks(cfg.test_prompts) if cfg.test_prompts else train_tasks
    retaining = cfg.retain is not None and cfg.retain.weight > 0
    families = [task_family(t) for t in train_tasks] if cfg.alg_config.balance == "families" else None
    weights = family_weights(families, cfg.alg_config.family_weights) if families else None
    prompts = load_retain_prompts(cfg.retain.prompts) if retaining else []
    return TrainData(
        train_tasks, list(eval_tasks), families, weights, prompts, cfg.alg_config.prompts_per_step
    )


def family_weights(families: Sequence[str], patterns: dict[str, float]) -> dict[str, float]:
    """Each family's share of a balanced pass from ``alg_config.family_weights`` (family names or shell-style
    patterns, case-insensitive; where several match, the last wins); a pattern that matches no family of the
    training tasks is a config error, not a silent no-op."""
    names = sorted(set(families))
    weights: dict[str, float] = {}
    for pattern, weight in patterns.items():
        matched = [f for f in names if fnmatch.fnmatchcase(f.upper(), pattern.upper())]
        if not matched:
            raise DiffuseError(
                f"alg_config.family_weights: {pattern!r} matches no family of the training tasks "
                f"(they are: {', '.join(names)})"
            )
        weights.update(dict.fromkeys(matched, weight))
    return weights


def setup_data(data: TrainData, model, tokenizer) -> None:
    """Encode the tasks and their loss floors; a task past the model's context is refused here, up front."""
    data.encoded = encode_tasks(tokenizer, data.train_tasks)
    for enc in [*data.encoded, *encode_tasks(tokenizer, data.eval_tasks)]:
        check_fits(model, enc)
    data.floors = [loss_floor(e.weights) for e in data.encoded]


def setup_retention(data: TrainData, run: Run, model, tokenizer, cfg: TrainConfig, progress: bool) -> None:
    """The retention examples: the base model's answers to the general prompts, as the run keeps them (the
    main process computes them, cached across runs with the run's folder; the others read them)."""
    if not data.retain_prompts:
        return
    saved = run.retain_answers(data.retain_prompts)
    if saved is None:
        answers, states, states_file = base_answers(
            model, tokenizer, cfg, data.retain_prompts, cached=run.caches, progress=progress
        )
        saved = {
            "max_new_tokens": cfg.retain.max_new_tokens,
            "prompts": data.retain_prompts,
            "responses": answers,
            "states": states,  # not JSON: the run keeps them in their own file
            "states_file": states_file,  # the cache's file of them, when there is one: shared, not copied
        }
        run.keep_answers(saved)
    data.retain = encode_examples(tokenizer, saved["prompts"], saved["responses"], saved.get("states"))


def shard_model(model) -> None:
    """FSDP2 (``torch.distributed.fsdp.fully_shard``): each decoder layer's frozen weights are sharded across the
    processes and gathered for its forward and backward; the LoRA weights (``ignored_params``), the embeddings
    and the head stay whole on every process, so the adapter, its optimizer state and checkpoints are those of
    one process. Every process must then run the same forwards: each scores every target (no share)."""
    from torch.distributed.fsdp import fully_shard

    trainable = {p for p in model.parameters() if p.requires_grad}
    for layer in model.get_base_model().get_decoder().layers:
        fully_shard(layer, reshard_after_forward=True, ignored_params=trainable & set(layer.parameters()))


def setup_optimizer(cfg: TrainConfig, model, total_steps: int):
    """AdamW over the trainable (LoRA) weights, and the lr schedule (None: constant, no warmup)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
    return params, opt, scheduler(cfg, opt, total_steps)


def base_answers(
    model, tokenizer, cfg: TrainConfig, prompts: list[str], *, cached: bool, progress: bool
) -> BaseAnswers:
    """The base model's answers to the retention prompts and the decoder states that chose them; with
    ``cached``, kept across runs in the model cache (keyed by the weights, the prompts and the answer length)."""
    from diffuse_lm.models import cache_dir

    cache = cache_dir() / "retain" if cached else None
    return base_answers_with_states(
        model, tokenizer, prompts, cfg.retain.max_new_tokens, cache=cache, progress=progress
    )


def prepare_retention(cfg: TrainConfig, progress: bool = False) -> None:
    """Compute and cache the base model's answers to ``cfg``'s retention prompts as a run of ``cfg`` does,
    so that runs started side by side find them rather than each computing them."""
    if cfg.retain is None or cfg.retain.weight <= 0:
        return
    model, tokenizer = setup_model(cfg, cfg.device)  # the run's model: its weights' fingerprint is the key
    base_answers(
        model, tokenizer, cfg, load_retain_prompts(cfg.retain.prompts), cached=True, progress=progress
    )


# --- optional plumbing -----------------------------------------------------------------------------


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
