"""Physical-space error metrics in PDEBench's definitions (SPEC §7)."""

from __future__ import annotations

import torch


def nrmse_per_frame(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """‖pred − true‖₂ / ‖true‖₂ over x, per sample and frame: (..., X) → (...)."""
    return torch.linalg.vector_norm(pred - true, dim=-1) / torch.linalg.vector_norm(true, dim=-1).clamp_min(eps)


def nrmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    """The headline number: per-sample, per-frame nRMSE, averaged."""
    return float(nrmse_per_frame(pred, true).mean())


def ensemble_scores(members: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Scores of an ensemble (M, B, F, X) against the truth (B, F, X).

    ensemble_mean_nrmse: the nRMSE of the ensemble mean; spread_skill: √(mean ensemble variance ·
    (M+1)/M) / RMSE of the mean (1 for a calibrated ensemble); crps: the continuous ranked probability
    score E|X − y| − ½ E|X − X'| per point, averaged (same units as u).
    """
    m = members.shape[0]
    mean = members.mean(0)
    rmse = torch.sqrt(((mean - true) ** 2).mean())
    spread = torch.sqrt(members.var(0, unbiased=True).mean() * (m + 1) / m) if m > 1 else torch.tensor(0.0)
    skill = (members - true[None]).abs().mean(0)
    pairwise = (members[:, None] - members[None, :]).abs().mean((0, 1))
    return {
        "ensemble_mean_nrmse": nrmse(mean, true),
        "spread_skill": float(spread / rmse),
        "crps": float((skill - 0.5 * pairwise).mean()),
    }
