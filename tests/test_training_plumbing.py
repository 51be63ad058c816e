"""Training plumbing from the libraries (issue 14, item 4): lr schedule with warmup (restored on resume),
gradient checkpointing, TensorBoard through accelerate's trackers, W&B and 4-bit refused in one line when
their packages are missing, and train_log.jsonl records told apart by ``kind``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training import TASKS, save_tiny_model, tiny_config
from transformers import get_scheduler

from diffuse_lm import train
from diffuse_lm.cli import main
from diffuse_lm.config import config_from_dict
from diffuse_lm.encoding import encode_task
from diffuse_lm.scoring import score_plain, score_task
from diffuse_lm.tasks import task_from_dict
from diffuse_lm.training_setup import scheduler


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def _adapter(out: Path) -> dict:
    return load_file(out / "adapter" / "adapter_model.safetensors")


def test_default_has_no_scheduler_and_logs_kinds(tmp_path, model_dir):
    cfg = config_from_dict(tiny_config(tmp_path, model_dir, eval_every=4))
    assert scheduler(cfg, torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))]), 8) is None
    out = Path(train(cfg, progress=False).summary["output_dir"])
    log = _log(out)
    assert {e["kind"] for e in log} == {"train", "eval"}
    assert all(
        ("loss" in e) == (e["kind"] == "train") and ("eval" in e) == (e["kind"] == "eval") for e in log
    )
    assert all(e["lr"] == 0.02 for e in log if e["kind"] == "train")
    state = json.loads((out / "checkpoint-000008" / "state.json").read_text())
    assert "scheduler" not in state  # nothing new saved when the feature is off


def test_warmup_and_cosine_follow_get_scheduler_and_resume_restores_them(tmp_path, model_dir):
    over = {"lr_scheduler": "cosine", "warmup_steps": 3, "checkpoint_every": 5}
    cfg = config_from_dict(tiny_config(tmp_path, model_dir, **over))
    out = Path(train(cfg, progress=False).summary["output_dir"])
    lrs = [e["lr"] for e in _log(out) if e["kind"] == "train"]
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.02)
    ref = get_scheduler("cosine", opt, num_warmup_steps=3, num_training_steps=8)
    want = []
    for _ in range(8):
        want.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert lrs == pytest.approx(want) and lrs[0] == 0 and max(lrs) == pytest.approx(0.02)
    finished = _adapter(out)
    # Interrupted after step 5: drop the final checkpoint and the finished run's files, and rerun.
    shutil.rmtree(out / "checkpoint-000008")
    (out / "summary.json").unlink()
    again = train(cfg, progress=False).summary
    assert again["steps"] == 8
    assert [e["lr"] for e in _log(out) if e["kind"] == "train"] == pytest.approx(want)
    for name, tensor in _adapter(out).items():
        torch.testing.assert_close(tensor, finished[name])


def test_warmup_ratio_and_steps_are_exclusive(tmp_path, model_dir):
    cfg = config_from_dict(tiny_config(tmp_path, model_dir, lr_scheduler="linear", warmup_ratio=0.25))
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = scheduler(cfg, opt, 8)
    assert [opt.param_groups[0]["lr"]] == [0.0]
    for _ in range(2):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)  # warmup of ceil(0.25 * 8) = 2 steps
    with pytest.raises(Exception, match="warmup_steps and warmup_ratio: give one"):
        config_from_dict(tiny_config(tmp_path, model_dir, warmup_steps=2, warmup_ratio=0.1))


def test_prompt_per_batch_scoring_equals_the_plain_scorer(tokenizer, model):
    """Gradient checkpointing drops KV caches, so its scorer puts the prompt in every packed row: same numbers."""
    enc = encode_task(tokenizer, task_from_dict(TASKS["letters"], source="letters"))
    with torch.no_grad():
        fast = score_task(model, enc, prompt_per_batch=True, max_batch_targets=2)
        plain = score_plain(model, enc)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_trains_to_the_same_adapter(tmp_path, model_dir):
    plain = train(config_from_dict(tiny_config(tmp_path / "a", model_dir)), progress=False).summary
    ckpt = train(
        config_from_dict(tiny_config(tmp_path / "b", model_dir, gradient_checkpointing=True)), progress=False
    ).summary
    a, b = _adapter(Path(plain["output_dir"])), _adapter(Path(ckpt["output_dir"]))
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-4, rtol=1e-3)
    assert [e["loss"] for e in _log(Path(ckpt["output_dir"])) if e["kind"] == "train"] == pytest.approx(
        [e["loss"] for e in _log(Path(plain["output_dir"])) if e["kind"] == "train"], rel=1e-4
    )


def test_tensorboard_event_files_parse_with_tensorboards_reader(tmp_path, model_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config_from_dict(tiny_config(tmp_path, model_dir, report_to="tensorboard", eval_every=4))
    out = Path(train(cfg, progress=False).summary["output_dir"])
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(out / "tensorboard"))  # the scalars; hparams go to a subfolder
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(1, 9))
    assert [e.value for e in acc.Scalars("train/lr")] == pytest.approx([0.02] * 8)
    assert [e.step for e in acc.Scalars("eval/digits/kl")] == [4, 8]  # an eval mid-run and the final one
    assert "train/grad_norm" in tags
    assert all(json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines())


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("report_to=wandb", "report_to: wandb needs the wandb package (pip install wandb)"),
        ("load_in_4bit=true", "load_in_4bit: needs"),
        ("lr_scheduler=step", "lr_scheduler"),
        ("report_to=mlflow", "report_to"),
    ],
)
def test_missing_packages_and_bad_values_are_one_line_exit_2(tmp_path, model_dir, capsys, key, message):
    import importlib.util

    if key == "report_to=wandb" and importlib.util.find_spec("wandb") is not None:
        pytest.fail("this check needs an environment without wandb")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path, model_dir)))
    assert main(["train", str(path), key, "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_run_saved_before_the_new_keys_still_resumes(tmp_path, model_dir):
    cfg = config_from_dict(tiny_config(tmp_path, model_dir))
    out = Path(train(cfg, progress=False).summary["output_dir"])
    saved = yaml.safe_load((out / "config.yaml").read_text())
    for key in (
        "lr_scheduler",
        "warmup_steps",
        "warmup_ratio",
        "gradient_checkpointing",
        "report_to",
        "load_in_4bit",
    ):
        del saved[key]
    (out / "config.yaml").write_text(yaml.safe_dump(saved))
    assert train(cfg, progress=False).summary["steps"] == 8  # the finished run, not a refusal
    with pytest.raises(Exception, match="holds a run with lr_scheduler"):
        train(config_from_dict(tiny_config(tmp_path, model_dir, lr_scheduler="linear")), progress=False)


def test_a_config_yaml_of_the_user_in_output_dir_is_not_taken_for_a_run(tmp_path, model_dir):
    cfg = config_from_dict(tiny_config(tmp_path, model_dir))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(yaml.safe_dump({"model": str(model_dir), "train_prompts": ["x.json"]}))
    with pytest.raises(
        Exception, match=r"config.yaml has no alg_config\.\w+, so it is not a run of this config"
    ):
        train(cfg, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml"]
