"""The steady prior: the long-time (terminal-frame) state from the initial state and ν (SPEC §4).

    z(t_final) = z(0) + g(z(0), ν, t_final)

in latent space (normalised with the operator's latent statistics), as adaLN transformer blocks over
tokens. It predicts the terminal frame directly, and guides long rollouts (`ups.inference`).
"""

from __future__ import annotations

import torch
from torch import nn

from ups.config import LatentConfig, SteadyPriorConfig
from ups.models.layers import AdaLNBlock, TimestepEmbedding


class SteadyPrior(nn.Module):
    compile_targets = ("step",)  # what the training loss calls (runtime.compile)

    def __init__(self, latent: LatentConfig, cfg: SteadyPriorConfig):
        super().__init__()
        self.register_buffer("z_mean", torch.zeros(latent.dim))
        self.register_buffer("z_std", torch.ones(latent.dim))
        self.inp = nn.Linear(latent.dim, cfg.width)
        self.nu_embed = TimestepEmbedding(cfg.width)
        self.t_embed = TimestepEmbedding(cfg.width)
        self.blocks = nn.ModuleList(AdaLNBlock(cfg.width, cfg.heads, latent.tokens, cfg.mlp_ratio, cfg.width) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width)
        self.out = nn.Linear(cfg.width, latent.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def step(self, zn0: torch.Tensor, nu: torch.Tensor, horizon: torch.Tensor) -> torch.Tensor:
        cond = self.nu_embed(torch.log(nu)) + self.t_embed(torch.log(horizon))
        h = self.inp(zn0)
        for block in self.blocks:
            h = block(h, cond)
        return zn0 + self.out(self.norm(h))

    def forward(self, z0: torch.Tensor, nu: torch.Tensor, horizon: torch.Tensor) -> torch.Tensor:
        """Physical-scale latents z(0) (B, T, D) → z(horizon)."""
        return self.step((z0 - self.z_mean) / self.z_std, nu, horizon) * self.z_std + self.z_mean
