"""Rollouts with the stochastic corrector, and test-time compute.

A corrector (the diffusion residual or its consistency student) samples the normalised residual
r = (z_true − z_op)/r_std given the operator's prediction; each step is z = z_op + r_std · r.

Test-time compute (`ttc_rollout`), a beam search per trajectory: at each step every kept path draws
`candidates` corrected next states; each candidate is rolled `horizon − 1` steps further with one
corrected sample (a look-ahead), decoded, and ranked by its path's cumulative reward plus its
look-ahead reward, computed for each trajectory separately; the best `beam` paths are kept, and the
path with the best cumulative reward gives the prediction. The reward is a function of decoded fields only:
`physics_reward` (discrete Burgers residual between consecutive frames, drift of ∫u, energy gain),
or in tests an oracle.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import torch

from ups.config import RewardWeights
from ups.data.solver import epsilon
from ups.inference.rollout import Simulator, unroll


class Corrector(Protocol):
    r_std: torch.Tensor
    nfe: int

    def sample(
        self, z_op: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor, gen: torch.Generator | None = None
    ) -> torch.Tensor: ...


# (u_prev (N, X), u_next (N, X), step index, trajectory index of each row (N,)) → reward (N,), higher is better
Reward = Callable[[torch.Tensor, torch.Tensor, int, torch.Tensor], torch.Tensor]


@torch.no_grad()
def corrected_step(
    sim: Simulator, corrector: Corrector | None, window: torch.Tensor, nu: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    z_op = sim.step(window, nu)
    if corrector is None:
        return z_op
    dt = torch.full((window.shape[0],), sim.dt, dtype=window.dtype, device=window.device)
    return z_op + corrector.r_std * corrector.sample(sim.operator.normalize(z_op), dt, nu, gen)


@torch.no_grad()
def corrected_rollout(
    sim: Simulator,
    corrector: Corrector | None,
    z_history: torch.Tensor,
    nu: torch.Tensor,
    steps: int,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """(B, ≥H, T, D) → (B, steps, T, D): one sample path of operator + corrector."""
    return unroll(lambda window: corrected_step(sim, corrector, window, nu, gen), z_history, sim.history, steps)


def physics_reward(weights: RewardWeights, dt: float, length: float, nu: torch.Tensor) -> Reward:
    """−(w_r·residual + w_c·|Δ∫u| + w_e·max(0, Δ∫u²)) for each row, on a periodic uniform grid.

    The residual is the Crank–Nicolson-centred discrete Burgers equation between two frames:
    (u⁺ − u)/Δt + ∂x(ū²/2) − ε ∂xx ū with ū = (u + u⁺)/2, central differences, ε = ν/π.
    """

    def reward(u_prev: torch.Tensor, u_next: torch.Tensor, step: int, rows: torch.Tensor) -> torch.Tensor:
        dx = length / u_prev.shape[-1]
        eps = epsilon(1.0) * nu[rows][:, None]
        mid = 0.5 * (u_prev + u_next)
        flux = 0.5 * mid**2
        dflux = (flux.roll(-1, -1) - flux.roll(1, -1)) / (2 * dx)
        lap = (mid.roll(-1, -1) - 2 * mid + mid.roll(1, -1)) / dx**2
        residual = ((u_next - u_prev) / dt + dflux - eps * lap).pow(2).mean(-1)
        conservation = (u_next.mean(-1) - u_prev.mean(-1)).abs()
        energy_gain = torch.relu(u_next.pow(2).mean(-1) - u_prev.pow(2).mean(-1))
        return -(weights.residual * residual + weights.conservation * conservation + weights.energy * energy_gain)

    return reward


@torch.no_grad()
def _look_ahead(
    sim, corrector, score, window, u_prev, x, nu, rows, step: int, ahead: int, reward: Reward, gen
) -> tuple[torch.Tensor, int]:
    """`score` plus the rewards of `ahead` further corrected steps from each candidate (one sample path
    each), and the network evaluations they took."""
    nfe = 0
    for k in range(1, ahead + 1):
        nxt = corrected_step(sim, corrector, window, nu[rows], gen)
        nfe += len(window) * (1 + corrector.nfe)
        u_nxt = sim.decode(nxt[:, None], x)[:, 0]
        score = score + reward(u_prev, u_nxt, step + k, rows)
        window, u_prev = torch.cat([window[:, 1:], nxt[:, None]], dim=1), u_nxt
    return score, nfe


@torch.no_grad()
def ttc_rollout(
    sim: Simulator,
    corrector: Corrector,
    u_history: torch.Tensor,
    x: torch.Tensor,
    nu: torch.Tensor,
    steps: int,
    reward: Reward,
    candidates: int,
    beam: int = 1,
    horizon: int = 1,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict]:
    """Physical input frames (B, ≥H, X) → predictions (B, steps, X) chosen by `reward`, and costs."""
    started = time.perf_counter()
    b = u_history.shape[0]
    z_hist = sim.encode(u_history[:, -sim.history :], x)  # (B, H, T, D)
    windows = z_hist[:, None].expand(b, beam, *z_hist.shape[1:]).clone()  # (B, K, H, T, D); K kept states
    u_last = u_history[:, -1][:, None].expand(b, beam, -1).clone()  # (B, K, X)
    paths = u_history.new_zeros(b, beam, 0, u_history.shape[-1])
    cumulative = u_history.new_zeros(b, beam)  # each kept path's summed reward so far
    kept = 1  # at the start all beam slots hold the same state: expand only one
    nfe = 0
    for step in range(steps):
        n = b * kept * candidates
        rows = torch.arange(b, device=u_history.device).repeat_interleave(kept * candidates)
        w = windows[:, :kept].repeat_interleave(candidates, dim=1).reshape(n, *windows.shape[2:])
        first = corrected_step(sim, corrector, w, nu[rows], gen)
        nfe += n * (1 + corrector.nfe)  # the operator and the corrector, for every candidate
        u_first = sim.decode(first[:, None], x)[:, 0]
        prev = u_last[:, :kept].repeat_interleave(candidates, dim=1).reshape(n, -1)
        path_score = cumulative[:, :kept].repeat_interleave(candidates, dim=1).reshape(n) + reward(
            prev, u_first, step, rows
        )
        window = torch.cat([w[:, 1:], first[:, None]], dim=1)
        ahead = min(horizon, steps - step) - 1
        # ranking: the path so far plus the look-ahead
        score, look_nfe = _look_ahead(
            sim, corrector, path_score.clone(), window, u_first, x, nu, rows, step, ahead, reward, gen
        )
        nfe += look_nfe
        new_kept = min(beam, kept * candidates)
        best = score.reshape(b, kept * candidates).topk(new_kept, dim=1).indices  # per trajectory
        flat = best + (torch.arange(b, device=best.device) * kept * candidates)[:, None]
        parents = best // candidates
        new_windows = window[flat.flatten()].reshape(b, new_kept, *windows.shape[2:])
        new_paths = torch.cat(
            [
                paths[:, :kept].gather(1, parents[:, :, None, None].expand(-1, -1, *paths.shape[2:])),
                u_first[flat.flatten()].reshape(b, new_kept, 1, -1),
            ],
            dim=2,
        )
        windows = torch.cat([new_windows, windows[:, new_kept:]], dim=1) if new_kept < beam else new_windows
        paths = new_paths
        u_last = u_first[flat.flatten()].reshape(b, new_kept, -1)
        cumulative = path_score[flat.flatten()].reshape(b, new_kept)
        kept = new_kept
    return paths[:, 0], {"nfe_per_step": nfe / (b * steps), "seconds": time.perf_counter() - started}
