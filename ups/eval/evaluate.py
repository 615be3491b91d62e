"""Every method on one split, in physical space, with its cost.

Each method gets the same input frames (the first `eval.history` frames of each trajectory) and
predicts the rest in physical units; metrics exclude the input frames. Methods:

- `persistence`: the last input frame, copied forward (the floor any model must beat);
- `solver`: the reference scheme run on the stored grid (`data.grid` points) from the last input
  frame: the numerical method at the resolution the models see;
- `operator`: the deterministic latent operator;
- `diffusion`: operator + diffusion residual, the mean of `diffusion.ensemble` sample paths;
- `consistency`: operator + consistency student, the mean of as many sample paths;
- `ttc`: test-time compute (beam search over student samples, physics reward);
- `steady_prior`: the terminal frame only, reported apart (`terminal` block).

Time per trajectory is measured over the whole split in batches of `eval.batch_size` on one device.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ups.config import Config
from ups.data.dataset import Trajectories
from ups.data.solver import choose_scheme, solve
from ups.eval.metrics import ensemble_scores, exclude_inputs, nrmse, nrmse_per_frame, pdebench_metrics
from ups.inference.rollout import Simulator
from ups.inference.stochastic import corrected_rollout, physics_reward, ttc_rollout

SEED = 0  # sample paths of the stochastic methods are drawn from this seed, so evaluation is repeatable


@dataclass
class Prediction:
    method: str
    prediction: torch.Tensor  # (B, F, X) physical, CPU float32
    seconds: float  # wall time over the whole split
    nfe_per_step: float | None = None  # network evaluations per trajectory and step (None: no network)
    members: torch.Tensor | None = None  # (M, B, F, X) sample paths of a stochastic method
    extra: dict = field(default_factory=dict)


def _batched(
    fn: Callable[[slice], torch.Tensor], n: int, batch_size: int, dim: int = 0, desc: str = ""
) -> tuple[torch.Tensor, float]:
    """Run `fn` over slices of at most `batch_size` trajectories; concatenate along `dim`; time it."""
    parts = []
    started = time.perf_counter()
    for lo in tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False, disable=None):
        parts.append(fn(slice(lo, min(lo + batch_size, n))).float().cpu())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return torch.cat(parts, dim=dim), time.perf_counter() - started


def persistence(u_in: torch.Tensor, steps: int) -> Prediction:
    started = time.perf_counter()
    pred = u_in[:, -1:].expand(-1, steps, -1).clone()
    return Prediction("persistence", pred, time.perf_counter() - started)


def numerical_solver(
    u_in: torch.Tensor, nu: torch.Tensor, t: np.ndarray, history: int, cfg: Config, batch_size: int
) -> Prediction:
    """The reference scheme on the stored grid, from the last input frame to the last frame."""
    t_out = np.asarray(t[history - 1 :], dtype=np.float64) - float(t[history - 1])
    u0 = u_in[:, -1].double().numpy()
    nus = nu.double().numpy()
    out = np.empty((len(u0), len(t_out) - 1, u0.shape[-1]), dtype=np.float32)
    started = time.perf_counter()
    schemes = set()
    for value in np.unique(nus):
        rows = np.flatnonzero(nus == value)
        schemes.add(choose_scheme(float(value)))
        for lo in range(0, len(rows), batch_size):
            idx = rows[lo : lo + batch_size]
            out[idx] = solve(u0[idx], float(value), t_out, length=cfg.data.length, cfl=cfg.data.solver.cfl)[:, 1:]
    return Prediction(
        "solver",
        torch.from_numpy(out),
        time.perf_counter() - started,
        extra={"scheme": "+".join(sorted(schemes)), "grid": int(u0.shape[-1])},
    )


def operator(
    sim: Simulator,
    u_in: torch.Tensor,
    x: torch.Tensor,
    nu: torch.Tensor,
    steps: int,
    batch_size: int,
    device: torch.device,
) -> Prediction:
    xd = x.to(device)
    pred, seconds = _batched(
        lambda s: sim.rollout(u_in[s].to(device), xd, nu[s].to(device), steps), len(u_in), batch_size, desc="operator"
    )
    return Prediction("operator", pred, seconds, nfe_per_step=1)


def ensemble(
    name: str,
    sim: Simulator,
    corrector,
    members: int,
    u_in: torch.Tensor,
    x: torch.Tensor,
    nu: torch.Tensor,
    steps: int,
    batch_size: int,
    device: torch.device,
) -> Prediction:
    """`members` sample paths of operator + corrector; the prediction is their mean."""
    gen = torch.Generator().manual_seed(SEED)
    xd = x.to(device)

    def paths(s: slice) -> torch.Tensor:
        z0 = sim.encode(u_in[s, -sim.history :].to(device), xd)
        nus = nu[s].to(device)
        return torch.stack(
            [sim.decode(corrected_rollout(sim, corrector, z0, nus, steps, gen), xd) for _ in range(members)]
        )

    paths_all, seconds = _batched(paths, len(u_in), batch_size, dim=1, desc=name)
    return Prediction(name, paths_all.mean(0), seconds, nfe_per_step=1 + corrector.nfe, members=paths_all)


def test_time_compute(
    sim: Simulator,
    corrector,
    cfg: Config,
    u_in: torch.Tensor,
    x: torch.Tensor,
    nu: torch.Tensor,
    steps: int,
    dt: float,
    batch_size: int,
    device: torch.device,
) -> Prediction:
    gen = torch.Generator().manual_seed(SEED)
    xd = x.to(device)
    nfe = []

    def run(s: slice) -> torch.Tensor:
        nus = nu[s].to(device)
        reward = physics_reward(cfg.ttc.reward, dt, cfg.data.length, nus)
        pred, cost = ttc_rollout(
            sim,
            corrector,
            u_in[s].to(device),
            xd,
            nus,
            steps,
            reward,
            cfg.ttc.candidates,
            cfg.ttc.beam,
            cfg.ttc.horizon,
            gen,
        )
        nfe.append(cost["nfe_per_step"] * (s.stop - s.start))
        return pred

    pred, seconds = _batched(run, len(u_in), batch_size, desc="ttc")
    extra = {"candidates": cfg.ttc.candidates, "beam": cfg.ttc.beam, "horizon": cfg.ttc.horizon}
    return Prediction("ttc", pred, seconds, nfe_per_step=sum(nfe) / len(u_in), extra=extra)


def method_report(p: Prediction, truth: torch.Tensor, batch_size: int, device: torch.device) -> dict:
    """The metrics of one method against the truth (both without input frames), and its cost."""
    report = pdebench_metrics(p.prediction, truth)
    if p.members is not None:
        report.update(ensemble_scores(p.members, truth))
        report["members"] = int(p.members.shape[0])
    report["seconds_per_trajectory"] = p.seconds / len(truth)
    report["batch_size"] = batch_size if p.method not in ("persistence",) else len(truth)
    report["device"] = "cpu" if p.method in ("persistence", "solver") else device.type
    if p.nfe_per_step is not None:
        report["nfe_per_step"] = p.nfe_per_step
    report.update(p.extra)
    return report


def per_frame_rows(preds: dict[str, Prediction], truth: torch.Tensor, t: np.ndarray, history: int) -> list[dict]:
    """The per-frame nRMSE curve of each method: one row per predicted frame."""
    curves = {name: nrmse_per_frame(p.prediction.double(), truth.double()).mean(0) for name, p in preds.items()}
    return [
        {
            "frame": history + i,
            "t": round(float(t[history + i]), 6),
            **{name: float(c[i]) for name, c in curves.items()},
        }
        for i in range(truth.shape[1])
    ]


def terminal_report(
    steady_prior,
    sim: Simulator,
    traj: Trajectories,
    operator_pred: torch.Tensor,
    persistence_pred: torch.Tensor,
    t_final: float,
    device: torch.device,
) -> dict:
    """The steady prior's terminal frame from the first frame and ν, next to the operator's last frame."""
    u, x, nu = torch.from_numpy(traj.u), torch.from_numpy(traj.x), torch.from_numpy(traj.nu)
    started = time.perf_counter()
    with torch.no_grad():
        xd = x.to(device)
        z0 = sim.encode(u[:, :1].to(device), xd)[:, 0]
        pred = (
            sim.decode(steady_prior(z0, nu.to(device), torch.full((len(u),), t_final, device=device))[:, None], xd)[
                :, 0
            ]
            .float()
            .cpu()
        )
    seconds = time.perf_counter() - started
    final = u[:, -1]
    return {
        "steady_prior_nrmse": nrmse(pred, final),
        "operator_nrmse": nrmse(operator_pred[:, -1], final),
        "persistence_nrmse": nrmse(persistence_pred[:, -1], final),
        "seconds_per_trajectory": seconds / len(u),
    }


def split_inputs(
    traj: Trajectories, history: int, limit: int = 0, frames: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(inputs (B, H, X), truth without inputs (B, F, X), x, nu), on the first `limit` trajectories (0 = all)."""
    n = limit or len(traj)
    u = torch.from_numpy(traj.u[:n])
    if frames is not None:
        u = u[:, : history + frames]
    return u[:, :history], exclude_inputs(u, history), torch.from_numpy(traj.x), torch.from_numpy(traj.nu[:n])
