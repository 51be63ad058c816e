"""Questions with one right answer asked in answer formats the random tasks use: does a tuned model still answer
them, or has the format become a cue for randomness? The 60 questions of the built-in `determinate-formats/json`
tasks, asked in brackets, an XML tag, "Choice: X", upper case, YAML and bare; greedy, 24 new tokens; an answer
counts as right where the right answer's text appears in the output (case ignored).

    python docs/validity/constrained-smollm2-135m/determinate_in_formats.py            # base
    python docs/validity/constrained-smollm2-135m/determinate_in_formats.py w10/adapter
"""

import json
import sys

from diffuse_lm.api import load
from diffuse_lm.errors import DiffuseError
from diffuse_lm.sampling import greedy_texts
from diffuse_lm.tasks import builtin_tasks, load_tasks

FORMATS = {
    "brackets": "Reply with the answer between square brackets, like [answer], and nothing else.",
    "tag": "Reply with the answer inside <answer></answer> tags and nothing else.",
    "choice": 'Reply in the form "Choice: <answer>" and nothing else.',
    "upper": "Reply with the answer only, in capital letters.",
    "yaml": 'Reply with a single line of YAML of the form "answer: <answer>".',
    "bare": "Reply with the answer only, nothing else.",
}

adapter = sys.argv[1] if len(sys.argv) > 1 else None
names = sorted(n for n in builtin_tasks() if n.startswith("determinate-formats/json/"))
questions = []
for task in load_tasks(names):
    right = json.loads(task.targets[0])["answer"]
    questions.append((task.request.split(" Reply only")[0], right))
try:
    model, tokenizer = load(adapter=adapter)
except DiffuseError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
for fmt, instruction in FORMATS.items():
    convs = [[{"role": "user", "content": f"{q} {instruction}"}] for q, _ in questions]
    outs = greedy_texts(model, tokenizer, convs, max_new_tokens=24)
    n_right = sum(r.lower() in o.lower() for (_, r), o in zip(questions, outs, strict=True))
    print(f"{fmt:9s} {n_right}/{len(questions)} right")
