"""What the experiments share: the run context (with the trainer and sampler it calls), trained adapters
cached by their config, the model with or without an adapter, exact measurement, sampled answers and
confidence intervals."""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffuse_lm.experiments.record import Record
from diffuse_lm.experiments.scales import QUICK, Scale
from diffuse_lm.model_info import DEFAULT_MODEL, is_default_model, model_label
from diffuse_lm.tasks import Task, load_tasks

# Built-in task specs the experiments use (tests point these at small task files).
TASKS = {
    "rng": "rng/1-10",  # the paper's RNG prompt, uniform over 1..10 (Table 1, Figure 1)
    "rng_train": "rng-train",  # RNG 1–10 and 1–100 in the paper's prompt (Section 4.2, Figure 2)
    "babynames": "babynames/train/p0",  # 200 names drawn from the natural distribution (Table 1)
    "six": "paper-six",  # the leave-one-out tasks (Section 5)
    "biographies": "biographies/train",  # the 210 categorical tuples (Tuned-ID, Section 6.2)
}
OPEN_ENDED = ("babynames", "biographies")  # families whose target set is a sample: early stopping on


# Training settings for the embedded 135M model, which the paper's lr (5e-5, for 7B–13B models) barely
# moves: configs/smollm2-135m/ (lr 1e-3 reaches the loss floor within 50 passes). Other models get the
# paper's (TrainConfig's defaults).
DEFAULT_MODEL_TRAINING: dict = {"lr": 1e-3}


def default_trainer(config, progress: bool) -> dict:
    """Train one adapter with :func:`diffuse_lm.training.train`; returns its summary."""
    from diffuse_lm.training import train

    return train(config, progress=progress).summary


def default_sampler(model, tokenizer, messages: list[dict], n: int, **kw) -> list[str]:
    """``n`` generations of ``messages`` with :func:`diffuse_lm.sampling.generate`."""
    from diffuse_lm.sampling import generate

    return generate(model, tokenizer, messages, n, **kw)


@dataclass
class Context:
    """One ``diffuse reproduce`` run: the model, scale, seed, where adapters are cached, what was loaded, and
    the trainer and sampler every experiment calls (a test hands in fakes here)."""

    model: str = DEFAULT_MODEL
    scale: Scale = QUICK
    seed: int = 0
    out: Path = Path("results/reproduce")
    adapters: Path | None = None  # cache of trained adapters (default: out/adapters)
    device: str | None = None
    dtype: str | None = None
    progress: bool = True
    trained: dict = field(default_factory=dict)  # adapter name -> what training did (for the results)
    loaded: tuple | None = field(default=None, repr=False)  # (model, tokenizer) of the base model
    memo: dict = field(default_factory=dict, repr=False)  # base-model results computed once a run
    # Where adapter() only plans: (name, folder, config) of each adapter asked for, none trained (--jobs)
    planned: list | None = field(default=None, repr=False)
    # trainer(config, progress) -> the training summary (with "adapter_dir"), as diffuse_lm.training.train
    trainer: Callable[..., dict] = field(default=default_trainer, repr=False)
    # sampler(model, tokenizer, messages, n, **kw) -> n texts, as diffuse_lm.sampling.generate
    sampler: Callable[..., list[str]] = field(default=default_sampler, repr=False)

    @property
    def is_default_model(self) -> bool:
        return is_default_model(self.model)


def base(ctx: Context):
    """The base model and tokenizer, loaded once per run."""
    if ctx.loaded is None:
        from diffuse_lm.models import load_model

        ctx.loaded = load_model(ctx.model, device=ctx.device, dtype=ctx.dtype)
    return ctx.loaded


def release(ctx: Context) -> None:
    """Drop the base model (before training loads its own copy: on a GPU two 13B copies may not fit)."""
    ctx.loaded = None
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextmanager
def using(ctx: Context, adapter: str | Path | None) -> Iterator[tuple]:
    """``(model, tokenizer)``: the base model, or the base model with ``adapter`` attached for the block
    (then removed again, so one copy of the base weights serves every adapter)."""
    model, tokenizer = base(ctx)
    if adapter is None:
        yield model, tokenizer
        return
    from diffuse_lm.models import adapter_attached

    with adapter_attached(
        model, adapter, label=f"{model_label(model)} + {Path(adapter).parent.name}"
    ) as tuned:
        yield tuned, tokenizer


# --- trained adapters, cached by config ----------------------------------------------------------


def _task_digest(tasks: list[Task]) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(json.dumps([t.system, t.request, t.targets, t.responses, t.eos]).encode())
        h.update(np.asarray(t.weights, dtype=np.float64).tobytes())
    return h.hexdigest()


def training_settings(ctx: Context) -> dict:
    """Config keys of every training run of ``ctx`` (bar the tasks, passes and the starting adapter)."""
    settings = dict(DEFAULT_MODEL_TRAINING) if ctx.is_default_model else {}
    return {"model": ctx.model, "seed": ctx.seed, "dtype": ctx.dtype, **settings}


def _adapter_run(
    ctx: Context,
    name: str,
    train: Sequence[str],
    passes: int,
    *,
    parent: str | Path | None = None,
    settings: dict | None = None,
) -> tuple[Path, dict, bool]:
    """Where :func:`adapter` keeps that adapter's run (named by a hash of the whole training config and of the
    tasks' contents), its config keys, and whether early stopping is on."""
    tasks = load_tasks(list(train))
    cfg = {**training_settings(ctx), **(settings or {})}
    cfg["train_prompts"] = list(train)
    early = any((t.family or t.name).split("/")[0].lower() in OPEN_ENDED for t in tasks)
    cfg["alg_config"] = {**cfg.get("alg_config", {}), "n_iters": passes, "early_stop": early}
    if parent is not None:
        cfg.update(load_model=True, ckpt_dir=str(parent))
    material = {**cfg, "ckpt_dir": Path(parent).parent.name if parent else None, "tasks": _task_digest(tasks)}
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
    return (ctx.adapters or ctx.out / "adapters") / f"{name}-{key}", cfg, early


def adapter_folder(ctx: Context, name: str, train: Sequence[str], passes: int, **kw) -> Path:
    """The run folder :func:`adapter` trains into, without training (e.g. to find results keyed by it)."""
    return _adapter_run(ctx, name, train, passes, **kw)[0]


def adapter(
    ctx: Context,
    name: str,
    train: Sequence[str],
    passes: int,
    *,
    parent: str | Path | None = None,
    settings: dict | None = None,
) -> Path:
    """The LoRA adapter tuned on the task specs ``train`` for ``passes`` passes (continuing ``parent``
    if given; ``settings`` are further config keys, e.g. ``retain``), trained once: its folder is named by
    a hash of the whole training config and of the tasks' contents, a finished run there is reused as it
    is, an interrupted one resumes from its checkpoint."""
    from diffuse_lm.config import config_from_dict

    folder, cfg, early = _adapter_run(ctx, name, train, passes, parent=parent, settings=settings)
    config = config_from_dict(
        # measure off: every experiment measures its models itself (the trained weights are the same)
        {**cfg, "output_dir": str(folder), "device": ctx.device, "measure": False},
        source=f"training config of {name}",
    )
    if ctx.planned is not None:
        ctx.planned.append((name, folder, config))
        return folder / "adapter"
    cached = (folder / "summary.json").exists()
    if not cached:
        release(ctx)  # training loads its own copy of the model
    summary = ctx.trainer(config, ctx.progress)
    ctx.trained[name] = {
        "folder": str(folder),
        "train_prompts": list(train),
        "parent": str(parent) if parent else None,
        "cached": cached,
        "passes_asked": passes,
        "early_stop": early,
        **{
            k: summary.get(k)
            for k in ("steps", "passes", "early_stopped", "final_loss", "floor", "train_seconds")
        },
    }
    return Path(summary["adapter_dir"])


# --- measuring and sampling ----------------------------------------------------------------------


def exact(model, tokenizer, tasks: list[Task], coverage_n: int) -> list[dict]:
    """Exact metrics of each task (the ``measure`` rows), with ``expected_coverage`` the expected
    Coverage-``coverage_n`` of valid answers (the N the experiment records) in place of measure's
    fixed-N ``expected_coverage_1000``, so a row carries one expected coverage, not two."""
    from diffuse_lm.measuring import measure_tasks

    rows = measure_tasks(model, tokenizer, tasks, coverage_n=coverage_n)["tasks"]
    for row in rows:  # the one expected coverage, under the name the experiments' records give it
        row["expected_coverage"] = row.pop(f"expected_coverage_{coverage_n}")
    return rows


class Exact(Record):
    """A measure row without its per-target list: one model's exact metrics on one task."""

    name: str
    n_targets: int
    mass: float  # probability on the valid answers
    kl: float  # KL(p* ‖ p) over them, renormalised
    entropy: float
    normalized_entropy: float
    target_entropy: float
    expected_coverage: float  # expected Coverage-N of valid answers, N the experiment's


def brief(row: dict) -> dict:
    """A measure row without its per-target list (the fields of :class:`Exact`)."""
    return {k: v for k, v in row.items() if k not in ("targets", "path")}


class Sampled(Record):
    """Answers sampled from one model for one task, summarised as the paper does (Section 2.2)."""

    n: int
    parsed_rate: float  # share of samples with a well-formed answer
    valid_rate: float  # share whose answer is one of the task's
    coverage: int  # Coverage-N (Eq. 4): distinct answers, valid or not
    valid_coverage: int  # distinct valid answers
    entropy: float  # of the empirical distribution of the answers
    top: list[tuple[str, int]]  # the ten most frequent answers with their counts
    texts: list[str]  # the first ``keep_texts`` generations
    seen_rate: float | None = None  # share among the training task's answers (when one is given)
    invented_rate: float | None = None  # share whose answer is well formed but in no valid list


def sample_answers(
    ctx: Context,
    model,
    tokenizer,
    task: Task,
    n: int,
    *,
    temperature: float = 1.0,
    seed: int | None = None,
    keep_texts: int = 0,
    seen: Task | None = None,
) -> Sampled:
    """Sample ``n`` answers to ``task`` and summarise them as the paper does (Section 2.2): Coverage-N
    (distinct answers) and the entropy of the empirical distribution, plus how many were valid targets
    (and, given the training task ``seen``, how many were among its targets)."""
    from diffuse_lm.parsing import summarize_answers, task_answers

    texts = ctx.sampler(
        model,
        tokenizer,
        task.messages(),
        n,
        temperature=temperature,
        max_new_tokens=ctx.scale.answer_max_new_tokens,
        seed=ctx.seed if seed is None else seed,
        batch_size=ctx.scale.batch_size,
    )
    s = summarize_answers(texts, task)
    extra = {}
    if seen is not None:
        extra["seen_rate"] = s.share_in(set(task_answers(seen)[0]))
    return Sampled(
        **extra,
        n=n,
        parsed_rate=s.rate(s.n_well_formed),
        valid_rate=s.rate(s.n_valid),
        invented_rate=s.rate(s.n_invented),
        coverage=s.distinct,
        valid_coverage=s.distinct_valid,
        entropy=s.entropy,
        top=s.answers.most_common(10),
        texts=texts[:keep_texts],
    )


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (0 for fewer than two values)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return float(x.mean()) if len(x) else float("nan"), 0.0
    return float(x.mean()), _t975(len(x) - 1) * float(x.std(ddof=1)) / np.sqrt(len(x))


# Two-sided 95% Student-t quantiles for 1..30 degrees of freedom (scipy is not a dependency).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


def _t975(df: int) -> float:
    return _T975[df - 1] if df <= len(_T975) else 1.96
