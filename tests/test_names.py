"""Names users bring from transformers, TRL and peft (issue 26): aliases for the config keys that mean the same
here, "did you mean" for unknown keys and flags (closest first, still one line), and ``train --config FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from diffuse_lm.cli import main
from diffuse_lm.config import ALIASES, config_from_dict, config_keys
from diffuse_lm.errors import DiffuseError

BASE = {"train_prompts": ["rng/1-10"], "output_dir": "run"}


def _code(argv: list[str]) -> int:
    """``main``'s exit code, whether returned or raised (argparse exits on bad flags)."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_hf_names_are_aliases_of_our_keys():
    cfg = config_from_dict(dict(BASE), overrides=["learning_rate=1e-4", "num_train_epochs=3", "lora_r=8"])
    assert (cfg.lr, cfg.alg_config.n_iters, cfg.lora.r) == (1e-4, 3, 8)
    cfg = config_from_dict(
        {**BASE, "learning_rate": 2e-4, "alg_config": {"batch_size": 4}, "num_train_epochs": 2}
    )
    assert (cfg.lr, cfg.alg_config.n_iters, cfg.alg_config.batch_size) == (2e-4, 2, 4)
    cfg = config_from_dict({**BASE, "lr": 1e-3}, overrides=["learning_rate=5e-3"])  # an override still wins
    assert cfg.lr == 5e-3
    with pytest.raises(DiffuseError, match="learning_rate and lr both given"):
        config_from_dict({**BASE, "lr": 1e-3, "learning_rate": 1e-4})
    assert set(ALIASES.values()) <= set(config_keys())  # every alias names a real key


def test_unknown_keys_and_flags_say_what_was_meant(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**BASE, "output_dir": str(tmp_path / "run")}))
    assert main(["train", str(cfg), "lerning_rate=1e-4"]) == 2
    assert "unknown key 'lerning_rate' (did you mean 'lr'?)" in _err(capsys)
    assert main(["train", "--config", str(cfg), "alg_config.n_iter=3"]) == 2  # --config FILE, as TRL takes it
    assert "unknown key 'alg_config.n_iter' (did you mean 'alg_config.n_iters'?)" in _err(capsys)
    assert main(["train", str(cfg), "--config", str(cfg)]) == 2
    assert "give the config once" in _err(capsys)
    assert _code(["measure", "rng/1-10", "--modle", "x"]) == 2
    assert "--modle x (did you mean '--model'?)" in _err(capsys)
    assert _code(["sample", "rng/1-10", "-o", str(tmp_path / "s.jsonl"), "--temprature", "2"]) == 2
    assert "(did you mean '--temperature'?)" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_a_long_known_list_puts_the_closest_keys_first(tmp_path, capsys):
    task = tmp_path / "t.json"
    task.write_text(json.dumps({"request": "Pick one.", "target": ["a", "b"]}))
    assert main(["tasks", "show", str(task)]) == 2
    err = _err(capsys)
    assert "unknown key 'target' (known: targets," in err, err


def test_shipped_configs_have_no_alias_keys():
    """Configs shipped with the package use the keys themselves; aliases are for what users type."""
    root = Path(__file__).resolve().parents[1] / "configs"
    for path in root.rglob("*.yaml"):
        assert not set(yaml.safe_load(path.read_text()) or {}) & set(ALIASES), path
