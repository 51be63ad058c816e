"""Checks on an output path made before the slow work: it can be written, is none of the inputs, and does not
land where a later run would read it as input (a task folder, a dataset folder)."""

from __future__ import annotations

import fnmatch
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import within


def check_writable(
    path: str | Path,
    *,
    inputs: Iterable[str | Path | None] = (),
    data_folders: Iterable[str | Path] = (),
) -> None:
    """Fail before the slow work, not after it, when an output file cannot be written, is one of the
    command's ``inputs`` (writing it would destroy them), would land, as a task file, in an input task
    folder (the next run over that folder would read it as a task), or would land at all in a dataset folder
    read (``data_folders``, which may hold ``data_files`` patterns too). Writability is tried, not guessed: a file is created and removed where the
    output will go, which also catches read-only mounts, /proc and over-long names."""
    from diffuse_lm.tasks import TASK_SUFFIXES  # the task layer loads on the first check

    path = Path(path)
    try:
        if path.is_dir():
            raise DiffuseError(f"{path}: is a folder, expected a file name for the output")
        for folder in data_folders:
            if set("*?[") & set(str(folder)):  # a data_files pattern: refused where it would match
                if fnmatch.fnmatch(str(path.absolute()), str(Path(folder).absolute())):
                    raise DiffuseError(
                        f"{path}: matches {folder}, data files this command reads (a later run would read "
                        "it as data); write it elsewhere"
                    )
            elif within(path, folder):
                raise DiffuseError(
                    f"{path}: lies in {folder}, a dataset folder this command reads (a later run would read it "
                    "as data); write it elsewhere"
                )
        for source in inputs:
            if source is None:
                continue
            if Path(source).is_dir():
                if path.suffix.lower() in TASK_SUFFIXES and within(path, source):
                    raise DiffuseError(
                        f"{path}: lies in {source}, a task folder this command reads (a later run would "
                        "take it for a task); write it elsewhere"
                    )
            elif _same_file(path, Path(source)):
                raise DiffuseError(f"{path}: is an input of this command; writing it would destroy it")
        if path.exists() and not path.is_file():
            raise DiffuseError(f"{path}: is not a regular file (a device?); give a file name for the output")
        existing = [p for p in [path.parent, *path.parent.parents] if p.exists()]
        parent = existing[0] if existing else Path(".")
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise DiffuseError(f"{path}: cannot write there ({parent} is not a writable folder)")
        if path.exists() and not os.access(path, os.W_OK):
            raise DiffuseError(f"{path}: cannot write (file is read-only)")
        # The first part of the path still to be made, named as the output's temporary file will be.
        first_missing = path.relative_to(parent).parts[0] if parent != Path(".") else path.parts[0]
        fd, probe = tempfile.mkstemp(prefix=first_missing + ".", suffix=".tmp", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop, which resolve() meets
        why = (
            "a symlink loop on the way" if isinstance(e, RuntimeError) else e.strerror or e.__class__.__name__
        )
        raise DiffuseError(f"{path}: cannot write there ({why})") from None


def _same_file(a: Path, b: Path) -> bool:
    """Are ``a`` and ``b`` the same file (through links), or the same path for files not yet made?"""
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False
