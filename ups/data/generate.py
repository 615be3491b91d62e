"""Burgers-S: generate PDEBench-layout datasets with the reference solvers.

Each trajectory owns a seed derived from (data.seed, split, ν index, trajectory index) through
`numpy.random.SeedSequence`, so splits are disjoint by construction, and any trajectory can be
regenerated alone. Normalisation statistics come from the train split only.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ups.config import DataConfig
from ups.data.dataset import SPLITS, Trajectories, split_path, stats_path, write_trajectories
from ups.data.initial_conditions import sample_initial_condition
from ups.data.normalization import Normalization
from ups.data.solver import choose_scheme

GENERATOR_VERSION = "burgers-s/1"
_SPLIT_ID = {split: i for i, split in enumerate(SPLITS)}
# Trajectories are sorted by max|u0| and solved in chunks of CHUNK, so the adaptive time step of a
# chunk is set by trajectories of similar amplitude. Chunks depend only on the data, never on the
# number of worker processes, so results are identical whatever the machine.
CHUNK = 64


def trajectory_seeds(seed: int, split: str, nu_index: int, count: int) -> np.ndarray:
    """(count, 4) int64 seed tuples: (data.seed, split id, ν index, trajectory index)."""
    index = np.arange(count, dtype=np.int64)
    fixed = np.array([seed, _SPLIT_ID[split], nu_index], dtype=np.int64)
    return np.concatenate([np.broadcast_to(fixed, (count, 3)), index[:, None]], axis=1)


def initial_conditions(seeds: np.ndarray, x: np.ndarray, length: float) -> np.ndarray:
    return np.stack(
        [sample_initial_condition(np.random.default_rng(np.random.SeedSequence(s.tolist())), x, length) for s in seeds]
    )


def _solve_chunk(args: tuple) -> np.ndarray:
    """Worker: solve one chunk and sample it to the stored grid (float32, (B, T, X))."""
    seeds, nu, x_fine, t, length, scheme, cfl, stored = args
    from ups.data import solver

    solver._FFT_WORKERS = 1  # parallelism comes from the processes
    u = solver.solve(initial_conditions(seeds, x_fine, length), nu, t, length=length, scheme=scheme, cfl=cfl)
    ratio = x_fine.shape[0] // stored
    if scheme == "spectral":
        return u[:, :, ::ratio].astype(np.float32)
    return u.reshape(u.shape[0], u.shape[1], stored, ratio).mean(axis=-1).astype(np.float32)


def worker_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def generate_split(
    cfg: DataConfig, split: str, progress: tqdm | None = None, workers: int | None = None
) -> Trajectories:
    """Solve every trajectory of one split on the fine grid and sample it to the stored grid."""
    count = cfg.split_size(split)
    fine, stored, length = cfg.solver.grid, cfg.grid, cfg.length
    # Stored values sit at the coarse cell centres (i + ½)·L/X. Spectral point values are taken at
    # fine nodes placed on those centres; finite-volume cell averages are averaged in groups.
    x_stored = (np.arange(stored) + 0.5) * length / stored
    t = np.linspace(0.0, cfg.t_final, cfg.frames)
    fields, nus, seeds = [], [], []
    for nu_index, nu in enumerate(cfg.nu):
        scheme = choose_scheme(nu)
        if scheme == "spectral":
            x_fine = np.arange(fine) * length / fine + 0.5 * length / stored
        else:
            x_fine = (np.arange(fine) + 0.5) * length / fine
        split_seeds = trajectory_seeds(cfg.seed, split, nu_index, count)
        amplitude = np.abs(initial_conditions(split_seeds, x_fine, length)).max(axis=1)
        order = np.argsort(amplitude, kind="stable")
        chunks = [order[i : i + CHUNK] for i in range(0, count, CHUNK)]
        jobs = [(split_seeds[c], nu, x_fine, t, length, scheme, cfg.solver.cfl, stored) for c in chunks]
        result = np.empty((count, cfg.frames, stored), dtype=np.float32)
        n_workers = min(workers or worker_count(), len(jobs))
        if n_workers > 1:
            with ProcessPoolExecutor(n_workers, mp_context=get_context("fork")) as pool:
                for c, u in zip(chunks, pool.map(_solve_chunk, jobs), strict=True):
                    result[c] = u
                    if progress is not None:
                        progress.update(len(c) * (cfg.frames - 1))
        else:
            for c, job in zip(chunks, jobs, strict=True):
                result[c] = _solve_chunk(job)
                if progress is not None:
                    progress.update(len(c) * (cfg.frames - 1))
        fields.append(result)
        nus.append(np.full(count, nu, dtype=np.float32))
        seeds.append(split_seeds)
    return Trajectories(
        u=np.concatenate(fields),
        x=x_stored.astype(np.float32),
        t=t.astype(np.float32),
        nu=np.concatenate(nus),
        seeds=np.concatenate(seeds),
    )


def generate_dataset(cfg: DataConfig, out_dir: Path) -> dict:
    """Write train/val/test HDF5 files and the train-only normalisation to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = sum(cfg.split_size(s) for s in SPLITS) * len(cfg.nu) * (cfg.frames - 1)
    started = time.perf_counter()
    summary: dict = {"splits": {}}
    with tqdm(total=total, desc="generate Burgers-S", unit="frame", unit_scale=True, dynamic_ncols=True) as bar:
        for split in SPLITS:
            bar.set_postfix_str(split)
            traj = generate_split(cfg, split, progress=bar)
            attrs = {
                "equation": "u_t + (u^2/2)_x = (nu/pi) u_xx",
                "convention": "PDEBench (diffusion coefficient nu/pi)",
                "domain": f"[0, {cfg.length}) periodic",
                "x_convention": "cell centres (i + 1/2) L / X",
                "generator": GENERATOR_VERSION,
                "seed": cfg.seed,
                "split": split,
                "solver_grid": cfg.solver.grid,
                "solver_cfl": cfg.solver.cfl,
                "schemes": json.dumps({str(nu): choose_scheme(nu) for nu in cfg.nu}),
            }
            write_trajectories(split_path(out_dir, split), traj, attrs)
            summary["splits"][split] = {
                "trajectories": int(traj.u.shape[0]),
                "max_abs_u": float(np.max(np.abs(traj.u))),
            }
            if split == "train":
                Normalization.from_train(traj.u).save(stats_path(out_dir))
    summary["seconds"] = time.perf_counter() - started
    return summary
