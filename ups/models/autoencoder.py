"""Encoder and any-point decoder between physical fields and latent tokens.

Token j owns the span [j, j+1)·L/T of the periodic domain. A point x has a token index
j = ⌊xT/L⌋ and a local coordinate s = xT/L − j ∈ [0, 1).

* `Encoder`: per point, an MLP of the value and local coordinate, and the local Fourier moments
  u·[1, sin 2πks, cos 2πks] (k up to half the points per token, so on the stored grid the moments
  determine the field exactly); both are averaged per token (any set of points works, as long as
  every token's span holds some), mixed across neighbouring tokens by periodic convolutions, and
  projected to `latent.dim` channels.
* `Decoder`: tokens are mixed by periodic convolutions; a query point reads its own token and both
  neighbours with its local coordinate through an MLP, plus a bilinear read-out Σ_k a_k(token)·b_k(s)
  that can represent a local Fourier series exactly. Any point can be queried.

Both work in physical units: the train-split normalisation is a buffer of each module and is saved
with the weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch
from torch import nn

from ups.config import Config, DecoderConfig, EncoderConfig, LatentConfig
from ups.models.base import SpecModel
from ups.models.layers import ResConvBlock, fourier_features, mlp


class _Normalized(nn.Module):
    def __init__(self, mean: float, std: float, length: float, tokens: int):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))
        self.length = float(length)
        self.tokens = tokens

    def locate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token index and local coordinate of the points x (P,)."""
        pos = torch.remainder(x / self.length, 1.0) * self.tokens
        index = torch.floor(pos)
        return index.long().clamp_(0, self.tokens - 1), pos - index


class Encoder(_Normalized):
    def __init__(
        self, latent: LatentConfig, cfg: EncoderConfig, mean: float, std: float, length: float, points_per_token: int
    ):
        super().__init__(mean, std, length, latent.tokens)
        self.local_modes = math.ceil(points_per_token / 2)  # derived: enough moments for the stored grid
        moments = 1 + 2 * self.local_modes
        self.point = mlp([1 + moments, cfg.width, cfg.width])
        self.lift = nn.Linear(cfg.width + moments, cfg.width)
        self.mix = nn.Sequential(*[ResConvBlock(cfg.width, cfg.kernel) for _ in range(cfg.depth)])
        self.out = nn.Linear(cfg.width, latent.dim)

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """u (B, P) physical values at points x (P,) → latent tokens (B, T, D)."""
        index, s = self.locate(x)
        un = ((u - self.mean) / self.std)[..., None]
        basis = torch.cat([torch.ones_like(s)[:, None], fourier_features(s, self.local_modes)], dim=-1).to(
            u.dtype
        )  # (P, M)
        basis = basis[None].expand(u.shape[0], -1, -1)
        feats = torch.cat([self.point(torch.cat([un, basis], dim=-1)), un * basis], dim=-1)  # (B, P, W + M)
        counts = torch.bincount(index, minlength=self.tokens).to(feats.dtype)
        if bool((counts == 0).any()):
            raise ValueError(
                f"every token span needs at least one point; tokens {torch.nonzero(counts == 0).flatten().tolist()} have none"
            )
        pooled = (
            feats.new_zeros(u.shape[0], self.tokens, feats.shape[-1]).index_add_(1, index, feats)
            / counts[None, :, None]
        )
        h = self.mix(self.lift(pooled).transpose(1, 2)).transpose(1, 2)
        return self.out(h)


class Decoder(_Normalized):
    def __init__(self, latent: LatentConfig, cfg: DecoderConfig, mean: float, std: float, length: float):
        super().__init__(mean, std, length, latent.tokens)
        self.fourier = cfg.fourier_features
        self.lift = nn.Conv1d(latent.dim, cfg.width, 3, padding=1, padding_mode="circular")
        self.mix = ResConvBlock(cfg.width, 3)
        # The first layer of the point MLP on [token j−1, j, j+1, local(s)] is linear, so it splits into
        # a per-token term (computed once per token) and a per-point term (shared by the batch).
        self.token_in = nn.Linear(3 * cfg.width, cfg.width)
        self.point_in = nn.Linear(1 + 2 * cfg.fourier_features, cfg.width)
        self.head = mlp([cfg.width] * cfg.depth + [1])
        basis = 1 + 2 * cfg.fourier_features
        self.token_coef = nn.Linear(3 * cfg.width, basis)  # a_k(token) of the bilinear read-out

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Latent tokens z (B, T, D) and query points x (P,) → physical values (B, P)."""
        h = self.mix(self.lift(z.transpose(1, 2))).transpose(1, 2)  # (B, T, W)
        neighbours = torch.cat([h.roll(1, dims=1), h, h.roll(-1, dims=1)], dim=-1)  # (B, T, 3W)
        index, s = self.locate(x)
        basis = torch.cat([torch.ones_like(s)[:, None], fourier_features(s, self.fourier)], dim=-1).to(
            z.dtype
        )  # (P, K)
        local = torch.cat([s[:, None].to(z.dtype), basis[:, 1:]], dim=-1)
        hidden = nn.functional.gelu(self.token_in(neighbours)[:, index] + self.point_in(local)[None])
        out = self.head(hidden)[..., 0] + (self.token_coef(neighbours)[:, index] * basis[None]).sum(-1)
        return out * self.std + self.mean


class Autoencoder(SpecModel):
    kind = "autoencoder"

    def __init__(
        self,
        latent: LatentConfig,
        enc: EncoderConfig,
        dec: DecoderConfig,
        mean: float,
        std: float,
        length: float,
        points_per_token: int,
    ):
        super().__init__()
        self.encoder = Encoder(latent, enc, mean, std, length, points_per_token)
        self.decoder = Decoder(latent, dec, mean, std, length)
        n = latent.tokens * points_per_token  # the stored grid (cell centres), derived
        self.register_buffer("grid", (torch.arange(n, dtype=torch.float64) + 0.5) * length / n, persistent=False)

    @classmethod
    def config_spec(cls, cfg: Config, mean: float = 0.0, std: float = 1.0) -> dict:
        """The spec for data of train-split mean and std (the normalisation saved with the weights)."""
        return cls._spec(
            latent=asdict(cfg.latent),
            encoder=asdict(cfg.encoder),
            decoder=asdict(cfg.decoder),
            mean=mean,
            std=std,
            length=cfg.data.length,
            points_per_token=cfg.data.grid // cfg.latent.tokens,
        )

    @classmethod
    def _build(cls, spec: dict) -> "Autoencoder":
        return cls(
            LatentConfig(**spec["latent"]),
            EncoderConfig(**spec["encoder"]),
            DecoderConfig(**spec["decoder"]),
            spec["mean"],
            spec["std"],
            spec["length"],
            spec["points_per_token"],
        )

    def forward(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(u, x), x)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Decode on the stored grid and encode again: (B, T, D) → (B, T, D), a latent the encoder can
        produce. The encoder reads the X values of a field and writes T·D numbers (256 and 512 by
        default), so latents of real fields lie on a thin manifold; a rollout that drifts off it feeds
        the operator inputs it never saw in training."""
        return self.encoder(self.decoder(z, self.grid), self.grid)
