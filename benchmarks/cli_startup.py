"""Start-up time of the ``diffuse`` command where no model is needed: ``diffuse --help`` and ``diffuse tasks list``,
each run as a fresh process (the entry point's interpreter) several times; the median wall time is printed.
Neither imports torch, so both should take well under a second.

    .venv/bin/python benchmarks/cli_startup.py [--runs 5]

Last line: ``cli_startup: help_s=<x> tasks_list_s=<y>`` (medians).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {"help_s": ["--help"], "tasks_list_s": ["tasks", "list"]}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "diffuse_lm.cli", *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs of each command (the median is printed)")
    args = ap.parse_args()
    medians = {}
    for name, argv in COMMANDS.items():
        times = [timed(argv) for _ in range(args.runs)]
        medians[name] = statistics.median(times)
        print(
            f"diffuse {' '.join(argv)}: median {medians[name]:.3f} s over {args.runs} runs "
            f"(min {min(times):.3f}, max {max(times):.3f})"
        )
    print("cli_startup: " + " ".join(f"{k}={v:.3f}" for k, v in medians.items()))


if __name__ == "__main__":
    main()
