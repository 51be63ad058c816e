"""``diffuse export``: a tuned adapter as a merged safetensors model (or the adapter alone), with its tokenizer
and a model card; optionally pushed to the Hugging Face hub."""

from __future__ import annotations

import argparse
import warnings


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="merge an adapter into its base model (safetensors) with a model card",
        description="Write a model folder that AutoModelForCausalLM.from_pretrained and vLLM load: the base "
        "model with ADAPTER merged into its weights (--merge), or the adapter alone, plus the tokenizer and "
        "a README.md model card (base model, tasks, settings, before/after metrics of the training run "
        "beside the adapter). The base model is the run's config.yaml model, else the adapter's own record.",
        epilog="example: diffuse export results/demo/adapter --merge --output merged/ && "
        "diffuse measure rng/1-10 --model merged/",
    )
    p.add_argument("adapter", metavar="ADAPTER", help="folder of a PEFT LoRA adapter (a run's adapter/)")
    p.add_argument(
        "--output", "-o", required=True, metavar="DIR", help="folder to write (must be new or empty)"
    )
    p.add_argument("--merge", action="store_true", help="merge the adapter into the base weights")
    p.add_argument("--model", help="base model (default: the one the run or adapter records)")
    p.add_argument("--device", default="cpu", help="where to merge (default: %(default)s)")
    p.add_argument("--dtype", help="dtype of the written weights (default: float32 on CPU, bf16 on GPU)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    p.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this hub repository")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import check_hub, export, push_to_hub, quiet_libraries

    if args.push_to_hub:
        check_hub(args.push_to_hub)  # before the slow part
    verbose = getattr(args, "verbose", False)
    quiet_libraries(verbose)
    if not verbose:
        warnings.filterwarnings("ignore", category=FutureWarning)  # deprecation notes from the libraries
    out = export(
        args.adapter,
        args.output,
        merge=args.merge,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        overwrite=args.overwrite,
    )
    print(f"{'merged model' if args.merge else 'adapter'} and model card: {out}")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(out, args.push_to_hub)}")
    return 0
