"""Training configs: every shipped config loads and names real tasks; the original study's files load
unchanged; a bad key or value is one line naming it (exit 2 from the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from diffuse_lm import load_tasks
from diffuse_lm.cli import main
from diffuse_lm.config import PAPER_TARGET_MODULES, config_from_dict, config_to_yaml, load_config
from diffuse_lm.errors import DiffuseError

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))

# configs/rng/rand(1,10)/llama-2-13b-chat.yaml of the original study, verbatim.
ORIGINAL = """\
model: meta-llama/Llama-2-13b-chat-hf
train_prompts:
- prompts/numbers/rng-0.json
test_prompts:
- prompts/numbers/rng-0.json
- prompts/numbers/rng-1.json
alg_config:
  n_iters: 50
output_dir: results-lora/llama-2-13b-chat/rng/rand(1,10)
"""


def test_there_are_configs_for_the_demo_and_the_paper():
    names = {str(p.relative_to(ROOT / "configs")) for p in CONFIGS}
    assert "smollm2-135m/rng-1-10.yaml" in names
    assert {n.split("/")[1] for n in names if n.startswith("paper/")} >= {
        "rng-1-10",
        "baby-names",
        "six-tasks",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_loads_and_opens_with_its_command(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # task paths in configs are relative to the repository root
    first = path.read_text().splitlines()[0]
    assert first == f"# diffuse train {path.relative_to(ROOT)}"
    cfg = load_config(path)
    assert load_tasks(cfg.train_prompts) and load_tasks(cfg.eval_prompts)


def test_original_study_config_loads_with_paper_defaults(tmp_path):
    path = tmp_path / "orig.yaml"
    path.write_text(ORIGINAL)
    cfg = load_config(path)
    assert cfg.alg_config.n_iters == 50 and cfg.alg_config.batch_size == 32 and not cfg.alg_config.early_stop
    assert (
        cfg.alg_config.gamma == 0.2 and cfg.lr == 5e-5 and cfg.adam_eps == 1e-5 and cfg.max_grad_norm == 1.0
    )
    assert cfg.lora.r == 4 and cfg.lora.target_modules == PAPER_TARGET_MODULES
    assert cfg.test_prompts == ["prompts/numbers/rng-0.json", "prompts/numbers/rng-1.json"]
    assert not cfg.load_model and cfg.ckpt_dir is None


def test_overrides_set_nested_keys_and_parse_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(ORIGINAL)
    cfg = load_config(
        path,
        [
            "alg_config.n_iters=5",
            "lr=1e-3",
            "alg_config.early_stop=true",
            "lora.r=8",
            "test_prompts=[a, b]",
            "seed=7",
        ],
    )
    assert (cfg.alg_config.n_iters, cfg.lr, cfg.alg_config.early_stop) == (5, 1e-3, True)
    assert (cfg.lora.r, cfg.test_prompts, cfg.seed) == (8, ["a", "b"], 7)
    assert cfg.alg_config.batch_size == 32  # siblings of an overridden key are kept
    again = config_from_dict(yaml.safe_load(config_to_yaml(cfg)))
    assert again == cfg  # the resolved config saved in output_dir reloads to the same config


@pytest.mark.parametrize(
    ("data", "overrides", "message"),
    [
        ({"colour": "red"}, [], "unknown key 'colour'"),
        ({"alg_config": {"n_iter": 3}}, [], "unknown key 'alg_config.n_iter'"),
        ({"alg_config": {"n_iters": 0}}, [], "alg_config.n_iters: Input should be greater than 0"),
        ({"lr": "fast"}, [], "lr: Input should be a valid number"),
        ({"lora": {"r": 2.5}}, [], "lora.r"),
        ({"dtype": "float8"}, [], "dtype"),
        ({"load_model": True}, [], "load_model: true needs ckpt_dir"),
        ({}, ["alg_config.batch_size=-1"], "alg_config.batch_size"),
        ({}, ["lr"], "expected key=value"),
        ({"alg_config": {"n_iters": 3}}, ["alg_config.n_iters.deep=1"], "n_iters is not a mapping"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(data, overrides, message):
    base = {"train_prompts": ["x.json"], "output_dir": "out"}
    with pytest.raises(DiffuseError, match=message) as err:
        config_from_dict({**base, **data}, source="c.yaml", overrides=overrides)
    assert "\n" not in str(err.value)


def test_missing_required_keys_are_named():
    with pytest.raises(DiffuseError, match="missing key 'train_prompts'"):
        config_from_dict({"output_dir": "o"})
    with pytest.raises(DiffuseError, match="missing key 'output_dir'"):
        config_from_dict({"train_prompts": "x.json"})


@pytest.mark.parametrize(
    "text", ["model: [unclosed", "- a list\n- not a mapping\n", "output_dir: o\nbogus: 1\n"]
)
def test_cli_bad_config_exits_2_with_one_line(tmp_path, capsys, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffuse: error: ") and err.count("\n") == 1
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_cli_overrides_may_follow_options(monkeypatch):
    from diffuse_lm.commands import train

    seen = {}
    monkeypatch.setattr(train, "run", lambda args: seen.update(vars(args)) or 0)
    parser_args = ["train", "cfg.yaml", "--no-plot", "lr=1", "-q", "alg_config.n_iters=2"]
    assert main(parser_args) == 0
    assert seen["overrides"] == ["lr=1", "alg_config.n_iters=2"] and seen["quiet"] and seen["no_plot"]


def test_cli_stray_arguments_are_still_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "cfg.yaml", "-q", "--bogus"])
    assert e.value.code == 2 and "--bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["stats", "s.jsonl", "lr=1"])  # only `train` takes KEY=VALUE
    assert e.value.code == 2


def test_shipped_six_task_config_is_the_standard_scale_recipe():
    """configs/smollm2-135m/six-tasks-keep.yaml is what README recommends: the six-task recipe of `reproduce
    --scale standard` (recipe `constrained`: the same retention block, mass weight, micro-batch, family weights, lr and
    schedule, and its passes; training tasks all phrasings, where the scale keeps one), so the leave-one-out and
    formats results of that scale stand for it."""
    from diffuse_lm.experiments.common import DEFAULT_MODEL_TRAINING
    from diffuse_lm.experiments.scales import QUICK, STANDARD

    recipe = STANDARD.six_recipe
    settings = recipe.settings(DEFAULT_MODEL_TRAINING["lr"])
    cfg = load_config(ROOT / "configs" / "smollm2-135m" / "six-tasks-keep.yaml")
    retain = settings["retain"]
    assert cfg.retain.weight == retain["weight"] and cfg.retain.per_step == retain["per_step"]
    assert cfg.retain.max_new_tokens == retain["max_new_tokens"]
    assert list(cfg.retain.prompts) == retain.get("prompts", ["general"])
    assert (cfg.lr, cfg.lr_scheduler) == (settings["lr"], settings["lr_scheduler"]) == (8e-4, "cosine")
    assert cfg.alg_config.n_iters == STANDARD.passes["six"] == 5
    alg = settings["alg_config"]
    assert cfg.alg_config.family_weights == alg["family_weights"] == {"FORMAT-*": 0.5}
    assert cfg.alg_config.mass_weight == alg.get("mass_weight", 1.0)
    assert cfg.alg_config.batch_size == alg.get("batch_size", 32)
    assert cfg.alg_config.balance == alg.get("balance", "prompts")
    assert cfg.alg_config.mass_weight_end == alg.get("mass_weight_end")
    # standard is quick but for the six-task models: every other setting is quick's
    assert {k: v for k, v in STANDARD.passes.items() if k not in ("six", "formats")} == {
        k: v for k, v in QUICK.passes.items() if k not in ("six", "formats")
    }
    assert STANDARD.coverage_n == QUICK.coverage_n and STANDARD.six_phrasings == QUICK.six_phrasings
    # the quick recipe is `kept` without the schedule: its adapters' cache keys are unchanged
    quick = QUICK.six_recipe.settings(DEFAULT_MODEL_TRAINING["lr"])
    assert "lr_scheduler" not in quick and "family_weights" not in quick["alg_config"]
    shipped = {t.name for t in load_tasks(cfg.train_prompts)}
    assert shipped == {t.name for t in load_tasks(["paper-six", *recipe.extra_tasks()])}
