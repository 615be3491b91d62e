"""Stage train_autoencoder: fields ↔ latent tokens, selected on the validation round-trip nRMSE."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config
from ups.data.dataset import load_split, split_path, stats_path
from ups.data.normalization import Normalization
from ups.eval.metrics import nrmse_per_frame
from ups.models.autoencoder import Autoencoder
from ups.stage_args import StagePaths
from ups.training.loop import fit, shuffled_batches, stage_device
from ups.training.registry import Probe
from ups.training.stage import stage_task, write_summary

STAGE = "train_autoencoder"


def stage_params(cfg: Config) -> dict:
    return {
        "data": asdict(cfg.data),
        "latent": asdict(cfg.latent),
        "encoder": asdict(cfg.encoder),
        "decoder": asdict(cfg.decoder),
        "train": asdict(cfg.train.autoencoder),
        "runtime": asdict(cfg.runtime),
    }


def fields(data_dir: Path, split: str, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    traj = load_split(data_dir, split, cfg.data)
    return torch.from_numpy(traj.u.reshape(-1, traj.u.shape[-1])), torch.from_numpy(traj.x)


def roundtrip_nrmse(model, u: torch.Tensor, x: torch.Tensor, batch: int = 128) -> float:
    model.eval()
    with torch.no_grad():
        errs = [nrmse_per_frame(model(u[i : i + batch], x), u[i : i + batch]) for i in range(0, len(u), batch)]
    return float(torch.cat(errs).mean())


def train_autoencoder(cfg: Config, paths: StagePaths) -> dict:
    stats = Normalization.load(stats_path(paths.data))
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    u_train, x = (t.to(dev) for t in fields(paths.data, "train", cfg))
    u_val = fields(paths.data, "val", cfg)[0].to(dev)
    torch.manual_seed(cfg.train.autoencoder.seed)
    model = Autoencoder.from_config(cfg, stats.mean, stats.std)
    t = cfg.train.autoencoder
    inv_var = 1.0 / stats.std**2

    def loss(m, idx, gen):
        u = u_train[idx.to(dev)]
        return ((m(u, x) - u) ** 2).mean() * inv_var  # MSE in normalised units

    task = stage_task(
        STAGE,
        model,
        t,
        paths,
        stage_params(cfg),
        [split_path(paths.data, "train"), split_path(paths.data, "val"), stats_path(paths.data)],
        steps_per_epoch=-(-len(u_train) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(u_train), t.batch_size, gen),
        loss=loss,
        validate=lambda m: {"selection": (e := roundtrip_nrmse(m, u_val, x)), "val_roundtrip_nrmse": e},
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    summary["val_roundtrip_nrmse"] = roundtrip_nrmse(model, u_val, x)
    return write_summary(paths, summary)


def _probe_models(cfg: Config) -> dict:
    return {"autoencoder": Autoencoder.from_config(cfg)}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    ae = models["autoencoder"]
    u = torch.randn(cfg.train.autoencoder.batch_size, len(ae.grid))
    return ((ae(u, ae.grid) - u) ** 2).mean()


PROBE = Probe(
    stage=STAGE,
    models=_probe_models,
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: (
        -(-data["trajectories"]["train"] * cfg.data.frames // cfg.train.autoencoder.batch_size)
    ),
    training=lambda cfg: cfg.train.autoencoder,
)
