"""The Python API in five steps: measure a model on a task, tune it a few steps, measure again, sample.

python examples/api_quickstart.py                      # the embedded default model, ~1 minute on a CPU
python examples/api_quickstart.py --model PATH --out DIR
"""

from __future__ import annotations

import argparse

from diffuse_lm import load_model, make_task, measure, sample, train

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="default", help="HF id or local path (default: SmolLM2-135M-Instruct)")
ap.add_argument(
    "--out", help="keep the run (adapter, logs, checkpoints) in this folder; default: write nothing"
)
ap.add_argument("--steps", type=int, default=20, help="passes over the task (one step each)")
args = ap.parse_args()

# 1. A task built in code: the prompt, its valid answers and the wanted distribution (uniform here).
task = make_task(
    "Pick a random fruit among apple, banana and cherry. Answer with only the fruit between curly braces, "
    "like this: {fruit}.",
    ["{apple}", "{banana}", "{cherry}"],
    name="fruit3",
)

# 2. Exact metrics by teacher forcing: no sampling.
model, tokenizer = load_model(args.model)
before = measure(model, tokenizer, task)
print("before:", {k: round(before["fruit3"][k], 4) for k in ("mass", "kl", "normalized_entropy")})

# 3. LoRA with the distribution-matching loss, on the model in hand (peft wraps it in place).
result = train(
    model=model,
    tokenizer=tokenizer,
    tasks=[task],
    output_dir=args.out,
    lr=1e-3,
    alg_config={"n_iters": args.steps},
)
print(
    f"{result.steps} steps, loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}" if result.losses else ""
)

# 4. The tuned model (a peft.PeftModel), measured the same way.
after = measure(result.model, tokenizer, task)
print("after: ", {k: round(after["fruit3"][k], 4) for k in ("mass", "kl", "normalized_entropy")})
print(after.to_pandas(targets=True)[["target", "prob"]].to_string(index=False))

# 5. Samples, each with its parsed answer.
for s in sample(result.model, tokenizer, task, 5, max_new_tokens=8):
    print(s["index"], repr(s["text"]), "valid" if s["valid"] else "invalid")
