"""Flags shared by commands that load a model, and small output helpers."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_json_atomic  # noqa: F401  (commands import it from here)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--adapter``, ``--device``, ``--dtype``, ``--trust-remote-code``."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", default="default", help="HF id or local path (default: the embedded SmolLM2-135M-Instruct)"
    )
    g.add_argument("--adapter", help="folder of a PEFT LoRA adapter to attach")
    g.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if present)")
    g.add_argument("--dtype", help="float32 or bfloat16 (default: bf16 on GPU, float32 on CPU)")
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code")


def load_from_args(args: argparse.Namespace):
    """``(model, tokenizer)`` from the flags of :func:`add_model_args`; library noise off unless ``-v``."""
    from diffuse_lm.models import load_model, quiet_transformers

    quiet_transformers(getattr(args, "verbose", False))
    return load_model(
        args.model,
        adapter=args.adapter,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
    )


def check_writable(path: str | Path) -> None:
    """Fail before the slow work, not after it, when an output file cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise DiffuseError(f"{path}: is a folder, expected a file name for the output")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DiffuseError(f"{path}: cannot write there ({parent} is not a writable folder)")
    if path.exists() and not os.access(path, os.W_OK):
        raise DiffuseError(f"{path}: cannot write (file is read-only)")
