"""The gate: is a candidate good enough, and better than the champion?

Checks, each recorded with its value, threshold and verdict:

- `proxy`: the proxy gate of `eval_small` passed (operator on val, short horizon: its nRMSE /
  persistence's ≤ `gate.max_ratio_to_persistence`);
- `max_nrmse`: the headline nRMSE (method `gate.method`, test split, full horizon) ≤ `gate.max_nrmse`;
- `max_ratio_to_persistence`: headline nRMSE / persistence's ≤ `gate.max_ratio_to_persistence`;
- `improvement`: (champion − candidate) / champion ≥ `gate.min_improvement`, where the champion is the
  `metrics/eval_full.json` committed at the experiment's baseline commit (read from git with
  `git show HEAD:…`, never from the workspace, which the candidate's own run has overwritten). With no
  committed champion this check passes and the absolute checks decide.

The `gate` stage always exits 0 so that failed candidates still appear in `dvc exp show`;
`ups gate check` is the strict form (exit 1 when the gate failed) for CI and promotion.
"""

from __future__ import annotations

import json
from pathlib import Path

from ups.config import GateConfig
from ups.git_repo import git

RULES = {
    "proxy": "eval_small: the operator's nRMSE / persistence's on val ≤ gate.max_ratio_to_persistence",
    "max_nrmse": "nRMSE ≤ gate.max_nrmse",
    "max_ratio_to_persistence": "nRMSE / persistence's ≤ gate.max_ratio_to_persistence",
    "improvement": "(champion − candidate) / champion ≥ gate.min_improvement",
}


def check(value: float | None, threshold: float, passed: bool) -> dict:
    return {"value": value, "threshold": threshold, "passed": bool(passed)}


def absolute_checks(gate: GateConfig, nrmse: float, persistence_nrmse: float) -> dict[str, dict]:
    ratio = nrmse / persistence_nrmse if persistence_nrmse > 0 else float("inf")
    return {
        "max_nrmse": check(nrmse, gate.max_nrmse, nrmse <= gate.max_nrmse),
        "max_ratio_to_persistence": check(ratio, gate.max_ratio_to_persistence, ratio <= gate.max_ratio_to_persistence),
    }


def failures(checks: dict[str, dict]) -> list[str]:
    return [
        f"{name}: {c['value']:.4g} vs threshold {c['threshold']:.4g} ({RULES[name]})"
        for name, c in checks.items()
        if not c["passed"]
    ]


def committed_json(path: Path | str, rev: str = "HEAD", cwd: Path | str = ".") -> tuple[dict | None, str]:
    """The JSON file `path` (relative to `cwd`) as committed at `rev`, and a note on where it came from."""
    cwd = Path(cwd)
    head = git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd)
    if head.returncode != 0:
        return None, f"no git commit {rev!r} here: no champion"
    commit = head.stdout.strip()
    shown = git(["show", f"{commit}:./{Path(path).as_posix()}"], cwd)
    if shown.returncode != 0:
        return None, f"{path} is not committed at {commit[:7]}: no champion"
    try:
        return json.loads(shown.stdout), f"{path} at {commit[:7]}"
    except json.JSONDecodeError as exc:
        return None, f"{path} at {commit[:7]} is not valid JSON ({exc}): no champion"


def decide(gate: GateConfig, small: dict, full: dict, champion: dict | None, champion_source: str) -> dict:
    """The verdict and every check, from the two evaluation reports and the champion's report."""
    proxy = small["proxy"]
    checks = {"proxy": check(proxy["ratio_to_persistence"], gate.max_ratio_to_persistence, proxy["passed"])}
    out: dict = {"method": gate.method}
    if full.get("skipped"):
        out["skipped_reason"] = full["reason"]
    else:
        head = full["headline"]
        checks.update(absolute_checks(gate, head["nrmse"], head["persistence_nrmse"]))
        out.update(nrmse=head["nrmse"], ratio_to_persistence=head["ratio_to_persistence"])
        best = champion.get("headline") if champion and not champion.get("skipped") else None
        if best is None:
            checks["improvement"] = check(None, gate.min_improvement, True)
            out["champion"] = f"none ({champion_source}); the absolute checks decide"
        else:
            gain = (best["nrmse"] - head["nrmse"]) / best["nrmse"]
            checks["improvement"] = check(gain, gate.min_improvement, gain >= gate.min_improvement)
            out["champion"] = f"{best['method']} nRMSE {best['nrmse']:.4g} from {champion_source}"
            out["champion_nrmse"] = best["nrmse"]
    failed = failures(checks)
    if full.get("skipped"):
        failed = [f"eval_full skipped, so the headline was not measured: {full['reason']}"]
    # `reason` repeats `failures` as one string: DVC shows scalars only, so this one reaches `dvc exp show`
    return {"passed": not failed, **out, "reason": "; ".join(failed), "failures": failed, "checks": checks}


def strict(path: Path | str) -> tuple[bool, str]:
    """(passed, a one-paragraph summary) of a written gate file; for `ups gate check`."""
    from ups.io import read_stage_json

    g = read_stage_json(path, "gate", ("passed", "failures"))
    if g["passed"]:
        return True, f"gate passed: {g['method']} nRMSE {g['nrmse']:.4g}, {g['ratio_to_persistence']:.3g} × persistence"
    return False, "gate failed:\n  " + "\n  ".join(g["failures"])


def run_gate(gate: GateConfig, small_path: Path, full_path: Path, training_summaries: list[Path], out: Path) -> dict:
    """The `gate` stage: decide, add the total training time (a leaderboard column), write `out`."""
    from ups.io import read_stage_json, write_json_atomic

    small, full = (
        read_stage_json(small_path, "eval_small", ("proxy",)),
        read_stage_json(full_path, "eval_full", ("skipped",)),
    )
    champion, source = committed_json(full_path)
    verdict = decide(gate, small, full, champion, source)
    verdict["training_seconds"] = round(
        sum(read_stage_json(p, Path(p).parent.name).get("train_seconds", 0.0) for p in training_summaries), 1
    )
    write_json_atomic(out, verdict)
    return verdict
