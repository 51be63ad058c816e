"""Shared fixtures: a tiny random Llama and a character-level tokenizer built offline (no download)."""

from __future__ import annotations

import string

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def char_tokenizer(
    chat_template: str | None = CHATML,
    specials: list[str] = SPECIALS,
    eos: str = "</s>",
    extra_tokens: list[str] = (),
) -> PreTrainedTokenizerFast:
    """One token per printable character (plus ``extra_tokens``, merged greedily), with special tokens."""
    chars = list(dict.fromkeys(string.printable))
    vocab = {t: i for i, t in enumerate(specials + list(extra_tokens) + chars)}
    tok = Tokenizer(
        models.WordPiece(
            vocab, unk_token="<unk>", continuing_subword_prefix="", max_input_chars_per_word=1000
        )
    )
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated") if not extra_tokens else None
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token=eos, pad_token=eos
    )
    fast.add_special_tokens(
        {"additional_special_tokens": [s for s in specials if s not in ("<unk>", "<s>", eos)]}
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def tiny_llama(vocab_size: int, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    """A random Llama with a few tens of thousands of parameters, float32, eval mode."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: tiny models gain nothing from threads, and on a shared CPU spinning threads
    made tests 10-100x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


@pytest.fixture
def model(tokenizer) -> LlamaForCausalLM:
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model (slow tests only)."""
    from diffuse_lm.models import load_model

    return load_model()
