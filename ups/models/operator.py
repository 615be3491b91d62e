"""The latent operator: a PDE-Transformer over latent tokens (SPEC §4).

    z(t + Δt) = z(t) + f(z(t − (H−1)Δt … t), Δt, ν)

f is a U-shape over the token axis: attention blocks at full token resolution, neighbouring tokens
merged pairwise into a coarser level (`operator.levels` levels), and back up with skip connections.
Every block is conditioned on log Δt and log ν through adaLN-Zero modulation, so it starts as the
identity map and Δt is the real time step of the pairs it is trained on. The input and output are
latents normalised per channel with train-split statistics (buffers saved with the weights).
"""

from __future__ import annotations

import torch
from torch import nn

from ups.config import LatentConfig, OperatorConfig
from ups.models.layers import AdaLNBlock, TimestepEmbedding


class LatentOperator(nn.Module):
    compile_targets = ("step",)  # what the training loss calls (runtime.compile)

    def __init__(self, latent: LatentConfig, cfg: OperatorConfig):
        super().__init__()
        self.history = cfg.history
        self.project = cfg.project  # read by the Simulator: project every predicted latent
        self.levels = cfg.levels
        w = cfg.width
        self.register_buffer("z_mean", torch.zeros(latent.dim))
        self.register_buffer("z_std", torch.ones(latent.dim))
        self.inp = nn.Linear(latent.dim * cfg.history, w)
        self.dt_embed = TimestepEmbedding(w)
        self.nu_embed = TimestepEmbedding(w)
        tokens = [latent.tokens // 2**level for level in range(cfg.levels)]

        def blocks(t: int) -> nn.ModuleList:
            return nn.ModuleList(AdaLNBlock(w, cfg.heads, t, cfg.mlp_ratio, w, cfg.mixer, cfg.modes) for _ in range(cfg.depth))

        self.down = nn.ModuleList(blocks(t) for t in tokens)
        self.merge = nn.ModuleList(nn.Linear(2 * w, w) for _ in tokens[1:])
        self.split = nn.ModuleList(nn.Linear(w, 2 * w) for _ in tokens[1:])
        self.skip = nn.ModuleList(nn.Linear(2 * w, w) for _ in tokens[1:])
        self.up = nn.ModuleList(blocks(t) for t in tokens[:-1])
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, latent.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

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
        cond = self.dt_embed(torch.log(dt)) + self.nu_embed(torch.log(nu))
        x = self.inp(zn.permute(0, 2, 1, 3).reshape(b, t, h * d))
        skips = []
        for level, blocks in enumerate(self.down):
            if level > 0:
                x = self.merge[level - 1](x.reshape(b, x.shape[1] // 2, 2 * x.shape[2]))
            for block in blocks:
                x = block(x, cond)
            skips.append(x)
        for level in reversed(range(self.levels - 1)):
            x = self.split[level](x).reshape(b, x.shape[1] * 2, -1)
            x = self.skip[level](torch.cat([x, skips[level]], dim=-1))
            for block in self.up[level]:
                x = block(x, cond)
        return zn[:, -1] + self.out(self.norm(x))

    def forward(self, z_history: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """Physical-scale latents (B, H, T, D) → the next latent (B, T, D)."""
        return self.denormalize(self.step(self.normalize(z_history), dt, nu))
