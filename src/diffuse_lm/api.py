"""The Python API: what the ``diffuse`` commands do, as calls on objects you hold (a model, tasks), returning
records you can turn into JSON or a pandas DataFrame. Import it from the package: ``from diffuse_lm import
measure, sample, train, load_model, make_task``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

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
    answer and whether it is one of the task's targets: ``{"index", "text", "answer", "valid"}``.
    ``settings`` are those of :func:`diffuse_lm.sampling.generate_records` (temperature, top_p, top_k,
    min_p, max_new_tokens, seed, batch_size, progress)."""
    from diffuse_lm.parsing import answer_of, task_answers
    from diffuse_lm.sampling import generate

    (task,) = _tasks(task)[:1]
    settings.setdefault("what", task.name)  # for the progress bar
    texts = generate(model, tokenizer, task.messages(), n, responses=task.responses, **settings)
    valid, braces = task_answers(task)
    valid = set(valid)
    answers = [answer_of(t, braces=braces) for t in texts]
    return [
        {"index": i, "text": t, "answer": a, "valid": a in valid}
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
