"""The vLLM backend of sampling (``--backend vllm``): an engine with its LoRA request, passed wherever a
transformers model is accepted, and its rows of a batch (vLLM draws with its own per-request seeds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffuse_lm.decoding import SampleConfig
from diffuse_lm.errors import DiffuseError


@dataclass
class VLLMModel:
    """A vLLM engine with its LoRA request; passed wherever a transformers model is accepted."""

    llm: Any
    lora: Any
    label: str
    adapter: str | None = None


def load_vllm(
    model: str | None = None,
    adapter: str | None = None,
    *,
    dtype: str | None = None,
    trust_remote_code: bool = False,
):
    """``(VLLMModel, tokenizer)`` for ``--backend vllm``; a one-line error when vLLM or a GPU is missing."""
    try:
        import vllm
        from vllm.lora.request import LoRARequest
    except ImportError:
        raise DiffuseError(
            "--backend vllm: vLLM is not installed (pip install vllm; it needs an NVIDIA GPU), "
            "or use --backend transformers"
        ) from None
    if not torch.cuda.is_available():
        raise DiffuseError("--backend vllm: needs a CUDA GPU and none is visible; use --backend transformers")
    from diffuse_lm.model_info import DTYPES, display_name
    from diffuse_lm.models import resolve_model_path

    rank = 0
    if adapter:
        cfg_file = Path(adapter) / "adapter_config.json"
        if not cfg_file.exists():
            raise DiffuseError(
                f"--adapter {adapter}: no adapter_config.json there (not a PEFT adapter folder)"
            )
        rank = int(json.loads(cfg_file.read_text()).get("r", 8))
    kw = {"enable_lora": True, "max_lora_rank": next(r for r in (8, 16, 32, 64, 128, 256, 512) if r >= rank)}
    llm = vllm.LLM(
        model=resolve_model_path(model),
        dtype=DTYPES.get(dtype, dtype) if dtype else "auto",
        trust_remote_code=trust_remote_code,
        **(kw if adapter else {}),
    )
    lora = LoRARequest("adapter", 1, str(Path(adapter).resolve())) if adapter else None
    label = display_name(model)
    return VLLMModel(llm, lora, label, adapter), llm.get_tokenizer()


def vllm_rows(
    vm: VLLMModel, prompt: list[int], seeds: list[int], cfg: SampleConfig, stop: set[int]
) -> Iterator[tuple[int, list[int], bool]]:
    from vllm import SamplingParams

    extra = {"top_k": cfg.top_k} if cfg.top_k else {}
    extra |= {"min_p": cfg.min_p} if cfg.min_p else {}
    params = [
        SamplingParams(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            max_tokens=cfg.max_new_tokens,
            seed=s,
            stop_token_ids=sorted(stop),
            skip_special_tokens=True,
            **extra,
        )
        for s in seeds
    ]
    outs = vm.llm.generate(
        [{"prompt_token_ids": prompt}] * len(seeds), params, lora_request=vm.lora, use_tqdm=False
    )
    for row, out in enumerate(outs):
        ids = [t for t in out.outputs[0].token_ids if t not in stop]
        yield row, ids, out.outputs[0].finish_reason == "stop"
