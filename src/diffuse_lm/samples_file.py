"""The samples file of ``diffuse sample``: one JSON record a line, appended and flushed as each sample ends
(and put in index order when a run ends), locked while a run writes it, with a ``.meta.json`` sidecar of the settings that made it, so that a run
killed at any point resumes where it stopped and never mixes samples made with other settings."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import lock_descriptor, unlock_descriptor

from diffuse_lm.errors import DiffuseError, shorten
from diffuse_lm.files import check_regular, write_atomic, write_json_atomic

FORMAT = "diffuse-samples/1"  # the sidecar's format field


def meta_path(output: str | Path) -> Path:
    """The sidecar that records how a samples file was made: ``<output>.meta.json``."""
    output = Path(output)
    return output.with_name(output.name + ".meta.json")


def _parse_samples(
    data: bytes, where: Path, conflicts: set[int] | None = None
) -> tuple[dict[int, dict], int]:
    """Records by index (the first of duplicates wins) and the byte length of the complete lines; bytes
    after the last newline are a line torn by a kill. Indices repeated with another text go to ``conflicts``."""
    end = data.rfind(b"\n") + 1
    records: dict[int, dict] = {}
    for k, line in enumerate(data[:end].split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            index = rec["index"]
            ok = isinstance(index, int) and not isinstance(index, bool) and isinstance(rec.get("text"), str)
        except (ValueError, TypeError, KeyError):
            ok = False
        if not ok:
            raise DiffuseError(f"{where}: line {k} is not a sample record (index, text); not a samples file?")
        first = records.setdefault(index, rec)
        if conflicts is not None and first["text"] != rec["text"]:
            conflicts.add(index)
    return records, end


def read_samples(path: str | Path) -> list[dict]:
    """The records of a samples file, by index; a torn last line is skipped (``diffuse sample`` repairs it)."""
    return read_samples_checked(path)[0]


def read_samples_checked(path: str | Path) -> tuple[list[dict], list[int]]:
    """:func:`read_samples`, and the indices that occur again with a different text (the first is kept), so
    that a reader can say the file was edited or mixed rather than count one of them silently."""
    path = Path(path)
    check_regular(path, "a samples file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DiffuseError(f"{path}: cannot read ({e.strerror})") from None
    conflicts: set[int] = set()
    records, _ = _parse_samples(data, path, conflicts)
    return [records[i] for i in sorted(records)], sorted(conflicts)


# The sidecar's fields that are read back (not only compared), with their types; absent reads as None.
_NONE = type(None)
_META_TYPES = {
    "task": (dict, _NONE),
    "n": (int, _NONE),
    "model_arg": (str, _NONE),
    "adapter_path": (str, _NONE),
}


def _meta_problem(meta) -> str | None:
    """What is wrong with a sidecar's content for the fields read back from it, or None."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    if meta.get("format", FORMAT) != FORMAT:
        return f"format is {shorten(meta['format'])}, not {FORMAT}"
    for key, types in _META_TYPES.items():
        if not isinstance(meta.get(key), types):
            return f"{key} is {type(meta[key]).__name__}"
    if isinstance(meta.get("n"), bool) or (meta.get("n") is not None and meta["n"] < 1):
        return f"n is {shorten(meta['n'])}, not a count of samples"
    for key in ("name", "path"):
        if meta.get("task") and not isinstance(meta["task"].get(key), (str, _NONE)):
            return f"task.{key} is {type(meta['task'][key]).__name__}"
    return None


def read_meta(path: str | Path) -> dict | None:
    """The sidecar of a samples file, or ``None`` when there is none."""
    side = meta_path(path)
    if not side.exists():
        return None
    check_regular(side, "a samples sidecar")
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError):
        raise DiffuseError(f"{side}: unreadable; delete it together with {Path(path).name}") from None
    wrong = _meta_problem(meta)
    if wrong:
        raise DiffuseError(f"{side}: malformed ({wrong}); delete it together with {Path(path).name}")
    return meta


def check_not_locked(output: str | Path) -> None:
    """Fail before the slow model load, not after it, when ``output`` is not a samples file this command may
    write (:func:`foreign_file`) or another process is writing it now (it holds the lock :func:`open_samples`
    takes); a file that cannot be opened is left to the writability check."""
    problem = foreign_file(output)
    if problem:
        raise DiffuseError(problem)
    try:
        f = open(output, "rb")  # noqa: SIM115 - closed below; a read-only descriptor can take the lock too
    except OSError:
        return
    with f:
        _lock(f, output)
        unlock_descriptor(f.fileno())


def _lock(f, output: str | Path) -> None:
    """Lock the open samples file ``f`` itself (filelock's lock of a descriptor: ``flock`` on POSIX, a byte
    range on Windows), or refuse at once: another process is writing it."""
    try:
        locked = lock_descriptor(f.fileno(), blocking=False)
    except OSError as e:
        raise DiffuseError(f"{output}: cannot lock it ({e.strerror or e.__class__.__name__})") from None
    if not locked:
        raise DiffuseError(f"{output}: another process is writing it right now")


def foreign_file(output: str | Path) -> str | None:
    """Why ``output`` must not be written as a samples file, or None: it exists with bytes in it but without
    the sidecar every samples file has (a user's notes, a JSON file; the torn-line repair would empty it), or
    it is not a regular file. A file of this command is never truncated or appended to otherwise."""
    output = Path(output)
    try:
        st = os.stat(output)
    except OSError:
        return None  # absent (or unreachable: the writability check says why)
    if not stat.S_ISREG(st.st_mode):
        return f"{output}: is not a regular file; give a file name for the samples"
    if st.st_size and not meta_path(output).is_file():
        return (
            f"{output}: holds data but no {meta_path(output).name}, so it is no samples file of diffuse "
            "(or its settings are unknown); choose another --output"
        )
    return None


# Settings recorded since a later version: a sidecar without them still resumes.
ADDED_KEYS = ("dtype", "device", "batch_size")


def _describe(key: str, value) -> str:
    if key not in ("messages", "responses"):
        return f"{key}={value!r}"
    text = json.dumps(value, ensure_ascii=False)
    return (
        f"{'prompt' if key == 'messages' else 'response prefixes'} {text[:60]}{'…' if len(text) > 60 else ''}"
    )


@contextmanager
def open_samples(
    output: Path, identity: dict, info: dict, n: int
) -> Iterator[tuple[dict[int, dict], Callable[[dict], None]]]:
    """Lock ``output``, repair a torn last line, check its settings against ``identity``, and give its
    records and an ``append(record)`` that writes one line and flushes it."""
    side = meta_path(output)
    problem = foreign_file(output)  # before the open: a FIFO would block it
    if problem:
        raise DiffuseError(problem)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        f = open(output, "a+b")  # noqa: SIM115 - held open (and locked) for the whole run
    except OSError as e:
        raise DiffuseError(f"{output}: cannot write ({e.strerror})") from None
    with f:
        _lock(f, output)
        problem = foreign_file(output)  # checked again under the lock: nothing below truncates a user's file
        if problem:
            raise DiffuseError(problem)
        f.seek(0)
        data = f.read()
        records, end = _parse_samples(data, output)
        old = read_meta(output)
        if records:
            for key, value in identity.items():
                if key in ADDED_KEYS and key not in old:
                    continue  # a file sampled before the key was recorded: resumed as before
                if old.get(key) != value:
                    raise DiffuseError(
                        f"{output}: was sampled with {_describe(key, old.get(key))}, not "
                        f"{_describe(key, value)}; choose another --output or delete it"
                    )
        if end < len(data):
            f.truncate(end)  # a line torn by a kill (settings checked): its sample is generated again
        n_meta = max(n, (old or {}).get("n", 0)) if records else n
        write_json_atomic(side, {"format": FORMAT, **identity, **info, "n": n_meta})

        def append(rec: dict) -> None:
            end = f.tell()
            try:
                f.write((json.dumps(rec, ensure_ascii=False) + "\n").encode())
                f.flush()
            except OSError as e:
                _cut(f, end)  # no torn line left behind: the file holds whole samples only
                kept = len(records)
                raise DiffuseError(
                    f"{output}: cannot write ({e.strerror or e.__class__.__name__}); its {kept} samples "
                    "are kept, rerun to resume"
                ) from None

        try:
            yield records, append
        finally:
            try:
                f.flush()
                os.fsync(f.fileno())
            except OSError:
                pass  # said by append, or by the sort below
        # a run that ended well leaves its lines in index order (pandas reads them so)
        _sort_by_index(output, f)


def _cut(f, end: int) -> None:
    """Truncate ``f`` back to ``end`` bytes after a failed write (best effort: the disk may refuse even that)."""
    try:
        f.truncate(end)
        f.seek(end)
    except OSError:
        pass


def _sort_by_index(output: Path, f) -> None:
    """Rewrite ``output`` with its lines in index order when they are not (samples end out of order when
    responses are grouped, and a resumed run appends the missing ones): a stable sort of the lines as written,
    through a temporary file renamed over it while the lock is held, so a kill leaves the old file whole."""
    f.seek(0)
    lines = [line for line in f.read().split(b"\n") if line.strip()]
    indices = [json.loads(line)["index"] for line in lines]
    if all(a <= b for a, b in zip(indices, indices[1:], strict=False)):
        return
    order = sorted(range(len(lines)), key=indices.__getitem__)
    rows = (lines[i] + b"\n" for i in order)
    write_atomic(output, lambda out: out.writelines(rows), binary=True, fsync=True)  # durable, as the appends
