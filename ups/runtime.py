"""Where UPS computes: the device `runtime.device` asks for (training, evaluation and inference share it)."""

from __future__ import annotations

import torch

from ups.config import RuntimeConfig
from ups.errors import StageError


def pick_device(runtime: RuntimeConfig) -> torch.device:
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise StageError("runtime.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if runtime.device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
