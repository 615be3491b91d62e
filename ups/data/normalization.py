"""Normalisation statistics, computed on the train split only and stored with the data.

One scalar mean and standard deviation for the field u: Burgers is a scalar field whose dynamics are
not translation-invariant in u (the wave speed is u itself), so per-point statistics would leak
position information into the model while a global affine map preserves the physics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ups.io import write_text_atomic


@dataclass(frozen=True)
class Normalization:
    mean: float
    std: float
    count: int
    source: str = "train"

    @classmethod
    def from_train(cls, u: np.ndarray) -> "Normalization":
        u64 = np.asarray(u, dtype=np.float64)
        return cls(mean=float(u64.mean()), std=float(u64.std()), count=int(u64.size), source="train")

    def normalize(self, u):
        return (u - self.mean) / self.std

    def denormalize(self, z):
        return z * self.std + self.mean

    def save(self, path: Path) -> None:
        write_text_atomic(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "Normalization":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: normalisation statistics missing; run `dvc repro generate`")
        data = json.loads(path.read_text())
        stats = cls(**data)
        if not (np.isfinite(stats.std) and stats.std > 0):
            raise ValueError(f"{path}: std must be positive and finite, got {stats.std}")
        return stats
