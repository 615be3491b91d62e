"""Experiment files: `experiments/NAME.yaml`, one per planned experiment.

    name: latent64
    hypothesis: a 64-channel latent halves the autoencoder error and lowers rollout nRMSE
    params:            # flat dotted keys, exactly what `dvc exp run -S` would set
      latent.dim: 64
    result: {...}      # written by `ups exp record` once it ran
    decision: promoted # `ups promote`, `ups exp archive` or `ups exp decide` (free text)
    decided: {...}     # when, and the commit, experiment or pushed ref it concerns

`load_experiment` validates the file: the name is safe for a shell, a path and a label, and every
override names a real parameter with a valid value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ups.config import ConfigError, load_config

FIELDS = ("name", "hypothesis", "params", "result", "decision", "decided")
EXPERIMENTS = Path("experiments")
ARCHIVE = EXPERIMENTS / "archive"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            [
                f"experiment name {name!r} is not allowed: use 1–63 letters, digits, '-' or '_', starting with a letter or digit"
            ],
            source="experiment",
        )
    return name


@dataclass
class Experiment:
    name: str
    hypothesis: str
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    decision: str | None = None
    decided: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)

    def set_args(self) -> list[str]:
        """The `-S key=value` arguments for `dvc exp run`."""
        out = []
        for key, value in self.params.items():
            out += ["-S", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
        return out


def load_experiment(path: Path | str, params_file: Path | str = "params.yaml") -> Experiment:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such experiment file")
    raw = yaml.safe_load(path.read_text()) or {}
    problems = [f"{path}: missing '{k}'" for k in ("name", "hypothesis", "params") if k not in raw]
    unknown = set(raw) - set(FIELDS)
    problems += [f"{path}: unknown field '{k}' (allowed: {', '.join(FIELDS)})" for k in sorted(unknown)]
    if problems:
        raise ConfigError(problems, source=str(path))
    if not isinstance(raw["params"], dict):
        raise ConfigError([f"{path}: params must be a mapping of dotted keys to values"], source=str(path))
    exp = Experiment(
        name=validate_name(raw["name"]),
        hypothesis=str(raw["hypothesis"]),
        params=dict(raw["params"]),
        result=raw.get("result"),
        decision=raw.get("decision"),
        decided=raw.get("decided"),
        path=path,
    )
    load_config(params_file, exp.params)  # every override must be a valid parameter
    return exp


def dump_experiment(exp: Experiment) -> str:
    """The file's text, fields in their documented order."""
    body = {"name": exp.name, "hypothesis": exp.hypothesis, "params": exp.params}
    for key in ("result", "decision", "decided"):
        if getattr(exp, key) is not None:
            body[key] = getattr(exp, key)
    return yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def queue(exp: Experiment, cwd: Path | str = ".", run_now: bool = False) -> str:
    """`dvc exp run --queue -n NAME -S …` from the file (or run it at once with `run_now`)."""
    from ups.remote import dvc

    args = ["exp", "run", *([] if run_now else ["--queue"]), "-n", exp.name, *exp.set_args()]
    proc = dvc(args, cwd)
    return f"$ dvc {' '.join(args)}\n{proc.stdout.strip()}"


def queue_state(name: str, cwd: Path | str = ".") -> str | None:
    """The state `dvc queue status` gives the experiment `name` (Queued, Running, Success, Failed …), or None."""
    from ups.remote import dvc

    for line in dvc(["queue", "status"], cwd, check=False).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == name:
            return parts[-1]
    return None


RESULT_KEYS = ("passed", "method", "nrmse", "ratio_to_persistence", "solver_nrmse", "training_seconds", "failures")


def record(path: Path | str, cwd: Path | str = ".", params_file: Path | str = "params.yaml") -> Experiment:
    """Write the experiment's measured headline and gate verdict into the file's `result`."""
    from ups.errors import StageError
    from ups.leaderboard import exp_show, find, rows_from_exp_show

    exp = load_experiment(path, params_file)
    state = queue_state(exp.name, cwd)
    if state in ("Queued", "Running"):
        # a running experiment's row shows the metrics files of its baseline until its stages rewrite them
        raise StageError(
            f"experiment {exp.name!r} is {state.lower()} (`dvc queue status`): its metrics are not its own yet; record it once it succeeded"
        )
    row = find(rows_from_exp_show(exp_show(cwd)), exp.name)
    if row is None:
        raise StageError(
            f"no experiment named {exp.name!r} in `dvc exp show -A`: has it run? (`dvc queue status`, `dvc exp pull origin {exp.name}`)"
        )
    if row.get("error"):
        raise StageError(f"experiment {exp.name!r} failed ({row['error']}): its log is in `dvc queue logs {exp.name}`")
    if row["nrmse"] is None and not row["failures"]:
        raise StageError(
            f"experiment {exp.name!r} ({row['rev']}) has no gate metrics yet: did its pipeline reach the gate stage?"
        )
    result = {k: row[k] for k in RESULT_KEYS if row.get(k) not in (None, "")}
    result.update(rev=row["rev"], baseline=row["baseline"], recorded=now())
    exp.result = result
    from ups.io import write_text_atomic

    write_text_atomic(exp.path, dump_experiment(exp))
    return exp


def now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def experiment_path(name: str, cwd: Path | str = ".") -> Path:
    """experiments/NAME.yaml, or experiments/archive/NAME.yaml once archived."""
    active = Path(cwd) / EXPERIMENTS / f"{name}.yaml"
    archived = Path(cwd) / ARCHIVE / f"{name}.yaml"
    return archived if archived.exists() and not active.exists() else active


def new(
    name: str, params: dict[str, Any], hypothesis: str, cwd: Path | str = ".", params_file: Path | str = "params.yaml"
) -> Experiment:
    """Write experiments/NAME.yaml, validated as `ups exp queue` validates it; an existing name
    (active or archived) is refused."""
    from ups.errors import StageError
    from ups.io import write_text_atomic

    validate_name(name)
    for where in (Path(cwd) / EXPERIMENTS / f"{name}.yaml", Path(cwd) / ARCHIVE / f"{name}.yaml"):
        if where.exists():
            raise StageError(f"{where} exists: choose another name (or edit that file)")
    if not hypothesis.strip():
        raise StageError("--hypothesis is empty: say what you expect the change to do, and why")
    load_config(Path(cwd) / params_file, params)  # every override must be a valid parameter
    exp = Experiment(
        name=name, hypothesis=hypothesis.strip(), params=dict(params), path=Path(cwd) / EXPERIMENTS / f"{name}.yaml"
    )
    exp.path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(exp.path, dump_experiment(exp))
    return exp


def decide(exp: Experiment, decision: str, **details: Any) -> Experiment:
    """Set the file's decision (promoted, archived or free text) with its date and details; write it."""
    from ups.io import write_text_atomic

    exp.decision = decision
    exp.decided = {"date": now(), **{k: v for k, v in details.items() if v is not None}}
    write_text_atomic(exp.path, dump_experiment(exp))
    return exp
