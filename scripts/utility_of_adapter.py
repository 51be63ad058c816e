"""The utility of any tuned adapter, as `diffuse reproduce utility` measures its six-task model: next-token
KL(base ‖ tuned) on general prompts and greedy QA accuracy (braced and free-form) beside the base model.

    python scripts/utility_of_adapter.py results/smollm2-135m/six-tasks-keep/adapter -o utility.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("adapter", type=Path, help="a PEFT adapter folder of the default model")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON file of the result")
    p.add_argument(
        "--scale",
        default="quick",
        choices=("quick", "paper", "smoke"),
        help="the scale's answer lengths and question counts",
    )
    args = p.parse_args(argv)
    if not (args.adapter / "adapter_config.json").is_file():
        print(f"error: {args.adapter}: not an adapter folder (no adapter_config.json)", file=sys.stderr)
        return 2
    if (args.output.exists() and not args.output.is_file()) or not args.output.parent.is_dir():
        print(f"error: {args.output}: not a file in an existing folder", file=sys.stderr)
        return 2

    from diffuse_lm.experiments.common import Context
    from diffuse_lm.experiments.scales import SCALES
    from diffuse_lm.experiments.utility import evaluate
    from diffuse_lm.files import write_json_atomic

    ctx = Context(scale=SCALES[args.scale], out=args.output.parent)
    result = evaluate(ctx, args.adapter).to_json()
    write_json_atomic(args.output, {"adapter": str(args.adapter), "scale": args.scale, "result": result})
    acc = result["qa"]["accuracy"]
    for fmt in ("braced", "free"):
        b, t = acc["base"][fmt]["all"]["correct"], acc["tuned"][fmt]["all"]["correct"]
        print(f"{fmt}: base {b:.1%}, tuned {t:.1%} ({t / b:.0%} of base)")
    print(json.dumps({k: v for k, v in result["kl"].items() if not isinstance(v, list | dict)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
