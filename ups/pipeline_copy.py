"""A copy of the pipeline in a fresh folder: what the test suite and the benchmarks run on.

It holds the files git tracks for the pipeline and the library it runs, with params.yaml rewritten
under the given overrides, optionally as a one-commit git repository (DVC needs a commit for
`dvc exp run`). The stages run as `python -m stages.NAME`, so the copy runs its own `ups`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from ups.config import apply_overrides, load_raw

PIPELINE_FILES = (
    "dvc.yaml",
    "params.yaml",
    "stages",
    "ups",
    "experiments",
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
)


def copy_pipeline(root: Path, dest: Path, overrides: dict, git: bool = True) -> Path:
    """`root`'s pipeline in the new folder `dest` with `overrides` applied to params.yaml; with `git`, a
    repository whose one commit holds it all."""
    dest.mkdir(parents=True)
    for name in PIPELINE_FILES:
        src, dst = root / name, dest / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    params = apply_overrides(load_raw(root / "params.yaml"), overrides)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if git:
        for cmd in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=UPS", "-c", "user.email=ups@ups.invalid", "commit", "-qm", "pipeline"],
        ):
            subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest
