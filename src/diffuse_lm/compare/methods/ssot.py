"""String Seed of Thought (Misaki and Akiba, 2025, "String Seed of Thought: Prompting LLMs for
Distribution-Faithful and Diverse Generation"): the model first writes a random string, then derives its
answer from that string, so that the randomness comes from text it wrote rather than from its preference
among the answers.

Estimated from N samples: each generation's answer is the last one in the task's format after the string
(an answer inside the string or its derivation does not count). A generation without the string's tags or
without an answer after them is unusable (its answer is invalid; the share of usable ones is the format
rate). Its cost is every token generated: the string and the derivation are the extra tokens, recorded per
generation beside the answer's own length.
"""

from __future__ import annotations

import numpy as np

from diffuse_lm.compare.method import Draws, Method, no_parameter
from diffuse_lm.parsing import parse_fields, task_answers
from diffuse_lm.task_model import Task

OPEN, CLOSE = "<random_string>", "</random_string>"
INSTRUCTION = (
    f"Before you answer, write a random string of about 20 letters and digits, chosen as randomly as you can, "
    f"between {OPEN} and {CLOSE}. Then derive your answer from that string alone (for example, add up "
    "values of its characters and take the remainder to pick among the valid answers), showing the "
    "derivation in a line or two. Finally, on the last line, give the answer exactly in the format asked for "
    "above."
)
EXTRA_TOKENS = 160  # generation budget beyond the answer's own tokens: the string and the derivation


def messages(task: Task) -> list[dict[str, str]]:
    """The task's turns with the request to write a random string first."""
    turns = task.messages()
    return [*turns[:-1], {"role": "user", "content": f"{turns[-1]['content']}\n\n{INSTRUCTION}"}]


def final_answer(text: str, *, braces: bool) -> str | None:
    """The answer after the closing tag: the last ``{…}`` field there, or (bare answers) its last non-empty
    line; None without the tags or an answer after them."""
    if OPEN not in text or CLOSE not in text.split(OPEN, 1)[1]:
        return None
    after = text.split(OPEN, 1)[1].split(CLOSE, 1)[1]
    if braces:
        fields = [f for f in parse_fields(after) if f]
        return fields[-1] if fields else None
    lines = [line.strip().strip("*").strip() for line in after.splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last.split(":", 1)[1].strip() if ":" in last else last  # "Answer: 42" -> "42"


def sample(model, tokenizer, task: Task, value: None, *, n: int, seed: int, batch_size: int = 16) -> Draws:
    """``n`` generations; row ``i`` of ``q`` is one-hot on generation ``i``'s answer (zero if invalid)."""
    answers, braces = task_answers(task)
    index = {a: j for j, a in enumerate(answers)}
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in task.targets]
    max_new_tokens = max(lengths) + EXTRA_TOKENS
    asked = messages(task)
    from diffuse_lm.sampling import generate_records  # torch: only when the method runs

    records = generate_records(
        model, tokenizer, asked, n, max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size
    )
    q = np.zeros((n, len(answers)))
    followed = np.zeros(n, dtype=bool)
    generations = []
    for i, rec in enumerate(records):
        answer = final_answer(rec["text"], braces=braces)
        followed[i] = answer is not None
        if answer in index:
            q[i, index[answer]] = 1.0
        generations.append({"text": rec["text"], "answer": answer, "stopped": rec["stopped"]})
    tokens = np.array([r["n_tokens"] + r["stopped"] for r in records], dtype=np.float64)
    answer_tokens = float(np.mean(lengths)) + 1  # an answer alone and its end-of-turn token
    details = {
        "request": asked[-1]["content"],
        "max_new_tokens": max_new_tokens,
        "mean_tokens": float(tokens.mean()),
        "mean_extra_tokens": float(tokens.mean()) - answer_tokens,
        "generations": generations,
    }
    return Draws(q=q, tokens=tokens, followed=followed, details=details)


METHOD = Method(
    name="ssot",
    usage="ssot",
    kind="sampled",
    about="String Seed of Thought: the model writes a random string, then derives its answer from it",
    parse=no_parameter("ssot"),
    sample=sample,
)
