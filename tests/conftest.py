"""Shared fixtures: the smoke configuration of experiments/smoke.yaml and data generated with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ups.config import apply_overrides, load_config, load_raw
from ups.experiments import load_experiment

ROOT = Path(__file__).resolve().parent.parent
# What a pipeline repository needs: the files git tracks for the pipeline and the library it runs.
PIPELINE_FILES = ["dvc.yaml", "params.yaml", "stages", "ups", "experiments", ".dvc/config", ".dvcignore", ".gitignore"]


@pytest.fixture(scope="session")
def smoke_overrides() -> dict:
    return load_experiment(ROOT / "experiments" / "smoke.yaml", ROOT / "params.yaml").params


@pytest.fixture(scope="session")
def smoke_cfg(smoke_overrides):
    return load_config(ROOT / "params.yaml", smoke_overrides)


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory, smoke_cfg) -> Path:
    from ups.data.generate import generate_dataset

    out = tmp_path_factory.mktemp("smoke-data")
    generate_dataset(smoke_cfg.data, out)
    return out


def run(cmd: list[str], cwd: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    bin_dir = str(Path(sys.executable).parent)
    full_env["PATH"] = bin_dir + os.pathsep + full_env.get("PATH", "")
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}")
    return proc


def write_params(path: Path, overrides: dict) -> None:
    path.write_text(yaml.safe_dump(apply_overrides(load_raw(ROOT / "params.yaml"), overrides), sort_keys=False))


@pytest.fixture
def pipeline_repo(tmp_path, smoke_overrides) -> Path:
    """A fresh git + DVC repository holding the pipeline, with the smoke params, one commit."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in PIPELINE_FILES:
        src = ROOT / name
        dst = repo / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    write_params(repo / "params.yaml", smoke_overrides)
    run(["git", "init", "-q", "-b", "main"], repo)
    run(["git", "config", "user.email", "test@ups.invalid"], repo)
    run(["git", "config", "user.name", "UPS test"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "pipeline"], repo)
    return repo
