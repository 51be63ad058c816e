"""Atomic file writes: a kill never leaves half a file. The core's one place for them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from diffuse_lm.errors import DiffuseError


def write_json_atomic(path: str | Path, data) -> None:
    """Write JSON through a temporary file and rename, so a kill never leaves half a file."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write text through a temporary file and rename, so a kill never leaves half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise DiffuseError(f"{path}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 16 MB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return h.hexdigest()
