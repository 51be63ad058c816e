"""Model loading: the verified safetensors cache (rebuilt, never loaded, when stale or corrupt), local and
hub models, adapters, and one-line errors for everything a user can get wrong. Tiny models only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from conftest import char_tokenizer, tiny_llama

from diffuse_lm import load_model, model_cache, models
from diffuse_lm.errors import DiffuseError
from diffuse_lm.model_cache import cached_build


def save_tiny(out: Path, seed: int = 0) -> None:
    tok = char_tokenizer()
    tiny_llama(len(tok), seed=seed).save_pretrained(out)
    tok.save_pretrained(out)


class Builder:
    """A build callback that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, out: Path) -> None:
        self.calls += 1
        save_tiny(out)


@pytest.fixture
def cache(tmp_path):
    source = tmp_path / "source.gguf"
    source.write_bytes(b"pretend weights")
    build = Builder()
    folder = cached_build(tmp_path / "cache" / "tiny", source, build)
    return folder, source, build


def weights(folder: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(str(folder))
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_cache_is_built_once(cache):
    folder, source, build = cache
    assert (
        build.calls == 1
        and (folder / "model.safetensors").exists()
        and (folder / "diffuse-cache.json").exists()
    )
    assert cached_build(folder, source, build) == folder
    assert build.calls == 1


def _bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the tensor data: same size, same header
    path.write_bytes(bytes(data))
    _bump_mtime(path)  # a rewrite is seen at a later time than the build


def _drop_manifest(folder: Path) -> None:
    (folder / "diffuse-cache.json").unlink()


def _garble_manifest(folder: Path) -> None:
    (folder / "diffuse-cache.json").write_text("{not json")


def _change_source(source: Path) -> None:
    source.write_bytes(b"newer pretend weights")


@pytest.mark.parametrize(
    "damage",
    [
        lambda f, s: _truncate(f / "model.safetensors"),
        lambda f, s: _flip(f / "model.safetensors"),
        lambda f, s: (f / "model.safetensors").unlink(),
        lambda f, s: _truncate(f / "config.json"),
        lambda f, s: _drop_manifest(f),
        lambda f, s: _garble_manifest(f),
        lambda f, s: _change_source(s),
    ],
    ids=[
        "truncated",
        "flipped-bytes",
        "missing-weights",
        "truncated-config",
        "no-manifest",
        "bad-manifest",
        "new-source",
    ],
)
def test_stale_or_corrupt_cache_is_rebuilt_never_loaded(cache, damage):
    folder, source, build = cache
    good = weights(folder)
    damage(folder, source)
    assert not model_cache._cache_valid(folder, source)
    assert cached_build(folder, source, build) == folder
    assert build.calls == 2
    assert model_cache._cache_valid(folder, source)
    assert_same_weights(weights(folder), good)


def test_touched_but_intact_file_is_hashed_once_not_rebuilt(cache):
    folder, source, build = cache
    _bump_mtime(folder / "model.safetensors")
    assert cached_build(folder, source, build) == folder and build.calls == 1
    entry = json.loads((folder / "diffuse-cache.json").read_text())["files"]["model.safetensors"]
    assert entry["mtime_ns"] == (folder / "model.safetensors").stat().st_mtime_ns  # manifest refreshed


def test_same_source_bytes_elsewhere_reuse_the_cache(cache, tmp_path):
    # A new virtual environment installs the same GGUF at another path with another mtime.
    folder, source, build = cache
    moved = tmp_path / "other-venv" / "source.gguf"
    moved.parent.mkdir()
    moved.write_bytes(source.read_bytes())
    _bump_mtime(moved)
    assert cached_build(folder, moved, build) == folder and build.calls == 1
    recorded = json.loads((folder / "diffuse-cache.json").read_text())["source"]
    assert recorded["mtime_ns"] == moved.stat().st_mtime_ns  # trusted by stat from now on
    assert model_cache._cache_valid(folder, source)  # and the original still matches by its bytes


def test_first_version_manifest_is_accepted_and_upgraded(cache):
    folder, source, build = cache
    manifest = json.loads((folder / "diffuse-cache.json").read_text())
    manifest["files"] = {name: e["sha256"] for name, e in manifest["files"].items()}  # name -> digest
    (folder / "diffuse-cache.json").write_text(json.dumps(manifest))
    assert cached_build(folder, source, build) == folder and build.calls == 1
    upgraded = json.loads((folder / "diffuse-cache.json").read_text())["files"]
    assert all(isinstance(e, dict) and e["size"] > 0 for e in upgraded.values())


def test_failed_build_leaves_nothing_that_passes_for_a_cache(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"x")

    def half_build(out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_build(tmp_path / "c" / "m", source, half_build)
    assert [p.name for p in (tmp_path / "c").iterdir()] == [".m.lock"]  # no folder, no half-built temp
    assert not model_cache._cache_valid(tmp_path / "c" / "m", source)


def test_default_model_dir_goes_through_the_cache(tmp_path, monkeypatch):
    source = tmp_path / "SmolLM2.gguf"
    source.write_bytes(b"gguf")
    build = Builder()
    monkeypatch.setenv("DIFFUSE_CACHE", str(tmp_path / "dc"))
    monkeypatch.setattr(model_cache, "default_gguf_path", lambda: source)
    monkeypatch.setattr(model_cache, "_dequantize_gguf", lambda src, out: build(out))
    folder = model_cache.default_model_dir()
    assert folder == tmp_path / "dc" / "SmolLM2-135M-Instruct-float32"
    assert model_cache.default_model_dir() == folder and build.calls == 1


def test_concurrent_builders_build_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    source = tmp_path / "src"
    source.write_bytes(b"x")
    build = Builder()
    with ThreadPoolExecutor(3) as pool:
        folders = list(pool.map(lambda _: cached_build(tmp_path / "c" / "m", source, build), range(3)))
    assert build.calls == 1 and len(set(folders)) == 1 and model_cache._cache_valid(folders[0], source)


def test_local_model_loads(tmp_path):
    save_tiny(tmp_path / "m")
    model, tok = load_model(str(tmp_path / "m"))
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert tok.pad_token_id is not None and models.model_label(model) == str(tmp_path / "m")


def test_pickle_checkpoint_is_refused_without_unpickling(tmp_path, monkeypatch):
    tok = char_tokenizer()
    model = tiny_llama(len(tok))
    model.config.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")

    def no_unpickling(*a, **k):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(DiffuseError, match=r"cannot load \(.*model\.safetensors"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("spec", ["/no/such/path", "./nope", "a/b/c"])
def test_missing_local_path_is_one_line(spec):
    with pytest.raises(DiffuseError, match=r"no such local folder") as err:
        load_model(spec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("hub_id", ["no-such-org-xyz/no-such-model-xyz", "no-such-model-xyz"])
def test_unknown_hub_id_offline_is_one_line(monkeypatch, hub_id):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DiffuseError, match=r"not found in the local Hugging Face cache \(offline") as err:
        load_model(hub_id)
    assert "\n" not in str(err.value)


def test_unknown_hub_id_without_network_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(DiffuseError, match=r"the hub is not reachable"):
        load_model("no-such-org-xyz/no-such-model-xyz")


def test_adapter_errors_come_before_the_model_load(tmp_path):
    (tmp_path / "empty").mkdir()
    # The model path does not exist either: the adapter is checked first, so its error is the one shown.
    with pytest.raises(DiffuseError, match=r"--adapter .*empty: no adapter_config.json"):
        load_model("/no/such/model", adapter=str(tmp_path / "empty"))
    with pytest.raises(DiffuseError, match=r"--adapter .*nothere: no such folder"):
        load_model("/no/such/model", adapter=str(tmp_path / "nothere"))
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "adapter_config.json").write_text("{}")
    (tmp_path / "pickled" / "adapter_model.bin").write_bytes(b"")
    with pytest.raises(DiffuseError, match=r"only safetensors adapters load"):
        load_model("/no/such/model", adapter=str(tmp_path / "pickled"))


def test_saved_lora_adapter_attaches(tmp_path):
    from peft import LoraConfig, get_peft_model

    save_tiny(tmp_path / "base")
    base, _ = load_model(str(tmp_path / "base"))
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    model, _ = load_model(str(tmp_path / "base"), adapter=str(tmp_path / "adapter"))
    names = [n for n, _ in model.named_parameters()]
    assert any("lora_A" in n for n in names) and not model.training


def test_one_adapter_swap_attaches_for_the_block_and_leaves_the_base_as_it_was(tmp_path):
    from peft import LoraConfig, get_peft_model

    from diffuse_lm.model_info import model_label

    save_tiny(tmp_path / "base")
    lora = get_peft_model(load_model(str(tmp_path / "base"))[0], LoraConfig(r=2, init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    base, _ = load_model(str(tmp_path / "base"))
    weights = {k: v.clone() for k, v in base.state_dict().items()}
    for _ in range(2):  # adapter after adapter on one copy of the base weights
        with models.adapter_attached(base, tmp_path / "adapter", label="tuned") as tuned:
            assert model_label(tuned) == "tuned" and not tuned.training
            assert any("lora_A" in n for n, _ in tuned.named_parameters())
        assert base.state_dict().keys() == weights.keys() and not hasattr(base, "peft_config")
        assert all(torch.equal(v, weights[k]) for k, v in base.state_dict().items())


def test_bad_device_and_dtype():
    with pytest.raises(DiffuseError, match="--dtype int8: expected one of"):
        models.pick_dtype("int8", torch.device("cpu"))
    with pytest.raises(DiffuseError, match="--device tpu:x: not a device"):
        models.pick_device("tpu:x")
    assert models.pick_dtype(None, torch.device("cpu")) == torch.float32
    assert models.pick_dtype(None, torch.device("cuda")) == torch.bfloat16
    if not torch.cuda.is_available():
        with pytest.raises(DiffuseError, match="CUDA is not available"):
            models.pick_device("cuda")


def test_quiet_transformers_silences_progress_bars_unless_verbose():
    from transformers.utils import logging as hf_logging

    before = (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity())
    try:
        models.quiet_transformers(verbose=False)
        assert not hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == hf_logging.ERROR
        models.quiet_transformers(verbose=True)
        assert hf_logging.is_progress_bar_enabled()
    finally:
        (hf_logging.enable_progress_bar if before[0] else hf_logging.disable_progress_bar)()
        hf_logging.set_verbosity(before[1])


# --- issue 12: faults and clearer errors --------------------------------------------------------------


def test_a_build_killed_midway_leaves_a_temp_folder_the_next_build_removes(tmp_path):
    source = tmp_path / "src"
    source.write_bytes(b"x")
    stale = tmp_path / "c" / ".m.tmp-abc123"  # what a kill -9 during the build leaves
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half of 517 MB")
    other = tmp_path / "c" / ".other.tmp-abc123"  # another cache entry's build: not ours to touch
    other.mkdir()
    build = Builder()
    folder = cached_build(tmp_path / "c" / "m", source, build)
    assert build.calls == 1 and model_cache._cache_valid(folder, source)
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [".m.lock", ".other.tmp-abc123", "m"]


@pytest.mark.parametrize("damage", ["truncated", "header", "garbage"])
def test_a_truncated_or_corrupt_model_safetensors_is_one_line(tmp_path, damage):
    save_tiny(tmp_path / "m")
    weights_file = tmp_path / "m" / "model.safetensors"
    data = weights_file.read_bytes()
    damaged = {
        "truncated": data[: len(data) // 2],
        "header": b"\xff" * 8 + data[8:],  # the header length overwritten
        "garbage": os.urandom(256),
    }[damage]
    weights_file.write_bytes(damaged)
    with pytest.raises(DiffuseError, match=r"weights file is truncated or corrupt \(SafetensorError") as err:
        load_model(str(tmp_path / "m"))
    assert "\n" not in str(err.value)


def test_a_model_folder_without_a_tokenizer_says_so(tmp_path):
    tiny_llama(len(char_tokenizer())).save_pretrained(tmp_path / "m")  # weights and config only
    with pytest.raises(DiffuseError, match=rf"no tokenizer files in {tmp_path / 'm'}"):
        load_model(str(tmp_path / "m"))


def test_an_adapter_for_another_base_model_names_the_size_mismatch(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    save_tiny(tmp_path / "base")  # hidden size 32
    tok = char_tokenizer()
    wider = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    lora = get_peft_model(wider, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    lora.save_pretrained(tmp_path / "adapter")
    with pytest.raises(DiffuseError, match="made for another base model") as err:
        load_model(str(tmp_path / "base"), adapter=str(tmp_path / "adapter"))
    message = str(err.value)
    assert "model.layers.0.self_attn.q_proj.lora_A.weight: shape [2, 64] in the adapter, [2, 32]" in message
    assert "and 7 more" in message and "\n" not in message and len(message) < 250, message
