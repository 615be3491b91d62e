"""Promotion: `dvc exp apply NAME`, a commit that names the experiment and its numbers, `dvc push`.

Refused, with the reason, when the experiment's gate did not pass, when it cannot be found, when it
ran on another baseline than HEAD (apply would undo the commits since), when the working tree has
uncommitted changes (apply would overwrite them) or when the remote is unusable. Only what
`dvc exp apply` changed is committed, never files that merely lie in the working tree.
"""

from __future__ import annotations

from pathlib import Path

from ups.errors import StageError
from ups.git_repo import git
from ups.leaderboard import exp_show, find, rows_from_exp_show
from ups.remote import check_remote, dvc


def commit_message(name: str, row: dict) -> str:
    return (
        f"Promote experiment {name}: {row['method']} nRMSE {row['nrmse']:.4g} on test "
        f"({row['ratio_to_persistence']:.3g} × persistence), gate passed\n\n"
        f"Experiment {row['rev']} on baseline {row['baseline']}; training {row['training_seconds']:.0f} s."
    )


def _untracked(cwd: Path | str) -> list[str]:
    return [
        f for f in git(["ls-files", "--others", "--exclude-standard", "-z"], cwd, check=True).stdout.split("\0") if f
    ]


def promote(name: str, cwd: Path | str = ".", push: bool = True) -> str:
    """Promote experiment `name`; return the new commit's hash."""
    row = find(rows_from_exp_show(exp_show(cwd)), name)
    if row is None or row["kind"] != "experiment":
        raise StageError(
            f"no experiment named {name!r} in `dvc exp show -A`; list them with `ups leaderboard` (or `dvc exp pull origin {name}` first)"
        )
    if row["passed"] is not True:
        why = row["failures"] or (
            "see its metrics/gate.json"
            if row["passed"] is False
            else "it has no gate verdict: did its run reach the gate stage?"
        )
        raise StageError(f"experiment {name!r} did not pass the gate, so it is not promoted: {why}")
    head = git(["rev-parse", "HEAD"], cwd, check=True).stdout.strip()
    if row.get("baseline") and not head.startswith(str(row["baseline"])):
        raise StageError(
            f"experiment {name!r} ran on baseline {row['baseline']}, but HEAD is {head[:7]}: `dvc exp apply` would put back that "
            f"baseline's files and undo the commits since. Rerun it on HEAD (`dvc exp run -n NAME …`) and promote that run"
        )
    dirty = git(["status", "--porcelain", "--untracked-files=no"], cwd, check=True).stdout.strip()
    if dirty:
        raise StageError(
            f"uncommitted changes in the working tree (`dvc exp apply` would overwrite them); commit or stash them first:\n{dirty}"
        )
    if push:
        check_remote(cwd)
    untracked_before = set(_untracked(cwd))
    dvc(["exp", "apply", name], cwd)
    # Stage what `dvc exp apply` changed, never files that were lying around (a stray credentials file).
    git(["add", "-u"], cwd, check=True)
    created = [f for f in _untracked(cwd) if f not in untracked_before]
    if created:
        git(["add", "--", *created], cwd, check=True)
    git(["commit", "-q", "-m", commit_message(name, row)], cwd, check=True)
    if push:
        dvc(["push"], cwd)
    return git(["rev-parse", "HEAD"], cwd, check=True).stdout.strip()
