"""Stage encode_latents: the train and val splits through the frozen, trained encoder.

The autoencoder checkpoint is a dependency of this stage in dvc.yaml, so a latent cache can never be
stale: a new autoencoder means new latents (a cache keyed by task and split alone would go stale).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ups.checkpoints import save_atomic
from ups.data.dataset import load_trajectories, split_path
from ups.models.autoencoder import Autoencoder

SPLITS = ("train", "val")


def load_latents_to(latents_dir: Path | str, split: str, device: torch.device) -> dict:
    """`load_latents`, its tensors on `device` (where the stage trains)."""
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in load_latents(latents_dir, split).items()}


def latents_path(latents_dir: Path | str, split: str) -> Path:
    return Path(latents_dir) / f"{split}.pt"


@torch.no_grad()
def encode_latents(
    data_dir: Path, autoencoder: Path, out_dir: Path, allow_legacy_domain: bool = False, batch: int = 1024
) -> dict:
    model = Autoencoder.from_checkpoint(autoencoder)
    summary = {}
    for split in SPLITS:
        traj = load_trajectories(split_path(data_dir, split), allow_legacy_domain=allow_legacy_domain)
        u = torch.from_numpy(traj.u)
        n, f, p = u.shape
        flat = u.reshape(n * f, p)
        x = torch.from_numpy(traj.x)
        z = torch.cat([model.encoder(flat[i : i + batch], x) for i in range(0, len(flat), batch)])
        z = z.reshape(n, f, *z.shape[1:])
        save_atomic({"z": z, "nu": torch.from_numpy(traj.nu), "dt": traj.dt}, latents_path(out_dir, split))
        summary[split] = list(z.shape)
    return summary


def load_latents(latents_dir: Path | str, split: str) -> dict:
    path = latents_path(latents_dir, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no latents; run `dvc repro encode_latents`")
    return torch.load(path, map_location="cpu", weights_only=False)
