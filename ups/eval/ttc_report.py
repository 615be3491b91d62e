"""Test-time compute against its cost: TTC with the physics reward vs one corrected sample path.

Both use the same checkpoints and corrector on the same trajectories; reported are the rollout
nRMSE of each, the network evaluations per step and the seconds.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ups.config import Config
from ups.data.dataset import load_trajectories, split_path
from ups.eval.metrics import nrmse
from ups.inference.rollout import Simulator
from ups.inference.stochastic import corrected_rollout, physics_reward, ttc_rollout
from ups.models.diffusion import ConsistencyStudent, DiffusionResidual


def ttc_report(
    cfg: Config,
    data_dir: Path,
    checkpoints: Path,
    split: str = "val",
    corrector_name: str = "consistency",
    limit: int | None = None,
) -> dict:
    checkpoints = Path(checkpoints)
    sim = Simulator.from_checkpoints(checkpoints / "autoencoder.pt", checkpoints / "operator.pt")
    if corrector_name == "consistency":
        corrector = ConsistencyStudent.from_checkpoint(checkpoints / "consistency.pt")
    else:
        corrector = DiffusionResidual.from_checkpoint(checkpoints / "diff_residual.pt")
    traj = load_trajectories(split_path(data_dir, split), limit=limit)
    u, x, nu = torch.from_numpy(traj.u), torch.from_numpy(traj.x), torch.from_numpy(traj.nu)
    h = sim.history
    steps = u.shape[1] - h
    truth = u[:, h:]
    corrected_rollout(sim, corrector, sim.encode(u[:1, :h], x), nu[:1], 1)  # warm-up, so both timings are fair
    started = time.perf_counter()
    z0 = sim.encode(u[:, :h], x)
    single = sim.decode(corrected_rollout(sim, corrector, z0, nu, steps, torch.Generator().manual_seed(0)), x)
    single_seconds = time.perf_counter() - started
    reward = physics_reward(cfg.ttc.reward, traj.dt, cfg.data.length, nu)
    pred, cost = ttc_rollout(
        sim,
        corrector,
        u[:, :h],
        x,
        nu,
        steps,
        reward,
        cfg.ttc.candidates,
        cfg.ttc.beam,
        cfg.ttc.horizon,
        torch.Generator().manual_seed(0),
    )
    return {
        "split": split,
        "trajectories": len(u),
        "corrector": corrector_name,
        "single_sample_nrmse": nrmse(single, truth),
        "ttc_nrmse": nrmse(pred, truth),
        "single_nfe_per_step": 1 + corrector.nfe,
        "ttc_nfe_per_step": cost["nfe_per_step"],
        "single_seconds": single_seconds,
        "ttc_seconds": cost["seconds"],
        "candidates": cfg.ttc.candidates,
        "beam": cfg.ttc.beam,
        "horizon": cfg.ttc.horizon,
    }
