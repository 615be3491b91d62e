"""PDEBench's random initial conditions for 1D Burgers.

    u0(x) = sum_{i=1..4} A_i sin(2π k_i x / L + φ_i),   A_i ~ U(0, 1),  φ_i ~ U(0, 2π)

where k_i = c_i ∈ {0, 1, 2} counts how often the wavenumber i was drawn in two draws from {1..4} with
replacement (an unselected slot contributes the constant A_i sin φ_i, so the mean is not zero, as in
PDEBench). With probability 0.1 the absolute value is taken; a random global sign follows; with
probability 0.1 the field is multiplied by the window ½(tanh((x−a)/0.01) − tanh((x−b)/0.01)),
a ~ U(0.1, 0.45), b ~ U(0.55, 0.9). PDEBench divides by L − dx; we use the exactly periodic L.

Every trajectory draws from its own `numpy.random.Generator`, so an initial condition depends only on
its own seed, never on batch composition or order.
"""

from __future__ import annotations

import numpy as np

N_MODES = 4
N_DRAWS = 2


def wave_counts(rng: np.random.Generator) -> np.ndarray:
    """c_i: how often wavenumber i ∈ {1..4} came up in two draws with replacement."""
    draws = rng.integers(1, N_MODES + 1, size=N_DRAWS)
    return np.array([np.sum(draws == i) for i in range(1, N_MODES + 1)], dtype=np.float64)


def sample_initial_condition(rng: np.random.Generator, x: np.ndarray, length: float = 1.0) -> np.ndarray:
    """One PDEBench Burgers initial condition evaluated at the points `x` (float64)."""
    counts = wave_counts(rng)
    amplitudes = rng.uniform(0.0, 1.0, size=N_MODES)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=N_MODES)
    modes = np.arange(1, N_MODES + 1, dtype=np.float64) * counts
    u = np.sum(
        amplitudes[:, None] * np.sin(2.0 * np.pi * modes[:, None] * x[None, :] / length + phases[:, None]), axis=0
    )
    if rng.uniform() < 0.1:
        u = np.abs(u)
    u = u * rng.choice([-1.0, 1.0])
    if rng.uniform() < 0.1:
        a = rng.uniform(0.1, 0.45)
        b = rng.uniform(0.55, 0.9)
        u = u * 0.5 * (np.tanh((x - a * length) / 0.01) - np.tanh((x - b * length) / 0.01))
    return u
