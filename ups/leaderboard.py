"""The leaderboard across commits: pandas over `dvc exp show --json`.

`dvc exp show --sort-by` sorts experiments within one baseline commit only; this table holds every
commit and every experiment of every commit (`-A`), sorted by the headline nRMSE (best first), with
the gate verdict, the total training time and the key params: the ones that differ between rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ups.remote import dvc

HEADLINE = ["passed", "method", "nrmse", "ratio_to_persistence", "training_seconds"]
ALWAYS_SHOWN_PARAMS = ["latent.tokens", "latent.dim"]


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in (tree or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _row(entry: dict, experiment: str, baseline: str, kind: str) -> dict:
    data = entry.get("data") or {}
    params = _flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
    metrics = data.get("metrics") or {}
    gate = (metrics.get("metrics/gate.json") or {}).get("data") or {}
    full = (metrics.get("metrics/eval_full.json") or {}).get("data") or {}
    row = {
        "experiment": experiment,
        "rev": (entry.get("rev") or "")[:7],
        "baseline": baseline[:7],
        "kind": kind,
        "created": data.get("timestamp"),
    }
    row["error"] = (entry.get("error") or {}).get("msg")
    if row["error"]:  # a failed run: `dvc exp show` lists it with its baseline's metrics, not its own
        gate, full = {}, {}
    row.update({k: gate.get(k) for k in HEADLINE})
    row["solver_nrmse"] = (full.get("headline") or {}).get("solver_nrmse")
    row["failures"] = row["error"] or gate.get("reason") or "; ".join(gate.get("failures") or [])
    row.update({f"param:{k}": v for k, v in params.items()})
    return row


def rows_from_exp_show(shown: list[dict], workspace: bool = False) -> list[dict]:
    """One row per commit and per experiment in `dvc exp show --json` output; with `workspace`, the
    workspace too (kind "workspace": the outputs of a plain `dvc repro` that is not committed yet)."""
    rows = []
    for commit in shown:
        if commit.get("rev") == "workspace":
            if workspace:
                rows.append(_row(commit, "workspace", "", "workspace"))
            continue
        sha = commit.get("rev", "")
        rows.append(_row(commit, commit.get("name") or sha[:7], sha, "commit"))
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                rows.append(_row(rev, rev.get("name") or exp.get("name") or rev.get("rev", "")[:7], sha, "experiment"))
    return rows


def exp_show(cwd: Path | str = ".", all_commits: bool = True) -> list[dict]:
    args = ["exp", "show", "--json"] + (["-A"] if all_commits else [])
    return json.loads(dvc(args, cwd).stdout or "[]")


def find(rows: list[dict], name: str) -> dict | None:
    """The experiment (or commit) called `name`; the newest when several baselines hold one."""
    matches = [r for r in rows if r["experiment"] == name or r["rev"] == name[:7]]
    matches.sort(key=lambda r: r["created"] or "", reverse=True)
    return matches[0] if matches else None


def table(rows: list[dict], top: int | None = None, params: list[str] | None = None) -> pd.DataFrame:
    """Rows with a measured headline, best first; key params = the given ones, else those that vary."""
    df = pd.DataFrame([r for r in rows if r.get("nrmse") is not None])
    if df.empty:
        return df
    df = df.drop_duplicates(subset=["rev"]).sort_values("nrmse", kind="stable").reset_index(drop=True)
    # The workspace shows the committed metrics again until a run rewrites them: keep it only when it differs.
    committed = df[df["kind"] != "workspace"]
    same = (df["kind"] == "workspace") & df["nrmse"].isin(committed["nrmse"]) & df["passed"].isin(committed["passed"])
    df = df[~same].reset_index(drop=True)
    param_cols = [c for c in df.columns if c.startswith("param:")]
    if params is None:
        varying = [c for c in param_cols if df[c].astype(str).nunique() > 1]
        keep = [f"param:{p}" for p in ALWAYS_SHOWN_PARAMS if f"param:{p}" in df.columns] + [
            c for c in varying if c[6:] not in ALWAYS_SHOWN_PARAMS
        ]
    else:
        keep = [f"param:{p}" for p in params if f"param:{p}" in df.columns]
    df.loc[df["kind"] == "workspace", "experiment"] = "workspace (uncommitted)"
    df = df[["experiment", "baseline", *HEADLINE, "solver_nrmse", *keep]].rename(columns={c: c[6:] for c in keep})
    return df.head(top) if top else df


def markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "No experiment has a measured headline yet: run `dvc repro` or `dvc exp run`.\n"

    def fmt(v):
        if isinstance(v, float):
            return "" if pd.isna(v) else f"{v:.4g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
