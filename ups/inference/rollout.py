"""Roll the latent model out in physical space: the API evaluation and users share.

sim = Simulator.from_checkpoints("checkpoints/autoencoder.pt", "checkpoints/operator.pt")
u = sim.rollout(u_history, x, nu, steps=40)   # (B, H, X) physical → (B, steps, X) physical
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from ups.models.autoencoder import Autoencoder
from ups.models.operator import LatentOperator

# (window (B, H, T, D)) → the next latent (B, T, D)
Step = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def unroll(step: Step, z_history: torch.Tensor, history: int, steps: int) -> torch.Tensor:
    """Autoregressive rollout: (B, ≥H, T, D) latents → (B, steps, T, D), each prediction fed back as
    the newest frame of the window. Every rollout (deterministic, corrected, evaluation) is this loop."""
    window = z_history[:, -history:]
    out = []
    for _ in range(steps):
        nxt = step(window)
        out.append(nxt)
        window = torch.cat([window[:, 1:], nxt[:, None]], dim=1)
    return torch.stack(out, dim=1)


class Simulator:
    def __init__(self, autoencoder: Autoencoder, operator: LatentOperator, dt: float):
        self.autoencoder = autoencoder.eval()
        self.operator = operator.eval()
        self.dt = dt

    @classmethod
    def from_checkpoints(cls, autoencoder: Path | str, operator: Path | str, device: str = "cpu") -> "Simulator":
        op = LatentOperator.from_checkpoint(operator, device)
        return cls(Autoencoder.from_checkpoint(autoencoder, device), op, op.spec["dt"])

    @property
    def history(self) -> int:
        return self.operator.history

    @torch.no_grad()
    def encode(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(B, F, X) fields → (B, F, T, D) latents."""
        b, f, n = u.shape
        return self.autoencoder.encoder(u.reshape(b * f, n), x).reshape(b, f, *self._latent_shape())

    @torch.no_grad()
    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T, D) latents → (B, F, P) fields at the points x."""
        b, f = z.shape[:2]
        return self.autoencoder.decoder(z.reshape(b * f, *z.shape[2:]), x).reshape(b, f, x.shape[0])

    def _latent_shape(self) -> tuple[int, int]:
        return self.autoencoder.encoder.tokens, self.autoencoder.encoder.out.out_features

    @torch.no_grad()
    def step(self, window: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """The operator's prediction of the next latent from (B, H, T, D), projected back onto the
        autoencoder's manifold (decode, encode) when the operator's checkpoint says `operator.project`."""
        dt = torch.full((window.shape[0],), self.dt, dtype=window.dtype, device=window.device)
        z = self.operator(window, dt, nu)
        return self.autoencoder.project(z) if self.operator.project else z

    @torch.no_grad()
    def rollout_latent(self, z_history: torch.Tensor, nu: torch.Tensor, steps: int) -> torch.Tensor:
        """(B, ≥H, T, D) latents → (B, steps, T, D) predicted latents."""
        return unroll(lambda window: self.step(window, nu), z_history, self.history, steps)

    @torch.no_grad()
    def rollout(
        self, u_history: torch.Tensor, x: torch.Tensor, nu: torch.Tensor, steps: int, query: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Physical input frames (B, ≥H, X) at x → physical predictions (B, steps, P) at `query` (default x)."""
        z = self.encode(u_history[:, -self.history :], x)
        return self.decode(self.rollout_latent(z, nu, steps), x if query is None else query)
