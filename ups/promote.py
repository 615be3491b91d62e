"""Promotion: `dvc exp apply NAME`, a commit that names the experiment and its numbers, `dvc push`.

Refused, with the reason, when the experiment's gate did not pass, when it cannot be found, when it
ran on another baseline than HEAD (apply would undo the commits since), when the working tree has
uncommitted changes (apply would overwrite them) or when the remote is unusable. Only what
`dvc exp apply` changed is committed, never files that merely lie in the working tree, together with
`decision: promoted` in the experiment's file (experiments/NAME.yaml). The promotion commit is
tagged as a new version of every model artifact of dvc.yaml (DVC's model registry).
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


def record_decision(name: str, row: dict, cwd: Path | str) -> None:
    """`decision: promoted` in experiments/NAME.yaml (when the experiment has a file), staged for the
    promotion commit, with the experiment's commit and baseline."""
    from ups.experiments import EXPERIMENTS, decide, load_experiment

    path = Path(cwd) / EXPERIMENTS / f"{name}.yaml"
    if not path.exists():
        return
    decide(load_experiment(path, Path(cwd) / "params.yaml"), "promoted", rev=row["rev"], baseline=row["baseline"])
    git(["add", "--", str(path.relative_to(Path(cwd)))], cwd, check=True)


def artifact_names(cwd: Path | str) -> list[str]:
    """The models `dvc.yaml` declares under `artifacts:`."""
    import yaml

    return list((yaml.safe_load((Path(cwd) / "dvc.yaml").read_text()) or {}).get("artifacts") or {})


def _next_version(artifact: str, cwd: Path | str) -> str:
    """v0.N.0 after the highest v0.M.0 (any vX.Y.Z) this artifact is tagged with."""
    versions = []
    for tag in git(["tag", "--list", f"{artifact}@v*"], cwd, check=True).stdout.split():
        parts = tag.split("@v", 1)[1].split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            versions.append(tuple(int(p) for p in parts))
    major, minor, _ = max(versions, default=(0, 0, 0))
    return f"v{major}.{minor + 1}.0"


def tag_artifacts(name: str, cwd: Path | str) -> list[str]:
    """Register the promoted models in DVC's model registry: an annotated git tag `ARTIFACT@vX.Y.Z` on
    the promotion commit for every artifact of dvc.yaml, so `dvc artifacts get URL operator` fetches
    the champion's operator (push the tags with `git push --tags`)."""
    tags = []
    for artifact in artifact_names(cwd):
        tag = f"{artifact}@{_next_version(artifact, cwd)}"
        git(["tag", "-a", tag, "-m", f"Promoted experiment {name}"], cwd, check=True)
        tags.append(tag)
    return tags


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
    record_decision(name, row, cwd)
    git(["commit", "-q", "-m", commit_message(name, row)], cwd, check=True)
    tag_artifacts(name, cwd)
    if push:
        dvc(["push"], cwd)
    return git(["rev-parse", "HEAD"], cwd, check=True).stdout.strip()
