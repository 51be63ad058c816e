"""Guards of a training run's folder against what would make its results silently wrong: a second run
writing the same folder, a resume on task files changed since, and results that are not numbers."""

from __future__ import annotations

import functools
import json
import math
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from diffuse_lm.errors import DiffuseError

LOCK_FILE = ".train.lock"  # held by the run writing the folder; says which process that is
FINISHED_WAIT_S = 300.0  # how long opening a finished run waits for another process holding its lock


@contextmanager
def locked(out: Path | None) -> Iterator[None]:
    """Hold ``out``'s lock for the whole run (the first process of a distributed one), so a second
    ``diffuse train`` into the same folder is refused at once, naming the process that holds it, instead of
    both writing one log and last-writer-wins checkpoints. A run that never began (refused, or its model
    would not load) leaves neither the lock nor a folder this made."""
    from filelock import FileLock, Timeout

    if out is None or os.environ.get("RANK", "0") != "0":
        yield
        return
    made = [d for d in (out, *out.parents) if not d.exists()]
    path = out / LOCK_FILE
    created, claimed = not path.exists(), _stat(out / "config.yaml")
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            if not (out / "summary.json").is_file():
                raise
            # a finished run: its holder is most likely another process reading it (experiments run side by
            # side share adapters, and opening a finished run takes seconds), so wait for it rather than fail
            lock.acquire(timeout=FINISHED_WAIT_S)
    except Timeout:
        try:
            holder = path.read_text().strip()[:80]
        except OSError:
            holder = ""
        raise DiffuseError(
            f"output_dir {out}: another `diffuse train` is writing it right now ({holder or 'process unknown'}); "
            "wait for it to end, or use another output_dir"
        ) from None
    except OSError as e:
        raise DiffuseError(f"output_dir {out}: cannot write there ({e.strerror or e})") from None
    try:
        try:
            path.write_text(f"pid {os.getpid()} on {socket.gethostname()}\n")
        except OSError:
            pass  # the lock holds without the note
        yield
    finally:
        if created and _stat(out / "config.yaml") == claimed:  # no run began (refused, failed to load)
            path.unlink(missing_ok=True)
        lock.release()
        if made and not any(out.iterdir()):
            for folder in made:
                try:
                    folder.rmdir()
                except OSError:
                    break


def holding_output_dir(run):
    """``run(cfg, …)`` (a training run) called while it holds the lock of ``cfg.output_dir`` (:func:`locked`)."""

    @functools.wraps(run)
    def locked_run(cfg, *args, **kwargs):
        with locked(Path(cfg.output_dir) if cfg.output_dir else None):
            return run(cfg, *args, **kwargs)

    return locked_run


def _stat(path: Path) -> tuple[int, int] | None:
    """A file's inode and modification time (None when absent): has a run written it since?"""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def check_tasks_unchanged(out: Path, tasks: Sequence) -> None:
    """Refuse to resume (or return) a run whose task files changed since it measured them: the run's
    'before' results record every task file's sha256, and a run resumed on edited targets would compare the
    old targets before with the new ones after."""
    from diffuse_lm.provenance import task_file_hashes

    now = {os.path.abspath(p): h for p, h in task_file_hashes(tasks).items()}
    for name in ("before.json", "before_train.json"):
        try:
            recorded = json.loads((out / name).read_text())["provenance"]["task_files"]
            items = [(os.path.abspath(p), h) for p, h in recorded.items()]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # no record to hold it to (measure off, or an older run)
        for path, sha in items:
            if path in now and now[path] != sha:
                raise DiffuseError(
                    f"output_dir {out}: its run measured {path} before it changed (sha256 {str(sha)[:12]}… now "
                    f"{now[path][:12]}…); use another output_dir, or --overwrite to start the run again"
                )


def check_finite_results(results: dict, steps: int) -> None:
    """Refuse results with a non-finite headline metric (NaN mass, infinite KL): weights driven to 1e14 by
    too high an lr keep the loss finite yet break every measurement; nothing such is published."""
    for result in results.values():
        for task in (result or {}).get("tasks", []):
            bad = [k for k in ("mass", "kl", "entropy") if not math.isfinite(task.get(k, 0.0))]
            if bad:
                raise DiffuseError(
                    f"after {steps} steps the tuned model's {bad[0]} on {task.get('name')} is "
                    f"{task[bad[0]]} (weights blown up: too high an lr?); nothing was published, "
                    "--overwrite with another lr starts again"
                )
