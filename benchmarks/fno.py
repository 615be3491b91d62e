"""The peer: a Fourier Neural Operator from the `neuraloperator` package (optional extra `bench`),
set up as its authors and PDEBench run it.

- Inputs: the last `history` frames as channels (PDEBench's `initial_step`: 10 under its protocol, 1
  under the 1-frame protocol), normalised with the train-split mean and std; the FNO appends the grid
  coordinate itself (`positional_embedding="grid"`). Output: the increment to the next frame.
- Training: one-step (teacher-forced) pairs from every start frame of the train split, Gaussian input
  noise (σ = `noise` in normalised units) for stable rollouts, AdamW with a short linear warm-up and a
  cosine decay over the wall-clock budget, gradient clipping.
- Selection: the val full-rollout nRMSE under the same protocol, checked after every pass over the
  data (and at the end of the budget); the best weights are kept.
- Budget: `budget_seconds` of wall time on the same machine, validation included.

The configuration is written into the benchmark results (`fno_training`) and `benchmarks/README.md`.
"""

from __future__ import annotations

import copy
import math
import time

import torch

from ups.eval.metrics import nrmse

CONFIG = {
    "width": 32,
    "modes": 16,
    "layers": 4,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 32,
    "noise": 1e-3,
    "warmup_steps": 100,
    "grad_clip": 1.0,
}


def build(history: int, width: int, modes: int, layers: int):
    from neuralop.models import FNO

    return FNO(n_modes=(modes,), hidden_channels=width, in_channels=history, out_channels=1, n_layers=layers)


class Stepper(torch.nn.Module):
    """The last `history` frames (B, H, X) → the next frame (B, X), through the FNO on normalised values."""

    def __init__(self, fno, mean: float, std: float, history: int):
        super().__init__()
        self.fno, self.mean, self.std, self.history = fno, mean, std, history

    def forward(self, window: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        un = (window - self.mean) / self.std
        if noise > 0:
            un = un + noise * torch.randn_like(un)
        return window[:, -1] + self.std * self.fno(un)[:, 0]

    @torch.no_grad()
    def rollout(self, u_history: torch.Tensor, steps: int, batch: int = 64) -> torch.Tensor:
        """(B, ≥H, X) input frames → (B, steps, X) predicted frames."""
        out = []
        device = next(self.parameters()).device
        for lo in range(0, len(u_history), batch):
            window = u_history[lo : lo + batch, -self.history :].to(device)
            frames = []
            for _ in range(steps):
                nxt = self(window)
                frames.append(nxt)
                window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
            out.append(torch.stack(frames, 1).cpu())
        return torch.cat(out)


def train(
    u_train: torch.Tensor,
    u_val: torch.Tensor,
    budget_seconds: float,
    history: int = 1,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **overrides,
) -> tuple[Stepper, dict]:
    """Train for `budget_seconds` of wall time (validation included) on `device`; return the best
    model and a log."""
    c = {**CONFIG, **overrides}
    torch.manual_seed(seed)
    mean, std = float(u_train.mean()), float(u_train.std())
    u_train, u_val = u_train.to(device), u_val.to(device)
    model = Stepper(build(history, c["width"], c["modes"], c["layers"]), mean, std, history).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
    n, t = u_train.shape[:2]
    starts = torch.cartesian_prod(torch.arange(n), torch.arange(t - history)).to(
        device
    )  # input frames start … start+H−1
    offsets = torch.arange(history, device=device)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    best, best_model, passes, steps = float("inf"), None, 0, 0

    def validate() -> None:
        nonlocal best, best_model
        model.eval()
        e = nrmse(model.rollout(u_val[:, :history], u_val.shape[1] - history), u_val[:, history:].cpu())
        if e < best:
            best, best_model = e, copy.deepcopy(model)

    out_of_time = False
    while not out_of_time:
        model.train()
        for idx in starts[torch.randperm(len(starts), generator=gen).to(device)].split(c["batch_size"]):
            elapsed = time.perf_counter() - started
            if elapsed >= budget_seconds:
                out_of_time = True
                break
            warm = min(1.0, (steps + 1) / c["warmup_steps"])
            for group in opt.param_groups:  # cosine over the wall-clock budget
                group["lr"] = c["lr"] * warm * 0.5 * (1 + math.cos(math.pi * elapsed / budget_seconds))
            window = u_train[idx[:, :1], idx[:, 1:] + offsets]
            target = u_train[idx[:, 0], idx[:, 1] + history]
            loss = ((model(window, c["noise"]) - target) ** 2).mean() / std**2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c["grad_clip"])
            opt.step()
            steps += 1
        passes += 1
        validate()
    return best_model.eval(), {
        "budget_seconds": budget_seconds,
        "seconds": time.perf_counter() - started,
        "passes": passes,
        "steps": steps,
        "history": history,
        "val_rollout_nrmse": best,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": c,
    }
