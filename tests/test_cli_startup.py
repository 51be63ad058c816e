"""``diffuse --help`` and ``diffuse tasks list`` need no model, so they must not import torch or transformers
(seconds of start-up; benchmarks/cli_startup.py prints the time). Checked by what is imported, not by a clock."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from diffuse_lm.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = [m for m in ("torch", "transformers", "peft", "matplotlib") if m in sys.modules]
print("HEAVY", heavy, file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["tasks", "list"], ["compare", "--help"], ["configs", "list"]])
def test_commands_without_a_model_import_no_torch(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True)
    assert "HEAVY []" in done.stderr, done.stderr[-2000:]
