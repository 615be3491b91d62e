"""The peer: a Fourier Neural Operator from the `neuraloperator` package (optional extra `bench`).

Trained on the same Burgers-S train split as UPS, as an autoregressive next-frame model in physical
space (inputs: the current frame, normalised with the train statistics, and the x coordinate; output:
the increment to the next frame), for a fixed wall-clock budget on the same machine. Selected on the
val full-rollout nRMSE, checked once per pass over the data.
"""

from __future__ import annotations

import copy
import time

import torch

from ups.eval.metrics import nrmse


def build(width: int = 64, modes: int = 16, layers: int = 4):
    from neuralop.models import FNO

    return FNO(n_modes=(modes,), hidden_channels=width, in_channels=2, out_channels=1, n_layers=layers)


class Stepper(torch.nn.Module):
    """u (B, X) → u at the next frame, through the FNO on normalised values."""

    def __init__(self, fno, mean: float, std: float, x: torch.Tensor):
        super().__init__()
        self.fno, self.mean, self.std = fno, mean, std
        self.register_buffer("x", x.float())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        un = (u - self.mean) / self.std
        inp = torch.stack([un, self.x.expand_as(un)], dim=1)
        return u + self.std * self.fno(inp)[:, 0]

    @torch.no_grad()
    def rollout(self, u0: torch.Tensor, steps: int, batch: int = 64) -> torch.Tensor:
        out = []
        for lo in range(0, len(u0), batch):
            u = u0[lo : lo + batch]
            frames = []
            for _ in range(steps):
                u = self(u)
                frames.append(u)
            out.append(torch.stack(frames, 1))
        return torch.cat(out)


def train(u_train: torch.Tensor, u_val: torch.Tensor, x: torch.Tensor, budget_seconds: float, batch_size: int = 64, lr: float = 2e-3, seed: int = 0, unroll: int = 2) -> tuple[Stepper, dict]:
    """Train for `budget_seconds` of wall time (validation included); return the best model and a log."""
    torch.manual_seed(seed)
    mean, std = float(u_train.mean()), float(u_train.std())
    model = Stepper(build(), mean, std, x)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    n, t = u_train.shape[:2]
    starts = torch.cartesian_prod(torch.arange(n), torch.arange(t - unroll))
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    best, best_model, passes, steps = float("inf"), None, 0, 0
    while time.perf_counter() - started < budget_seconds:
        model.train()
        for idx in starts[torch.randperm(len(starts), generator=gen)].split(batch_size):
            u = u_train[idx[:, 0], idx[:, 1]]
            loss = 0.0
            for k in range(1, unroll + 1):  # a short unrolled loss: the model sees its own outputs
                u = model(u)
                loss = loss + ((u - u_train[idx[:, 0], idx[:, 1] + k]) ** 2).mean() / std**2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            if time.perf_counter() - started >= budget_seconds:
                break
        passes += 1
        model.eval()
        e = nrmse(model.rollout(u_val[:, 0], u_val.shape[1] - 1), u_val[:, 1:])
        if e < best:
            best, best_model = e, copy.deepcopy(model)
    return best_model.eval(), {"budget_seconds": budget_seconds, "seconds": time.perf_counter() - started, "passes": passes, "steps": steps, "val_rollout_nrmse": best, "parameters": sum(p.numel() for p in model.parameters())}
