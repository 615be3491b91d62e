"""The stochastic corrector: a conditional diffusion model of the operator's residual, and its
consistency-distilled student (PDE-Refiner is the reference design).

Everything works on the residual r = z_true(t+Δt) − z_op(t+Δt) in latent space, normalised per
channel by its train-split std, so r has roughly unit scale. Noise is variance-exploding,
x_σ = r + σ ε, over K levels from σ_max = 1 down to `diffusion.min_noise`. The denoiser uses EDM's
preconditioning (Karras et al. 2022, σ_data = 1):

    D(x; σ) = c_skip(σ) x + c_out(σ) F(c_in(σ) x, log σ, z_op, Δt, ν)

trained with the σ-weighted denoising loss λ(σ) ‖D(x_σ; σ) − r‖². The stochastic sampler re-noises
each estimate to the next level with fresh noise (as PDE-Refiner's refinement steps do), so repeated
sampling gives an ensemble; the deterministic (DDIM-like) sampler is the teacher of the student.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import torch

from ups.config import Config, ConsistencyConfig, DiffusionConfig, LatentConfig
from ups.models.base import SpecModel
from ups.models.layers import ConditionedStack, generator_device

SIGMA_MAX = 1.0


def noise_levels(steps: int, min_noise: float, schedule: str) -> torch.Tensor:
    """σ_K … σ_1, decreasing from SIGMA_MAX to min_noise (K values)."""
    if steps == 1:
        return torch.tensor([SIGMA_MAX])
    s = torch.linspace(0.0, 1.0, steps)
    if schedule == "cosine":  # spends more levels near both ends
        s = 0.5 * (1 - torch.cos(math.pi * s))
    elif schedule != "linear":
        raise ValueError(f"unknown schedule {schedule!r}")
    return torch.exp(math.log(SIGMA_MAX) + s * (math.log(min_noise) - math.log(SIGMA_MAX)))


def residual_denoiser(latent: LatentConfig, width: int, depth: int, heads: int, mlp_ratio: float) -> ConditionedStack:
    """F: [noisy residual, operator prediction] per token, conditioned on log σ, log Δt, log ν → residual estimate."""
    return ConditionedStack(
        2 * latent.dim, latent.dim, width, latent.tokens, depth, heads, mlp_ratio, conditions=("sigma", "dt", "nu")
    )


def _evaluate(net: ConditionedStack, x, sigma, z_op, dt, nu) -> torch.Tensor:
    """EDM's preconditioned denoiser D(x; σ) = c_skip x + c_out F(c_in x, …)."""
    c_skip, c_out, c_in = _precondition(sigma)
    return c_skip * x + c_out * net(
        torch.cat([c_in * x, z_op], dim=-1), sigma=torch.log(sigma), dt=torch.log(dt), nu=torch.log(nu)
    )


def _precondition(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s = sigma[:, None, None]
    return 1.0 / (s**2 + 1.0), s / torch.sqrt(s**2 + 1.0), 1.0 / torch.sqrt(s**2 + 1.0)


class DiffusionResidual(SpecModel):
    kind = "diff_residual"
    compile_targets = ("denoise",)  # the network inside the loss, which draws noise (runtime.compile)

    def __init__(self, latent: LatentConfig, cfg: DiffusionConfig):
        super().__init__()
        self.net = residual_denoiser(latent, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio)
        self.register_buffer("levels", noise_levels(cfg.steps, cfg.min_noise, cfg.schedule))
        self.register_buffer("r_std", torch.ones(latent.dim))

    @classmethod
    def config_spec(cls, cfg: Config) -> dict:
        return cls._spec(latent=asdict(cfg.latent), diffusion=asdict(cfg.diffusion))

    @classmethod
    def _build(cls, spec: dict) -> "DiffusionResidual":
        return cls(LatentConfig(**spec["latent"]), DiffusionConfig(**spec["diffusion"]))

    @property
    def nfe(self) -> int:
        """Network evaluations per sample: one per noise level."""
        return len(self.levels)

    def denoise(
        self, x: torch.Tensor, sigma: torch.Tensor, z_op: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor
    ) -> torch.Tensor:
        return _evaluate(self.net, x, sigma, z_op, dt, nu)

    def loss(
        self, r: torch.Tensor, z_op: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor, gen: torch.Generator
    ) -> torch.Tensor:
        """EDM denoising loss at noise levels drawn from the sampler's K levels."""
        k = torch.randint(0, len(self.levels), (r.shape[0],), generator=gen, device=generator_device(gen))
        sigma = self.levels[k]
        noise = torch.randn(r.shape, generator=gen, device=generator_device(gen)).to(r)
        weight = (sigma**2 + 1.0) / sigma**2
        err = (self.denoise(r + sigma[:, None, None] * noise, sigma, z_op, dt, nu) - r) ** 2
        return (weight[:, None, None] * err).mean()

    @torch.no_grad()
    def sample(
        self,
        z_op: torch.Tensor,
        dt: torch.Tensor,
        nu: torch.Tensor,
        gen: torch.Generator | None = None,
        deterministic: bool = False,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A residual sample (normalised units) in K network evaluations.

        Stochastic: each estimate is re-noised to the next level with fresh noise. Deterministic: the
        DDIM-like update x ← x̂ + σ_next (x − x̂)/σ, a function of the starting noise `start` alone.
        """
        x = (
            start
            if start is not None
            else SIGMA_MAX * torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op)
        )
        return self._walk(x, z_op, dt, nu, gen, deterministic)[1]

    def _walk(self, x, z_op, dt, nu, gen, deterministic: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The sampler's states x at each of the K levels, and its final estimate."""
        states = []
        for i, sigma in enumerate(self.levels):
            states.append(x)
            estimate = self.denoise(x, sigma.expand(z_op.shape[0]), z_op, dt, nu)
            if i + 1 < len(self.levels):
                nxt = self.levels[i + 1]
                if deterministic:
                    x = estimate + nxt * (x - estimate) / sigma
                else:
                    x = estimate + nxt * torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op)
        return states, estimate

    @torch.no_grad()
    def teacher_trajectory(
        self, z_op: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor, start: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The deterministic sampler's states x at each level, and its final output."""
        return self._walk(start, z_op, dt, nu, None, deterministic=True)


class ConsistencyStudent(SpecModel):
    """f(x_σ, σ) → the teacher's final sample, in 1 or 2 evaluations (`consistency.nfe`)."""

    kind = "consistency"

    def __init__(self, latent: LatentConfig, cfg: ConsistencyConfig, levels: torch.Tensor):
        super().__init__()
        self.nfe = cfg.nfe
        self.net = residual_denoiser(latent, cfg.width, cfg.depth, cfg.heads, cfg.mlp_ratio)
        self.register_buffer("levels", levels.clone())
        self.register_buffer("r_std", torch.ones(latent.dim))

    @classmethod
    def config_spec(cls, cfg: Config) -> dict:
        return cls._spec(
            latent=asdict(cfg.latent), consistency=asdict(cfg.consistency), diffusion=asdict(cfg.diffusion)
        )

    @classmethod
    def _build(cls, spec: dict) -> "ConsistencyStudent":
        d = DiffusionConfig(**spec["diffusion"])
        levels = noise_levels(d.steps, d.min_noise, d.schedule)  # the teacher's
        return cls(LatentConfig(**spec["latent"]), ConsistencyConfig(**spec["consistency"]), levels)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, z_op: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor
    ) -> torch.Tensor:
        return _evaluate(self.net, x, sigma, z_op, dt, nu)

    @torch.no_grad()
    def sample(
        self,
        z_op: torch.Tensor,
        dt: torch.Tensor,
        nu: torch.Tensor,
        gen: torch.Generator | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b = z_op.shape[0]
        x = (
            start
            if start is not None
            else SIGMA_MAX * torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op)
        )
        out = self(x, self.levels[0].expand(b), z_op, dt, nu)
        if self.nfe == 2:  # multistep consistency sampling: re-noise to the middle level, map again
            mid = self.levels[len(self.levels) // 2]
            out = self(
                out + mid * torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op),
                mid.expand(b),
                z_op,
                dt,
                nu,
            )
        return out
