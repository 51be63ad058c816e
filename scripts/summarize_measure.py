"""Summarise diffuse measure JSONs: per family/format means of mass, valid mass, normalised entropy, yield."""
import json, sys
from collections import defaultdict
import numpy as np
for path in sys.argv[1:]:
    d = json.load(open(path))
    groups = defaultdict(list)
    for t in d["tasks"]:
        n = t["name"]
        key = n.split("/")[2] if n.startswith("formats/") else n.split("/")[0]
        groups[key].append(t)
    print(f"== {path}")
    print(f"{'group':14s} {'mass':>7s} {'vmass':>7s} {'normH':>6s} {'y20':>6s} {'y100':>6s} n")
    for k, ts in groups.items():
        m = lambda f: np.mean([t.get(f, np.nan) for t in ts])
        print(f"{k:14s} {m('mass'):7.3f} {m('valid_mass'):7.3f} {m('normalized_entropy'):6.3f} {m('yield_20'):6.2f} {m('yield_100'):6.2f} {len(ts)}")
