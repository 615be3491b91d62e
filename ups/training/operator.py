"""Stage train_operator: the latent operator, trained through the frozen autoencoder.

Training windows start at a random frame, a fraction `train.operator.first_window` of them at the
first frame (where shocks form and one-step errors are largest). The loss unrolls
`train.operator.rollout` steps exactly as inference does (operator, decode, and with
`operator.project` encode again) and scores each decoded step by its relative L2 error, the quantity
evaluation reports; gradients flow through the whole unroll and the frozen autoencoder. Model
selection and early stopping use the physical full-rollout nRMSE on the validation split: roll out
with the `Simulator` from the first `operator.history` frames to the last frame, decode, compare
(input frames excluded), as evaluation does.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ups.config import Config
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse_per_frame
from ups.inference.rollout import Simulator
from ups.models.autoencoder import Autoencoder
from ups.models.layers import generator_device
from ups.models.operator import LatentOperator
from ups.stage_args import StagePaths
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import fit, stage_device
from ups.training.registry import Probe
from ups.training.stage import stage_task, write_summary

STAGE = "train_operator"


def stage_params(cfg: Config) -> dict:
    return {
        "latent": asdict(cfg.latent),
        "operator": asdict(cfg.operator),
        "train": asdict(cfg.train.operator),
        "runtime": asdict(cfg.runtime),
        "dt": cfg.data.dt,
    }


def windows_per_epoch(n_traj: int, frames: int, rollout: int) -> int:
    """Windows per epoch: as many as cover every frame transition of every trajectory once."""
    return n_traj * max(1, (frames - 1) // rollout)


def windows(n_traj: int, frames: int, length: int, rollout: int, first: float, gen: torch.Generator) -> torch.Tensor:
    """(trajectory, start) pairs for one epoch: a fraction `first` of the windows start at frame 0
    (the hardest transitions: shocks form within the first steps), the others at a uniformly random
    frame; trajectories are drawn evenly."""
    n = windows_per_epoch(n_traj, frames, rollout)
    traj = torch.randperm(n, generator=gen) % n_traj
    starts = torch.randint(0, frames - length + 1, (n,), generator=gen, device=generator_device(gen))
    starts[torch.rand(n, generator=gen) < first] = 0
    return torch.stack([traj, starts], dim=1)


def relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """‖pred − true‖₂ / ‖true‖₂ per sample over the last axis, averaged: the nRMSE evaluation reports."""
    return ((pred - true).norm(dim=-1) / true.norm(dim=-1).clamp_min(1e-8)).mean()


def rollout_loss(
    model,
    autoencoder,
    zn: torch.Tensor,
    u: torch.Tensor,
    x: torch.Tensor,
    nu: torch.Tensor,
    dt: float,
    project: bool,
    latent_weight: float = 0.0,
    zn_true: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean decoded error over the unrolled steps, trained as the Simulator rolls out.

    zn (B, H, T, D): the normalised latents of the window's input frames; u (B, R, X): the true fields
    of the R frames that follow, at the points x. Each step's prediction is decoded and scored by its
    relative L2 error (the per-sample, per-frame nRMSE evaluation reports, so late frames of small
    norm weigh as much as early ones). With `project` the decoded field is encoded again and fed back,
    exactly as `Simulator.step` does at inference; gradients flow through the frozen autoencoder.
    `latent_weight` > 0 adds the MSE of the predicted normalised latent against `zn_true` (B, R, T, D).
    """
    window = zn
    dts = torch.full((zn.shape[0],), dt, dtype=zn.dtype, device=zn.device)
    losses = []
    for r in range(u.shape[1]):
        pred = model.step(window, dts, nu)
        field = autoencoder.decoder(model.denormalize(pred), x)
        step_loss = relative_l2(field, u[:, r])
        if latent_weight > 0:
            step_loss = step_loss + latent_weight * ((pred - zn_true[:, r]) ** 2).mean()
        losses.append(step_loss)
        if project:
            pred = model.normalize(autoencoder.encoder(field, x))
        window = torch.cat([window[:, 1:], pred[:, None]], dim=1)
    return torch.stack(losses).mean()


def val_rollout_nrmse(
    sim: Simulator, z_val: torch.Tensor, nu: torch.Tensor, u_val: torch.Tensor, x: torch.Tensor
) -> float:
    h = sim.history
    pred = sim.decode(sim.rollout_latent(z_val[:, :h], nu, u_val.shape[1] - h), x)
    return float(nrmse_per_frame(pred, u_val[:, h:]).mean())


@torch.no_grad()
def diagnostics(sim: Simulator, z_val: torch.Tensor, nu: torch.Tensor, u_val: torch.Tensor, x: torch.Tensor) -> dict:
    """Where the error comes from, on val in physical space: the autoencoder's round trip, the
    teacher-forced one-step error (every frame encoded from the truth, one step, decoded), and the
    free rollout from the first frames with and without `operator.project`; the last frame, and
    persistence for scale."""
    h, steps = sim.history, u_val.shape[1] - sim.history
    truth = u_val[:, h:]
    out = {"val_roundtrip_nrmse": float(nrmse_per_frame(sim.decode(z_val, x), u_val).mean())}
    windows = torch.stack([z_val[:, i : i + h] for i in range(steps)], dim=1).flatten(0, 1)  # (B·steps, H, T, D)
    one_step = sim.decode(sim.step(windows, nu.repeat_interleave(steps))[:, None], x).reshape(truth.shape)
    out["val_one_step_nrmse"] = float(nrmse_per_frame(one_step, truth).mean())
    project = sim.operator.project
    for setting in (project, not project):
        sim.operator.project = setting
        pred = sim.decode(sim.rollout_latent(z_val[:, :h], nu, steps), x)
        per_frame = nrmse_per_frame(pred, truth)
        out[f"val_rollout_{'projected' if setting else 'unprojected'}_nrmse"] = float(per_frame.mean())
        if setting == project:  # as the checkpoint rolls out
            out["val_rollout_nrmse"] = float(per_frame.mean())
            out["val_first_frame_nrmse"] = float(per_frame[:, 0].mean())
            out["val_terminal_nrmse"] = float(per_frame[:, -1].mean())
    sim.operator.project = project
    out["val_persistence_nrmse"] = float(nrmse_per_frame(u_val[:, h - 1 : h].expand_as(truth), truth).mean())
    out["val_ratio_to_persistence"] = out["val_rollout_nrmse"] / out["val_persistence_nrmse"]
    return out


def _load_data(cfg: Config, paths: StagePaths, dev: torch.device) -> dict:
    """Train and val latents, the train and val fields, the points x: all on `dev`."""
    train, val = load_latents_to(paths.latents, "train", dev), load_latents_to(paths.latents, "val", dev)
    val_traj = load_split(paths.data, "val", cfg.data)
    if abs(train["dt"] - cfg.data.dt) > 1e-6:
        raise FileNotFoundError(
            f"{latents_path(paths.latents, 'train')}: latents have Δt = {train['dt']}, params give {cfg.data.dt}; run `dvc repro encode_latents`"
        )
    u_train = torch.from_numpy(load_split(paths.data, "train", cfg.data).u).to(dev)
    return {
        "train": train,
        "val": val,
        "u_train": u_train,
        "u_val": torch.from_numpy(val_traj.u).to(dev),
        "x": torch.from_numpy(val_traj.x).to(dev),
    }


def train_operator(cfg: Config, paths: StagePaths) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    data = _load_data(cfg, paths, dev)
    train, val, u_train, u_val, x = data["train"], data["val"], data["u_train"], data["u_val"], data["x"]
    ae = Autoencoder.from_checkpoint(paths.autoencoder, dev).requires_grad_(False)
    torch.manual_seed(cfg.train.operator.seed)
    model = LatentOperator.from_config(cfg)
    z = train["z"]
    model.set_latent_stats(z.mean(dim=(0, 1, 2)), z.std(dim=(0, 1, 2)).clamp_min(1e-6))
    zn_train = model.to(dev).normalize(z)
    t = cfg.train.operator
    h, r = cfg.operator.history, t.rollout
    length = h + r

    def batches(epoch, gen):
        pairs = windows(len(z), z.shape[1], length, r, t.first_window, gen)
        return [pairs[i : i + t.batch_size] for i in range(0, len(pairs), t.batch_size)]

    def loss(m, pairs, gen):
        pairs = pairs.to(dev)
        idx = pairs[:, :1]
        frames = pairs[:, 1:2] + torch.arange(length, device=dev)[None, :]
        zn = zn_train[idx, frames]
        window = zn[:, :h]
        if t.noise > 0:  # input noise: the operator learns to correct small errors of its own inputs
            window = window + t.noise * torch.randn(window.shape, generator=gen, device=generator_device(gen)).to(dev)
        u_next, nu = u_train[idx, frames[:, h:]], train["nu"][pairs[:, 0]]
        return rollout_loss(m, ae, window, u_next, x, nu, cfg.data.dt, cfg.operator.project, t.latent_weight, zn[:, h:])

    def validate(m):
        e = val_rollout_nrmse(Simulator(ae, m, cfg.data.dt), val["z"], val["nu"], u_val, x)
        return {"selection": e, "val_rollout_nrmse": e}

    inputs = [latents_path(paths.latents, "train"), latents_path(paths.latents, "val"), paths.autoencoder]
    steps = -(-windows_per_epoch(len(z), z.shape[1], r) // t.batch_size)
    task = stage_task(
        STAGE,
        model,
        t,
        paths,
        stage_params(cfg),
        inputs,
        steps_per_epoch=steps,
        batches=batches,
        loss=loss,
        validate=validate,
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    summary.update(diagnostics(Simulator(ae, model.eval(), cfg.data.dt), val["z"], val["nu"], u_val, x))
    return write_summary(paths, summary)


def _probe_models(cfg: Config) -> dict:
    frozen = Autoencoder.from_config(cfg).requires_grad_(False)
    return {"operator": LatentOperator.from_config(cfg), "autoencoder (frozen)": frozen}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b, h, r = cfg.train.operator.batch_size, cfg.operator.history, cfg.train.operator.rollout
    zn = torch.randn(b, h + r, cfg.latent.tokens, cfg.latent.dim)
    nu = torch.full((b,), cfg.data.nu[0])
    ae = models["autoencoder (frozen)"]
    u = torch.randn(b, r, len(ae.grid))
    return rollout_loss(
        models["operator"],
        ae,
        zn[:, :h],
        u,
        ae.grid,
        nu,
        cfg.data.dt,
        cfg.operator.project,
        cfg.train.operator.latent_weight,
        zn[:, h:],
    )


PROBE = Probe(
    stage=STAGE,
    models=_probe_models,
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: (
        -(
            -windows_per_epoch(data["trajectories"]["train"], cfg.data.frames, cfg.train.operator.rollout)
            // cfg.train.operator.batch_size
        )
    ),
    training=lambda cfg: cfg.train.operator,
)
