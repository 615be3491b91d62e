"""The latent operator: a PDE-Transformer over latent tokens.

    z(t + Δt) = z(t) + f(z(t − (H−1)Δt … t), Δt, ν)

f is the shared conditioned stack (`ups.models.layers.ConditionedStack`) over the token axis: blocks
that mix tokens by FNO's spectral convolution (`operator.mixer: spectral`) or by attention, optionally
in a U over `operator.levels` token resolutions. Every block is conditioned on log Δt and log ν through
adaLN-Zero modulation, so the operator starts as the identity map and Δt is the real time step of the
pairs it is trained on. The input and output are latents normalised per channel with train-split
statistics (buffers saved with the weights).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ups.config import Config, LatentConfig, OperatorConfig
from ups.models.base import SpecModel
from ups.models.layers import ConditionedStack


class LatentOperator(SpecModel):
    kind = "operator"
    compile_targets = ("step",)  # what the training loss calls (runtime.compile)

    def __init__(self, latent: LatentConfig, cfg: OperatorConfig):
        super().__init__()
        self.history = cfg.history
        self.project = cfg.project  # read by the Simulator: project every predicted latent
        self.register_buffer("z_mean", torch.zeros(latent.dim))
        self.register_buffer("z_std", torch.ones(latent.dim))
        self.net = ConditionedStack(
            latent.dim * cfg.history,
            latent.dim,
            cfg.width,
            latent.tokens,
            cfg.depth,
            cfg.heads,
            cfg.mlp_ratio,
            conditions=("dt", "nu"),
            levels=cfg.levels,
            mixer=cfg.mixer,
            modes=cfg.modes,
        )

    @classmethod
    def config_spec(cls, cfg: Config) -> dict:
        return cls._spec(latent=asdict(cfg.latent), operator=asdict(cfg.operator), dt=cfg.data.dt)

    @classmethod
    def _build(cls, spec: dict) -> "LatentOperator":
        return cls(LatentConfig(**spec["latent"]), OperatorConfig(**spec["operator"]))

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.z_mean.copy_(mean)
        self.z_std.copy_(std)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.z_mean) / self.z_std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.z_std + self.z_mean

    def step(self, zn: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """One step on normalised latents: zn (B, H, T, D) → (B, T, D)."""
        b, h, t, d = zn.shape
        tokens = zn.permute(0, 2, 1, 3).reshape(b, t, h * d)
        return zn[:, -1] + self.net(tokens, dt=torch.log(dt), nu=torch.log(nu))

    def forward(self, z_history: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """Physical-scale latents (B, H, T, D) → the next latent (B, T, D)."""
        return self.denormalize(self.step(self.normalize(z_history), dt, nu))
