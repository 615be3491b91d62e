"""Physical-space error metrics in PDEBench's definitions (SPEC §7)."""

from __future__ import annotations

import torch


def nrmse_per_frame(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """‖pred − true‖₂ / ‖true‖₂ over x, per sample and frame: (..., X) → (...)."""
    return torch.linalg.vector_norm(pred - true, dim=-1) / torch.linalg.vector_norm(true, dim=-1).clamp_min(eps)


def nrmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    """The headline number: per-sample, per-frame nRMSE, averaged."""
    return float(nrmse_per_frame(pred, true).mean())
