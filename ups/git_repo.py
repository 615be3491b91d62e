"""Running git in the user's repository: one helper for the gate, promotion and the Vast launcher."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ups.errors import StageError


def git(args: list[str], cwd: Path | str = ".", check: bool = False) -> subprocess.CompletedProcess:
    """`git ARGS` in `cwd`, output captured; with `check`, a failure raises StageError with git's words."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise StageError(f"`git {' '.join(args)}` failed: {(proc.stderr or proc.stdout).strip()}")
    return proc
