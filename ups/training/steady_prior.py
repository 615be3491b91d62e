"""Stage train_steady_prior: the terminal frame (t = data.t_final) from the first frame and ν.

Trained on latents (MSE of normalised latents); selected on the decoded terminal-frame nRMSE on
the validation split, reported next to persistence's (copy the first frame).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ups.config import Config
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse
from ups.models.autoencoder import Autoencoder
from ups.models.steady_prior import SteadyPrior
from ups.stage_args import StagePaths
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import fit, shuffled_batches, stage_device
from ups.training.registry import Probe
from ups.training.stage import stage_task, write_summary

STAGE = "train_steady_prior"


def stage_params(cfg: Config) -> dict:
    return {
        "latent": asdict(cfg.latent),
        "steady_prior": asdict(cfg.steady_prior),
        "train": asdict(cfg.train.steady_prior),
        "runtime": asdict(cfg.runtime),
        "t_final": cfg.data.t_final,
    }


@torch.no_grad()
def terminal_nrmse(
    model: SteadyPrior, ae, z0: torch.Tensor, nu: torch.Tensor, horizon: float, u_final: torch.Tensor, x: torch.Tensor
) -> float:
    pred = model(z0, nu, torch.full((len(z0),), horizon, device=z0.device))
    return nrmse(ae.decoder(pred, x), u_final)


def train_steady_prior(cfg: Config, paths: StagePaths) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    ae = Autoencoder.from_checkpoint(paths.autoencoder, dev)
    train, val = load_latents_to(paths.latents, "train", dev), load_latents_to(paths.latents, "val", dev)
    val_traj = load_split(paths.data, "val", cfg.data)
    u_val, x = torch.from_numpy(val_traj.u).to(dev), torch.from_numpy(val_traj.x).to(dev)
    torch.manual_seed(cfg.train.steady_prior.seed)
    model = SteadyPrior.from_config(cfg)
    z = train["z"]
    model.z_mean.copy_(z.mean(dim=(0, 1, 2)))
    model.z_std.copy_(z.std(dim=(0, 1, 2)).clamp_min(1e-6))
    model.to(dev)
    zn0, znT = (z[:, 0] - model.z_mean) / model.z_std, (z[:, -1] - model.z_mean) / model.z_std
    horizon = torch.full((len(z),), cfg.data.t_final, device=dev)
    t = cfg.train.steady_prior

    def loss(m, idx, gen):
        idx = idx.to(dev)
        return ((m.step(zn0[idx], train["nu"][idx], horizon[idx]) - znT[idx]) ** 2).mean()

    def validate(m):
        e = terminal_nrmse(m, ae, val["z"][:, 0], val["nu"], cfg.data.t_final, u_val[:, -1], x)
        return {"selection": e, "val_terminal_nrmse": e}

    inputs = [latents_path(paths.latents, "train"), latents_path(paths.latents, "val"), paths.autoencoder]
    task = stage_task(
        STAGE,
        model,
        t,
        paths,
        stage_params(cfg),
        inputs,
        steps_per_epoch=-(-len(z) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(z), t.batch_size, gen),
        loss=loss,
        validate=validate,
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    summary["val_terminal_nrmse"] = terminal_nrmse(
        model.eval(), ae, val["z"][:, 0], val["nu"], cfg.data.t_final, u_val[:, -1], x
    )
    summary["val_persistence_terminal_nrmse"] = nrmse(u_val[:, 0], u_val[:, -1])
    return write_summary(paths, summary)


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b = cfg.train.steady_prior.batch_size
    zn = torch.randn(b, cfg.latent.tokens, cfg.latent.dim)
    return (
        (models["steady_prior"].step(zn, torch.full((b,), cfg.data.nu[0]), torch.full((b,), cfg.data.t_final)) - zn)
        ** 2
    ).mean()


PROBE = Probe(
    stage=STAGE,
    models=lambda cfg: {"steady_prior": SteadyPrior.from_config(cfg)},
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: -(-data["trajectories"]["train"] // cfg.train.steady_prior.batch_size),
    training=lambda cfg: cfg.train.steady_prior,
)
