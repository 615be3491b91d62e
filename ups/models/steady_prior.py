"""The steady prior: the long-time (terminal-frame) state from the initial state and ν.

    z(t_final) = z(0) + g(z(0), ν, t_final)

in latent space (normalised with train-split latent statistics), as the shared conditioned stack over
tokens. It predicts the terminal frame directly, and guides long rollouts (`ups.inference`).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ups.config import Config, LatentConfig, SteadyPriorConfig
from ups.models.base import SpecModel
from ups.models.layers import ConditionedStack


class SteadyPrior(SpecModel):
    kind = "steady_prior"
    compile_targets = ("step",)  # what the training loss calls (runtime.compile)

    def __init__(self, latent: LatentConfig, cfg: SteadyPriorConfig):
        super().__init__()
        self.register_buffer("z_mean", torch.zeros(latent.dim))
        self.register_buffer("z_std", torch.ones(latent.dim))
        self.net = ConditionedStack(
            latent.dim,
            latent.dim,
            cfg.width,
            latent.tokens,
            cfg.depth,
            cfg.heads,
            cfg.mlp_ratio,
            conditions=("nu", "t"),
        )

    @classmethod
    def config_spec(cls, cfg: Config) -> dict:
        return cls._spec(latent=asdict(cfg.latent), steady_prior=asdict(cfg.steady_prior), horizon=cfg.data.t_final)

    @classmethod
    def _build(cls, spec: dict) -> "SteadyPrior":
        return cls(LatentConfig(**spec["latent"]), SteadyPriorConfig(**spec["steady_prior"]))

    def step(self, zn0: torch.Tensor, nu: torch.Tensor, horizon: torch.Tensor) -> torch.Tensor:
        return zn0 + self.net(zn0, nu=torch.log(nu), t=torch.log(horizon))

    def forward(self, z0: torch.Tensor, nu: torch.Tensor, horizon: torch.Tensor) -> torch.Tensor:
        """Physical-scale latents z(0) (B, T, D) → z(horizon)."""
        return self.step((z0 - self.z_mean) / self.z_std, nu, horizon) * self.z_std + self.z_mean
