"""Named distribution families as tasks: "one number from a normal distribution with mean 50 and sd 10",
binomial, Poisson, geometric, exponential, uniform ranges and categorical choices with given weights.

A family spec is a small mapping (a YAML file a user writes, or an entry of the built-in ``families.yaml``)::

    family: normal
    mean: 50
    sd: 10
    support: [20, 80]   # the values allowed, inclusive
    step: 1             # their spacing (continuous families)

It becomes one task per phrasing and answer format, each with p* the family's probabilities on the
discretised, truncated support (renormalised over it) and, for numeric families, ``values``: the number
each target stands for, so that ``measure`` reports the distances of ordered supports (total variation,
Kolmogorov–Smirnov, Wasserstein-1, mean and sd). A continuous family's value ``x`` stands for the interval
``[x - step/2, x + step/2]`` (rounding to the grid), so p*(x) is the family's mass there. Every problem is a
one-line :class:`~diffuse_lm.tasks.TaskError`.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from string import Template

import numpy as np

from diffuse_lm.errors import shorten
from diffuse_lm.task_model import Task, TaskError, task_from_dict

MAX_SUPPORT = 1000  # values a family's support may have: more would make every step score 1000+ targets

# Phrasings of each family, with $-placeholders for its parameters; $unit is "whole number" or "0.5".
PHRASINGS: dict[str, tuple[str, ...]] = {
    "normal": (
        "Draw one number at random from a normal distribution with mean $mean and standard deviation $sd, "
        "rounded to the nearest $unit.",
        "Sample a single value from a Gaussian distribution N($mean, $sd²) and round it to the nearest $unit.",
        "Act as a random number generator that follows a normal distribution (mean $mean, standard "
        "deviation $sd). Give one draw, rounded to the nearest $unit.",
    ),
    "binomial": (
        "Draw one number from a binomial distribution with $n trials and success probability $p.",
        "Simulate flipping a biased coin $n times, where each flip lands heads with probability $p, and "
        "report how many heads came up.",
        "Give one random draw from Binomial(n = $n, p = $p).",
    ),
    "poisson": (
        "Draw one number from a Poisson distribution with mean $rate.",
        "On average $rate emails arrive per hour (a Poisson process). Simulate one hour and report how many "
        "emails arrived.",
        "Give one random draw from Poisson($rate).",
    ),
    "geometric": (
        "Draw one number from a geometric distribution with success probability $p: the number of trials "
        "up to and including the first success.",
        "Each try succeeds with probability $p. Simulate trying until the first success and report how "
        "many tries it took, the successful one included.",
        "Give one random draw from Geometric($p), counting the trials up to and including the first success.",
    ),
    "exponential": (
        "Draw one waiting time from an exponential distribution with mean $mean, rounded to the nearest "
        "$unit.",
        "The time until the next bus follows an exponential distribution with a mean of $mean minutes. "
        "Simulate one waiting time in minutes, rounded to the nearest $unit.",
        "Give one random draw from an exponential distribution with rate 1/$mean, rounded to the nearest "
        "$unit.",
    ),
    "uniform": (
        "Pick a number uniformly at random from $low to $high (in steps of $step).",
        "Draw one value from the discrete uniform distribution on $low, $low_next, …, $high.",
        "Act as a fair random number generator: give one number between $low and $high (in steps of "
        "$step), every one of them equally likely.",
    ),
    "categorical": (
        "Pick one of the following at random, with these probabilities: $choices.",
        "Choose one option, where the chance of each is: $choices.",
        "Sample one item from this categorical distribution: $choices.",
    ),
}
FAMILIES = tuple(PHRASINGS)
SUPPORT_CLAUSE = " Only values from $low to $high are allowed."
FORMATS = {
    "braced": "Output only the $what between two curly braces, like this: {$what}. Don't output code.",
    "plain": "Output only the $what and nothing else.",
}
# Keys of a spec, beside each family's parameters.
COMMON_KEYS = {"family", "name", "description", "support", "step", "formats", "phrasings", "system"}
PARAMETERS = {
    "normal": ("mean", "sd"),
    "binomial": ("n", "p"),
    "poisson": ("rate",),
    "geometric": ("p",),
    "exponential": ("mean",),
    "uniform": (),
    "categorical": ("choices",),
}
CONTINUOUS = {"normal", "exponential", "uniform"}  # families with a step


def is_family_spec(data: object) -> bool:
    """A mapping that names a family and no targets: a spec, not a task."""
    return isinstance(data, dict) and "family" in data and "targets" not in data and "request" not in data


def family_tasks(spec: dict, source: str) -> list[Task]:
    """Every task of one family spec: one a phrasing and format, named ``<name>/<format>/p<k>``."""
    return [task_from_dict(d, source=source) for d in family_task_dicts(spec, source)]


def family_task_dicts(spec: dict, source: str) -> list[dict]:
    """The task-file mappings of one family spec (what ``scripts/make_calibration_tasks.py`` writes for the
    built-in families)."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"{source}: {problem}")

    family = spec.get("family")
    if not isinstance(family, str) or family not in PHRASINGS:
        raise fail(f"unknown distribution family {shorten(family)} (known: {', '.join(FAMILIES)})")
    allowed = COMMON_KEYS | set(PARAMETERS[family])
    unknown = sorted(map(str, set(spec) - allowed))
    if unknown:
        raise fail(f"{family}: unknown key {shorten(unknown[0])} (known: {', '.join(sorted(allowed))})")
    params = {k: spec.get(k) for k in PARAMETERS[family]}
    if family == "categorical":
        labels, weights, fields = _categorical(params["choices"], fail)
        values = None
    else:
        for key, v in params.items():
            params[key] = _finite(v, f"{family}: {key}", fail)
        values, weights, fields = _numeric(family, params, spec, fail)
        decimals = _decimals(values, spec.get("step", 1))
        labels = [_fmt(v, decimals) for v in values]
    what = "number" if values is not None else "choice"
    formats = spec.get("formats", list(FORMATS))
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        raise fail(f"formats must be a non-empty list of {', '.join(FORMATS)}, got {shorten(formats)}")
    phrasings = spec.get("phrasings", list(range(len(PHRASINGS[family]))))
    k_max = len(PHRASINGS[family]) - 1
    if (
        not isinstance(phrasings, list)
        or not phrasings
        or any(isinstance(p, bool) or p not in range(k_max + 1) for p in phrasings)
    ):
        raise fail(
            f"phrasings must be a non-empty list of numbers from 0 to {k_max}, got {shorten(phrasings)}"
        )
    name = spec.get("name") or _default_name(family, params, fields)
    if not isinstance(name, str):
        raise fail("name must be a string")
    clause = "" if family in ("categorical", "binomial") else Template(SUPPORT_CLAUSE).substitute(fields)
    description = spec.get("description") or _describe(family, params, fields, len(labels))
    out = []
    for fmt in formats:
        targets = [f"{{{x}}}" for x in labels] if fmt == "braced" else list(labels)
        for k in phrasings:
            request = Template(PHRASINGS[family][k]).substitute(fields) + clause
            data = {
                "name": f"{name}/{fmt}/p{k}",
                "family": family.upper(),
                "description": description,
                "request": f"{request} {Template(FORMATS[fmt]).substitute(what=what)}",
                "targets": targets,
                "weights": [float(w) for w in weights],
            }
            if values is not None:
                data["values"] = [float(v) for v in values]
            if spec.get("system") is not None:
                data["system"] = spec["system"]
            out.append(data)
    return out


def _finite(value: object, what: str, fail) -> float:
    if value is None:
        raise fail(f"{what} is missing")
    if isinstance(value, str):  # YAML 1.1 reads 1e6 (no dot, no exponent sign) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"{what} must be a number, got {shorten(value)}")
    if not math.isfinite(value):
        raise fail(f"{what} is {value} (must be finite)")
    return float(value)


def _numeric(family: str, params: dict, spec: dict, fail) -> tuple[np.ndarray, np.ndarray, dict]:
    """Values of the support, p* on them, and the placeholders of the phrasings."""
    step = _finite(spec.get("step", 1), f"{family}: step", fail)
    if step <= 0:
        raise fail(f"{family}: step must be > 0, got {step:g}")
    if family not in CONTINUOUS and step != 1:
        raise fail(f"{family}: step must be 1 (a family of whole numbers)")
    rules = {
        "normal": [("sd", lambda v: v > 0, "> 0")],
        "binomial": [
            ("n", lambda v: v == int(v) and v >= 1, "a whole number >= 1"),
            ("p", _prob, "in [0, 1]"),
        ],
        "poisson": [("rate", lambda v: v > 0, "> 0")],
        "geometric": [("p", lambda v: 0 < v <= 1, "in (0, 1]")],
        "exponential": [("mean", lambda v: v > 0, "> 0")],
    }
    for key, ok, rule in rules.get(family, []):
        if not ok(params[key]):
            raise fail(f"{family}: {key} must be {rule}, got {params[key]:g}")
    low, high = _support(family, params, spec.get("support"), fail)
    span = (high - low) / step
    if not math.isfinite(span) or span >= MAX_SUPPORT:
        count_text = f"{math.floor(span) + 1:,}" if math.isfinite(span) else "too many"
        raise fail(
            f"{family}: support [{low:g}, {high:g}] in steps of {step:g} has {count_text} values "
            f"(at most {MAX_SUPPORT:,})"
        )
    count = math.floor(span + 1e-9) + 1
    if count > MAX_SUPPORT:
        raise fail(
            f"{family}: support [{low:g}, {high:g}] in steps of {step:g} has {count:,} values (at most {MAX_SUPPORT:,})"
        )
    values = np.array([float(Decimal(repr(low)) + k * Decimal(repr(step))) for k in range(count)])
    with np.errstate(under="ignore"):
        weights = _masses(family, params, values, step)
    total = float(weights.sum())
    if not total > 0 or not math.isfinite(total):
        raise fail(f"{family}: p* is zero on every value of the support [{low:g}, {high:g}] (move it)")
    decimals = _decimals(values, step)
    fields = {
        **{k: _num(v) for k, v in params.items()},
        "low": _fmt(low, decimals),
        "high": _fmt(high, decimals),
        "step": _fmt(step, decimals),
        "low_next": _fmt(values[1] if count > 1 else low, decimals),
        "unit": "whole number" if step == 1 else _fmt(step, decimals),
    }
    return values, weights / total, fields


def _prob(v: float) -> bool:
    return 0 <= v <= 1


def _support(family: str, params: dict, support: object, fail) -> tuple[float, float]:
    """[low, high]: given, or the family's own where it has one (binomial: 0..n; Poisson and geometric: up
    to the point past which less than 1e-6 of the mass lies)."""
    if support is None:
        if family == "binomial":
            return 0.0, params["n"]
        if family == "poisson":
            rate = params["rate"]
            k = math.floor(rate)
            while _poisson_tail(rate, k) > 1e-6:
                k += max(1, int(math.sqrt(rate)) // 4)
                if k > rate + MAX_SUPPORT:
                    break
            return 0.0, float(k)
        if family == "geometric":
            p = params["p"]
            high = 1.0 if p == 1 else math.ceil(math.log(1e-6) / math.log1p(-p))
            return 1.0, float(high)
        raise fail(f"{family}: needs a support, e.g. support: [20, 80]")
    if not isinstance(support, list) or len(support) != 2:
        raise fail(f"{family}: support must be a list [low, high], got {shorten(support)}")
    low, high = (_finite(v, f"{family}: support", fail) for v in support)
    if low > high:
        raise fail(f"{family}: support [{low:g}, {high:g}] is empty (low is above high)")
    if family in ("binomial", "poisson", "geometric") and (low != int(low) or high != int(high)):
        raise fail(f"{family}: support must be whole numbers, got [{low:g}, {high:g}]")
    return low, high


def _poisson_tail(rate: float, k: int) -> float:
    """P(X > k) for X ~ Poisson(rate), bounded above by the next term times a geometric series."""
    log_term = (k + 1) * math.log(rate) - rate - math.lgamma(k + 2)
    ratio = rate / (k + 2)
    return math.exp(log_term) / (1 - ratio) if ratio < 1 else 1.0


def _masses(family: str, params: dict, values: np.ndarray, step: float) -> np.ndarray:
    """Unnormalised p* on the support: a discrete family's pmf, a continuous one's mass per grid interval."""
    if family == "normal":
        z = lambda x: (x - params["mean"]) / (params["sd"] * math.sqrt(2))  # noqa: E731
        # P(a < X < b) from erfc on the side away from the mean: no cancellation in the tails
        out = []
        for x in values:
            a, b = z(x - step / 2), z(x + step / 2)
            out.append((math.erfc(a) - math.erfc(b)) / 2 if a > 0 else (math.erfc(-b) - math.erfc(-a)) / 2)
        return np.array(out)
    if family == "exponential":
        lam = 1 / params["mean"]
        a, b = np.maximum(values - step / 2, 0), np.maximum(values + step / 2, 0)
        return np.exp(-lam * a) - np.exp(-lam * b)
    if family == "uniform":
        return np.ones(len(values))
    k = values.astype(np.int64)
    if family == "binomial":
        n, p = int(params["n"]), params["p"]
        keep = (k >= 0) & (k <= n)
        if p in (0.0, 1.0):
            return ((k == (0 if p == 0 else n)) & keep).astype(float)
        logc = np.array(
            [
                math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) if 0 <= j <= n else 0
                for j in k
            ]
        )
        return np.where(keep, np.exp(logc + k * math.log(p) + (n - k) * math.log1p(-p)), 0.0)
    if family == "poisson":
        rate = params["rate"]
        lg = np.array([math.lgamma(j + 1) if j >= 0 else 0.0 for j in k])
        return np.where(k >= 0, np.exp(k * math.log(rate) - rate - lg), 0.0)
    p = params["p"]  # geometric, on 1, 2, ...
    if p == 1:
        return (k == 1).astype(float)
    return np.where(k >= 1, np.exp((k - 1) * math.log1p(-p) + math.log(p)), 0.0)


def _categorical(choices: object, fail) -> tuple[list[str], np.ndarray, dict]:
    """Labels, p* and the ``$choices`` text of ``choices: {red: 0.5, green: 0.3, blue: 0.2}``."""
    if not isinstance(choices, dict) or not choices:
        raise fail(f"categorical: choices must be a mapping of option to weight, got {shorten(choices)}")
    if len(choices) > MAX_SUPPORT:
        raise fail(f"categorical: {len(choices):,} choices (at most {MAX_SUPPORT:,})")
    labels, weights = [], []
    for label, w in choices.items():
        if not isinstance(label, str) or not label.strip():
            raise fail(f"categorical: choice {shorten(label)} must be a non-empty string (quote it in YAML)")
        w = _finite(w, f"categorical: weight of {shorten(label)}", fail)
        if w < 0:
            raise fail(f"categorical: weight of {shorten(label)} is negative ({w:g})")
        labels.append(label)
        weights.append(w)
    total = sum(weights)
    if total <= 0:
        raise fail("categorical: weights are all zero")
    p = np.array(weights) / total
    text = ", ".join(f"{label} {_percent(q)}" for label, q in zip(labels, p, strict=True))
    return labels, p, {"choices": text}


def _percent(q: float) -> str:
    return f"{q * 100:.0f}%" if abs(q * 100 - round(q * 100)) < 1e-9 else f"{q * 100:.1f}%"


def _decimals(values: np.ndarray, step: float) -> int:
    """Decimal places that write every value of the grid exactly (0 for whole numbers)."""
    try:
        places = [-Decimal(repr(float(v))).normalize().as_tuple().exponent for v in [step, *values[:1]]]
    except InvalidOperation:
        return 6
    return max(0, min(6, max(places)))


def _fmt(v: float, decimals: int) -> str:
    """A value of the grid as a person writes it: the grid's decimal places at most, no trailing zeros."""
    v = float(v) + 0.0  # no "-0"
    return str(int(round(v))) if decimals == 0 else f"{v:.{decimals}f}".rstrip("0").rstrip(".")


def _num(v: float) -> str:
    """A parameter as a person writes it: 50, 0.3, 2.5."""
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _default_name(family: str, params: dict, fields: dict) -> str:
    if family == "uniform":
        return f"uniform-{fields['low']}-{fields['high']}"
    if family == "categorical":
        return "categorical-" + "-".join(str(k).lower().replace(" ", "-") for k in params["choices"])[:60]
    return "-".join([family, *(_num(v) for v in params.values())])


def _describe(family: str, params: dict, fields: dict, size: int) -> str:
    if family == "categorical":
        return f"One choice drawn from a categorical distribution: {fields['choices']}."
    shown = ", ".join(f"{k} {fields[k]}" for k in params)
    grid = f"{fields['low']} to {fields['high']} in steps of {fields['step']}"
    return (
        f"One draw from a {family} distribution ({shown or 'uniform'}), on {grid} ({size} values), "
        "p* its mass there renormalised (a continuous family's value stands for its rounding interval)."
    )
