"""Training checkpoints: the adapter (PEFT), optimizer tensors and RNG states in safetensors, scalars in
JSON (nothing pickled), published atomically through ``checkpoint.json`` so that a kill never corrupts one.

``checkpoint.json`` names the latest checkpoint and keeps the one before it, with the sha256 of every file
of both; a resumed run verifies them and falls back to the previous checkpoint (saying so on stderr) when
the latest is missing or does not match, so bytes damaged on disk are never trained on.

Not accelerate's ``save_state`` with ``ProjectConfiguration(total_limit=2)``: it pickles the optimizer, scheduler
and RNG states (``torch.save``), names folders ``checkpoints/checkpoint_<i>``, deletes the oldest before the new
one is written (a kill then leaves one checkpoint and a partial one), keeps no checksums and refuses a folder
that exists; run folders written here would no longer resume."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import sha256_file, write_json_atomic
from diffuse_lm.models import write_base_record

POINTER = "checkpoint.json"
KEEP = 2  # checkpoints kept: the latest and one to fall back to
CHECKPOINT_DIR = re.compile(r"checkpoint-\d{6}")  # the only names a run deletes as its checkpoints


def private_dir(out: Path, prefix: str) -> Path:
    """A fresh temporary folder inside ``out`` with ordinary permissions (mkdtemp makes it 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out))
    tmp.chmod(0o755)
    return tmp


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file in a checkpoint folder, by name: what a resumed run verifies."""
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _write_files(tmp: Path, model, opt, state: dict) -> None:
    """The adapter, the optimizer tensors and RNG states, and the scalars of ``state`` into ``tmp``."""
    from safetensors.torch import save_file

    model.save_pretrained(tmp, save_embedding_layers=False)  # no hub lookup of the base's config
    write_base_record(model, tmp)
    tensors, groups = {}, []
    sd = opt.state_dict()
    for i, s in sd["state"].items():
        tensors.update(
            {f"{i}.{k}": v.detach().cpu().contiguous() for k, v in s.items() if torch.is_tensor(v)}
        )
    for g in sd["param_groups"]:
        groups.append({k: v for k, v in g.items() if k != "params"})
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({**state, "param_groups": groups}, indent=1))


def save_checkpoint(out: Path, model, opt, state: dict) -> None:
    """Adapter (PEFT) + optimizer tensors + RNG (safetensors) + scalars (JSON), written into a temporary
    folder, renamed, then published with their checksums by atomically rewriting ``checkpoint.json``,
    which keeps the previous checkpoint too: a kill or a full disk never leaves no good checkpoint."""
    name = f"checkpoint-{state['step']:06d}"
    tmp = private_dir(out, ".checkpoint-tmp-")
    try:
        _write_files(tmp, model, opt, state)
        entry = {"step": state["step"], "dir": name, "sha256": _digests(tmp)}
        shutil.rmtree(out / name, ignore_errors=True)
        os.replace(tmp, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless the writing failed
    earlier = [e for e in _entries(out) if e["dir"] != name and e["step"] < state["step"]]
    kept = [entry, *earlier[: KEEP - 1]]
    write_json_atomic(out / POINTER, {"step": state["step"], "dir": name, "checkpoints": kept})
    names = {e["dir"] for e in kept}
    for old in out.iterdir():
        if CHECKPOINT_DIR.fullmatch(old.name) and old.name not in names:
            shutil.rmtree(old, ignore_errors=True)


def _read_pointer(out: Path) -> dict | None:
    """``checkpoint.json``, or None when there is none; an unreadable one is a one-line error."""
    try:
        pointer = json.loads((out / POINTER).read_text())
        if not isinstance(pointer, dict):
            raise ValueError("not a JSON object")
        return pointer
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise DiffuseError(f"{out / POINTER}: unreadable ({e.__class__.__name__}: {e})") from None


def _entries(out: Path) -> list[dict]:
    """The checkpoints ``checkpoint.json`` names, latest first (one without checksums if it predates them)."""
    try:
        pointer = _read_pointer(out)
    except DiffuseError:
        return []
    if pointer is None:
        return []
    entries = pointer.get("checkpoints") or [{"step": pointer.get("step", 0), "dir": pointer.get("dir")}]
    if not isinstance(entries, list):
        return []
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("dir"), str)]


def _problem(out: Path, entry: dict) -> str | None:
    """Why the checkpoint ``entry`` cannot be resumed from ("missing", a file that does not match its
    checksum), or None when it is intact."""
    folder = out / entry["dir"]
    if not folder.is_dir():
        return "missing"
    for name, digest in (entry.get("sha256") or {}).items():
        try:
            if sha256_file(folder / name) != digest:
                return f"corrupt ({name} does not match its checksum)"
        except OSError as e:
            return f"corrupt ({name}: {e.strerror or e})"
    return None


def _restore(folder: Path, model, opt) -> dict:
    """Load the checkpoint in ``folder`` into ``model`` and ``opt`` and the RNG; returns its scalars."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text())
    tensors = load_file(folder / "optimizer.safetensors")
    adapter = load_file(folder / "adapter_model.safetensors")
    device = next(p for p in model.parameters() if p.requires_grad).device
    set_peft_model_state_dict(model, {k: v.to(device) for k, v in adapter.items()})
    n = len(opt.state_dict()["param_groups"][0]["params"])
    opt_state: dict[int, dict] = {}
    for key, v in tensors.items():
        if not key.startswith("rng."):
            i, name = key.split(".", 1)
            opt_state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    groups = [{**g, "params": list(range(n))} for g in state.pop("param_groups")]
    opt.load_state_dict({"state": opt_state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return state


def _warn(message: str, enabled: bool) -> None:
    if enabled:
        print(f"warning: {message}", file=sys.stderr, flush=True)


def load_checkpoint(out: Path, model, opt, *, warn: bool = True) -> dict | None:
    """Restore the latest intact checkpoint into ``model`` and ``opt``; returns its state, or None when
    there is none. A latest checkpoint that is missing or fails its checksums is passed over for the one
    before it, with a warning on stderr (``warn``); when every named checkpoint is missing, training starts
    again from step 0, saying so; when none is intact, a one-line error."""
    from safetensors import SafetensorError

    entries = _entries(out)
    if not entries:
        if _read_pointer(out) is not None:  # unreadable or malformed: an error, not a silent fresh start
            raise DiffuseError(
                f"{out / POINTER}: names no checkpoint (malformed); delete it there to start again from step 0"
            )
        return None
    problems: list[str] = []
    for entry in entries:
        why = _problem(out, entry)
        if why is None:
            try:
                state = _restore(out / entry["dir"], model, opt)
            except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
                why = f"unreadable ({e.__class__.__name__}: {str(e).strip().splitlines()[0][:80]})"
            else:
                if problems:
                    _warn(f"{out}: {'; '.join(problems)}: resuming from {entry['dir']} instead", warn)
                return state
        problems.append(f"{entry['dir']} is {why}")
    if all(p.endswith(" is missing") for p in problems):
        last = entries[0].get("step", "?")
        _warn(
            f"{out}: {'; '.join(problems)} ({POINTER} names it): training starts again from step 0, "
            f"and the logged steps 1-{last} are dropped",
            warn,
        )
        return None
    raise DiffuseError(
        f"{out}: no intact checkpoint to resume from ({'; '.join(problems)}); "
        f"delete {POINTER} there to start again from step 0"
    )


def latest_state(out: Path) -> dict:
    """The scalars (step, stopped, ...) of the latest checkpoint in ``out``; raises OSError/ValueError/KeyError."""
    entries = _entries(out)
    if not entries:
        raise KeyError(f"{POINTER} names no checkpoint")
    return json.loads((out / entries[0]["dir"] / "state.json").read_text())


def latest_step(out: Path) -> int | None:
    """The step of the latest checkpoint ``checkpoint.json`` names, or None (for messages)."""
    entries = _entries(out)
    return entries[0].get("step") if entries else None
