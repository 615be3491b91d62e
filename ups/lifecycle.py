"""Where each experiment stands, and archiving the finished ones.

The state of an experiment is read, never kept by hand: from its file (`experiments/NAME.yaml`, or
`experiments/archive/NAME.yaml` once archived, with its `decision`), from `dvc queue status` and from
`dvc exp show --json -A`:

    planned   a file, never queued
    queued    waiting in DVC's queue
    running   its pipeline runs now
    failed    the run failed and recorded no experiment (`dvc queue logs NAME` has its log)
    done      its pipeline ran; the gate passed or failed
    promoted  `ups promote NAME` made it the committed champion
    archived  pushed to the remotes, removed from this repository, its file in experiments/archive/

Archiving pushes the experiment (`dvc exp push origin NAME`: its git ref to the git remote, its
outputs to the DVC remote), removes it locally (`dvc exp remove NAME`) and moves its file to
experiments/archive/ with `decision: archived` and the pushed ref, in one commit. Nothing is removed
unless every push succeeded; `dvc exp pull origin NAME` brings an archived experiment back.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from ups.errors import StageError
from ups.experiments import ARCHIVE, EXPERIMENTS, Experiment, decide, load_experiment
from ups.git_repo import git
from ups.leaderboard import exp_show, rows_from_exp_show
from ups.remote import check_remote, dvc

ACTIVE = ("queued", "running")
QUEUE_STATES = ("Queued", "Running", "Success", "Failed")  # the last column of `dvc queue status`


@dataclass
class Status:
    name: str
    state: str  # one of the states above
    last_activity: datetime.datetime | None
    nrmse: float | None = None
    passed: bool | None = None
    hypothesis: str = ""
    note: str = ""  # where a failed run's log is, what the decision was
    file: Path | None = None
    rev: str | None = None  # the experiment's commit, once it ran

    def age_days(self, now: datetime.datetime) -> float | None:
        return None if self.last_activity is None else (now - self.last_activity).total_seconds() / 86400

    @property
    def verdict(self) -> str:
        return {True: "passed", False: "failed"}.get(self.passed, "")


def queue_states(cwd: Path | str = ".") -> dict[str, list[str]]:
    """Every state `dvc queue status` lists for each experiment name (a name can be queued twice)."""
    states: dict[str, list[str]] = {}
    for line in dvc(["queue", "status"], cwd, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] != "Task" and parts[-1] in QUEUE_STATES:
            states.setdefault(parts[1], []).append(parts[-1])
    return states


def _parse_time(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        t = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def _file_time(path: Path, cwd: Path | str) -> datetime.datetime:
    """When the file last changed: its last commit, else its modification time."""
    out = git(["log", "-1", "--format=%cI", "--", str(path.relative_to(Path(cwd).resolve()))], cwd).stdout.strip()
    return _parse_time(out) or datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)


def _state(exp: Experiment | None, archived: bool, queued: list[str], row: dict | None) -> tuple[str, str]:
    if archived:
        ref = ((exp.decided or {}).get("ref") if exp else None) or "no ref"
        return "archived", f"pushed as {ref}"
    if exp is not None and exp.decision == "promoted":
        return "promoted", f"experiment commit {(exp.decided or {}).get('rev', '?')}"
    if "Running" in queued:
        return "running", "follow it with `dvc queue logs -f NAME`"
    if "Queued" in queued:
        return "queued", "`dvc queue start` runs it"
    if row is not None and not row.get("error"):
        note = f"decision: {_cut(exp.decision, 50)}" if exp is not None and exp.decision else ""
        return "done", note or ("" if row.get("passed") is not None else "no gate verdict: did it reach the gate?")
    if "Failed" in queued or row is not None:
        return "failed", "its log: `dvc queue logs NAME`"
    return "planned", "`ups exp queue NAME` queues it"


def statuses(cwd: Path | str = ".") -> list[Status]:
    """One status per experiment file (active and archived) and per DVC experiment without a file."""
    cwd = Path(cwd).resolve()
    rows: dict[str, dict] = {}
    for row in rows_from_exp_show(exp_show(cwd)):
        if row["kind"] == "experiment" and (
            row["experiment"] not in rows or (row["created"] or "") > (rows[row["experiment"]]["created"] or "")
        ):
            rows[row["experiment"]] = row
    queue = queue_states(cwd)
    files = [(p, False) for p in sorted((cwd / EXPERIMENTS).glob("*.yaml"))]
    files += [(p, True) for p in sorted((cwd / ARCHIVE).glob("*.yaml"))]
    out, seen = [], set()
    for path, archived in files:
        exp = load_experiment(path, cwd / "params.yaml") if not archived else _load_archived(path)
        out.append(
            _status(
                exp.name,
                exp,
                archived,
                queue.get(exp.name, []),
                None if archived else rows.get(exp.name),
                _file_time(path, cwd),
                path,
            )
        )
        seen.add(exp.name)
    for name in sorted(set(rows) | set(queue)):
        if name not in seen:
            out.append(_status(name, None, False, queue.get(name, []), rows.get(name), None, None))
    return out


def _load_archived(path: Path) -> Experiment:
    """An archived file, read without validating its params against today's params.yaml."""
    import yaml

    raw = yaml.safe_load(path.read_text()) or {}
    return Experiment(
        name=raw.get("name", path.stem),
        hypothesis=str(raw.get("hypothesis", "")),
        params=raw.get("params") or {},
        result=raw.get("result"),
        decision=raw.get("decision"),
        decided=raw.get("decided"),
        path=path,
    )


def _status(name, exp, archived, queued, row, file_time, path) -> Status:
    state, note = _state(exp, archived, queued, row)
    times = [t for t in (file_time, _parse_time(row["created"]) if row else None) if t is not None]
    result = (exp.result if exp is not None else None) or {}
    if row is not None and row.get("error"):
        row = dict(row, rev=None)  # nothing of its own to push: the failed run recorded no outputs
    return Status(
        name=name,
        state=state,
        last_activity=max(times) if times else None,
        nrmse=row["nrmse"] if row else result.get("nrmse"),
        passed=row["passed"] if row else result.get("passed"),
        hypothesis=exp.hypothesis if exp is not None else "(no experiment file)",
        note=note.replace("NAME", name),
        file=path,
        rev=row["rev"] if row else None,
    )


def _cut(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def listing(items: list[Status], width: int = 60) -> str:
    """The status table `ups exp list` prints (Markdown)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = ["| experiment | state | age (days) | nRMSE | gate | hypothesis | note |", "|---|---|---|---|---|---|---|"]
    for s in items:
        age = s.age_days(now)
        cut = _cut(s.hypothesis, width)
        cells = [
            s.name,
            s.state,
            "" if age is None else f"{age:.1f}",
            "" if s.nrmse is None else f"{s.nrmse:.4g}",
            s.verdict,
            cut,
            s.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def select(items: list[Status], names: list[str], status: str | None, stale: float | None) -> list[Status]:
    """The experiments to archive: the named ones, those in state `status` (failed or done), or those
    with no activity for `stale` days; never a queued, running, promoted or already archived one."""
    by_name = {s.name: s for s in items}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise StageError(f"no experiment named {', '.join(map(repr, unknown))}: `ups exp list` shows them all")
    chosen = [by_name[n] for n in names]
    if status is not None:
        chosen += [s for s in items if s.state == status]
    if stale is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        chosen += [s for s in items if (s.age_days(now) or 0.0) >= stale]
    picked, seen = [], set()
    for s in chosen:
        if s.name in seen or s.file is not None and s.file.name == "smoke.yaml":
            continue
        seen.add(s.name)
        if s.state in (*ACTIVE, "promoted", "archived"):
            if s.name in names:
                raise StageError(f"experiment {s.name!r} is {s.state}: it is not archived")
            continue
        picked.append(s)
    return picked


def plan(items: list[Status], remote: str) -> list[str]:
    """What archiving `items` does, one line each (the `--dry-run` output)."""
    lines = []
    for s in items:
        steps = (
            [f"dvc exp push {remote} {s.name}", f"dvc exp remove {s.name}"]
            if s.rev
            else [f"dvc queue remove {s.name}"]
            if s.state == "failed"
            else []
        )
        move = f"move {s.file.name} to {ARCHIVE}/" if s.file is not None else "no file to move"
        lines.append(f"{s.name} ({s.state}): " + "; ".join([*steps, move]))
    return lines


def _pushed_ref(name: str, remote: str, cwd: Path) -> str:
    for line in git(["ls-remote", remote, "refs/exps/*"], cwd, check=True).stdout.splitlines():
        ref = line.split()[-1]
        if ref.rsplit("/", 1)[-1] == name:
            return ref
    raise StageError(
        f"`dvc exp push {remote} {name}` succeeded but {remote} has no ref refs/exps/…/{name}; nothing archived"
    )


def archive(items: list[Status], cwd: Path | str = ".", remote: str = "origin") -> list[str]:
    """Push every experiment that ran, then remove it and move its file, in one commit. Any failed
    push stops everything before the first removal. Returns the archived names."""
    cwd = Path(cwd).resolve()
    if not items:
        return []
    ran = [s for s in items if s.rev]
    if ran:
        check_remote(cwd)  # the DVC remote is reachable and the credentials work, before any push
    refs = {}
    for s in ran:
        proc = dvc(["exp", "push", remote, s.name], cwd, check=False)
        if proc.returncode != 0:
            raise StageError(
                f"`dvc exp push {remote} {s.name}` failed, so nothing was archived:\n{(proc.stderr or proc.stdout).strip()}"
            )
        refs[s.name] = _pushed_ref(s.name, remote, cwd)
    for s in items:
        if s.rev:
            dvc(["exp", "remove", s.name], cwd)
        elif s.state == "failed":
            dvc(["queue", "remove", s.name], cwd, check=False)
    paths = []
    for s in items:
        if s.file is not None:
            tracked = git(["ls-files", "--error-unmatch", "--", str(s.file)], cwd).returncode == 0
            old, new = _move(s, refs.get(s.name), cwd)
            paths += [str(old), str(new)] if tracked else [str(new)]
    if paths:
        git(["add", "-A", "--", *paths], cwd, check=True)
        names = ", ".join(s.name for s in items)
        git(["commit", "-q", "-m", f"Archive experiment(s) {names}", "--", *paths], cwd, check=True)
    return [s.name for s in items]


def _move(s: Status, ref: str | None, cwd: Path) -> tuple[Path, Path]:
    """Move the file to experiments/archive/ and record the decision there; (old, new) paths relative to cwd."""
    exp = _load_archived(s.file)
    dest = cwd / ARCHIVE / s.file.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    s.file.replace(dest)
    exp.path = dest
    why = "the run failed: no experiment was recorded" if s.state == "failed" else None
    decide(exp, "archived", ref=ref, rev=s.rev, state=s.state, note=why)
    return s.file.relative_to(cwd), dest.relative_to(cwd)
