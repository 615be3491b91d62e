"""Reading and writing trajectories in PDEBench's HDF5 layout.

A file holds `tensor` (N, T, X) float32, `x-coordinate` (X), `t-coordinate` (T) and, for Burgers-S
files, per-trajectory `nu` (N) and `seed` (N, 4), with provenance in the root attributes. Real PDEBench
files (`1D_Burgers_Sols_Nu0.01.hdf5`: 10000 × 201 × 1024, a `t-coordinate` one entry longer than the
tensor, ν only in the file name) load through the same function and are subsampled in space and time.
Files whose x-coordinate spans (−1, 1) come from PDEBench's old generator, whose equation and domain do
not match its documentation; they are refused unless `allow_legacy_domain` is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ups.io import atomic_path

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data file that cannot be used as it is; the message names the file and the fix."""


@dataclass
class Trajectories:
    u: np.ndarray  # (N, T, X) float32
    x: np.ndarray  # (X,)
    t: np.ndarray  # (T,)
    nu: np.ndarray  # (N,)
    seeds: np.ndarray | None = None  # (N, 4) for generated data
    source: str = ""

    def __len__(self) -> int:
        return self.u.shape[0]

    @property
    def dt(self) -> float:
        """The real time step between stored frames."""
        return float(self.t[1] - self.t[0])


def split_path(data_dir: Path | str, split: str) -> Path:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    return Path(data_dir) / f"{split}.h5"


def stats_path(data_dir: Path | str) -> Path:
    return Path(data_dir) / "normalization.json"


def write_trajectories(path: Path, traj: Trajectories, attrs: dict) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("tensor", data=traj.u.astype(np.float32), chunks=(1,) + traj.u.shape[1:])
        f.create_dataset("x-coordinate", data=traj.x)
        f.create_dataset("t-coordinate", data=traj.t)
        f.create_dataset("nu", data=traj.nu.astype(np.float32))
        if traj.seeds is not None:
            f.create_dataset("seed", data=traj.seeds)
        for key, value in attrs.items():
            f.attrs[key] = value


def _nu_from_name(path: Path) -> float | None:
    match = re.search(r"Nu([0-9.eE+-]+?)(?:\.hdf5|\.h5|$)", path.name)
    return float(match.group(1)) if match else None


def _stride(n_in: int, n_out: int, kind: str, path: Path) -> int:
    """The subsampling stride from n_in to n_out points (kind "points") or frames (endpoints kept)."""
    if kind == "points":
        if n_out > n_in or n_in % n_out:
            raise DataError(
                f"{path}: {n_in} points cannot be subsampled evenly to {n_out}; set data.grid to a divisor of {n_in}"
            )
        return n_in // n_out
    if n_out < 2 or n_out > n_in or (n_in - 1) % (n_out - 1):
        raise DataError(
            f"{path}: {n_in} frames cannot be subsampled evenly to {n_out}; set data.frames so that "
            f"{n_in - 1} is a multiple of (data.frames − 1)"
        )
    return (n_in - 1) // (n_out - 1)


def load_trajectories(
    path: Path | str,
    frames: int | None = None,
    grid: int | None = None,
    allow_legacy_domain: bool = False,
    nu: float | None = None,
    limit: int | None = None,
) -> Trajectories:
    """Load a Burgers-S or PDEBench file, subsampled to `frames` × `grid` when given."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such data file; run `dvc repro generate` (or `dvc pull`) first")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc}); delete it and run `dvc repro generate`") from exc
    with f:
        missing = [k for k in ("tensor", "x-coordinate", "t-coordinate") if k not in f]
        if missing:
            raise DataError(
                f"{path}: missing dataset(s) {', '.join(missing)}; expected PDEBench's layout (tensor, x-coordinate, t-coordinate)"
            )
        x = np.asarray(f["x-coordinate"][...], dtype=np.float64)
        if x.min() < -0.5:
            if not allow_legacy_domain:
                raise DataError(
                    f"{path}: x-coordinate spans ({x.min():.3g}, {x.max():.3g}), i.e. the domain (-1, 1) of PDEBench's old "
                    "Burgers generator, whose files do not solve the documented equation on [0, 1). Regenerate "
                    "the file with the current PDEBench, or set data.pdebench.allow_legacy_domain: true to load it anyway."
                )
        tensor = f["tensor"]
        if tensor.ndim != 3:
            raise DataError(f"{path}: tensor has shape {tensor.shape}; expected (N, T, X)")
        n_total, t_total, x_total = tensor.shape
        if x.shape[0] != x_total:
            raise DataError(f"{path}: x-coordinate has {x.shape[0]} points but tensor has {x_total}")
        t = np.asarray(f["t-coordinate"][...], dtype=np.float64)
        if t.shape[0] == t_total + 1:  # PDEBench stores one more time coordinate than frames
            t = t[:t_total]
        if t.shape[0] != t_total:
            raise DataError(f"{path}: t-coordinate has {t.shape[0]} entries but tensor has {t_total} frames")
        s_t = _stride(t_total, frames, "frames", path) if frames else 1
        s_x = _stride(x_total, grid, "points", path) if grid else 1
        n = n_total if limit is None else min(limit, n_total)
        u = np.asarray(tensor[:n, ::s_t, ::s_x], dtype=np.float32)
        if "nu" in f:
            nus = np.asarray(f["nu"][:n], dtype=np.float32)
        else:
            value = nu if nu is not None else _nu_from_name(path)
            if value is None:
                raise DataError(f"{path}: no per-trajectory `nu` dataset and no `Nu<value>` in the file name; pass nu=")
            nus = np.full(n, value, dtype=np.float32)
        seeds = np.asarray(f["seed"][:n]) if "seed" in f else None
    return Trajectories(
        u=u, x=x[::s_x].astype(np.float32), t=t[::s_t].astype(np.float32), nu=nus, seeds=seeds, source=str(path)
    )


def load_split(data_dir: Path | str, split: str, data_cfg) -> Trajectories:
    """One split of a Burgers-S folder, loaded as the `data` params say (the one way stages load data)."""
    return load_trajectories(split_path(data_dir, split), allow_legacy_domain=data_cfg.pdebench.allow_legacy_domain)


def read_attrs(path: Path | str) -> dict:
    with h5py.File(path, "r") as f:
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
