"""The file layer: atomic writes (a kill never leaves half a file; the core's one writer is :func:`write_atomic`),
checks on users' paths before they are read, a bounded folder walk, a lock, and a file's sha256."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from diffuse_lm.errors import DiffuseError
from diffuse_lm.strict_json import dumps


def within(path: str | Path, folder: str | Path) -> bool:
    """Is ``path`` the folder ``folder`` or inside it (after links)? For outputs that must not overwrite inputs."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_regular(path: str | Path, what: str = "an input") -> None:
    """Refuse, before opening it, a path that exists but is no regular file: a FIFO would block the read
    forever and ``/dev/zero`` would fill memory. Every reader of a user's file calls this first; a path that
    does not exist is left to the reader's own message."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}
        kind = next((k for test, k in kinds.items() if test(mode)), "a device")
        raise DiffuseError(f"{path}: is {kind}, not a regular file; cannot read it as {what}")


MAX_FOLDER_ENTRIES = 100_000  # entries walked below a user's folder before it is refused as not the one meant


def bounded_walk(folder: Path, holds: str, error: type[DiffuseError] = DiffuseError) -> Iterator[Path]:
    """Every entry below ``folder``, refused (an ``error``) once more than :data:`MAX_FOLDER_ENTRIES` have
    passed: `tasks show /` or a dataset's ``data_dir: /`` would walk the whole disk before saying anything.
    ``holds`` says what the folder should hold."""
    for seen, p in enumerate(folder.rglob("*"), 1):
        if seen > MAX_FOLDER_ENTRIES:
            raise error(
                f"{folder}: more than {MAX_FOLDER_ENTRIES:,} files and folders below it; "
                f"give the folder that holds your {holds}"
            )
        yield p


def write_json_atomic(path: str | Path, data) -> None:
    """Write strict JSON (non-finite numbers as null: :mod:`diffuse_lm.strict_json`) through a temporary file and
    rename, so a kill never leaves half a file."""
    write_atomic(path, dumps(data, indent=1) + "\n")


ROW_SUFFIXES = (".jsonl", ".csv", ".parquet")


def check_rows_path(path: str | Path) -> None:
    """A flat-table output must end in .jsonl, .csv or .parquet (and Parquet needs pyarrow): said before the
    slow work, not after it."""
    suffix = Path(path).suffix.lower()
    if suffix not in ROW_SUFFIXES:
        raise DiffuseError(
            f"{path}: a table of rows ends in {', '.join(ROW_SUFFIXES)}, not {suffix or 'nothing'}"
        )
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DiffuseError(f"{path}: Parquet needs pyarrow: pip install 'diffuse-lm[datasets]'") from None


def write_rows_atomic(path: str | Path, rows: list[dict]) -> None:
    """Rows of one shape (dicts with the same keys) as a flat table, by suffix: JSONL (one object a line),
    CSV (a header of the first row's keys) or Parquet; atomically, as every write here."""
    check_rows_path(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".jsonl":
        write_atomic(path, "".join(dumps(r, ensure_ascii=False) + "\n" for r in rows))
    elif suffix == ".csv":
        write_csv_atomic(path, rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        write_atomic(path, lambda f: pq.write_table(pa.Table.from_pylist(rows), f), binary=True)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # first characters a spreadsheet may read as a formula


def csv_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula (it starts with ``= + - @``, a tab or a carriage
    return) gets a leading single quote, as the usual CSV-injection guidance says; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def write_csv_atomic(path: str | Path, rows: list[dict], fieldnames: Sequence[str] | None = None) -> None:
    """The one CSV writer: a header (``fieldnames``, else the first row's keys), then a line a row (RFC 4180's
    ``\r\n``), every text cell formula-safe (:func:`csv_safe`), written atomically. Model outputs and task files are untrusted text:
    a cell such as ``=HYPERLINK(…)`` must not run when the table is opened in a spreadsheet."""
    buffer = io.StringIO()
    names = list(fieldnames) if fieldnames is not None else list(rows[0]) if rows else []
    writer = csv.DictWriter(buffer, fieldnames=names)  # lines end in \r\n: a cell holding either is quoted
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)
    write_atomic(path, buffer.getvalue())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text through a temporary file and rename (:func:`write_atomic`)."""
    write_atomic(path, text)


def write_figure_atomic(fig, path: str | Path, **savefig_kwargs) -> None:
    """A matplotlib figure as a PNG, written as every file here is (whole or not at all)."""
    write_atomic(path, lambda f: fig.savefig(f, format="png", **savefig_kwargs), binary=True)


def write_atomic(
    path: str | Path,
    content: str | bytes | Callable[[IO], object],
    *,
    binary: bool = False,
    fsync: bool = False,
    mode: int = 0o644,
) -> None:
    """Write ``content`` (text, bytes, or a function that writes into the open file: text unless ``binary``)
    into a temporary file beside ``path``, then rename it onto ``path``: a kill never leaves half a file.
    ``fsync`` makes the bytes durable before the rename (a power cut then leaves the old file or the new one,
    never an empty one); ``mode`` is the file's permissions (mkstemp's 0600 would hide results from others).
    A write that fails (a full disk, a folder turned read-only) is one line that names ``path``, and leaves
    neither the temporary file nor a partial ``path``: the file there before, if any, is kept whole."""
    path = Path(path)
    if isinstance(content, str | bytes):
        data = content
        binary, content = isinstance(data, bytes), lambda f: f.write(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DiffuseError(f"{path}: cannot write ({e.strerror or e.__class__.__name__})") from None
    try:
        text = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, "wb" if binary else "w", **text) as f:
            content(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise DiffuseError(
            f"{path}: cannot write ({e.strerror or e.__class__.__name__}); nothing written"
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _open_as_umask(folder: Path) -> None:
    """Folders 0777 and files 0666, less the process's umask, under ``folder`` and itself (links untouched)."""
    umask = os.umask(0)
    os.umask(umask)
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~umask)


@contextmanager
def folder_atomic(path: Path, prefix: str) -> Iterator[Path]:
    """A temporary folder beside ``path`` (named ``prefix…``) to fill in the ``with`` block; when the block ends
    without an error it takes the place of ``path`` (what was there is removed first), else it is removed.
    A kill leaves at most the hidden temporary folder, which the caller removes on its next run by ``prefix``.
    The folder and what it holds get the permissions the user's umask gives (mkdtemp's 0700, and the 0600 some
    writers give their temporary files, would hide a cached or exported model from the user's group)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=path.parent))
    try:
        yield tmp
        _open_as_umask(tmp)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless the block or the swap failed


@contextmanager
def held_lock(path: Path, target: str, command: str) -> Iterator[None]:
    """Hold the lock file ``path`` while ``command`` writes ``target``: a second one is refused at once rather
    than both writing the same files; the lock file goes with the lock (one a killed run left, too)."""
    from filelock import FileLock, Timeout

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        raise DiffuseError(f"{target}: another `{command}` is writing it right now") from None
    except OSError as e:
        raise DiffuseError(f"{target}: cannot write there ({e.strerror or e})") from None
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        lock.release()


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 16 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()
