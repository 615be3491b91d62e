"""Small composable layers shared by the UPS models."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def generator_device(gen: torch.Generator | None) -> torch.device:
    """Where a draw from `gen` is made: the generator's device (CPU when None), whatever the default
    device is. Samples are drawn there and moved to the data, so a seeded CPU generator gives the same
    numbers on every device."""
    return gen.device if gen is not None else torch.device("cpu")


def fourier_features(s: torch.Tensor, n: int) -> torch.Tensor:
    """[sin 2πks, cos 2πks] for k = 1..n; `s` (...,) → (..., 2n)."""
    if n == 0:
        return s.new_zeros(*s.shape, 0)
    k = torch.arange(1, n + 1, device=s.device, dtype=s.dtype)
    angle = 2.0 * math.pi * s[..., None] * k
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.GELU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ResConvBlock(nn.Module):
    """Pre-norm residual block of two periodic 1D convolutions over the token axis: (B, C, T)."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.conv1 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, padding_mode="circular")
        self.conv2 = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, padding_mode="circular")

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.conv2(F.gelu(self.conv1(self.norm(h))))


class TimestepEmbedding(nn.Module):
    """A scalar (log Δt, log ν, a noise level …) → a vector, through sinusoids and an MLP."""

    def __init__(self, width: int, frequencies: int = 16, max_period: float = 100.0):
        super().__init__()
        freqs = torch.exp(-math.log(max_period) * torch.arange(frequencies) / frequencies)
        self.register_buffer("freqs", freqs, persistent=False)
        self.net = mlp([2 * frequencies, width, width])

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        angle = value[:, None] * self.freqs[None, :] * 2 * math.pi
        return self.net(torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1))


class SpectralMixer(nn.Module):
    """FNO's token mixer: a learned complex linear map per Fourier mode of the (periodic) token axis,
    on the lowest `modes` modes, the others dropped. Global, shift-equivariant, O(T log T)."""

    def __init__(self, width: int, tokens: int, modes: int):
        super().__init__()
        self.modes = min(modes, tokens // 2 + 1)
        scale = 1.0 / width
        self.weight = nn.Parameter(scale * torch.randn(self.modes, width, width, 2))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, w = h.shape
        spec = torch.fft.rfft(h.float(), dim=1)[:, : self.modes]  # (B, M, W) complex
        mixed = torch.einsum("bmi,mio->bmo", spec, torch.view_as_complex(self.weight))
        out = spec.new_zeros(b, t // 2 + 1, w)
        out[:, : self.modes] = mixed
        return torch.fft.irfft(out, n=t, dim=1).to(h.dtype)


class AttentionMixer(nn.Module):
    """Multi-head self-attention over the token axis with a learned bias per head and circular token
    offset, so it is equivariant to shifts of the periodic domain."""

    def __init__(self, width: int, tokens: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, tokens))
        offsets = (torch.arange(tokens)[None, :] - torch.arange(tokens)[:, None]) % tokens
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, t, w = h.shape
        q, k, v = self.qkv(h).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.rel_bias[:, self.offsets]  # (heads, T, T)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None].to(q.dtype))
        return self.proj(attn.transpose(1, 2).reshape(b, t, w))


class AdaLNBlock(nn.Module):
    """Transformer block whose LayerNorms are modulated by a conditioning vector (DiT's adaLN-Zero).

    The token mixer is attention (`mixer="attention"`) or FNO's spectral convolution
    (`mixer="spectral"`, the lowest `modes` Fourier modes of the token axis); both are equivariant to
    shifts of the periodic domain. A zero-initialised modulation makes the block start as the identity.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        tokens: int,
        mlp_ratio: float,
        cond_width: int,
        mixer: str = "attention",
        modes: int = 0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mix = AttentionMixer(width, tokens, heads) if mixer == "attention" else SpectralMixer(width, tokens, modes)
        self.mlp = mlp([width, int(width * mlp_ratio), width])
        self.modulation = nn.Linear(cond_width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(cond)[:, None, :].chunk(6, dim=-1)
        x = x + gate1 * self.mix(self.norm1(x) * (1 + scale1) + shift1)
        return x + gate2 * self.mlp(self.norm2(x) * (1 + scale2) + shift2)


class ConditionedStack(nn.Module):
    """The trunk every UPS model shares: a linear input map, adaLN blocks over tokens conditioned on the
    sum of embeddings of named scalars (log Δt, log ν, log σ …), a LayerNorm and a zero-initialised
    output map, so a model built on it starts by predicting zero.

    With `levels` > 1 the blocks form a U over the token axis: neighbouring tokens are merged pairwise
    into each coarser level and split back on the way up, with skip connections (the operator's
    multi-scale option); `levels` = 1 is a plain stack of `depth` blocks.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int,
        tokens: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        conditions: tuple[str, ...],
        levels: int = 1,
        mixer: str = "attention",
        modes: int = 0,
    ):
        super().__init__()
        self.levels = levels
        self.inp = nn.Linear(in_dim, width)
        self.embed = nn.ModuleDict({name: TimestepEmbedding(width) for name in conditions})
        sizes = [tokens // 2**level for level in range(levels)]

        def blocks(t: int) -> nn.ModuleList:
            return nn.ModuleList(AdaLNBlock(width, heads, t, mlp_ratio, width, mixer, modes) for _ in range(depth))

        self.down = nn.ModuleList(blocks(t) for t in sizes)
        self.merge = nn.ModuleList(nn.Linear(2 * width, width) for _ in sizes[1:])
        self.split = nn.ModuleList(nn.Linear(width, 2 * width) for _ in sizes[1:])
        self.skip = nn.ModuleList(nn.Linear(2 * width, width) for _ in sizes[1:])
        self.up = nn.ModuleList(blocks(t) for t in sizes[:-1])
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, **conditions: torch.Tensor) -> torch.Tensor:
        """(B, T, in_dim) and one (B,) tensor per named condition (already on a log scale) → (B, T, out_dim)."""
        cond = sum(self.embed[name](conditions[name]) for name in self.embed)
        h = self.inp(x)
        b = h.shape[0]
        skips = []
        for level, level_blocks in enumerate(self.down):
            if level > 0:
                h = self.merge[level - 1](h.reshape(b, h.shape[1] // 2, 2 * h.shape[2]))
            for block in level_blocks:
                h = block(h, cond)
            skips.append(h)
        for level in reversed(range(self.levels - 1)):
            h = self.split[level](h).reshape(b, h.shape[1] * 2, -1)
            h = self.skip[level](torch.cat([h, skips[level]], dim=-1))
            for block in self.up[level]:
                h = block(h, cond)
        return self.out(self.norm(h))
