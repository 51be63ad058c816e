"""Tasks from a Hugging Face ``datasets`` dataset, one a row, through a YAML mapping in the style of
lm-evaluation-harness task files: where the data is, and which column holds each task key.

.. code-block:: yaml

    # diffuse measure questions.yaml
    dataset_path: csv              # a datasets builder (csv, json, parquet), a local folder, or a hub id
    data_files: questions.csv      # relative to this file (a string, a list, or {split: files})
    split: train
    doc_to_text: "Pick a random {{ kind }}. Answer in braces."   # or request_column: question
    targets_column: answers        # a list column, a JSON list, or text split by targets_separator
    targets_separator: "|"
    weights_column: weights        # optional (uniform); or weights: [...] for every row
    name_column: id                # optional; else <yaml stem>/<row>

Fixed keys (``targets``, ``weights``, ``system``, ``response``, ``eos``, ``family``, ``description``) apply to
every row. Each row becomes a task validated as a task file is; errors name the YAML file and the row.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from diffuse_lm.errors import DiffuseError, known_list, shorten, unknown_key, unknown_keys
from diffuse_lm.files import bounded_walk
from diffuse_lm.task_model import Task, TaskError, task_from_dict

WHERE = {"dataset_path", "dataset_name", "data_files", "split", "dataset_kwargs", "limit", "name"}
COLUMNS = {
    "request_column",
    "doc_to_text",
    "targets_column",
    "doc_to_choice",
    "targets_separator",
    "weights_column",
    "name_column",
    "system_column",
}
FIXED = {"targets", "weights", "system", "response", "eos", "family", "description"}
GLOB = set("*?[")


def dataset_tasks(spec: dict, path: Path) -> list[Task]:
    """The tasks of the dataset that the mapping ``spec`` (read from the YAML file ``path``) describes."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"{path}: {problem}")

    _check(spec, WHERE | COLUMNS | FIXED, fail)
    ds, sources = _load(spec, path, fail)
    tasks = _row_tasks(ds, spec, str(path), name=spec.get("name") or path.stem)
    return [replace(t, path=str(path), sources=tuple(sources)) for t in tasks]


def tasks_from_dataset(dataset: Any, *, name: str = "dataset", **mapping: Any) -> list[Task]:
    """Tasks from rows in memory — a ``datasets.Dataset``, a pandas DataFrame or a list of dicts — with the
    column keys of a dataset mapping (``request_column`` or ``doc_to_text``, ``targets_column`` …); a task is
    named by ``name_column`` or ``<name>/<row>``. Errors name the row."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"dataset {name!r}: {problem}")

    _check(mapping, COLUMNS | FIXED | {"limit"}, fail)
    if hasattr(dataset, "to_dict") and hasattr(dataset, "columns"):  # pandas
        dataset = dataset.to_dict("records")
    return _row_tasks(dataset, mapping, f"dataset {name!r}", name=name)


def _check(spec: dict, known: set[str], fail) -> None:
    """Keys known, of the right kind, and one source each for the request and the targets."""
    unknown = unknown_keys(spec, known)
    if unknown:
        raise fail(f"{unknown_key(unknown[0])} in a dataset mapping (known: {known_list(unknown[0], known)})")
    for key in (WHERE | COLUMNS) - {"dataset_kwargs", "limit", "data_files", "doc_to_choice"}:
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise fail(f"{key} must be a string, got {type(spec[key]).__name__} {shorten(spec[key])}")
    for one_of in (("request_column", "doc_to_text"), ("targets_column", "doc_to_choice", "targets")):
        given = [k for k in one_of if spec.get(k) is not None]
        if len(given) != 1:
            raise fail(f"give exactly one of {', '.join(one_of)}" + (f" (got {given})" if given else ""))
    for pair in (("weights_column", "weights"), ("system_column", "system")):
        if all(spec.get(k) is not None for k in pair):
            raise fail(f"give one of {pair[0]} and {pair[1]}, not both")
    limit = spec.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise fail(f"limit must be a positive integer, got {shorten(limit)}")


def _row_tasks(rows: Any, spec: dict, label: str, *, name: str) -> list[Task]:
    """One task a row (up to ``limit``), validated as a task file is; errors name ``label`` and the row."""

    def fail(problem: str) -> TaskError:
        return TaskError(f"{label}: {problem}")

    columns = list(rows.column_names) if hasattr(rows, "column_names") else list(next(iter(rows), {}))
    choice = spec.get("doc_to_choice")
    if isinstance(choice, list):  # lm-eval's fixed list of choices
        spec = {**spec, "targets": choice, "doc_to_choice": None}
    elif choice is not None:
        spec = {**spec, "targets_column": choice}
    text, template = spec.get("doc_to_text"), None
    if text is not None and text in columns:
        spec = {**spec, "request_column": text}
    elif text is not None:
        template = _template(text, fail)
        reserved = [c for c in ("self", "loop", "super", "caller", "varargs", "kwargs") if c in columns]
        used = [c for c in reserved if re.search(rf"\b{c}\b", text)]
        if used:  # Jinja's own names: the template would print Jinja's object, not the column
            raise fail(
                f"doc_to_text: column {used[0]!r} has a name Jinja keeps for itself; use request_column"
            )
    for key in COLUMNS - {"doc_to_text", "doc_to_choice", "targets_separator"}:
        if spec.get(key) is not None and spec[key] not in columns:
            shown = ", ".join(map(str, columns[:12])) + (" …" if len(columns) > 12 else "")
            raise fail(f"{key} {spec[key]!r} is not a column of the dataset (columns: {shown})")

    tasks, limit, sep = [], spec.get("limit"), spec.get("targets_separator")
    for i, row in enumerate(rows):
        if limit is not None and i >= limit:
            break
        where = f"row {i + 1}"
        data = {k: spec[k] for k in FIXED if spec.get(k) is not None}
        if template is not None:
            data["request"] = _render(template, row, lambda p, w=where: fail(f"{w}: doc_to_text: {p}"))
        else:
            data["request"] = row.get(spec["request_column"])
        if spec.get("targets_column"):
            data["targets"] = _cell_list(row, spec["targets_column"], sep, where, fail)
        if spec.get("weights_column"):
            data["weights"] = _numbers(_cell_list(row, spec["weights_column"], sep, where, fail), where, fail)
        for key in ("name", "system"):
            value = row.get(spec[f"{key}_column"]) if spec.get(f"{key}_column") else None
            if value is not None:
                data[key] = str(value)
        tasks.append(task_from_dict(data, source=f"{label}: {where}", name=f"{name}/{i + 1}"))
    if not tasks:
        raise fail("the dataset has no rows")
    return tasks


def _load(spec: dict, path: Path, fail) -> tuple[Any, list[str]]:
    """The dataset split, and the local files it was read from (for provenance)."""
    try:
        import datasets
    except ImportError:
        raise fail(
            "a dataset mapping needs the datasets package: pip install 'diffuse-lm[datasets]'"
        ) from None
    base = path.parent
    source = spec["dataset_path"] if spec.get("dataset_path") else None
    if source is None:
        raise fail("dataset_path must be a datasets builder (csv, json, parquet), a folder or a hub id")
    local = base / source
    if local.exists():
        source = str(local)
    elif source not in _builders():
        from diffuse_lm.models import _hub_reachable, _offline

        if not _offline() and not _hub_reachable():  # fail now, not after a minute of retries
            raise fail(
                f"dataset_path {source!r}: no such folder here nor a builder ({', '.join(_builders()[:6])} …), "
                "and the hub is not reachable (set HF_HUB_OFFLINE=1 to read it from the local cache)"
            )
    files = _data_files(spec.get("data_files"), base, fail)
    kwargs = spec.get("dataset_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise fail("dataset_kwargs must be a mapping of load_dataset arguments")
    if kwargs.get("trust_remote_code"):
        raise fail("dataset_kwargs: trust_remote_code is refused (a task file never runs a dataset's code)")
    folders = [local] if local.is_dir() else []
    if isinstance(
        kwargs.get("data_dir"), str
    ):  # relative to a local dataset folder, else to here (as datasets)
        folders.append((local if local.is_dir() else Path()) / Path(kwargs["data_dir"]).expanduser())
    for folder in folders:
        if folder.is_dir():
            for _ in bounded_walk(folder, "dataset files", TaskError):  # before datasets walks it all
                pass
    split = spec.get("split") or "train"
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(source, spec.get("dataset_name"), data_files=files, split=split, **kwargs)
    except Exception as e:  # datasets raises many kinds (missing files, bad CSV, unknown split, offline hub)
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise fail(
            f"cannot load dataset {source!r} split {split!r} ({e.__class__.__name__}: {first})"
        ) from None
    sources = [str(local)] if local.is_file() else []
    flat = files.values() if isinstance(files, dict) else [files] if isinstance(files, str) else files or []
    for f in flat:
        sources += [f] if isinstance(f, str) else list(f)
    # a pattern stands for the files it matched now, and for itself (an output it would match later is refused)
    patterns = [s for s in sources if GLOB & set(s) and "://" not in s]
    sources = [m for s in sources for m in (sorted(glob.glob(s, recursive=True)) if s in patterns else [s])]
    return ds, [s for s in sources if Path(s).is_file()] + [str(f) for f in folders if f.is_dir()] + patterns


def _builders() -> list[str]:
    """The builders ``datasets`` ships (csv, json, parquet, text, …): a ``dataset_path`` that needs no hub."""
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    return list(_PACKAGED_DATASETS_MODULES)


def _data_files(files: Any, base: Path, fail) -> Any:
    """``data_files`` with every path made relative to the YAML file's folder; a missing file is an error."""

    def resolve(f: Any) -> str:
        if not isinstance(f, str):
            raise fail(f"data_files entries must be strings, got {shorten(f)}")
        if "://" in f:
            return f
        full = base / Path(f).expanduser()
        if not GLOB & set(f) and not full.exists():
            raise fail(f"data_files {f!r}: no such file ({full})")
        return str(full)

    if files is None:
        return None
    if isinstance(files, dict):
        return {
            str(k): [resolve(f) for f in v] if isinstance(v, list) else resolve(v) for k, v in files.items()
        }
    return [resolve(f) for f in files] if isinstance(files, list) else resolve(files)


def _cell_list(row: dict, column: str, sep: str | None, where: str, fail) -> list:
    """A cell that holds a list: a list, a JSON list in text, or text split by ``sep``."""
    value = row.get(column)
    if hasattr(value, "tolist"):  # a numpy array, as pandas gives list cells
        value = value.tolist()
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, str) and sep:
        return value.split(sep)
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    hint = "" if sep else "; set targets_separator, or write a JSON list"
    raise fail(f"{where}: column {column!r} holds {shorten(value)}, not a list{hint}")


def _numbers(values: list, where: str, fail) -> list:
    """Weights read from text (``"1|2"``) as numbers; numbers pass as they are (task_from_dict checks them)."""
    out = []
    for v in values:
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise fail(f"{where}: weight {shorten(v)} is not a number") from None
        out.append(v)
    return out


MAX_RENDERED = 1_000_000  # characters a doc_to_text template may render for one row (a request, not a book)


def _environment():
    """Jinja's immutable sandbox (no attribute tricks, no ``[].append``), whose ``*``, ``**`` and ``+`` refuse
    results past :data:`MAX_RENDERED` before building them: ``{{ 'x' * 10**10 }}`` is an error, not the
    machine's memory."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

    class Env(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+"})

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, int) and abs(right) > 64 and left not in (0, 1, -1):
                raise SecurityError(f"{shorten(left)} ** {right}: a number too large for a request")
            if operator == "*":
                n, seq = (left, right) if isinstance(left, int) else (right, left)
                if isinstance(n, int) and hasattr(seq, "__len__") and n * len(seq) > MAX_RENDERED:
                    raise SecurityError(f"a repeat to more than {MAX_RENDERED:,} characters")
            if operator == "+" and hasattr(left, "__len__") and hasattr(right, "__len__"):
                if len(left) + len(right) > MAX_RENDERED:
                    raise SecurityError(f"a text of more than {MAX_RENDERED:,} characters")
            return super().call_binop(context, operator, left, right)

    return Env(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def _template(text: str, fail):
    """A sandboxed Jinja template (lm-eval's ``doc_to_text``); an undefined column is an error."""
    import jinja2

    try:
        return _environment().from_string(text)
    except jinja2.TemplateError as e:
        raise fail(f"doc_to_text: not a column nor a valid template ({e})") from None


def _render(template, row: dict, fail) -> str:
    """The template on one row, streamed and cut off past :data:`MAX_RENDERED` characters; any failure of
    the template (``{{ 1/0 }}``, ``{{ [].pop() }}``, a column called ``self``) is one line naming the row."""
    parts, size = [], 0
    try:
        for part in template.generate(row):  # the row as one mapping: a column may be called anything
            size += len(part)
            if size > MAX_RENDERED:
                raise fail(f"renders more than {MAX_RENDERED:,} characters")
            parts.append(part)
    except DiffuseError:
        raise
    except (Exception, MemoryError, RecursionError) as e:  # the template's own error, whatever it is
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise fail(f"{e.__class__.__name__}: {first}" if first else e.__class__.__name__) from None
    return "".join(parts)
