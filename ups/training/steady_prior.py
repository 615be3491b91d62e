"""Stage train_steady_prior: the terminal frame (t = data.t_final) from the first frame and ν.

Trained on latents (MSE of normalised latents); selected on the decoded terminal-frame nRMSE on
the validation split, reported next to persistence's (copy the first frame).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config, LatentConfig, SteadyPriorConfig
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse
from ups.inference.loading import load_autoencoder
from ups.io import write_json_atomic
from ups.models.steady_prior import SteadyPrior
from ups.training import checkpoint as ckpt
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import Task, fit, shuffled_batches, stage_device
from ups.training.registry import Probe, register

STAGE = "train_steady_prior"


def spec(cfg: Config) -> dict:
    return {"kind": "steady_prior", "latent": asdict(cfg.latent), "steady_prior": asdict(cfg.steady_prior), "horizon": cfg.data.t_final}


def build(spec: dict) -> SteadyPrior:
    return SteadyPrior(LatentConfig(**spec["latent"]), SteadyPriorConfig(**spec["steady_prior"]))


def load(path: Path | str) -> tuple[SteadyPrior, dict]:
    c = ckpt.load(path, "steady_prior")
    model = build(c)
    model.load_state_dict(c["state_dict"])
    return model.eval(), c


@torch.no_grad()
def terminal_nrmse(model: SteadyPrior, ae, z0: torch.Tensor, nu: torch.Tensor, horizon: float, u_final: torch.Tensor, x: torch.Tensor) -> float:
    pred = model(z0, nu, torch.full((len(z0),), horizon, device=z0.device))
    return nrmse(ae.decoder(pred, x), u_final)


def train_steady_prior(cfg: Config, data_dir: Path, latents_dir: Path, autoencoder: Path, checkpoint_out: Path, plots_out: Path, metrics_out: Path, scratch: Path = ckpt.SCRATCH) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    ae = load_autoencoder(autoencoder, dev)
    train, val = load_latents_to(latents_dir, "train", dev), load_latents_to(latents_dir, "val", dev)
    val_traj = load_split(data_dir, "val", cfg.data)
    u_val, x = torch.from_numpy(val_traj.u).to(dev), torch.from_numpy(val_traj.x).to(dev)
    torch.manual_seed(cfg.train.steady_prior.seed)
    s = spec(cfg)
    model = build(s)
    z = train["z"]
    model.z_mean.copy_(z.mean(dim=(0, 1, 2)))
    model.z_std.copy_(z.std(dim=(0, 1, 2)).clamp_min(1e-6))
    model.to(dev)
    zn0, znT = (z[:, 0] - model.z_mean) / model.z_std, (z[:, -1] - model.z_mean) / model.z_std
    horizon = torch.full((len(z),), cfg.data.t_final, device=dev)
    t = cfg.train.steady_prior

    def validate(m):
        e = terminal_nrmse(m, ae, val["z"][:, 0], val["nu"], cfg.data.t_final, u_val[:, -1], x)
        return {"selection": e, "val_terminal_nrmse": e}

    task = Task(
        stage=STAGE, model=model, training=t, steps_per_epoch=-(-len(z) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(z), t.batch_size, gen),
        loss=lambda m, idx, gen: ((m.step(zn0[idx.to(dev)], train["nu"][idx.to(dev)], horizon[idx.to(dev)]) - znT[idx.to(dev)]) ** 2).mean(),
        validate=validate, checkpoint_path=Path(checkpoint_out), checkpoint_payload=lambda: dict(s), plots_path=Path(plots_out),
        fingerprint=ckpt.fingerprint({"latent": asdict(cfg.latent), "steady_prior": asdict(cfg.steady_prior), "train": asdict(t), "runtime": asdict(cfg.runtime), "t_final": cfg.data.t_final}, [latents_path(latents_dir, "train"), latents_path(latents_dir, "val"), autoencoder]),
        scratch=Path(scratch), log_config={"steady_prior": asdict(cfg.steady_prior), "train": asdict(t)},
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    summary["val_terminal_nrmse"] = terminal_nrmse(model.eval(), ae, val["z"][:, 0], val["nu"], cfg.data.t_final, u_val[:, -1], x)
    summary["val_persistence_terminal_nrmse"] = nrmse(u_val[:, 0], u_val[:, -1])
    write_json_atomic(metrics_out, summary)
    return summary


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b = cfg.train.steady_prior.batch_size
    zn = torch.randn(b, cfg.latent.tokens, cfg.latent.dim)
    return ((models["steady_prior"].step(zn, torch.full((b,), cfg.data.nu[0]), torch.full((b,), cfg.data.t_final)) - zn) ** 2).mean()


register(Probe(
    stage=STAGE, models=lambda cfg: {"steady_prior": build(spec(cfg))}, step=_probe_step,
    steps_per_epoch=lambda cfg, data: -(-data["trajectories"]["train"] // cfg.train.steady_prior.batch_size),
    training=lambda cfg: cfg.train.steady_prior,
))
