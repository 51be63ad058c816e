"""``diffuse compare`` on the embedded default model (slow tier): the exact temperature and min-p columns are
the distributions that sampling with those rules draws from. The base model puts well under 1% on valid
``{n}`` answers, where a TV check says little, so the model compared is the default one tuned for a few
steps on RNG 1-10 (most of its mass on the ten answers, and the rules move it visibly)."""

from __future__ import annotations

import pytest
import torch
from test_compare import sampled_counts, transform_of, tv_bound, tv_distance

from diffuse_lm import load_tasks, train
from diffuse_lm.encoding import encode_task
from diffuse_lm.models import attach_adapter
from diffuse_lm.sampling import generate_records
from diffuse_lm.scoring import score_task

N = 1000


@pytest.fixture(scope="module")
def tuned_rng(default_model, tmp_path_factory):
    """The default model with a LoRA adapter tuned for 12 steps on RNG 1-10 (removed again afterwards)."""
    model, tokenizer = default_model
    out = tmp_path_factory.mktemp("rng") / "run"
    run = train(train_prompts=["rng/1-10"], output_dir=str(out), lr=1e-3, **{"alg_config.n_iters": 12})
    tuned = attach_adapter(model, run.adapter_dir)
    tuned.eval()
    yield tuned, tokenizer
    tuned.unload()


@pytest.mark.slow
@pytest.mark.parametrize(
    "label,settings", [("temperature:1.5", {"temperature": 1.5}), ("min_p:0.1", {"min_p": 0.1})]
)
def test_exact_rule_agrees_with_sampling_on_the_default_model(tuned_rng, label, settings):
    model, tokenizer = tuned_rng
    (task,) = load_tasks(["rng/1-10"])
    enc = encode_task(tokenizer, task)
    with torch.no_grad():
        exact = score_task(model, enc, transform=transform_of(label)).double().exp().numpy()
        plain = score_task(model, enc).double().exp().numpy()
    records = generate_records(
        model, tokenizer, task.messages(), N, max_new_tokens=6, batch_size=1000, seed=2, **settings
    )
    counts = sampled_counts(records, task.targets)
    assert exact.sum() > 0.2  # enough of the samples land on the ten answers for the check to mean something
    tv, bound = tv_distance(exact, counts, N), tv_bound(exact, N)
    assert tv < bound, (label, tv, bound)
    if label.startswith("temperature"):  # the check tells the rule from sampling at T = 1
        assert tv_distance(plain, counts, N) > bound, (tv_distance(plain, counts, N), bound)
