"""The reference solvers against exact Cole–Hopf solutions, convergence, and the shock case."""

import numpy as np
import pytest

from ups.data.exact import cole_hopf
from ups.data.generate import initial_conditions, trajectory_seeds
from ups.data.solver import choose_scheme, epsilon, solve

T = np.linspace(0.0, 2.0, 41)
STORED, FINE = 256, 1024


def u0_sin(x):
    return np.sin(2 * np.pi * x)


def U0_sin(y):
    return (1 - np.cos(2 * np.pi * y)) / (2 * np.pi)


def u0_mixed(x):  # non-zero mean and two modes, like PDEBench's initial conditions
    return 0.3 + 0.8 * np.sin(2 * np.pi * x + 0.4) + 0.5 * np.sin(6 * np.pi * x + 1.0)


def U0_mixed(y):
    return (
        0.3 * y
        + 0.8 * (np.cos(0.4) - np.cos(2 * np.pi * y + 0.4)) / (2 * np.pi)
        + 0.5 * (np.cos(1.0) - np.cos(6 * np.pi * y + 1.0)) / (6 * np.pi)
    )


def exact(U0, u0, x, nu, times):
    return np.stack([u0(x)] + [cole_hopf(U0, x, t, epsilon(nu)) for t in times[1:]])


def nrmse_per_frame(pred, true):
    return np.linalg.norm(pred - true, axis=-1) / np.linalg.norm(true, axis=-1)


@pytest.mark.parametrize("nu", [0.01, 0.1])
@pytest.mark.parametrize("case", ["sin", "mixed"])
def test_spectral_solver_matches_cole_hopf(nu, case):
    u0, U0 = (u0_sin, U0_sin) if case == "sin" else (u0_mixed, U0_mixed)
    assert choose_scheme(nu) == "spectral"
    x_stored = (np.arange(STORED) + 0.5) / STORED
    x_fine = np.arange(FINE) / FINE + 0.5 / STORED  # as the generator places them
    pred = solve(u0(x_fine)[None], nu, T, cfl=1.0)[0][:, :: FINE // STORED]
    err = nrmse_per_frame(pred[1:], exact(U0, u0, x_stored, nu, T)[1:])
    assert err.shape == (40,)
    assert err.max() < 1e-3, f"max nRMSE over 40 frames {err.max():.2e}"


def test_spectral_convergence_with_resolution():
    nu, times = 0.1, np.linspace(0, 0.5, 6)
    errors = []
    for n in (32, 64, 128):
        x = np.arange(n) / n
        pred = solve(u0_sin(x)[None], nu, times, scheme="spectral", cfl=0.5)[0]
        errors.append(nrmse_per_frame(pred[1:], exact(U0_sin, u0_sin, x, nu, times)[1:]).max())
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 1e-2 * errors[0], errors  # spectral: much faster than any power of 2


def test_muscl_convergence_with_resolution():
    nu, times = 0.01, np.linspace(0, 0.4, 5)  # through shock formation at t ≈ 0.16
    errors = []
    for n in (128, 256, 512):
        edges = np.arange(n + 1) / n
        cell_avg = (U0_sin(edges[1:]) - U0_sin(edges[:-1])) * n
        pred = solve(cell_avg[None], nu, times, scheme="muscl", cfl=0.5)[0]
        xs = (np.arange(n) + 0.5) / n
        errors.append(nrmse_per_frame(pred[1:], exact(U0_sin, u0_sin, xs, nu, times)[1:]).max())
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[0] / errors[2] > 4.0, errors  # at least first order overall; second order where smooth


def test_shock_case_stays_bounded():
    nu = 0.001
    assert choose_scheme(nu) == "muscl"
    x = (np.arange(512) + 0.5) / 512
    u0 = initial_conditions(trajectory_seeds(7, "train", 0, 8), x, 1.0)
    u = solve(u0, nu, T, cfl=0.5)
    assert np.all(np.isfinite(u))
    peak = np.abs(u).max(axis=-1)  # (B, T)
    assert np.all(peak <= peak[:, :1] * (1 + 1e-6) + 1e-9), "max|u| grew: the scheme is not monotone"
    assert np.all(np.diff(peak, axis=1) <= 1e-6), "max|u| grew between frames"
    # ∫u is conserved exactly by the finite-volume scheme
    np.testing.assert_allclose(u.mean(axis=-1), u0.mean(axis=-1)[:, None].repeat(len(T), 1), atol=1e-12)
