"""Training checkpoints: the adapter (PEFT), optimizer tensors and RNG states in safetensors, scalars in
JSON (nothing pickled), published atomically through ``checkpoint.json`` so that a kill never corrupts one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from diffuse_lm.errors import DiffuseError
from diffuse_lm.files import write_json_atomic

POINTER = "checkpoint.json"


def private_dir(out: Path, prefix: str) -> Path:
    """A fresh temporary folder inside ``out`` with ordinary permissions (mkdtemp makes it 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=out))
    tmp.chmod(0o755)
    return tmp


def save_checkpoint(out: Path, model, opt, state: dict) -> None:
    """Adapter (PEFT) + optimizer tensors + RNG (safetensors) + scalars (JSON), written into a temporary
    folder, renamed, then published by atomically rewriting ``checkpoint.json``: a kill never corrupts."""
    from safetensors.torch import save_file

    name = f"checkpoint-{state['step']:06d}"
    tmp = private_dir(out, ".checkpoint-tmp-")
    model.save_pretrained(tmp)
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
    shutil.rmtree(out / name, ignore_errors=True)
    os.replace(tmp, out / name)
    write_json_atomic(out / POINTER, {"step": state["step"], "dir": name})
    for old in out.glob("checkpoint-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path, model, opt) -> dict | None:
    """Restore the latest checkpoint into ``model`` and ``opt``; returns its state, or None."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        folder = out / json.loads((out / POINTER).read_text())["dir"]
        state = json.loads((folder / "state.json").read_text())
        tensors = load_file(folder / "optimizer.safetensors")
        adapter = load_file(folder / "adapter_model.safetensors")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as e:
        raise DiffuseError(f"{out}: unreadable checkpoint ({e.__class__.__name__}: {e})") from None
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


def latest_state(out: Path) -> dict:
    """The scalars (step, stopped, ...) of the latest checkpoint in ``out``; raises OSError/ValueError/KeyError."""
    return json.loads((out / json.loads((out / POINTER).read_text())["dir"] / "state.json").read_text())
