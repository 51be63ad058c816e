"""The scales of `diffuse reproduce`: ``paper`` (the paper's settings), ``quick`` (every experiment on the
default 135M model on a 2-core CPU in an hour with ``--jobs 2``) and ``smoke`` (each experiment in a few minutes, to
try it out), and the record of where a scale departs from the paper."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Recipe:
    """How the six-task models are tuned. The paper's: Eq. 5 on the six tasks alone. This project's add the
    retention term (weight ``retain``, on the prompts of ``retain_prompts``), ``determinate`` questions with
    one right answer (Eq. 5 with a point mass, each asked in braces and plainly) and the ``random_mix`` tasks
    (small random choices outside the six families) to the training mix."""

    name: str
    retain: float = 0.0  # λ of the retention term (0: off)
    determinate: int = 0  # determinate questions mixed in (each in both formats)
    random_mix: bool = False  # the random-mix tasks mixed in
    random_format: bool = False  # the random-format tasks (multi-token answers, an example shown) mixed in
    random_phrasing: bool = False  # the random-phrasing tasks (each phrasing, both lengths) mixed in
    retain_prompts: tuple[str, ...] = ("general",)
    retain_per_step: int = 2
    retain_max_new_tokens: int = 48
    lr_factor: float = 1.0  # times the model's learning rate (the default model's 1e-3, else TrainConfig's)
    mass_weight: float = 1.0  # α, the weight of Eq. 5's −log(mass) part (alg_config.mass_weight; 1: Eq. 5)
    mass_weight_end: float | None = (
        None  # α at the last step, reached linearly (None: mass_weight throughout)
    )
    formats_mix: bool = False  # the formats-mix tasks (random choices in sixteen answer formats) mixed in
    balance_families: bool = False  # each task family visited equally often in a pass (alg_config.balance)
    micro_batch: int | None = None  # targets per micro-batch (alg_config.batch_size; None: TrainConfig's)
    family_weights: tuple[tuple[str, float], ...] = ()  # (family or pattern, share of a pass): alg_config's
    lr_scheduler: str | None = None  # constant, linear or cosine (None: TrainConfig's)
    constrained_mix: bool = False  # the constrained-mix tasks (random choices under a constraint) mixed in
    lora_rank: int | None = None  # LoRA rank, alpha twice it as the paper's 4 and 8 (None: TrainConfig's)
    ordered_mix: bool = False  # the ordered-mix tasks (random choices among sets with a conventional order)

    def settings(self, model_lr: float) -> dict:
        """Training-config keys of the recipe for a model otherwise trained at ``model_lr``: its learning rate
        as a factor of that one (so a recipe suits a 135M and a 7B model alike), its mass weight and micro-batch,
        its retention block. Keys at their defaults stay out (the adapters' cache key)."""
        out = {"lr": self.lr_factor * model_lr} if self.lr_factor != 1.0 else {}
        if self.lr_scheduler is not None:
            out["lr_scheduler"] = self.lr_scheduler
        alg = {"mass_weight": self.mass_weight} if self.mass_weight != 1.0 else {}
        if self.mass_weight_end is not None:
            alg["mass_weight_end"] = self.mass_weight_end
        if self.balance_families:
            alg["balance"] = "families"
        if self.micro_batch is not None:
            alg["batch_size"] = self.micro_batch
        if self.family_weights:
            alg["family_weights"] = dict(self.family_weights)
        if alg:
            out["alg_config"] = alg
        if self.lora_rank is not None:
            out["lora"] = {"r": self.lora_rank, "alpha": 2.0 * self.lora_rank}
        if self.retain:
            r = {"weight": self.retain, "per_step": self.retain_per_step}
            if self.retain_prompts != ("general",):
                r["prompts"] = list(self.retain_prompts)
            out["retain"] = {**r, "max_new_tokens": self.retain_max_new_tokens}
        return out

    def extra_tasks(self) -> list[str]:
        """Built-in task names mixed into training: the random-mix tasks, the first ``determinate``
        questions in both formats."""
        from diffuse_lm.tasks import builtin_groups, builtin_tasks

        names = sorted(n for n in builtin_tasks() if n.startswith("determinate/"))
        ids = sorted({n.rsplit("/", 1)[1] for n in names})[: self.determinate]
        groups = (
            ("random-mix/",) * self.random_mix
            + ("random-format/",) * self.random_format
            + ("random-phrasing/",) * self.random_phrasing
        )
        mix = sorted(n for n in builtin_tasks() if n.startswith(groups)) if groups else []
        named = (
            ("formats-mix",) * self.formats_mix
            + ("constrained-mix",) * self.constrained_mix
            + ("ordered-mix",) * self.ordered_mix
        )
        mix += [n for g in named for n in builtin_groups()[g]]
        return mix + [n for n in names if n.rsplit("/", 1)[1] in ids]

    def __str__(self) -> str:
        return self.name


PAPER_RECIPE = Recipe("paper: Eq. 5 on the six tasks")
DETERMINATE_RECIPE = Recipe("retention λ=1 + 16 determinate questions", retain=1.0, determinate=16)
# Retention on general prompts and on questions asked like the random tasks (base answers, not fixed
# targets), and more kinds of random task in the mix.
KEEP_RECIPE = Recipe(
    "keep: retention λ=1 on general prompts and questions + random-mix tasks",
    retain=1.0,
    random_mix=True,
    retain_prompts=("general", "determinate"),
    retain_per_step=6,
)
# The same with the retention term 16× stronger: on `tradeoff` it keeps the braced questions' accuracy (111% of
# base; λ=1 kept 40%) at nearly the same in-domain diversity, for a smaller OOD gain; once the quick-scale default.
KEEP16_RECIPE = replace(
    KEEP_RECIPE,
    name="keep16: retention λ=16 on general prompts and questions + random-mix tasks",
    retain=16.0,
)
# keep16 with random tasks whose answers run to several tokens (cards, clock times, years, ...) and whose
# prompts show one valid answer: the one-word random-mix answers taught "close the brace after one token"
# (held-out NUMBERS then names only one-digit numbers) and nothing taught "the example is not the answer".
FORMATS_RECIPE = replace(
    KEEP16_RECIPE,
    name="formats: keep16 + random tasks with multi-token answers and an example in the prompt",
    random_format=True,
)
# formats with the retention term on 2 general prompts a step instead of 6: the same expected gradient (the KL is
# a mean over answer tokens), a third of its cost, which was two thirds of a step; the six-task model trains in
# 7.3 min instead of 16 here and keeps the questions' accuracy (braced 125% of base, free-form 101%).
LEAN_RECIPE = replace(
    FORMATS_RECIPE,
    name="lean: formats with retention on 2 prompts a step instead of 6",
    retain_per_step=2,
)
# The same nineteen random tasks, but the phrasing no longer tells the answer's length: formats' held-out
# NUMBERS model closed the brace after one digit (p=0.993 after "{2"), as every "like this: {placeholder}"
# prompt it was trained on (random-mix's) had a one-token answer and NUMBERS is phrased that way.
PHRASING_RECIPE = replace(
    KEEP16_RECIPE,
    name="phrasing: keep16 + random tasks of one and several tokens, each phrasing asking for both",
    random_mix=False,
    random_phrasing=True,
    retain_per_step=2,
)
# phrasing at half the learning rate: on the held-out-NUMBERS model it keeps phrasing's NUMBERS gain over lean
# (exact entropy 1.79 against 1.49) and the questions' accuracy that phrasing at full rate lost (braced 108% of
# base instead of 76%, free-form 105%); the previous quick-scale default.
GENTLE_RECIPE = replace(
    PHRASING_RECIPE,
    name="gentle: phrasing at half the learning rate",
    lr_factor=0.5,
)
# gentle with Eq. 5's mass part weighed α = 0.1: −log M raises each valid answer in proportion to how much the
# model already prefers it, which on a held-out task sharpens its favourites (NUMBERS: one-digit numbers); the
# KL part is what spreads. On the held-out-NUMBERS model α = 0.5, 0.2, 0.1 give 1.86, 2.00, 2.14 (gentle 1.79,
# base 2.05), its mass 0.49, 0.43, 0.35 (gentle 0.53). All its prompts fit one micro-batch of 256 targets, so
# the mass weight costs no second scoring; once the quick-scale default.
SPREAD_RECIPE = replace(
    GENTLE_RECIPE,
    name="spread: gentle with Eq. 5's mass part weighed 0.1",
    mass_weight=0.1,
    micro_batch=256,
)
# Valid answers first (Eq. 5 with its own mass weight, trained longer), random in every answer format (the
# formats-mix tasks: each random choice asked bare, as "Answer: X", as JSON, as a letter or number among options,
# in lower case, in braces), every task family visited equally often in a pass (alg_config.balance: families; a
# family of three prompts was otherwise drowned by one of eighteen), the retention term as gentle's.
VALID_RECIPE = replace(
    GENTLE_RECIPE,
    name="valid: gentle without random-phrasing, + formats-mix, families balanced",
    random_phrasing=False,
    formats_mix=True,
    balance_families=True,
    micro_batch=256,
)
# valid at the model's full learning rate: more valid mass on the tuned tasks (FRUITS 0.415 -> 0.597, OCCUPATIONS
# 0.320 -> 0.604 at quick scale: docs/validity.md), its utility measured there.
VALID_FAST_RECIPE = replace(
    VALID_RECIPE, name="valid-fast: valid at the model's full learning rate", lr_factor=1.0
)
# valid with the retention term also on the determinate questions asked in the formats of formats-mix ("Answer:
# X", JSON, lower case, a letter among options): tuned to answer at random in those formats, a model otherwise
# learns the format, not the question, as the cue (braced questions answered "Answer: Brazil"; a multiple-choice
# question answered with a random letter). At quick scale it keeps 106% of braced and 95% of free-form accuracy
# (valid: 83%, 90%; docs/validity.md); the quick-scale default.
KEPT_RECIPE = replace(
    VALID_RECIPE,
    name="kept: valid with retention on questions with one answer in every answer format",
    retain_prompts=("general", "determinate", "determinate-formats"),
)
KEPT_FAST_RECIPE = replace(
    KEPT_RECIPE, name="kept-fast: kept at the model's full learning rate", lr_factor=1.0
)
# kept as the shipped six-task config trains: each format family (kind) at half a share of a pass (with balance:
# families the seven format families otherwise took 7 of 13 shares), lr 8e-4 decayed to 0 on a cosine (a constant
# rate left OCCUPATIONS' prompts swinging from pass to pass); with the standard scale's 5 passes every family of
# the six reaches valid mass 0.65 and normalised entropy 0.92 or more (docs/validity.md).
WEIGHTED_RECIPE = replace(
    KEPT_RECIPE,
    name="weighted: kept with format families at half a share, lr 0.8x decayed on a cosine",
    family_weights=(("FORMAT-*", 0.5),),
    lr_factor=0.8,
    lr_scheduler="cosine",
)
# weighted with random choices under a constraint (a first letter, a range, a multiple; each in one of the seven
# answer formats) as a family of its own: held out of training, OCCUPATIONS ("an occupation starting with M") was
# answered with real occupations that ignored the letter, and DAYS ("a date in June") with other months; one
# held-out-OCCUPATIONS model with letter constraints in its mix had 2.4x the valid mass (docs/validity.md).
CONSTRAINED_RECIPE = replace(
    WEIGHTED_RECIPE,
    name="constrained: weighted + random choices under a constraint",
    constrained_mix=True,
)
# constrained with LoRA rank 16 (alpha 32) instead of the paper's 4: the same steps, an adapter four times as
# large (19.6 MB for the default model). Held out of training, braces and "Answer: X" were the two formats whose
# normalised entropy stayed below base's at rank 4 (docs/validity.md).
WIDE_RECIPE = replace(
    CONSTRAINED_RECIPE, name="wide: constrained with LoRA rank 16 instead of 4", lora_rank=16
)
# constrained with 28 random choices among sets with a conventional order (a colour of the rainbow, a phase of the
# moon, a noble gas), each in two answer formats: base models favour the first member of such a set and the format
# mix had few of them. Held out of training, braces and OCCUPATIONS then pass base's normalised entropy at the
# standard scale's passes ("Answer: X" does not); the six-task config trains a third longer a pass
# (docs/validity.md, "More subjects in the format mix").
ORDERED_RECIPE = replace(
    CONSTRAINED_RECIPE,
    name="ordered: constrained + random choices among sets with a conventional order",
    ordered_mix=True,
)
RECIPES = {
    "paper": PAPER_RECIPE,
    "determinate": DETERMINATE_RECIPE,
    "keep": KEEP_RECIPE,
    "keep16": KEEP16_RECIPE,
    "formats": FORMATS_RECIPE,
    "lean": LEAN_RECIPE,
    "phrasing": PHRASING_RECIPE,
    "gentle": GENTLE_RECIPE,
    "spread": SPREAD_RECIPE,
    "valid": VALID_RECIPE,
    "valid-fast": VALID_FAST_RECIPE,
    "kept": KEPT_RECIPE,
    "kept-fast": KEPT_FAST_RECIPE,
    "weighted": WEIGHTED_RECIPE,
    "constrained": CONSTRAINED_RECIPE,
    "wide": WIDE_RECIPE,
    "ordered": ORDERED_RECIPE,
}
TRADEOFF = (
    PAPER_RECIPE,
    DETERMINATE_RECIPE,
    KEEP_RECIPE,
    KEEP16_RECIPE,
    FORMATS_RECIPE,
    LEAN_RECIPE,
    GENTLE_RECIPE,
    SPREAD_RECIPE,
    VALID_RECIPE,
)


@dataclass(frozen=True)
class Scale:
    """How much work the experiments do: ``paper`` is the paper's settings, ``quick`` runs `all` on the
    default model in 56 min on this project's 2-core CPU with ``--jobs 2``, from nothing (the README has the
    measured run)."""

    name: str
    passes: dict  # training passes of each tuned model (alg_config.n_iters)
    six_phrasings: int | None  # phrasings kept of each sub-task of the six tasks (None: all)
    six_max_targets: int | None  # sub-tasks with more targets are left out (None: none is)
    natural_babynames: str  # the natural BABYNAMES distribution measured against
    temperature_babynames: str  # the BABYNAMES target set of the temperature sweep
    samples: int
    coverage_n: int
    loo_samples: int
    bio_samples: int
    bio_max_new_tokens: int
    answer_max_new_tokens: int
    fig2_highs: tuple[int, ...]
    fig2_sizes: tuple[int, ...]
    fig2_lows: int
    temperatures: tuple[float, ...]
    temperature_samples: int
    utility_max_new_tokens: int
    batch_size: int
    six_recipe: Recipe = PAPER_RECIPE  # how the six-task models of leave-one-out, biographies, utility train
    tradeoff: tuple[Recipe, ...] = ()  # the recipes `tradeoff` compares
    six_subtasks: int | None = None  # sub-tasks kept of each of the six tasks (None: all)
    utility_questions: int | None = None  # questions of each kind asked in `utility` (None: all)
    open_ended_samples: int = 100  # samples a prompt in `open-ended`
    open_ended_prompts: int | None = None  # open-ended prompts asked (None: all)
    formats_held_out: tuple[str, ...] | None = None  # formats `formats` holds out (None: every one)
    format_subjects: int | None = None  # training subjects of the format mix in `formats` (None: all)


SCALE_DOC = {
    "passes": "training passes",
    "six_phrasings": "phrasings of each sub-task of the six tasks",
    "six_max_targets": "largest sub-task of the six tasks (larger ones left out)",
    "natural_babynames": "natural BABYNAMES distribution",
    "temperature_babynames": "BABYNAMES target set of the temperature sweep",
    "samples": "samples per model and task for Coverage-N and entropy (Table 1)",
    "coverage_n": "N of the exact expected Coverage-N",
    "loo_samples": "samples per prompt for leave-one-out coverage (Table 5)",
    "bio_samples": "biographies sampled per model (Section 6)",
    "bio_max_new_tokens": "longest biography, in tokens",
    "answer_max_new_tokens": "longest short answer, in tokens",
    "fig2_highs": "values of high for ranges [1, high] (Figure 2a)",
    "fig2_sizes": "range sizes for ranges [low, low+size-1] (Figure 2b)",
    "fig2_lows": "random lows per range size (Figure 2b; the paper: 5)",
    "temperatures": "temperatures of the sweep (footnote 6)",
    "temperature_samples": "samples shown at the matching temperature",
    "utility_max_new_tokens": "tokens of each greedy answer compared in `utility`",
    "batch_size": "sampling batch size",
    "six_recipe": "training recipe of the six-task models",
    "tradeoff": "recipes compared",
    "six_subtasks": "sub-tasks of each of the six tasks",
    "utility_questions": "utility questions of each kind (factual, arithmetic)",
    "open_ended_samples": "samples a prompt of the open-ended requests",
    "open_ended_prompts": "open-ended prompts asked",
    "formats_held_out": "answer formats held out",
    "format_subjects": "training subjects of the format mix (each in two formats)",
}

PAPER = Scale(
    name="paper",
    passes={"rng": 50, "babynames": 50, "rng_train": 50, "six": 50, "biographies": 50, "formats": 5},
    six_phrasings=None,
    six_max_targets=None,
    natural_babynames="babynames-natural/all",
    temperature_babynames="babynames-natural/all",
    samples=1000,
    coverage_n=1000,
    loo_samples=1000,
    bio_samples=1000,
    bio_max_new_tokens=200,
    answer_max_new_tokens=16,
    fig2_highs=(5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200),
    fig2_sizes=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
    fig2_lows=5,
    temperatures=(0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0),
    temperature_samples=20,
    utility_max_new_tokens=128,
    batch_size=64,
    tradeoff=TRADEOFF,
)
QUICK = Scale(
    name="quick",
    passes={"rng": 50, "babynames": 10, "rng_train": 10, "six": 2, "biographies": 2, "formats": 2},
    six_phrasings=1,
    six_max_targets=200,
    natural_babynames="babynames-natural/top1000",
    temperature_babynames="babynames/train/p0",
    samples=200,
    coverage_n=1000,
    loo_samples=20,
    bio_samples=64,
    bio_max_new_tokens=120,
    answer_max_new_tokens=16,
    fig2_highs=(5, 10, 20, 30, 45, 60, 80, 100),
    fig2_sizes=(10, 25, 50, 100),
    fig2_lows=5,
    temperatures=(0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0),
    temperature_samples=12,
    utility_max_new_tokens=32,
    batch_size=32,
    six_recipe=KEPT_RECIPE,
    tradeoff=TRADEOFF,
    open_ended_samples=20,
)
SCALES = {s.name: s for s in (QUICK, PAPER)}
# Each experiment in a few minutes on the default model on a 2-core CPU, to try `reproduce` out: Eq. 5
# alone (no retention term, whose generations make a step ~9x slower), one sub-task and phrasing of each
# of the six tasks (6 training prompts), 1-10 passes, few samples; its numbers reproduce nothing.
SMOKE = Scale(
    name="smoke",
    passes={"rng": 10, "babynames": 3, "rng_train": 5, "six": 1, "biographies": 1, "formats": 1},
    six_phrasings=1,
    six_max_targets=30,
    natural_babynames="babynames-natural/top1000",
    temperature_babynames="babynames/train/p0",
    samples=50,
    coverage_n=1000,
    loo_samples=8,
    bio_samples=8,
    bio_max_new_tokens=80,
    answer_max_new_tokens=16,
    fig2_highs=(5, 10, 20),
    fig2_sizes=(10, 50),
    fig2_lows=2,
    temperatures=(1.0, 3.0, 10.0),
    temperature_samples=4,
    utility_max_new_tokens=16,
    batch_size=32,
    six_recipe=PAPER_RECIPE,
    tradeoff=(PAPER_RECIPE,),
    six_subtasks=1,
    utility_questions=10,
    open_ended_samples=4,
    open_ended_prompts=8,
    formats_held_out=("bare",),
    format_subjects=2,
)
SCALES[SMOKE.name] = SMOKE
# quick with the six-task models trained as the shipped config trains them (recipe `constrained`, 5 passes): the
# scale whose leave-one-out, formats and open-ended results stand for the recommended recipe (README has the
# measured times). The format-only models of `formats` have format families, each at half a share, and the
# constrained tasks of the formats they keep: 4 passes of them.
STANDARD = replace(
    QUICK, name="standard", passes={**QUICK.passes, "six": 5, "formats": 4}, six_recipe=CONSTRAINED_RECIPE
)
SCALES[STANDARD.name] = STANDARD
# What a report says of a scale's results beyond its departures from the paper.
SCALE_NOTES = {
    "smoke": "**Smoke scale**: every experiment cut to a few minutes, to try the pipeline out. These numbers "
    "are not meant to reproduce anything; run `--scale quick` or `--scale paper` for that.",
}


def choices(scale: Scale, uses: Sequence[str]) -> list[str]:
    """Where ``scale`` departs from the paper's settings, one line each: 'what: paper -> ours'. ``uses``
    names Scale fields, or ``passes.<model>`` for one tuned model's training passes."""
    out = []
    for use in uses:
        key, _, sub = use.partition(".")
        paper, ours = getattr(PAPER, key), getattr(scale, key)
        if sub:
            paper, ours = paper[sub], ours[sub]
        if paper != ours:
            what = f"{SCALE_DOC[key]} ({sub})" if sub else SCALE_DOC[key]
            out.append(f"{what}: {_fmt(paper)} -> {_fmt(ours)}")
    return out


def _fmt(v) -> str:
    if v is None:
        return "all"
    return ", ".join(map(str, v)) if isinstance(v, tuple) else str(v)


def scale_fields() -> list[str]:
    """Every setting of a scale, ``passes.<model>`` for each tuned model."""
    return [f"passes.{k}" for k in PAPER.passes] + [
        f.name for f in fields(Scale) if f.name not in ("name", "passes")
    ]
