"""Turn a task into token ids: the prompt (chat template + generation prompt) and one id list per target.

Target ids are the tokens that follow the prompt in the templated full conversation, cut just after the
end-of-turn token (``eos: true``) or just before it (``eos: false``). Model-family quirks live here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffuse_lm.errors import DiffuseError, shorten
from diffuse_lm.task_model import Task

# End-of-turn tokens of common chat formats; whichever the tokenizer knows is used to cut the target.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "</s>")


class EncodingError(DiffuseError):
    """The chat template breaks an assumption scoring relies on."""


@dataclass
class EncodedTask:
    """Token ids of one task. ``starts[i]`` tokens of target ``i`` belong to its response prefix and are
    conditioned on, not scored: log p(target | prompt ⊕ prefix)."""

    task: Task
    prompt_ids: list[int]
    target_ids: list[list[int]]
    starts: list[int]
    weights: np.ndarray

    @property
    def n_targets(self) -> int:
        return len(self.target_ids)


CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def model_context(model) -> int | None:
    """The most tokens the model's positions cover (its config's ``max_position_embeddings`` or kin), or None
    where it does not say."""
    model = getattr(model, "module", model)
    cfg = getattr(model, "config", None)
    for key in CONTEXT_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_context(model, n_tokens: int, what: str, hint: str = "shorten it") -> None:
    """Refuse ``n_tokens`` past the model's context: positions it never learned give numbers, not a
    warning, so a prompt of 18,014 tokens on an 8,192 context would be scored as if it fit."""
    context = model_context(model)
    if context is not None and n_tokens > context:
        raise EncodingError(
            f"{what}: {n_tokens:,} tokens, more than the model's context of {context:,}; {hint}"
        )


def end_of_turn_ids(tokenizer) -> set[int]:
    """Ids that end an assistant turn: the EOS token(s) and known end-of-turn markers in the vocabulary."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return ids


def _gemma_style(tokenizer) -> bool:
    """Gemma ends turns with ``<end_of_turn>`` but its chat models emit ``<eos>`` right after the answer
    (the original study's finding); the target then ends with ``<eos>``."""
    return "<end_of_turn>" in tokenizer.get_vocab() and tokenizer.eos_token == "<eos>"


def _tok(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _render(tokenizer, messages, where: str, **kw) -> str:
    """The chat template's text; a template that raises (roles it rejects, …) is an :class:`EncodingError`."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, **kw)
    except TemplateError as e:
        raise EncodingError(f"{where}: the chat template rejects these messages ({e})") from None


def prompt_messages(tokenizer, messages: list[dict[str, str]], where: str = "prompt") -> list[dict[str, str]]:
    """The chat turns as the template will take them: a system turn is folded into the user turn for
    templates that reject a system role (Gemma, Mistral instruct: what their model cards recommend)."""
    if getattr(tokenizer, "chat_template", None) and messages and messages[0]["role"] == "system":
        try:
            _render(tokenizer, messages, where, add_generation_prompt=True)
        except EncodingError:
            system, user, *rest = messages
            return [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}, *rest]
    return messages


def render_prompt(tokenizer, messages: list[dict[str, str]], where: str = "prompt") -> str:
    """The text the model continues: the chat template with its generation prompt, or, without a template,
    the turns as plain text after the BOS token. Measuring, training and sampling all start from it."""
    if getattr(tokenizer, "chat_template", None):
        return _render(tokenizer, messages, where, add_generation_prompt=True)
    text = "\n\n".join(m["content"] for m in messages) + "\n"
    if tokenizer.bos_token and not text.startswith(tokenizer.bos_token):
        text = tokenizer.bos_token + text
    return text


def _continuation_ids(
    tokenizer, prompt_text: str, prompt_ids: list[int], full_text: str, where: str
) -> list[int]:
    """Ids after the prompt in the full conversation. Where tokenizing the joined text merges tokens across
    the boundary (Mistral: ``[/INST]{1}``), the continuation is tokenized on its own — what a model that
    was given ``prompt_ids`` would have to generate."""
    if not full_text.startswith(prompt_text):
        raise EncodingError(
            f"{where}: the chat template renders the prompt differently once the answer is added, "
            "so the prompt is not a prefix of the full conversation"
        )
    full_ids = _tok(tokenizer, full_text)
    if full_ids[: len(prompt_ids)] == prompt_ids:
        return full_ids[len(prompt_ids) :]
    return _tok(tokenizer, full_text[len(prompt_text) :])


def encode_task(tokenizer, task: Task) -> EncodedTask:
    """Prompt ids and target ids of ``task`` under ``tokenizer``'s chat template (plain text if it has none).

    Raises :class:`EncodingError` where the template breaks prefix consistency or the encoded targets are
    not prefix-free."""
    eot = end_of_turn_ids(tokenizer)
    gemma = _gemma_style(tokenizer)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    where = task.path or task.name
    if task.eos and tokenizer.eos_token_id is None:
        raise EncodingError(f"{where}: eos: true, but the tokenizer has no end-of-sequence token")
    messages = prompt_messages(tokenizer, task.messages(), where)
    prompt_text = render_prompt(tokenizer, messages, where)
    prompt_ids = _tok(tokenizer, prompt_text)

    targets, starts = [], []
    for i, target in enumerate(task.targets):
        prefix = task.response_for(i)
        answer = prefix + target
        if has_template:
            full_text = _render(tokenizer, messages + [{"role": "assistant", "content": answer}], where)
        else:
            full_text = prompt_text + answer
        ids = _continuation_ids(tokenizer, prompt_text, prompt_ids, full_text, f"{where}: target {target!r}")
        cut = next((j for j, t in enumerate(ids) if t in eot), None)
        if cut is None:
            ids = ids + ([tokenizer.eos_token_id] if task.eos else [])
        elif task.eos:
            ids = ids[:cut] + [tokenizer.eos_token_id if gemma else ids[cut]]
        else:
            ids = ids[:cut]
        start = _prefix_length(tokenizer, prompt_text, prompt_ids, ids, prefix, messages, has_template, where)
        if len(ids) <= start:
            raise EncodingError(f"{where}: target {target!r} encodes to no tokens")
        targets.append(ids)
        starts.append(start)
    enc = EncodedTask(task, prompt_ids, targets, starts, task.weights)
    check_prefix_free(enc)
    return enc


def _prefix_length(tokenizer, prompt_text, prompt_ids, ids, prefix, messages, has_template, where) -> int:
    """How many leading target tokens spell the response prefix (0 without one)."""
    if not prefix:
        return 0
    if has_template:
        text = _render(tokenizer, messages + [{"role": "assistant", "content": prefix}], where)
    else:
        text = prompt_text + prefix
    try:
        pre = _continuation_ids(tokenizer, prompt_text, prompt_ids, text, "response prefix")
    except EncodingError:
        pre = _tok(tokenizer, prefix)
    n = 0
    while n < min(len(pre), len(ids) - 1) and pre[n] == ids[n]:
        n += 1
    return n


def encode_tasks(tokenizer, tasks: list[Task]) -> list[EncodedTask]:
    """Encode many tasks (each checked to be prefix-free at the token level)."""
    return [encode_task(tokenizer, t) for t in tasks]


def check_prefix_free(enc: EncodedTask) -> None:
    """A target whose ids are a prefix of another's can never get its wanted share (paper, footnote 3)."""
    seqs = sorted((tuple(ids), t) for ids, t in zip(enc.target_ids, enc.task.targets, strict=True))
    for (a, ta), (b, tb) in zip(seqs, seqs[1:], strict=False):
        where = enc.task.path or enc.task.name
        if a == b:  # eos cannot tell them apart: both end the same way
            raise EncodingError(
                f"{where}: targets {shorten(ta)} and {shorten(tb)} tokenize identically (the tokenizer cannot "
                "tell them apart: unknown characters?); change the targets"
            )
        if b[: len(a)] == a:
            raise EncodingError(
                f"{where}: target {shorten(ta)} tokenizes to a prefix of {shorten(tb)}; "
                "set eos: true or change the targets"
            )
