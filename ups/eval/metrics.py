"""Physical-space error metrics in PDEBench's definitions.

Every function takes predictions and truth of shape (B, F, X): B trajectories, F predicted frames
(the input frames already excluded, see `exclude_inputs`), X points on the periodic grid.

- nRMSE: ‖pred − true‖₂ / ‖true‖₂ over x, per sample and frame, then averaged (the headline number);
- RMSE: √(mean over x of (pred − true)²), per sample and frame, then averaged;
- max error: the largest |pred − true| anywhere;
- cRMSE: the error of the spatial mean, √(mean over samples and frames of (x̄_pred − x̄_true)²);
- fRMSE in a band of wavenumbers: with û_k = rfft(u)_k / X (the amplitude of mode k in the units of
  u), √(mean over samples, frames and k in the band of |û_pred − û_true|²). Bands follow PDEBench:
  low k < 4, mid 4 ≤ k < 12, high k ≥ 12 (to Nyquist).
"""

from __future__ import annotations

import torch

BANDS = {"low": (0, 4), "mid": (4, 12), "high": (12, None)}


def exclude_inputs(u: torch.Tensor, history: int) -> torch.Tensor:
    """The frames a method must predict: trajectories (B, F, X) without their first `history` frames."""
    return u[:, history:]


def nrmse_per_frame(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """‖pred − true‖₂ / ‖true‖₂ over x, per sample and frame: (..., X) → (...)."""
    return torch.linalg.vector_norm(pred - true, dim=-1) / torch.linalg.vector_norm(true, dim=-1).clamp_min(eps)


def nrmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    """The headline number: per-sample, per-frame nRMSE, averaged."""
    return float(nrmse_per_frame(pred, true).mean())


def rmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(((pred - true) ** 2).mean(-1).sqrt().mean())


def max_error(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float((pred - true).abs().max())


def crmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(((pred.mean(-1) - true.mean(-1)) ** 2).mean().sqrt())


def frmse(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    n = pred.shape[-1]
    diff = torch.fft.rfft((pred - true).double(), dim=-1) / n
    power = diff.abs() ** 2
    return {band: float(power[..., lo:hi].mean().sqrt()) for band, (lo, hi) in BANDS.items()}


def pdebench_metrics(pred: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Every field metric of one method: nrmse, rmse, max_error, crmse, frmse_{band}."""
    pred, true = pred.double(), true.double()
    out = {
        "nrmse": nrmse(pred, true),
        "rmse": rmse(pred, true),
        "max_error": max_error(pred, true),
        "crmse": crmse(pred, true),
    }
    out.update({f"frmse_{band}": v for band, v in frmse(pred, true).items()})
    out["one_step_nrmse"] = nrmse(pred[:, :1], true[:, :1])
    out["final_frame_nrmse"] = nrmse(pred[:, -1:], true[:, -1:])
    return out


def ensemble_scores(members: torch.Tensor, true: torch.Tensor) -> dict[str, float]:
    """Scores of an ensemble (M, B, F, X) against the truth (B, F, X).

    ensemble_mean_nrmse: the nRMSE of the ensemble mean; spread_skill: √(mean ensemble variance ·
    (M+1)/M) / RMSE of the mean (1 for a calibrated ensemble); crps: the continuous ranked probability
    score E|X − y| − ½ E|X − X'| per point, averaged (same units as u).
    """
    m = members.shape[0]
    mean = members.mean(0)
    rmse_mean = torch.sqrt(((mean - true) ** 2).mean())
    spread = torch.sqrt(members.var(0, unbiased=True).mean() * (m + 1) / m) if m > 1 else torch.tensor(0.0)
    skill = (members - true[None]).abs().mean(0)
    pairwise = (members[:, None] - members[None, :]).abs().mean((0, 1))
    return {
        "ensemble_mean_nrmse": nrmse(mean, true),
        "spread_skill": float(spread / rmse_mean),
        "crps": float((skill - 0.5 * pairwise).mean()),
    }
