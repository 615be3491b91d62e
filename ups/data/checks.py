"""Checks of a Burgers-S dataset directory, run by the validate stage before any expensive work.

Each failure raises `DataError` naming the file, the trajectory or key, and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ups.config import DataConfig
from ups.data.dataset import SPLITS, DataError, Trajectories, load_trajectories, split_path, stats_path
from ups.data.normalization import Normalization


def check_finite(traj: Trajectories, path: Path) -> None:
    bad = ~np.isfinite(traj.u).reshape(len(traj), -1).all(axis=1)
    if bad.any():
        idx = np.flatnonzero(bad)
        frames = np.flatnonzero(~np.isfinite(traj.u[idx[0]]).all(axis=-1))
        raise DataError(
            f"{path}: trajectory {idx[0]} (frame {frames[0]}) contains NaN or Inf"
            + (
                f", as do {len(idx) - 1} more trajectories ({', '.join(map(str, idx[1:6]))}{', …' if len(idx) > 6 else ''})"
                if len(idx) > 1
                else ""
            )
            + "; regenerate the data with `dvc repro -f generate`"
        )


def check_split(traj: Trajectories, cfg: DataConfig, split: str, path: Path) -> None:
    expected = (cfg.split_size(split) * len(cfg.nu), cfg.frames, cfg.grid)
    if traj.u.shape != expected:
        raise DataError(
            f"{path}: tensor has shape {traj.u.shape}, params.yaml expects {expected} "
            "(data.splits × len(data.nu), data.frames, data.grid); run `dvc repro generate`"
        )
    check_finite(traj, path)
    x_expected = (np.arange(cfg.grid) + 0.5) * cfg.length / cfg.grid
    if not np.allclose(traj.x, x_expected, atol=1e-6 * cfg.length):
        raise DataError(
            f"{path}: x-coordinate is not the cell centres of [0, {cfg.length}) with {cfg.grid} cells (spans {traj.x.min():.4g} … {traj.x.max():.4g})"
        )
    t_expected = np.linspace(0.0, cfg.t_final, cfg.frames)
    if not np.allclose(traj.t, t_expected, atol=1e-6 * cfg.t_final):
        raise DataError(f"{path}: t-coordinate is not 0 … {cfg.t_final} in {cfg.frames} frames")
    unknown = sorted(
        set(np.round(traj.nu.astype(float), 8)) - set(np.round(np.asarray(cfg.nu, dtype=np.float32).astype(float), 8))
    )
    if unknown:
        raise DataError(f"{path}: holds ν = {unknown}, not in data.nu = {cfg.nu}; run `dvc repro generate`")


def check_disjoint(splits: dict[str, Trajectories]) -> None:
    """No trajectory (by seed and by initial condition) appears in two splits."""
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = splits[a].seeds, splits[b].seeds
            if sa is not None and sb is not None:
                shared = {tuple(r) for r in sa.tolist()} & {tuple(r) for r in sb.tolist()}
                if shared:
                    raise DataError(
                        f"splits {a} and {b} share {len(shared)} trajectory seed(s), e.g. {sorted(shared)[0]}; regenerate the data"
                    )
            ua = {row.tobytes() for row in splits[a].u[:, 0]}
            dup = [k for k, row in enumerate(splits[b].u[:, 0]) if row.tobytes() in ua]
            if dup:
                raise DataError(
                    f"splits {a} and {b} share initial conditions (e.g. {b} trajectory {dup[0]}); regenerate the data"
                )


def check_normalization(stats: Normalization, train: Trajectories, path: Path) -> None:
    recomputed = Normalization.from_train(train.u)
    if (
        stats.source != "train"
        or not np.isclose(stats.mean, recomputed.mean, rtol=1e-5, atol=1e-7)
        or not np.isclose(stats.std, recomputed.std, rtol=1e-5)
    ):
        raise DataError(
            f"{path}: statistics (mean {stats.mean:.6g}, std {stats.std:.6g}) are not those of the train split "
            f"(mean {recomputed.mean:.6g}, std {recomputed.std:.6g}); run `dvc repro -f generate`"
        )


def check_dataset(data_dir: Path | str, cfg: DataConfig) -> dict:
    """Run every check; return a summary for metrics/validate.json."""
    data_dir = Path(data_dir)
    loaded = {}
    for split in SPLITS:
        path = split_path(data_dir, split)
        traj = load_trajectories(path, allow_legacy_domain=cfg.pdebench.allow_legacy_domain)
        check_split(traj, cfg, split, path)
        loaded[split] = traj
    check_disjoint(loaded)
    stats = Normalization.load(stats_path(data_dir))
    check_normalization(stats, loaded["train"], stats_path(data_dir))
    return {
        "trajectories": {s: len(t) for s, t in loaded.items()},
        "shape": list(loaded["train"].u.shape[1:]),
        "dt": loaded["train"].dt,
        "max_abs_u": float(max(np.abs(t.u).max() for t in loaded.values())),
        "normalization": {"mean": stats.mean, "std": stats.std},
    }
