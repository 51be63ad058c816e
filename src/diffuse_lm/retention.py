"""The retention term: keep a tuned model close to its base model where diversity is not asked for.

Self-distillation on general prompts: the base model (the same weights with the LoRA adapter disabled)
answers each prompt greedily once; the term is KL(base ‖ tuned) of the next-token distributions at every
position of those answers, averaged over the answer tokens of a batch. Added to Eq. 5 with a weight, it
penalises what the distribution-matching loss changes beyond the tasks it is trained on (the paper reports
MT-Bench unchanged after tuning; on a 135M model it is not, without this term).

The base side never changes, and the greedy decoding that wrote an answer computed it already: the decoder's
last hidden state at each position that chose an answer token. Those states are kept with the answers
(a safetensors file beside them), so a step runs the LM head on them instead of a second pass of the decoder
along the answer: about a sixth of a training step on the default model. An answer whose text does not
tokenize back to the tokens it was decoded from keeps none, and its base side is computed as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
import yaml

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import check_regular, write_json_atomic
from diffuse_lm.provenance import weights_sha256

BUILTIN_SETS = {"general": "prompts.yaml"}  # name -> file under data/retain/


@dataclass(frozen=True)
class RetainExample:
    """One general prompt and the base model's answer, as token ids: ``prompt_ids`` then ``response_ids``."""

    prompt: str
    response: str
    prompt_ids: list[int]
    response_ids: list[int]
    # the base decoder's last hidden states that predicted each answer token, (len(response_ids), H), if kept
    base_states: torch.Tensor | None = field(default=None, compare=False, repr=False)


def load_retain_prompts(spec: str | list[str]) -> list[str]:
    """Prompts of one or more sources, in order, without repeats: a built-in set (``general``), a file of
    prompts (YAML/JSON list of strings or of mappings with a ``prompt`` key, or text with one prompt a line),
    or task specs (built-in names, groups, folders, task files), whose requests are used."""
    if isinstance(spec, list):
        if not spec:
            raise DiffuseError("retain.prompts: an empty list")
        return list(dict.fromkeys(p for one in spec for p in load_retain_prompts(one)))
    if spec in BUILTIN_SETS:
        text = (resources.files("diffuse_lm") / "data" / "retain" / BUILTIN_SETS[spec]).read_text()
        return list(yaml.safe_load(text))
    path = Path(spec)
    if not path.is_file():
        from diffuse_lm.tasks import load_tasks

        try:
            return [t.request for t in load_tasks([spec])]
        except DiffuseError as e:
            if path.is_dir():  # a folder is read as task files: the task loader's reason is the one
                raise DiffuseError(f"retain.prompts: {e}") from None
            known = ", ".join(BUILTIN_SETS)
            raise DiffuseError(
                f"retain.prompts {spec}: cannot read (no such file, prompt set ({known}) or task)"
            ) from None
    try:
        check_regular(path, "a file of prompts")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DiffuseError(
            f"retain.prompts {spec}: cannot read ({getattr(e, 'strerror', None) or e})"
        ) from None
    if path.suffix in (".yaml", ".yml", ".json"):
        try:
            from diffuse_lm.yaml_json import bounded_yaml_load

            data = bounded_yaml_load(text)  # JSON is YAML
        except (yaml.YAMLError, RecursionError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DiffuseError(
                f"retain.prompts {spec}: malformed {path.suffix[1:].upper()} ({why})"
            ) from None
        if isinstance(data, dict) and "request" in data:  # a task file: its request
            from diffuse_lm.tasks import load_tasks

            return [t.request for t in load_tasks([spec])]
        if not isinstance(data, list):
            raise DiffuseError(f"retain.prompts {spec}: expected a list of prompts")
        prompts = [d.get("prompt") if isinstance(d, dict) else d for d in data]
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    bad = [i for i, p in enumerate(prompts) if not isinstance(p, str) or not p.strip()]
    if bad:
        raise DiffuseError(f"retain.prompts {spec}: item {bad[0]} is not a non-empty string")
    if not prompts:
        raise DiffuseError(f"retain.prompts {spec}: holds no prompt")
    return prompts


def base_responses(
    model, tokenizer, prompts: list[str], max_new_tokens: int, *, cache: Path | None, progress: bool = False
) -> list[str]:
    """The base model's greedy answers to ``prompts`` (:func:`base_answers_with_states`, without their states)."""
    return base_answers_with_states(
        model, tokenizer, prompts, max_new_tokens, cache=cache, progress=progress
    )[0]


class BaseAnswers(NamedTuple):
    """The base model's answers, the decoder states that chose them (None where not kept) and the file that
    holds those states, when a cache keeps them."""

    texts: list[str]
    states: list[torch.Tensor | None]
    states_file: Path | None = None


def base_answers_with_states(
    model, tokenizer, prompts: list[str], max_new_tokens: int, *, cache: Path | None, progress: bool = False
) -> BaseAnswers:
    """The base model's greedy answers to ``prompts`` (the adapter, if any, disabled) and the decoder states
    that chose their tokens (None where the text does not tokenize back to them), computed once per
    (weights, prompts, length) and kept in ``cache`` (a folder) when given."""
    from contextlib import nullcontext

    from diffuse_lm.model_info import model_label
    from diffuse_lm.sampling import greedy_answers

    base = weights_sha256(model, "base", every=997)[:16]  # a cheap hash: every 997th value of the base's
    key = hashlib.sha256(json.dumps([base, prompts, max_new_tokens]).encode()).hexdigest()
    path = cache / f"retain-{key[:16]}.json" if cache else None
    if path is not None and path.exists():
        try:
            data = json.loads(path.read_text())
            kept = path.with_suffix(STATES_SUFFIX)
            if data.get("key") == key and len(data["responses"]) == len(prompts) and kept.is_file():
                texts = list(data["responses"])
                return BaseAnswers(texts, load_states(kept, prompts, texts), kept)  # (no states: again)
        except (OSError, ValueError, KeyError):
            pass  # a torn or foreign file: compute again
    off = model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext()
    was_training = model.training
    model.eval()
    with off:
        convs = [[{"role": "user", "content": p}] for p in prompts]
        answers = greedy_answers(
            model,
            tokenizer,
            convs,
            max_new_tokens=max_new_tokens,
            progress=progress,
            desc=f"greedy {model_label(model, short=True, adapter=False)}: retention prompts",
            hidden=True,
        )
    model.train(was_training)
    texts = [a.text for a in answers]
    states = [
        a.hidden.clone() if a.hidden is not None and _tokens(tokenizer, a.text) == a.ids else None
        for a in answers
    ]  # clone: out of inference mode, so a training step may use them
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_states(path.with_suffix(STATES_SUFFIX), prompts, texts, states)
            write_json_atomic(path, {"key": key, "max_new_tokens": max_new_tokens, "responses": texts})
            return BaseAnswers(texts, states, path.with_suffix(STATES_SUFFIX))
        except (OSError, DiffuseError):
            pass  # a cache that cannot be written only costs time
    return BaseAnswers(texts, states)


STATES_SUFFIX = ".safetensors"  # the states of a file of answers: beside it, the same name


def _answers_key(prompts: list[str], responses: list[str]) -> str:
    return hashlib.sha256(json.dumps([prompts, responses]).encode()).hexdigest()


def save_states(
    path: Path,
    prompts: list[str],
    responses: list[str],
    states: list[torch.Tensor | None],
    *,
    same_as: Path | None = None,
) -> None:
    """Write the kept states of answers to ``path`` (safetensors, one tensor per answer that has them), tied
    to these prompts and answers by a hash in its metadata. ``same_as``: a file that holds these very states
    (the model cache's), hard-linked where the file system allows, so runs that share a cache share the bytes."""
    from safetensors.torch import save

    from diffuse_lm.files import write_atomic

    if same_as is not None and _states_of(same_as) == _answers_key(prompts, responses):
        tmp = path.with_name(f".{path.name}.link-tmp")
        try:
            tmp.unlink(missing_ok=True)
            os.link(same_as, tmp)
            os.replace(tmp, path)
            return
        except OSError:
            tmp.unlink(missing_ok=True)  # another file system, or no hard links there: write it

    # each its own contiguous copy: safetensors refuses tensors that share memory
    tensors = {
        str(i): s.detach().to("cpu", copy=True).contiguous() for i, s in enumerate(states) if s is not None
    }
    write_atomic(path, save(tensors, metadata={"answers": _answers_key(prompts, responses)}))


def _states_of(path: Path) -> str | None:
    """The answers' hash a states file names in its metadata (None: no such file, or not one of ours)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("answers")
    except (OSError, ValueError, SafetensorError):
        return None


def load_states(path: Path, prompts: list[str], responses: list[str]) -> list[torch.Tensor | None]:
    """The states :func:`save_states` kept for these answers, None for each it has not (or no file, a file of
    other answers, or one that cannot be read: the base side is then computed, which only costs time)."""
    none: list[torch.Tensor | None] = [None] * len(responses)
    if not path.is_file():
        return none
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("answers") != _answers_key(prompts, responses):
                return none
            kept = {int(k): f.get_tensor(k) for k in f.keys()}
    except (OSError, ValueError, SafetensorError):
        return none
    return [kept.get(i) for i in range(len(responses))]


def _tokens(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def encode_examples(
    tokenizer,
    prompts: list[str],
    responses: list[str],
    states: list[torch.Tensor | None] | None = None,
) -> list[RetainExample]:
    """Token ids of each (prompt, answer): the templated prompt the sampler continues, then the answer; with
    ``states``, each answer's kept base states (:func:`base_answers_with_states`) where they fit its tokens."""
    from diffuse_lm.sampling import prompt_ids

    out = []
    states = states if states is not None else [None] * len(prompts)
    for p, r, s in zip(prompts, responses, states, strict=True):
        ids = _tokens(tokenizer, r)
        if ids:  # an empty answer has no position to compare
            kept = s if s is not None and s.ndim == 2 and s.shape[0] == len(ids) else None
            out.append(
                RetainExample(p, r, prompt_ids(tokenizer, [{"role": "user", "content": p}]), ids, kept)
            )
    return out


def _answer_mask(batch: list[RetainExample], device) -> tuple[int, torch.Tensor]:
    """The longest answer's length R and the (B, R) mask of real positions, answers right-aligned."""
    r = max(len(e.response_ids) for e in batch)
    lens = torch.tensor([len(e.response_ids) for e in batch], device=device)
    return r, torch.arange(r, device=device)[None, :] >= (r - lens)[:, None]


def _forward_logprobs(model, batch: list[RetainExample]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax of the next-token distributions predicting each answer token: (B, R, V), and the
    (B, R) mask of real positions, answers right-aligned (R: the longest answer). Where the decoder takes a packed
    row (:func:`diffuse_lm.scoring.can_pack`), the examples run as one row: their common beginning (the chat
    template's system turn) once, then each example's rest attending to it and to itself only, no padding;
    elsewhere, left-padded rows. Logits are computed only where an answer token is predicted."""
    from diffuse_lm.scoring import can_pack

    device = next(p for p in model.parameters()).device
    r, mask = _answer_mask(batch, device)
    if can_pack(model, max(len(e.prompt_ids) + len(e.response_ids) for e in batch)):
        rows = _packed_answer_logprobs(model, batch)  # (N, V), the answer tokens in (example, token) order
        logp = rows.new_zeros(len(batch), r, rows.shape[-1])
        logp[mask] = rows
        return logp, mask
    seqs = [e.prompt_ids + e.response_ids for e in batch]
    length = max(map(len, seqs))
    ids = torch.zeros(len(seqs), length, dtype=torch.long, device=device)
    attn = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, length - len(s) :] = torch.tensor(s, device=device)
        attn[i, length - len(s) :] = 1
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=attn, position_ids=positions, logits_to_keep=r + 1).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # position t predicts token t + 1
    return logp, mask


def _packed_answer_logprobs(model, batch: list[RetainExample]) -> torch.Tensor:
    """(N, V) log-probabilities predicting every answer token of ``batch``, example by example, from one packed
    row: the examples as a prefix tree (:func:`diffuse_lm.scoring.tree_hidden`), so their common beginning runs
    once and each token sits at the position it has in its own example."""
    from diffuse_lm.scoring import _head_logprobs, _trie, _unwrap, tree_hidden

    lm = _unwrap(model)
    device = next(p for p in model.parameters()).device
    seqs = [e.prompt_ids + e.response_ids for e in batch]
    inputs, parents, depths, paths = _trie(seqs)
    hidden = tree_hidden(lm, None, [], 0, inputs, parents, depths)
    # token j of an example is predicted by the node of its prefix seq[:j], paths[j - 1]
    rows = [
        path[j - 1]
        for e, path in zip(batch, paths, strict=True)
        for j in range(len(e.prompt_ids), len(path) + 1)
    ]
    return _head_logprobs(lm, hidden[torch.tensor(rows, device=device)])


def _base_logprobs(model, batch: list[RetainExample]) -> tuple[torch.Tensor, torch.Tensor]:
    """The base side of :func:`kl_rows`, laid out as :func:`_forward_logprobs` lays it out: the LM head on the
    kept decoder states, and a pass of the decoder along the examples that have none."""
    missing = [i for i, e in enumerate(batch) if e.base_states is None]
    if len(missing) == len(batch):
        return _forward_logprobs(model, batch)
    from diffuse_lm.scoring import _head_logprobs, _unwrap

    lm = _unwrap(model)
    head = lm.get_output_embeddings().weight
    kept = [e.base_states for e in batch if e.base_states is not None]
    heads = iter(
        _head_logprobs(lm, torch.cat(kept).to(head.device, head.dtype)).split([len(k) for k in kept])
    )
    computed = {}
    if missing:
        logp, mask = _forward_logprobs(model, [batch[i] for i in missing])
        computed = {i: row[m] for i, row, m in zip(missing, logp, mask, strict=True)}
    blocks = [computed[i] if i in computed else next(heads) for i in range(len(batch))]
    r, mask = _answer_mask(batch, head.device)
    rows = torch.cat(blocks)
    out = rows.new_zeros(len(batch), r, rows.shape[-1])
    out[mask] = rows
    return out, mask


def kl_rows(model, batch: list[RetainExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """KL(base ‖ tuned) at each answer position of ``batch``, (B, R), with the (B, R) mask of real
    positions and whether the two models' most probable tokens agree there, (B, R). Gradients flow into
    the tuned side only; the base side is the same model with its adapter disabled, under no_grad."""
    with torch.no_grad(), model.disable_adapter():
        base, mask = _base_logprobs(model, batch)
    tuned, _ = _forward_logprobs(model, batch)
    agree = base.argmax(-1) == tuned.detach().argmax(-1)
    return (base.exp() * (base - tuned)).sum(-1), mask, agree


def retention_kl(model, batch: list[RetainExample]) -> tuple[torch.Tensor, int]:
    """Σ over the answer tokens of ``batch`` of KL(base ‖ tuned) of the next-token distributions, and the
    number of tokens (divide for the mean): the retention term before its weight."""
    kl, mask, _ = kl_rows(model, batch)
    return (kl * mask).sum(), int(mask.sum())
