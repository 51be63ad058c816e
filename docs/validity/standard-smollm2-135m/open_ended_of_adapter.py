"""open-ended (standard scale's settings) on a given adapter: the shipped config's model."""

import sys
from pathlib import Path

from diffuse_lm.experiments import open_ended
from diffuse_lm.experiments.reproduction import Reproduction, reproduce

adapter = Path(sys.argv[1])
open_ended.six_task_adapter = lambda ctx, recipe=None: adapter
reproduce(Reproduction(experiment="open-ended", scale="standard", out=sys.argv[2], report=False))
