"""The Python API: what the ``diffuse`` commands do, as calls on objects you hold (a model, tasks), returning
records you can turn into JSON or a pandas DataFrame. Import it from the package: ``from diffuse_lm import
measure, sample, train, load_model, make_task``."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffuse_lm.errors import DiffuseError
from diffuse_lm.model_info import DEFAULT_MODEL
from diffuse_lm.tasks import Task, load_tasks, task_from_dict

if TYPE_CHECKING:
    from diffuse_lm.config import TrainConfig
    from diffuse_lm.measuring import Measurement
    from diffuse_lm.training import TrainResult


def make_task(
    request: str,
    targets: Sequence[str],
    weights: Sequence[float] | None = None,
    *,
    name: str = "task",
    system: str | None = None,
    eos: bool = True,
    valid: Sequence[str] | str | None = None,
) -> Task:
    """A task built in code: the prompt, its targets, the wanted weights (uniform by default) and, optionally,
    broader ``valid`` answers (a list, or a task name whose targets they are), validated as a task file is."""
    data: dict[str, Any] = {"request": request, "targets": list(targets), "eos": eos, "name": name}
    if valid is not None:
        data["valid"] = valid if isinstance(valid, str) else list(valid)
    if weights is not None:
        data["weights"] = [float(w) for w in weights]
    if system is not None:
        data["system"] = system
    return task_from_dict(data, source=f"task {name!r}", name=name)


def _tasks(tasks: Task | str | Sequence[Task | str]) -> list[Task]:
    """Tasks from Task objects, built-in names, files or folders (or a mix)."""
    items = [tasks] if isinstance(tasks, Task | str) else list(tasks)
    out: list[Task] = []
    for t in items:
        out.extend([t] if isinstance(t, Task) else load_tasks([t]))
    return out


def measure(
    model, tokenizer, tasks: Task | str | Sequence[Task | str], *, progress: bool = False
) -> Measurement:
    """Score every target of every task by teacher forcing (no sampling) and compute the metrics."""
    from diffuse_lm.measuring import Measurement, measure_tasks

    return Measurement.from_json(measure_tasks(model, tokenizer, _tasks(tasks), progress=progress))


def sample(model, tokenizer, task: Task | str, n: int, **settings: Any) -> list[dict]:
    """``n`` generations for ``task`` (pure sampling by default, as in the paper), each with its parsed
    answer and whether the task accepts it (a target or a broader valid answer, as ``diffuse stats`` counts):
    ``{"index", "text", "answer", "valid"}``.
    ``settings`` are those of :func:`diffuse_lm.sampling.generate_records` (temperature, top_p, top_k,
    min_p, max_new_tokens, seed, batch_size, progress)."""
    from diffuse_lm.parsing import AnswerKey
    from diffuse_lm.sampling import generate

    (task,) = _tasks(task)[:1]
    settings.setdefault("what", task.name)  # for the progress bar
    texts = generate(model, tokenizer, task.messages(), n, responses=task.responses, **settings)
    key = AnswerKey(task)
    answers = [key.answer(t) for t in texts]
    return [
        {"index": i, "text": t, "answer": a, "valid": key.is_valid(a)}
        for i, (t, a) in enumerate(zip(texts, answers, strict=True))
    ]


def train(
    config: Any = None,
    /,
    *,
    model: Any = None,
    tokenizer: Any = None,
    tasks: Task | str | Sequence[Task | str] | None = None,
    progress: bool = False,
    overwrite: bool = False,
    **keys: Any,
) -> TrainResult:
    """Tune a LoRA adapter with the distribution-matching loss (and the retention term, if configured).

    ``config`` is a :class:`TrainConfig`, a dict of config keys or a YAML file; ``keys`` set (dotted) keys on
    top, e.g. ``train(tasks=["rng/1-10"], lr=1e-3, alg_config={"n_iters": 20})``. ``model``: a name or path
    to load (the config's ``model`` key), or a model you hold, with its ``tokenizer`` (peft wraps it in place,
    as ``get_peft_model`` does; its device and dtype are kept). ``tasks`` (or ``train_prompts``) and ``test_prompts``: Task objects, built-in names,
    files, passed to the run as they are. Without ``output_dir`` nothing is written and the tuned model comes back
    in memory; with it the run lives there (resumable: its ``config.yaml`` names in-memory tasks by task files
    under ``$DIFFUSE_CACHE/tasks``, so that ``diffuse train`` can resume it).
    Returns a :class:`~diffuse_lm.training.TrainResult`: the tuned PEFT ``model``, ``adapter_dir``, ``steps``,
    ``losses`` and the ``before``/``after`` measurements."""
    from pathlib import Path

    from diffuse_lm.errors import DiffuseError
    from diffuse_lm.training import train as run

    if isinstance(model, str | Path):  # a name to load, as TRL's trainers take one: the config's model key
        keys["model"], model = str(model), None
    if tasks is not None:
        if "train_prompts" in keys:
            raise DiffuseError("train(): give tasks= or train_prompts=, not both")
        keys["train_prompts"] = tasks
    given = {key: _tasks(keys[key]) for key in ("train_prompts", "test_prompts") if key in keys}
    data = _config_data(config, "output_dir" in keys)
    on_disk = keys.get("output_dir", data.get("output_dir")) is not None
    for key, listed in given.items():  # a resumable run names its tasks by specs it can read back
        keys[key] = _task_specs(keys[key]) if on_disk else [t.name for t in listed]
    cfg = _config(data, keys)
    return run(
        cfg,
        model=model,
        tokenizer=tokenizer,
        tasks=given.get("train_prompts"),
        eval_tasks=given.get("test_prompts"),
        progress=progress,
        overwrite=overwrite,
    )


def train_from_config(
    config: str | Path,
    overrides: Sequence[str] = (),
    *,
    progress: bool = False,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict:
    """Train the run a YAML config (or a shipped config's name) describes, with ``KEY=VALUE`` overrides, into
    its ``output_dir`` (resumed if it holds this config's run): ``diffuse train``. Returns the run's summary
    (``adapter_dir``, ``steps``, ``final_loss``, ``before``/``after``, …)."""
    from diffuse_lm.config import load_config
    from diffuse_lm.models import quiet_transformers
    from diffuse_lm.training import train as run

    cfg = load_config(config, list(overrides))
    if cfg.output_dir is None:  # null: the in-memory run of train(); this one writes a run folder
        raise DiffuseError(f"{config}: output_dir: the folder the run is written to, not null")
    quiet_transformers(verbose)
    return run(cfg, progress=progress, overwrite=overwrite, inputs=[str(config)]).summary


def _config_data(config: Any, output_dir_given: bool) -> dict:
    """The config's keys as data: from a :class:`TrainConfig`, a dict, or a YAML file (relative paths there
    resolved; its ``output_dir`` may be missing when the call gives one)."""
    from pathlib import Path

    from diffuse_lm.config import TrainConfig, load_config

    if isinstance(config, TrainConfig):
        return config.model_dump(mode="json")
    if isinstance(config, str | Path):
        return load_config(config, ["output_dir=null"] if output_dir_given else []).model_dump(mode="json")
    return {"output_dir": None, **dict(config or {})}


def _config(data: dict, keys: dict[str, Any]) -> TrainConfig:
    """``data`` with ``keys`` set on it (dotted keys, and the aliases of TrainingArguments, as a config file
    takes them), validated by the model: a bad key or value is one line naming it."""
    from diffuse_lm.config import ALIASES, config_from_dict, set_dotted

    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key, value in keys.items():
        set_dotted(data, ALIASES.get(key, key), value.tolist() if isinstance(value, np.ndarray) else value)
    return config_from_dict(data, source="train()")


def task_to_dict(task: Task) -> dict:
    """A task as task-file data (what ``task_from_dict`` reads back to an equal task)."""
    data = {"name": task.name, "request": task.request, "targets": list(task.targets)}
    data["weights"] = [float(w) for w in task.weights]
    data["response"] = list(task.responses)
    data["eos"] = task.eos
    for key in ("system", "family", "description"):
        if getattr(task, key) is not None:
            data[key] = getattr(task, key)
    if task.valid:
        data["valid"] = list(task.valid)
    return data


def _task_specs(items: Any) -> list[str]:
    """Task specs for a config: names and paths as they are, each run of Task objects as one JSONL task file
    named by its content under ``$DIFFUSE_CACHE/tasks/`` (written once, never changed, so a run can resume
    from it; a dataset of thousands of rows is one file)."""
    import hashlib
    import json
    from itertools import groupby

    from diffuse_lm.files import write_text_atomic
    from diffuse_lm.models import cache_dir

    specs = []
    items = [items] if isinstance(items, Task | str) else list(items)
    for is_task, run in groupby(items, key=lambda item: isinstance(item, Task)):
        if not is_task:
            specs += list(run)
            continue
        text = "".join(json.dumps(task_to_dict(t), sort_keys=True) + "\n" for t in run)
        path = cache_dir() / "tasks" / f"tasks-{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
        if not path.exists():
            write_text_atomic(path, text)
        specs.append(str(path))
    return specs


# --- what the `diffuse` commands call: each command is argument parsing, one of these, and printing -----

# Public names re-exported as they are, imported on first use (``import diffuse_lm.api`` loads no torch):
# name -> "module" (same name there) or "module:name".
_REEXPORTS = {
    "builtin_tasks": "diffuse_lm.tasks",
    "builtin_groups": "diffuse_lm.tasks",
    "builtin_configs": "diffuse_lm.config",
    "default_model_path": "diffuse_lm.models",
    "quiet_libraries": "diffuse_lm.models:quiet_transformers",
    "sample_stats": "diffuse_lm.parsing",
    "summarize_answers": "diffuse_lm.parsing",
    "AnswerKey": "diffuse_lm.parsing",
    "samples_sidecar": "diffuse_lm.samples_file:meta_path",
    "check_samples_file": "diffuse_lm.samples_file:check_not_locked",
    "check_writable": "diffuse_lm.output_checks",
    "write_json": "diffuse_lm.files:write_json_atomic",
    "write_text": "diffuse_lm.files:write_text_atomic",
    "write_rows": "diffuse_lm.files:write_rows_atomic",
    "check_rows_path": "diffuse_lm.files",
    "locked": "diffuse_lm.files:held_lock",
    "export": "diffuse_lm.export",
    "check_hub": "diffuse_lm.export",
    "push_to_hub": "diffuse_lm.export",
    "COMPARE_METHODS": "diffuse_lm.compare:METHODS",
    "parse_methods": "diffuse_lm.compare",
    "compare_markdown": "diffuse_lm.compare:markdown_table",
    "plot_compare": "diffuse_lm.compare",
    "synth_biographies": "diffuse_lm.biography_dataset",
    "BIOGRAPHY_OUTPUTS": "diffuse_lm.biography_dataset:OUTPUTS",
    "BIOGRAPHY_MAX_NEW_TOKENS": "diffuse_lm.biography_dataset",
    "EXPERIMENTS": "diffuse_lm.experiments.reproduction:CHOICES",
    "SCALES": "diffuse_lm.experiments.scales",
    "RECIPES": "diffuse_lm.experiments.scales",
}


def __getattr__(name: str) -> Any:
    if name in _REEXPORTS:
        module, _, attr = _REEXPORTS[name].partition(":")
        value = getattr(import_module(module), attr or name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'diffuse_lm.api' has no attribute {name!r}")


def config_text(name: str, *, command_line: str | None = None) -> str:
    """A shipped config's YAML; its first line (the command that runs it) names ``command_line`` (default:
    its name, which works wherever the package is installed)."""
    path = _config_path(name)
    lines = path.read_text().splitlines(keepends=True)
    if lines and lines[0].startswith("# diffuse train "):
        from diffuse_lm.config import builtin_configs

        target = command_line or next(k for k, p in builtin_configs().items() if p == path)
        lines[0] = f"# diffuse train {target}\n"
    return "".join(lines)


def copy_config(name: str, dest: str | Path, *, overwrite: bool = False) -> Path:
    """Copy a shipped config to ``dest`` (a folder keeps its file name, or a .yaml file) to edit and train
    from; written whole or not at all. Returns the file written."""
    from diffuse_lm.files import write_text_atomic

    source, dest = _config_path(name), Path(dest)
    if dest.is_dir() or str(dest).endswith(("/", "\\")) or not dest.suffix:
        dest = dest / source.name
    if dest.exists() and not overwrite:
        raise DiffuseError(f"{dest}: exists (--overwrite to replace it)")
    text = config_text(name, command_line=str(dest))
    if (dest.exists() or dest.is_symlink()) and not dest.is_file():
        raise DiffuseError(f"{dest}: is not a regular file (a FIFO, a device?); give a .yaml file name")
    write_text_atomic(dest, text)
    return dest


def _config_path(name: str) -> Path:
    from diffuse_lm.config import builtin_configs

    key = name.removeprefix("configs/").removesuffix(".yaml")
    known = builtin_configs()
    if key not in known:
        raise DiffuseError(f"config {name!r}: not shipped (see diffuse configs list)")
    return known[key]


def load(
    model: str = DEFAULT_MODEL,
    *,
    adapter: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    backend: str = "transformers",
    verbose: bool = False,
):
    """``(model, tokenizer)`` for measuring, sampling or comparing: with transformers (libraries' noise off
    unless ``verbose``) or, for sampling, vLLM (``backend="vllm"``)."""
    if backend == "vllm":
        from diffuse_lm.vllm_backend import load_vllm

        return load_vllm(model, adapter, dtype=dtype, trust_remote_code=trust_remote_code)
    from diffuse_lm.models import load_model, quiet_transformers

    quiet_transformers(verbose)
    return load_model(model, adapter=adapter, device=device, dtype=dtype, trust_remote_code=trust_remote_code)


def is_vllm(model: Any) -> bool:
    """Is ``model`` a vLLM engine (sampling only: it scores nothing exactly)?"""
    from diffuse_lm.vllm_backend import VLLMModel

    return isinstance(model, VLLMModel)


def measure_rows(result: Measurement | dict) -> list[dict]:
    """A measurement as one row a target (model and adapter on each row), for a flat table."""
    from diffuse_lm.measuring import target_rows

    return target_rows(result.to_json() if hasattr(result, "to_json") else result)


def check_sampling(
    n: int,
    batch_size: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    min_p: float = 0.0,
    seed: int = 0,
    max_new_tokens: int | None = None,
) -> None:
    """Refuse sampling settings that cannot run (``n`` or ``batch_size`` below 1, a bad temperature, …)."""
    from diffuse_lm.decoding import SampleConfig

    if n < 1:
        raise DiffuseError(f"--n {n}: must be >= 1")
    if batch_size < 1:
        raise DiffuseError(f"--batch-size {batch_size}: must be >= 1")
    SampleConfig(
        temperature, top_p, top_k, 1 if max_new_tokens is None else max_new_tokens, seed, min_p
    ).check()


def sample_to_file(
    model,
    tokenizer,
    messages: list[dict],
    n: int,
    output: str | Path,
    *,
    task: Task | None = None,
    **settings,
) -> list[dict]:
    """``n`` generations sampled into the resumable JSONL file ``output`` (only missing indices are
    generated), each record with its answer and validity; settings as :func:`diffuse_lm.sampling.sample_to_jsonl`."""
    from diffuse_lm.sampling import sample_to_jsonl

    return sample_to_jsonl(model, tokenizer, messages, n, Path(output), task=task, **settings)


def read_samples_file(path: str | Path) -> tuple[list[dict], list[int], dict | None]:
    """A samples file: its records (one per index, the first of repeats), the indices repeated with another
    text, and its sidecar settings (``None`` without one)."""
    from diffuse_lm.samples_file import read_meta, read_samples_checked

    meta = read_meta(path)
    records, conflicts = read_samples_checked(path)
    return records, conflicts, meta


def compare(
    model,
    tokenizer,
    tasks: Task | str | Sequence[Task | str],
    methods: str | Sequence = "base",
    *,
    samples: int = 100,
    seed: int = 0,
    coverage_n: int = 1000,
    batch_size: int = 16,
    progress: bool = False,
) -> dict:
    """Each method's distribution over each task's valid answers (exact by teacher forcing where the method
    allows it, else from ``samples`` generations with 95% intervals): the ``diffuse compare`` result."""
    from diffuse_lm.compare import compare_tasks, parse_methods

    specs = parse_methods(methods) if isinstance(methods, str) else list(methods)
    return compare_tasks(
        model,
        tokenizer,
        _tasks(tasks),
        specs,
        samples=samples,
        seed=seed,
        coverage_n=coverage_n,
        batch_size=batch_size,
        progress=progress,
    )


def reproduce(experiment: str = "all", **settings: Any) -> Path | None:
    """Run the paper's experiments (one, ``all``, or just the ``report``) and write one results JSON each and
    the report; ``settings`` as :class:`diffuse_lm.experiments.reproduction.Reproduction` (model, scale,
    recipe, out, seed, adapters, device, dtype, force, report, jobs). Returns the report's path."""
    from diffuse_lm.experiments.reproduction import Reproduction
    from diffuse_lm.experiments.reproduction import reproduce as run

    return run(Reproduction(experiment, **settings))
