"""Stage train_autoencoder: fields ↔ latent tokens, selected on the validation round-trip nRMSE."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config
from ups.data.dataset import load_split, split_path, stats_path
from ups.data.normalization import Normalization
from ups.eval.metrics import nrmse_per_frame
from ups.inference.loading import autoencoder_spec, build_autoencoder
from ups.io import write_json_atomic
from ups.training import checkpoint as ckpt
from ups.training.loop import Task, fit, shuffled_batches, stage_device
from ups.training.registry import Probe, register

STAGE = "train_autoencoder"
PARAMS = ("data", "latent", "encoder", "decoder", "train.autoencoder", "runtime")


def stage_params(cfg: Config) -> dict:
    return {"data": asdict(cfg.data), "latent": asdict(cfg.latent), "encoder": asdict(cfg.encoder), "decoder": asdict(cfg.decoder), "train": asdict(cfg.train.autoencoder), "runtime": asdict(cfg.runtime)}


def fields(data_dir: Path, split: str, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    traj = load_split(data_dir, split, cfg.data)
    return torch.from_numpy(traj.u.reshape(-1, traj.u.shape[-1])), torch.from_numpy(traj.x)


def roundtrip_nrmse(model, u: torch.Tensor, x: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    with torch.no_grad():
        errs = [nrmse_per_frame(model(u[i : i + batch], x), u[i : i + batch]) for i in range(0, len(u), batch)]
    return float(torch.cat(errs).mean())


def train_autoencoder(cfg: Config, data_dir: Path, checkpoint_out: Path, plots_out: Path, metrics_out: Path, scratch: Path = ckpt.SCRATCH) -> dict:
    data_dir = Path(data_dir)
    stats = Normalization.load(stats_path(data_dir))
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    u_train, x = (t.to(dev) for t in fields(data_dir, "train", cfg))
    u_val = fields(data_dir, "val", cfg)[0].to(dev)
    spec = autoencoder_spec(cfg, stats.mean, stats.std)
    torch.manual_seed(cfg.train.autoencoder.seed)
    model = build_autoencoder(spec)
    t = cfg.train.autoencoder
    inv_var = 1.0 / stats.std**2

    def loss(m, idx, gen):
        u = u_train[idx.to(dev)]
        return ((m(u, x) - u) ** 2).mean() * inv_var  # MSE in normalised units

    task = Task(
        stage=STAGE,
        model=model,
        training=t,
        steps_per_epoch=-(-len(u_train) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(u_train), t.batch_size, gen),
        loss=loss,
        validate=lambda m: {"selection": (e := roundtrip_nrmse(m, u_val, x)), "val_roundtrip_nrmse": e},
        checkpoint_path=Path(checkpoint_out),
        checkpoint_payload=lambda: dict(spec),
        plots_path=Path(plots_out),
        fingerprint=ckpt.fingerprint(stage_params(cfg), [split_path(data_dir, "train"), split_path(data_dir, "val"), stats_path(data_dir)]),
        scratch=Path(scratch),
        log_config=stage_params(cfg),
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    summary["val_roundtrip_nrmse"] = roundtrip_nrmse(model, u_val, x)
    write_json_atomic(metrics_out, summary)
    return summary


def _probe_models(cfg: Config) -> dict:
    return {"autoencoder": build_autoencoder(autoencoder_spec(cfg, 0.0, 1.0))}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    ae = models["autoencoder"]
    u = torch.randn(cfg.train.autoencoder.batch_size, len(ae.grid))
    return ((ae(u, ae.grid) - u) ** 2).mean()


register(Probe(
    stage=STAGE,
    models=_probe_models,
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: -(-data["trajectories"]["train"] * cfg.data.frames // cfg.train.autoencoder.batch_size),
    training=lambda cfg: cfg.train.autoencoder,
))
