"""The ``diffuse train`` config: a validated YAML file that accepts the original study's keys unchanged
(``model``, ``train_prompts``, ``test_prompts``, ``alg_config``, ``output_dir``, ``load_model``, ``ckpt_dir``)
plus this project's own, with the paper's settings (Appendix A) as defaults. Task specs (``train_prompts``,
``test_prompts``) are whatever ``load_tasks`` accepts: files and folders, or built-in task and group names.
A relative path in a config file (task specs, ``ckpt_dir``, ``retain.prompts``) is looked up next to the config
first, then in the working directory, so a config runs from any folder; ``output_dir`` is relative to the
working directory (where the run's files go), as are paths given as ``key=value`` overrides.

The configs under the repository's ``configs/`` ship inside the package (``diffuse configs list``): a config
argument that is no file is looked up among them by name (``smollm2-135m/rng-1-10``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffuse_lm.errors import DiffuseError, did_you_mean, unknown_key
from diffuse_lm.files import check_regular
from diffuse_lm.model_info import DEFAULT_MODEL, DTYPES

PAPER_TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class AlgConfig(_Strict):
    """The original study's ``alg_config``: passes, micro-batch size and early stopping."""

    n_iters: int = Field(50, gt=0, description="passes over all training prompts")
    batch_size: int = Field(32, gt=0, description="targets per forward/backward micro-batch")
    early_stop: bool = Field(False, description="stop once a pass's loss <= floor * (1 + gamma)")
    max_steps: int | None = Field(
        None, gt=0, description="a step budget: stop after this many steps even if passes remain (null: none)"
    )
    gamma: float = Field(0.2, ge=0)
    prompts_per_step: int = Field(1, gt=0, description="prompts averaged into one optimizer step (paper: 1)")
    balance: Literal["prompts", "families"] = Field(
        "prompts",
        description="what a pass visits equally: every prompt once (the paper), or every task family (a "
        "task's `family`) the same number of times, so a family of 3 prompts is not drowned by one of 18",
    )
    family_weights: dict[str, float] = Field(
        default_factory=dict,
        description="with balance: families, a family's share of a pass relative to the others' (1), by family "
        "name or shell-style pattern, case-insensitive, the last match winning: {'FORMAT-*': 0.5} visits each "
        "format family half as often as each other family",
    )
    mass_weight: float = Field(
        1.0,
        ge=0,
        description="α: Eq. 5 is −log(mass on the targets) + KL(p* ‖ p_θ renormalised over them) + H(p*); "
        "the loss weighs the mass part by α (1: Eq. 5)",
    )
    mass_weight_end: float | None = Field(
        None,
        ge=0,
        description="α at the last step, reached linearly from mass_weight (e.g. 0.1 -> 1: spread first, then "
        "put the mass back on the valid answers); null: mass_weight throughout",
    )

    @field_validator("family_weights")
    @classmethod
    def _positive_weights(cls, v: dict[str, float]) -> dict[str, float]:
        for name, weight in v.items():
            if not weight > 0:
                raise ValueError(f"the weight of {name!r} must be > 0, got {weight}")
        return v

    @model_validator(mode="after")
    def _weights_need_balance(self) -> AlgConfig:
        if self.family_weights and self.balance != "families":
            raise ValueError("family_weights needs balance: families")
        return self


class LoraSettings(_Strict):
    """LoRA adapter shape (paper: rank 4 on every attention and MLP projection; peft's alpha 8)."""

    r: int = Field(4, gt=0)
    alpha: float = Field(8.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(PAPER_TARGET_MODULES), min_length=1)


class RetainSettings(_Strict):
    """The retention term (not in the paper): ``weight`` × KL(base ‖ tuned) of next-token distributions
    along the base model's greedy answers to general prompts, ``per_step`` of them each optimizer step."""

    weight: float = Field(1.0, ge=0, description="λ: weight of the retention term (0: off)")
    prompts: str | list[str] = Field(
        "general", description="built-in prompt set, a YAML/JSON/text file of prompts, task specs, or a list"
    )
    max_new_tokens: int = Field(48, gt=0, description="length of the base model's greedy answers")
    per_step: int = Field(2, gt=0, description="general prompts per optimizer step")


class TrainConfig(_Strict):
    """Everything a training run depends on; saved resolved as ``output_dir/config.yaml``."""

    model: str = DEFAULT_MODEL
    train_prompts: list[str] = Field(min_length=1)
    test_prompts: list[str] = Field(default_factory=list)
    alg_config: AlgConfig = Field(default_factory=AlgConfig)
    output_dir: str | None = Field(
        ..., description="where the run lives (resumable); null, from the Python API only: nothing is written"
    )
    load_model: bool = Field(False, description="continue training the adapter in ckpt_dir")
    ckpt_dir: str | None = None
    lr: float = Field(5e-5, gt=0)
    adam_eps: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the LoRA init and of the prompt order")
    eval_every: int = Field(
        0, ge=0, description="measure the test tasks every K steps (0: before/after only)"
    )
    measure: bool = Field(
        True,
        description="measure the test tasks before and after training (off: a caller that measures itself)",
    )
    checkpoint_every: int = Field(10, ge=0, description="checkpoint every K steps (0: only at the end)")
    device: str | None = None
    dtype: Literal[tuple(DTYPES)] | None = Field(
        None, description="weights' dtype (default: bf16 on GPU, fp32 on CPU)"
    )
    mixed_precision: Literal["no", "bf16"] = Field("no", description="bf16 autocast of the forward pass")
    max_batch_tokens: int = Field(8192, gt=0)
    trust_remote_code: bool = False
    retain: RetainSettings | None = Field(None, description="retention term; absent: Eq. 5 alone")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="lr after warmup (transformers.get_scheduler); decays to 0 at the last step"
    )
    warmup_steps: int = Field(0, ge=0, description="steps of linear lr warmup from 0")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="warmup as a share of all steps")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (less memory)")
    fsdp: bool = Field(
        False,
        description="several processes shard the base model's decoder layers (torch FSDP2); each scores every target",
    )
    report_to: Literal["none", "tensorboard", "wandb"] = Field(
        "none", description="metric tracker (accelerate's); TensorBoard events go to output_dir/tensorboard"
    )
    load_in_4bit: bool = Field(False, description="QLoRA: 4-bit NF4 base weights (bitsandbytes, a GPU)")

    @field_validator("train_prompts", "test_prompts", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else ([] if v is None else v)

    @model_validator(mode="after")
    def _adapter_source(self) -> TrainConfig:
        if self.load_model and not self.ckpt_dir:
            raise ValueError("load_model: true needs ckpt_dir (the adapter folder to continue from)")
        if self.warmup_steps and self.warmup_ratio:
            raise ValueError("warmup_steps and warmup_ratio: give one of them, not both")
        return self

    @property
    def eval_prompts(self) -> list[str]:
        """Tasks measured before/after and at each eval: the test prompts, else the train prompts."""
        return self.test_prompts or self.train_prompts


def _error_line(source: str, err: ValidationError, overrides: Sequence[str] = ()) -> str:
    """The first validation error as one line, blamed on the ``key=value`` override that set the key, if
    one did, else on ``source``."""
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "config"
    for item in overrides:
        given = item.partition("=")[0].strip()
        given = ALIASES.get(given, given)
        if given == key or key.startswith(f"{given}.") or given.startswith(f"{key}."):
            source = f"override {item!r}"
    if e["type"] == "extra_forbidden":
        return f"{source}: {unknown_key(key)}{did_you_mean(key, [*config_keys(), *ALIASES], ALIASES)}"
    if e["type"] == "missing":
        return f"{source}: missing key {key!r}"
    got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
    msg = e["msg"].removeprefix("Value error, ")
    return f"{source}: {key}: {msg}{got}"


# The names users of transformers' TrainingArguments, TRL and peft type, for the keys that mean the same here.
ALIASES = {
    "learning_rate": "lr",
    "num_train_epochs": "alg_config.n_iters",  # passes over all training prompts
    "max_steps": "alg_config.max_steps",
    "adam_epsilon": "adam_eps",
    "lr_scheduler_type": "lr_scheduler",
    "save_steps": "checkpoint_every",
    "eval_steps": "eval_every",
    "model_name_or_path": "model",
    "lora_r": "lora.r",
    "lora_alpha": "lora.alpha",
    "lora_dropout": "lora.dropout",
    "lora_target_modules": "lora.target_modules",
}


def config_keys(model: type[BaseModel] = None, prefix: str = "") -> list[str]:
    """Every key a config accepts, dotted for nested ones (``alg_config.n_iters``)."""
    keys = []
    for name, field in (model or TrainConfig).model_fields.items():
        keys.append(prefix + name)
        inner = [a for a in getattr(field.annotation, "__args__", (field.annotation,)) if isinstance(a, type)]
        for sub in inner:
            if issubclass(sub, BaseModel):
                keys += config_keys(sub, f"{prefix}{name}.")
    return keys


def _resolve_aliases(data: dict, source: str) -> None:
    """Rename the aliases among ``data``'s keys (``learning_rate: 1e-4`` -> ``lr``), in place; an alias beside
    the key it stands for is refused (which one would win is not obvious)."""
    for alias, key in ALIASES.items():
        if alias not in data:
            continue
        head, _, tail = key.partition(".")
        node = data.get(head) if tail else data
        if tail and not isinstance(node, dict | None):
            continue  # the nested key's parent is malformed: validation names it
        if (node or {}).get(tail or key) is not None:
            raise DiffuseError(f"{source}: {alias} and {key} both given ({alias} is another name for {key})")
        set_dotted(data, key, data.pop(alias))


def set_dotted(data: dict, key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key="a.b"``, creating mappings on the way."""
    *parents, last = key.split(".")
    node = data
    for p in parents:
        if not isinstance(node.get(p, {}), dict):
            raise DiffuseError(f"override {key}: {p} is not a mapping")
        node = node.setdefault(p, {})
    node[last] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """``["alg_config.n_iters=5", "lr=1e-3"]`` -> ``[(key, value)]``; values are read as YAML."""
    out = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise DiffuseError(f"override {item!r}: expected key=value (e.g. alg_config.n_iters=5)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def config_from_dict(data: Any, *, source: str = "config", overrides: list[str] = ()) -> TrainConfig:
    """Validate raw config data (after applying ``key=value`` overrides); errors name the key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DiffuseError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    _resolve_aliases(data, source)
    for key, value in parse_overrides(list(overrides)):
        set_dotted(data, ALIASES.get(key, key), value)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        raise DiffuseError(_error_line(source, e, overrides)) from None


def configs_dir() -> Path:
    """The shipped configs: ``diffuse_lm/configs`` in an installed wheel, the repository's ``configs/`` in a
    checkout (an editable install), which is their source."""
    packaged = Path(__file__).parent / "configs"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "configs"


def builtin_configs() -> dict[str, Path]:
    """Shipped configs by name (their path under ``configs/`` without ``.yaml``), sorted."""
    root = configs_dir()
    return {str(p.relative_to(root).with_suffix("").as_posix()): p for p in sorted(root.rglob("*.yaml"))}


def find_config(spec: str | Path) -> Path:
    """A config file: ``spec`` itself when it exists, else the shipped config of that name."""
    path = Path(spec)
    if path.exists():
        return path
    name = str(spec).removeprefix("configs/").removesuffix(".yaml")
    known = builtin_configs()
    if name in known:
        return known[name]
    raise DiffuseError(
        f"{spec}: cannot read config (no such file, nor a shipped config: see diffuse configs list)"
    )


def _relative_to_config(data: dict, base: Path) -> None:
    """Rewrite relative paths of a config file that exist next to it (``base``) so that they resolve from
    the working directory; other strings (built-in names, paths from the working directory) stay."""

    def fix(spec: Any) -> Any:
        if not isinstance(spec, str) or not spec.strip() or Path(spec).is_absolute():
            return spec
        candidate = base / spec
        if not candidate.exists():
            return spec
        rel = os.path.relpath(candidate)
        return rel if not rel.startswith("..") else str(candidate.resolve())

    for key in ("train_prompts", "test_prompts"):
        value = data.get(key)
        data[key] = [fix(v) for v in value] if isinstance(value, list) else fix(value)
    if "ckpt_dir" in data:
        data["ckpt_dir"] = fix(data["ckpt_dir"])
    retain = data.get("retain")
    if isinstance(retain, dict) and "prompts" in retain:
        p = retain["prompts"]
        retain["prompts"] = [fix(v) for v in p] if isinstance(p, list) else fix(p)


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Read and validate a YAML training config (a file, or a shipped config's name); ``overrides`` are
    ``key=value`` strings (dotted keys). Relative paths in the file resolve next to it first."""
    path = find_config(path)
    try:
        check_regular(path, "a training config")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DiffuseError(f"{path}: cannot read config ({getattr(e, 'strerror', None) or e})") from None
    from diffuse_lm.yaml_json import bounded_yaml_load, yaml_problem

    try:
        data = bounded_yaml_load(text)
    except yaml.YAMLError as e:
        raise DiffuseError(f"{path}: malformed or refused YAML ({yaml_problem(e)[:200]})") from None
    except RecursionError:
        raise DiffuseError(f"{path}: YAML nested too deeply to be a config") from None
    if isinstance(data, dict):
        _relative_to_config(data, path.parent)
    return config_from_dict(data, source=str(path), overrides=overrides)


def config_to_yaml(cfg: TrainConfig) -> str:
    """The resolved config as YAML (every key, defaults included)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
