"""Encoding under the chat formats of the paper's model families, with tokenizers built offline.

The templates are the public ones of Llama-2-chat, Mistral-7B-Instruct-v0.1 and Gemma-7b-it (as in their
``tokenizer_config.json``), ChatML (SmolLM2), and no template at all.
"""

from __future__ import annotations

import string

import numpy as np
import pytest
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from diffuse_lm.encoding import EncodingError, encode_task, encode_tasks
from diffuse_lm.tasks import task_from_dict

LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)
CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# Renders the generation prompt as "assistant" but a finished assistant turn as "model".
INCONSISTENT = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>model\\n{% else %}"
    "<|im_start|>{{ m['role'] }}\\n{% endif %}{{ m['content'] }}<|im_end|>\\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}"
)


def make_tokenizer(template, specials, *, bos, eos, merges=()) -> PreTrainedTokenizerFast:
    """Greedy longest-match over single characters plus ``merges`` (multi-character tokens such as the
    ``]{`` that makes Mistral's quirk); ``specials`` are never split."""
    vocab = {t: i for i, t in enumerate(["<unk>", *specials, *merges, *dict.fromkeys(string.printable)])}
    tok = Tokenizer(
        models.WordPiece(
            vocab, unk_token="<unk>", continuing_subword_prefix="", max_input_chars_per_word=10_000
        )
    )
    tok.add_special_tokens(list(specials))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, eos_token=eos)
    fast.chat_template = template
    return fast


def llama2(**kw):
    return make_tokenizer(LLAMA2, ["<s>", "</s>"], bos="<s>", eos="</s>", **kw)


def mistral(**kw):
    return make_tokenizer(MISTRAL, ["<s>", "</s>"], bos="<s>", eos="</s>", **kw)


def gemma(**kw):
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    return make_tokenizer(GEMMA, specials, bos="<bos>", eos="<eos>", **kw)


def chatml(template=CHATML, **kw):
    return make_tokenizer(
        template, ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], bos=None, eos="<|im_end|>", **kw
    )


def plain(**kw):
    return make_tokenizer(None, ["<s>", "</s>"], bos="<s>", eos="</s>", **kw)


def task(targets=("{1}", "{2}", "{10}"), **kw):
    return task_from_dict({"request": "Pick a number.", "targets": list(targets), **kw}, source="t.json")


def pieces(tok, ids) -> str:
    return "".join(tok.convert_ids_to_tokens(ids))


def full_ids(tok, messages) -> list[int]:
    return tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "make,prompt_text,answers",
    [
        (chatml, "<|im_start|>user\nPick a number.<|im_end|>\n<|im_start|>assistant\n", "{}<|im_end|>"),
        (llama2, "<s>[INST] Pick a number. [/INST]", " {} </s>"),
        (mistral, "<s>[INST] Pick a number. [/INST]", "{}</s>"),
        (gemma, "<bos><start_of_turn>user\nPick a number.<end_of_turn>\n<start_of_turn>model\n", "{}<eos>"),
        (plain, "<s>Pick a number.\n", "{}</s>"),
    ],
    ids=["chatml", "llama2", "mistral", "gemma", "no-template"],
)
def test_families_eos_true(make, prompt_text, answers):
    tok = make()
    enc = encode_task(tok, task())
    assert pieces(tok, enc.prompt_ids).endswith(prompt_text)
    assert [pieces(tok, ids) for ids in enc.target_ids] == [answers.format(t) for t in ("{1}", "{2}", "{10}")]
    assert enc.starts == [0, 0, 0]
    np.testing.assert_allclose(enc.weights, 1 / 3)


@pytest.mark.parametrize("make", [chatml, llama2, mistral, gemma, plain])
def test_families_eos_false_stop_before_end_of_turn(make):
    tok = make()
    enc = encode_task(tok, task(targets=["{1}", "{2}"], eos=False))
    assert [pieces(tok, ids).strip() for ids in enc.target_ids] == ["{1}", "{2}"]


@pytest.mark.parametrize("make", [chatml, llama2, gemma])
def test_prompt_ids_are_a_prefix_of_the_full_conversation(make):
    tok = make()
    t = task()
    enc = encode_task(tok, t)
    for target, ids in zip(t.targets, enc.target_ids, strict=True):
        full = full_ids(tok, t.messages() + [{"role": "assistant", "content": target}])
        assert full[: len(enc.prompt_ids)] == enc.prompt_ids
        n = len(ids) - 1  # the end-of-turn token may differ (Gemma: <eos> for <end_of_turn>)
        assert full[len(enc.prompt_ids) : len(enc.prompt_ids) + n] == ids[:n]


def test_mistral_target_glued_to_inst_is_tokenized_on_its_own():
    tok = mistral(merges=["]{"])
    t = task()
    # The quirk exists: tokenizing the joined text merges "]" of [/INST] with the target's "{".
    joined = full_ids(tok, t.messages() + [{"role": "assistant", "content": "{1}"}])
    prompt = tok(tok.apply_chat_template(t.messages(), tokenize=False, add_generation_prompt=True))[
        "input_ids"
    ]
    assert joined[: len(prompt)] != prompt and "]{" in tok.convert_ids_to_tokens(joined)
    enc = encode_task(tok, t)
    assert enc.prompt_ids == prompt and tok.convert_ids_to_tokens(enc.prompt_ids)[-1] == "]"
    assert [tok.convert_ids_to_tokens(ids) for ids in enc.target_ids[:2]] == [
        ["{", "1", "}", "</s>"],
        ["{", "2", "}", "</s>"],
    ]


def test_gemma_targets_end_with_eos_not_end_of_turn():
    tok = gemma()
    enc = encode_task(tok, task())
    eos, eot = tok.convert_tokens_to_ids(["<eos>", "<end_of_turn>"])
    assert all(ids[-1] == eos and eot not in ids for ids in enc.target_ids)


def test_chatml_targets_end_with_im_end():
    tok = chatml()
    enc = encode_task(tok, task())
    assert all(ids[-1] == tok.convert_tokens_to_ids("<|im_end|>") for ids in enc.target_ids)


@pytest.mark.parametrize("make", [gemma, mistral])
def test_system_is_folded_into_the_user_turn_where_the_template_rejects_it(make):
    tok = make()
    enc = encode_task(tok, task(system="Answer briefly."))
    assert "Answer briefly.\n\nPick a number." in pieces(tok, enc.prompt_ids)


def test_system_turn_where_the_template_has_one():
    tok = llama2()
    enc = encode_task(tok, task(system="Answer briefly."))
    assert "[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\nPick a number. [/INST]" in pieces(
        tok, enc.prompt_ids
    )
    tok = chatml()
    text = pieces(tok, encode_task(tok, task(system="Answer briefly.")).prompt_ids)
    assert text.startswith("<|im_start|>system\nAnswer briefly.<|im_end|>") and "helpful" not in text


@pytest.mark.parametrize("make", [chatml, mistral, plain])
def test_response_prefix_is_conditioned_on_not_scored(make):
    tok = make()
    enc = encode_task(tok, task(response=["The number is ", "I pick "]))
    for i, (ids, start) in enumerate(zip(enc.target_ids, enc.starts, strict=True)):
        prefix = ["The number is ", "I pick "][i % 2]
        assert start == len(prefix)  # one token per character here
        assert pieces(tok, ids[:start]) == prefix
        assert pieces(tok, ids[start:]).startswith(enc.task.targets[i])


def test_gemma_trims_the_prefix_and_the_space_is_scored():
    tok = gemma()
    enc = encode_task(tok, task(response="Number: "))
    assert [pieces(tok, ids[: enc.starts[0]]) for ids in enc.target_ids] == ["Number:"] * 3
    assert pieces(tok, enc.target_ids[0][enc.starts[0] :]) == " {1}<eos>"


def test_template_that_renders_the_prompt_differently_is_a_clear_error():
    tok = chatml(INCONSISTENT)
    with pytest.raises(
        EncodingError, match=r"^t\.json: target '\{1\}': the chat template renders the prompt"
    ):
        encode_task(tok, task())


def test_template_that_raises_is_a_one_line_error():
    tok = mistral()
    bad = task_from_dict({"request": "x", "targets": ["a"]}, source="t.json")
    tok.chat_template = "{{ raise_exception('nope') }}"
    with pytest.raises(EncodingError, match=r"^t\.json: the chat template rejects these messages \(nope\)$"):
        encode_task(tok, bad)


def test_targets_that_tokenize_identically_are_not_prefix_free():
    # Gemma's template trims the answer, so "5" and "5 " become the same token sequence.
    with pytest.raises(EncodingError, match="targets '5' and '5 ' tokenize identically"):
        encode_tasks(gemma(), [task(targets=["5", "5 "])])
    with pytest.raises(EncodingError, match="tokenize identically"):  # eos cannot help
        encode_tasks(gemma(), [task(targets=["5", "5 "], eos=True)])


def test_eos_without_an_eos_token_is_an_error():
    tok = plain()
    tok.eos_token = None
    with pytest.raises(EncodingError, match="no end-of-sequence token"):
        encode_task(tok, task())
    assert (
        encode_task(tok, task(eos=False)).target_ids[0] == tok("{1}", add_special_tokens=False)["input_ids"]
    )
