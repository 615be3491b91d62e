"""Reference solvers for viscous Burgers on the periodic unit interval.

    u_t + (u²/2)_x = ε u_xx,   ε = ν/π   (PDEBench's convention),   x ∈ [0, L), periodic.

Two schemes, chosen by viscosity (`choose_scheme`):

* `solve_spectral`: dealiased (2/3-rule) Fourier pseudo-spectral in space, ETDRK4 in time
  (Cox & Matthews 2002, with Kassam & Trefethen's 2005 contour-integral coefficients). Exponentially
  accurate while the solution is resolved: used for ν > `SHOCK_NU`.
* `solve_muscl`: second-order MUSCL finite volumes (monotonised-central limiter, exact Godunov flux
  for the convex Burgers flux, central viscous flux), SSP-RK2 in time. Robust through shocks: used for
  ν ≤ `SHOCK_NU`, where the viscous layer is thinner than any affordable grid.

Both step a whole batch at once, choose Δt adaptively from the current max|u| (CFL), and return the
solution at the requested output times. The state is float64 throughout.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import scipy.fft as sfft

SHOCK_NU = 1e-3
Scheme = Literal["spectral", "muscl"]
_FFT_WORKERS = -1  # all cores


def epsilon(nu: float) -> float:
    """The diffusion coefficient of PDEBench's convention, ε = ν/π."""
    return nu / np.pi


def choose_scheme(nu: float) -> Scheme:
    return "muscl" if nu <= SHOCK_NU else "spectral"


def solve(
    u0: np.ndarray,
    nu: float,
    t_out: np.ndarray,
    length: float = 1.0,
    scheme: Scheme | None = None,
    cfl: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Solve from `u0` (B, N) and return (B, len(t_out), N); `t_out[0]` must be 0."""
    scheme = scheme or choose_scheme(nu)
    if scheme == "spectral":
        return solve_spectral(u0, nu, t_out, length=length, cfl=cfl, progress=progress)
    if scheme == "muscl":
        return solve_muscl(u0, nu, t_out, length=length, cfl=cfl, progress=progress)
    raise ValueError(f"unknown scheme {scheme!r}: choose 'spectral' or 'muscl'")


def _check_inputs(u0: np.ndarray, t_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u0 = np.atleast_2d(np.asarray(u0, dtype=np.float64))
    t_out = np.asarray(t_out, dtype=np.float64)
    if t_out.ndim != 1 or t_out[0] != 0.0 or np.any(np.diff(t_out) <= 0):
        raise ValueError("t_out must be increasing and start at 0")
    if not np.all(np.isfinite(u0)):
        raise ValueError("initial condition contains NaN or Inf")
    return u0, t_out


# --------------------------------------------------------------------------------------------------
# Pseudo-spectral ETDRK4
# --------------------------------------------------------------------------------------------------


def _etdrk4_coefficients(lin: np.ndarray, dt: float, n_contour: int = 32) -> tuple[np.ndarray, ...]:
    """Kassam–Trefethen coefficients for the diagonal linear operator `lin` (real, ≤ 0)."""
    E = np.exp(dt * lin)
    E2 = np.exp(dt * lin / 2.0)
    roots = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    LR = dt * lin[:, None] + roots[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2.0) - 1.0) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4.0 - LR + np.exp(LR) * (4.0 - 3.0 * LR + LR**2)) / LR**3, axis=1))
    f2 = dt * np.real(np.mean((2.0 + LR + np.exp(LR) * (-2.0 + LR)) / LR**3, axis=1))
    f3 = dt * np.real(np.mean((-4.0 - 3.0 * LR - LR**2 + np.exp(LR) * (4.0 - LR)) / LR**3, axis=1))
    return E, E2, Q, f1, f2, f3


def solve_spectral(
    u0: np.ndarray,
    nu: float,
    t_out: np.ndarray,
    length: float = 1.0,
    cfl: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    u0, t_out = _check_inputs(u0, t_out)
    batch, n = u0.shape
    k = 2.0 * np.pi * np.fft.rfftfreq(n, d=length / n)  # angular wavenumbers, (n//2 + 1,)
    lin = -epsilon(nu) * k**2
    dealias = (np.abs(np.fft.rfftfreq(n, d=1.0 / n)) < n / 3.0).astype(np.float64)
    g = -0.5j * k * dealias  # N(v) = g · FFT(u²)
    dx = length / n

    def nonlinear(v_hat: np.ndarray) -> np.ndarray:
        u = sfft.irfft(v_hat, n=n, axis=-1, workers=_FFT_WORKERS)
        return g * sfft.rfft(u * u, axis=-1, workers=_FFT_WORKERS)

    out = np.empty((batch, len(t_out), n), dtype=np.float64)
    out[:, 0] = u0
    v = sfft.rfft(u0, axis=-1, workers=_FFT_WORKERS) * dealias
    coef_cache: dict[float, tuple[np.ndarray, ...]] = {}
    u_max = float(np.max(np.abs(u0)))
    for j in range(1, len(t_out)):
        interval = t_out[j] - t_out[j - 1]
        # Advective CFL, Δt = cfl·Δx/max|u|; ETDRK4 treats the diffusion exactly.
        n_sub = max(1, int(np.ceil(interval * max(u_max, 1e-8) / (cfl * dx))))
        dt = interval / n_sub
        key = round(dt, 15)
        if key not in coef_cache:
            coef_cache[key] = _etdrk4_coefficients(lin, dt)
        E, E2, Q, f1, f2, f3 = coef_cache[key]
        for _ in range(n_sub):
            Nv = nonlinear(v)
            a = E2 * v + Q * Nv
            Na = nonlinear(a)
            b = E2 * v + Q * Na
            Nb = nonlinear(b)
            c = E2 * a + Q * (2.0 * Nb - Nv)
            Nc = nonlinear(c)
            v = E * v + Nv * f1 + 2.0 * (Na + Nb) * f2 + Nc * f3
        u = sfft.irfft(v, n=n, axis=-1, workers=_FFT_WORKERS)
        if not np.all(np.isfinite(u)):
            raise FloatingPointError(
                f"spectral solver diverged before t={t_out[j]:.3g} (ν={nu}); lower data.solver.cfl"
            )
        out[:, j] = u
        u_max = float(np.max(np.abs(u)))
        if progress is not None:
            progress(1)
    return out


# --------------------------------------------------------------------------------------------------
# MUSCL finite volumes
# --------------------------------------------------------------------------------------------------


def _mc_slope(u: np.ndarray) -> np.ndarray:
    """Monotonised-central limited slope per cell (periodic)."""
    dl = u - np.roll(u, 1, axis=-1)
    dr = np.roll(u, -1, axis=-1) - u
    dc = 0.5 * (dl + dr)
    same_sign = (dl * dr) > 0
    slope = np.sign(dc) * np.minimum(np.abs(dc), 2.0 * np.minimum(np.abs(dl), np.abs(dr)))
    return np.where(same_sign, slope, 0.0)


def _godunov_flux(ul: np.ndarray, ur: np.ndarray) -> np.ndarray:
    """Exact Riemann-solver flux for f(u) = u²/2 at each interface."""
    fl = 0.5 * ul * ul
    fr = 0.5 * ur * ur
    shock_or_rarefaction = np.where(ul > ur, np.maximum(fl, fr), np.minimum(fl, fr))
    transonic = (ul < 0.0) & (ur > 0.0)
    return np.where(transonic, 0.0, shock_or_rarefaction)


def _muscl_rhs(u: np.ndarray, dx: float, eps: float) -> np.ndarray:
    slope = _mc_slope(u)
    ul = u + 0.5 * slope  # left state at interface i+1/2
    ur = np.roll(u - 0.5 * slope, -1, axis=-1)  # right state at interface i+1/2
    flux = _godunov_flux(ul, ur) - eps * (np.roll(u, -1, axis=-1) - u) / dx
    return -(flux - np.roll(flux, 1, axis=-1)) / dx


def solve_muscl(
    u0: np.ndarray,
    nu: float,
    t_out: np.ndarray,
    length: float = 1.0,
    cfl: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """`u0` holds cell averages; so does the result."""
    u0, t_out = _check_inputs(u0, t_out)
    batch, n = u0.shape
    dx = length / n
    eps = epsilon(nu)
    out = np.empty((batch, len(t_out), n), dtype=np.float64)
    out[:, 0] = u0
    u = u0.copy()
    t = 0.0
    for j in range(1, len(t_out)):
        while t < t_out[j] - 1e-14:
            u_max = max(float(np.max(np.abs(u))), 1e-8)
            dt = cfl * dx / u_max
            if eps > 0:
                dt = min(dt, 0.25 * dx * dx / eps)
            dt = min(dt, t_out[j] - t)
            u1 = u + dt * _muscl_rhs(u, dx, eps)
            u = 0.5 * (u + u1 + dt * _muscl_rhs(u1, dx, eps))
            t += dt
        if not np.all(np.isfinite(u)):
            raise FloatingPointError(f"MUSCL solver diverged before t={t_out[j]:.3g} (ν={nu}); lower data.solver.cfl")
        out[:, j] = u
        t = t_out[j]
        if progress is not None:
            progress(1)
    return out
