"""Flags shared by commands that load a model or sample from one, and small output helpers."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from diffuse_lm.api import (
    DEFAULT_MODEL,
    DiffuseError,
    check_writable,  # noqa: F401  (commands import it from here)
    write_json,  # noqa: F401  (commands import it from here)
)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--adapter``, ``--device``, ``--dtype``, ``--trust-remote-code``."""
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="HF id or local path (default: the embedded SmolLM2-135M-Instruct)",
    )
    g.add_argument("--adapter", help="folder of a PEFT LoRA adapter to attach")
    g.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if present)")
    g.add_argument(
        "--dtype",
        help="float32, bfloat16 or float16 (fp32, bf16, fp16; default: bf16 on GPU, float32 on CPU)",
    )
    g.add_argument("--trust-remote-code", action="store_true", help="allow a model's own Python code")


def load_from_args(args: argparse.Namespace, backend: str = "transformers"):
    """``(model, tokenizer)`` from the flags of :func:`add_model_args`; library noise off unless ``-v``."""
    from diffuse_lm.api import load

    return load(
        args.model,
        adapter=args.adapter,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        backend=backend,
        verbose=getattr(args, "verbose", False),
    )


def add_sampling_args(p: argparse.ArgumentParser, *, max_new_tokens_help: str) -> None:
    """Decoding and batching flags shared by ``sample`` and ``synth`` (the paper's settings by default)."""
    g = p.add_argument_group("sampling (defaults: the paper's pure sampling)")
    g.add_argument("--n", type=int, default=1000, help="number of samples (default 1000)")
    g.add_argument("--temperature", type=float, default=1.0, help="default 1 (0 is greedy)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling; default 1 (off)")
    g.add_argument("--top-k", type=int, default=0, help="default 0 (off)")
    g.add_argument(
        "--min-p",
        type=float,
        default=0.0,
        help="drop tokens below P x the top one's probability; default 0 (off)",
    )
    g.add_argument("--max-new-tokens", type=int, help=max_new_tokens_help)
    g.add_argument("--seed", type=int, default=0, help="sample i is the same for the same seed (default 0)")
    g.add_argument("--batch-size", type=int, default=32, help="rows generated together (default 32)")
    g.add_argument(
        "--backend",
        choices=("transformers", "vllm"),
        default="transformers",
        help="vllm needs `pip install vllm` and a GPU (default transformers)",
    )


def check_sampling_args(args: argparse.Namespace) -> None:
    """Refuse the sampling flags before anything slow."""
    from diffuse_lm.api import check_sampling

    check_sampling(
        args.n,
        args.batch_size,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        min_p=args.min_p,
        seed=args.seed,
        max_new_tokens=args.max_new_tokens,
    )


def load_for_sampling(args: argparse.Namespace):
    """``(model, tokenizer)`` for the chosen backend."""
    return load_from_args(args, args.backend)


def sampling_kwargs(args: argparse.Namespace, max_new_tokens: int) -> dict:
    """Keyword arguments of :func:`diffuse_lm.sampling.sample_to_jsonl` from the flags."""
    return {
        "temperature": args.temperature,
        "top_p": args.top_p,
        "top_k": args.top_k,
        "min_p": args.min_p,
        "max_new_tokens": max_new_tokens,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "progress": True,
        "meta": {
            "model_arg": args.model,
            "adapter_path": str(Path(args.adapter).resolve()) if args.adapter else None,
        },
    }


def task_inputs(tasks, specs: Iterable[str] = ()) -> dict:
    """The keyword arguments of :func:`check_writable` for a command that reads ``tasks`` (given as
    ``specs``): every file they were read from (task files, a mapping's data files, matched by its patterns)
    and the dataset folders they were read from."""
    sources = [s for t in tasks for s in t.sources]
    data = [s for s in sources if Path(s).is_dir() or set("*?[") & set(s)]
    return {
        "inputs": [t.path for t in tasks] + [s for s in sources if s not in data] + list(specs),
        "data_folders": data,
    }


def check_replaceable(folder: Path, names: Iterable[str], ours: bool, command: str) -> None:
    """Refuse, before the slow work, to replace a file in ``folder`` named like an output of ``command`` when
    no earlier run of it wrote that folder (``ours`` false, judged by the file each run writes first): a
    user's own ``report.md`` there is never replaced."""
    if ours:
        return
    found = [n for n in names if (folder / n).exists() or (folder / n).is_symlink()]
    if found:
        raise DiffuseError(
            f"{folder / found[0]}: exists, and no earlier `diffuse {command}` wrote that folder, so it is "
            "not replaced; choose another --output (or move the file)"
        )


TABLE_SUFFIXES = (".jsonl", ".csv", ".parquet")
OTHER_SUFFIXES = (".tsv", ".xlsx", ".yaml", ".yml", ".txt", ".md", ".html", ".pkl")


def output_format(path: str | Path, flag: str, *, tables: bool = False) -> str:
    """What an output file will hold, from its suffix: ``"json"`` for .json (or no suffix, e.g. /dev/null),
    ``"rows"`` for .jsonl, .csv or .parquet where the command writes a table (``tables``); any other suffix it
    does not write is refused, before the slow work, instead of JSON landing in a file named .parquet."""
    suffix = Path(path).suffix.lower()
    if suffix in ("", ".json"):
        return "json"
    if tables and suffix in TABLE_SUFFIXES:
        return "rows"
    if suffix in TABLE_SUFFIXES + OTHER_SUFFIXES or tables:
        writes = ".json, .jsonl, .csv or .parquet" if tables else ".json"
        raise DiffuseError(f"{flag} {path}: writes {writes}, not {suffix}")
    return "json"
