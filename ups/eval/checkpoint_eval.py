"""`ups eval run`: any autoencoder + operator checkpoint pair on any Burgers-S or PDEBench file.

For debugging outside the pipeline: the checkpoints describe themselves (grid, Δt), so the file is
read at the model's resolution (every k-th point and frame, a PDEBench file of 1024 points and 201
frames becomes 256 × 41 for the default model), and scored with the metrics `eval_full` reports,
next to persistence and the reference solver. On the test split it gives `eval_full`'s numbers.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ups.config import Config
from ups.data.dataset import DataError, Trajectories, load_trajectories
from ups.eval import evaluate as ev
from ups.eval.predictions import write_predictions
from ups.inference.rollout import Simulator
from ups.runtime import pick_device

METHODS = ("persistence", "solver", "operator")


def _frames_at(path: Path, dt: float) -> int:
    """How many frames of the file lie on the model's time step `dt` (every k-th frame, endpoints kept)."""
    try:
        with h5py.File(path, "r") as f:
            t = np.asarray(f["t-coordinate"][...], dtype=np.float64)
            n_frames = f["tensor"].shape[1]
    except (OSError, KeyError) as exc:
        raise DataError(f"{path}: not a Burgers-S or PDEBench HDF5 file ({exc})") from exc
    file_dt = float(t[1] - t[0])
    stride = round(dt / file_dt)
    if stride < 1 or abs(stride * file_dt - dt) > 1e-6 * max(dt, 1.0) or (n_frames - 1) % stride:
        raise DataError(f"{path}: frames every {file_dt:g} cannot be subsampled to the checkpoint's Δt = {dt:g}")
    return (n_frames - 1) // stride + 1


def load_for(sim: Simulator, path: Path, allow_legacy_domain: bool = False, limit: int | None = None) -> Trajectories:
    """The file's trajectories at the checkpoints' grid and time step."""
    grid = len(sim.autoencoder.grid)
    return load_trajectories(path, _frames_at(path, sim.dt), grid, allow_legacy_domain=allow_legacy_domain, limit=limit)


def evaluate_pair(
    cfg: Config,
    autoencoder: Path,
    operator: Path,
    data: Path,
    history: int,
    out: Path | None = None,
    limit: int | None = None,
) -> dict:
    """Persistence, the solver and the operator from `history` input frames of each trajectory in
    `data`; with `out`, the predictions as a file `ups eval recompute` reads."""
    device = pick_device(cfg.runtime)
    sim = Simulator.from_checkpoints(autoencoder, operator, device=str(device))
    if history < sim.history:
        raise DataError(f"--history {history}: the operator takes {sim.history} input frame(s)")
    traj = load_for(sim, Path(data), cfg.data.pdebench.allow_legacy_domain, limit)
    u_in, truth, x, nu = ev.split_inputs(traj, history)
    steps, b = truth.shape[1], cfg.eval.batch_size
    preds = {
        "persistence": ev.persistence(u_in, steps),
        "solver": ev.numerical_solver(u_in, nu, traj.t, history, cfg, b),
        "operator": ev.operator(sim, u_in, x, nu, steps, b, device),
    }
    methods = {name: ev.method_report(p, truth, b, device) for name, p in preds.items()}
    if out is not None:
        write_predictions(out, Path(data).name, u_in, truth, x, traj.t, nu, preds)
    return {
        "data": str(data),
        "trajectories": len(u_in),
        "points": int(traj.u.shape[-1]),
        "dt": sim.dt,
        "input_frames": history,
        "frames_predicted": steps,
        "methods": methods,
    }


def table(report: dict) -> str:
    """The report as the table `ups eval run` prints."""
    lines = [
        f"{report['data']}: {report['trajectories']} trajectories, {report['points']} points, Δt = {report['dt']:g}, "
        f"{report['input_frames']} input frame(s), {report['frames_predicted']} predicted",
        f"  {'method':<12} {'nRMSE':>10} {'RMSE':>10} {'max error':>10} {'ms/traj':>9}",
    ]
    for name, m in report["methods"].items():
        ms = 1e3 * m["seconds_per_trajectory"]
        lines.append(f"  {name:<12} {m['nrmse']:>10.4g} {m['rmse']:>10.4g} {m['max_error']:>10.4g} {ms:>9.3g}")
    return "\n".join(lines)
