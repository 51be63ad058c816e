"""``diffuse train``: distribution-matching LoRA fine-tuning from a YAML config (resumes an interrupted run)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from diffuse_lm.api import DiffuseError


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="LoRA fine-tuning towards the wanted distributions (the paper's Eq. 5)",
        description="Fine-tune a LoRA adapter so that the model's distribution over each training task's "
        "targets matches the wanted one. Writes to output_dir: adapter/ (PEFT, safetensors), summary.json, "
        "before.json and after.json (measurements), train_log.jsonl, config.yaml, before_after.png and the "
        "last two checkpoints (verified by checksum); rerunning on the same output_dir resumes from the latest "
        "intact one. A folder holding other files or another config's run is refused unless --overwrite. "
        "Several processes: torchrun --nproc_per_node N -m diffuse_lm.cli train CONFIG.",
        epilog="example: diffuse train configs/smollm2-135m/rng-1-10.yaml alg_config.n_iters=10 lr=1e-3",
    )
    p.add_argument(
        "config", nargs="?", help="YAML config file, or a shipped config's name (diffuse configs list)"
    )
    p.add_argument(
        "--config", dest="config_file", metavar="FILE", help="the config, as a flag (as TRL takes it)"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override config keys, dotted for nested ones (alg_config.n_iters=5)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train in an output_dir that holds other files or another config's run: that run's files "
        "(adapter/, checkpoints, logs, measurements) are replaced, other files are left alone",
    )
    p.add_argument(
        "--model", help="shorthand for model=… (HF id, local path or default; default: the config's)"
    )
    p.add_argument("--device", help="shorthand for device=… (cpu, cuda, cuda:1 …; default: the config's)")
    p.add_argument("--output", "-o", metavar="DIR", help="shorthand for output_dir=… (default: the config's)")
    p.add_argument("--no-plot", action="store_true", help="skip the before/after PNG")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from diffuse_lm.api import train_from_config

    config_arg(args)
    summary = train_from_config(
        args.config,
        [*args.overrides, *shorthands(args)],
        progress=not args.quiet,
        overwrite=args.overwrite,
        verbose=getattr(args, "verbose", False),
    )
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, only the main process reports
        return 0
    out = Path(summary["output_dir"])
    if not args.no_plot and summary.get("before") and summary.get("after"):
        from diffuse_lm.present.figures import plot_before_after

        try:
            plot_before_after(summary["before"], summary["after"], out / "before_after.png")
        except OSError as e:
            raise DiffuseError(f"{out / 'before_after.png'}: cannot write ({e.strerror or e})") from None
    if not args.quiet:
        from diffuse_lm.present.console import print_train_summary

        print_train_summary(summary)
    return 0


def config_arg(args: argparse.Namespace) -> None:
    """The config from ``--config FILE`` or the first argument (one of them); with ``--config``, a first
    argument of the form KEY=VALUE is an override."""
    if args.config_file is not None:
        if args.config is not None and "=" not in args.config:
            raise DiffuseError(f"--config {args.config_file} and {args.config}: give the config once")
        if args.config is not None:
            args.overrides = [args.config, *args.overrides]
        args.config = args.config_file
    if args.config is None:
        raise DiffuseError("train: give a config (a YAML file or a name from `diffuse configs list`)")


def shorthands(args: argparse.Namespace) -> list[str]:
    """``--model``/``--device``/``--output`` as overrides (applied after KEY=VALUE ones), quoted as strings."""
    keys = {"model": args.model, "device": args.device, "output_dir": args.output}
    return [f"{key}={json.dumps(value)}" for key, value in keys.items() if value is not None]
