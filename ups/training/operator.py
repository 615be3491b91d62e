"""Stage train_operator: the latent PDE-Transformer on latents of the frozen autoencoder.

The training loss is the unrolled error over `train.operator.rollout` steps (normalised latents,
plus `train.operator.physical_weight` × the decoded error; gradients through the whole unroll). Model
selection and early stopping use the physical full-rollout nRMSE on the validation split: roll out
with the `Simulator` (so projected, with `operator.project`) from the first `operator.history` frames
to the last frame, decode, compare (input frames excluded), as evaluation does.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse_per_frame
from ups.inference.loading import autoencoder_spec, build_autoencoder, build_operator, load_autoencoder, operator_spec
from ups.inference.rollout import Simulator
from ups.io import write_json_atomic
from ups.training import checkpoint as ckpt
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import Task, fit, stage_device
from ups.training.registry import Probe, register

STAGE = "train_operator"


def stage_params(cfg: Config) -> dict:
    return {"latent": asdict(cfg.latent), "operator": asdict(cfg.operator), "train": asdict(cfg.train.operator), "runtime": asdict(cfg.runtime), "dt": cfg.data.dt}


def windows(n_traj: int, frames: int, length: int, stride: int, gen: torch.Generator) -> torch.Tensor:
    """(trajectory, start) pairs tiling every trajectory with windows of `length`, random offset."""
    offset = int(torch.randint(0, stride, (1,), generator=gen))
    starts = torch.arange(offset, frames - length + 1, stride)
    if len(starts) == 0:
        starts = torch.zeros(1, dtype=torch.long)
    pairs = torch.cartesian_prod(torch.arange(n_traj), starts)
    return pairs[torch.randperm(len(pairs), generator=gen)]


def rollout_loss(model, zn: torch.Tensor, nu: torch.Tensor, dt: float, history: int, decoder=None, fields=None, physical_weight: float = 0.0) -> torch.Tensor:
    """Mean error over the unrolled steps; zn (B, H + R, T, D) normalised latents.

    The unroll feeds back the operator's raw predictions; `operator.project` acts at inference only
    (`Simulator.step`), where it keeps long rollouts on the autoencoder's manifold. Projecting in the
    unroll as well, with gradients through the frozen autoencoder, doubles the cost of an epoch and
    scored worse on val at equal training time (README, "Models"). `physical_weight` > 0 adds the
    error of the decoded prediction against `fields` = (x, u (B, H + R, X)) in normalised physical
    units, the quantity evaluation measures.
    """
    window = zn[:, :history]
    dts = torch.full((zn.shape[0],), dt, dtype=zn.dtype, device=zn.device)
    losses = []
    for r in range(zn.shape[1] - history):
        pred = model.step(window, dts, nu)
        step_loss = ((pred - zn[:, history + r]) ** 2).mean()
        if physical_weight > 0:
            x, u = fields
            step_loss = step_loss + physical_weight * ((decoder(model.denormalize(pred), x) - u[:, history + r]) ** 2).mean() / decoder.std**2
        losses.append(step_loss)
        window = torch.cat([window[:, 1:], pred[:, None]], dim=1)
    return torch.stack(losses).mean()


def val_rollout_nrmse(sim: Simulator, z_val: torch.Tensor, nu: torch.Tensor, u_val: torch.Tensor, x: torch.Tensor) -> float:
    h = sim.history
    pred = sim.decode(sim.rollout_latent(z_val[:, :h], nu, u_val.shape[1] - h), x)
    return float(nrmse_per_frame(pred, u_val[:, h:]).mean())


def train_operator(cfg: Config, data_dir: Path, latents_dir: Path, autoencoder: Path, checkpoint_out: Path, plots_out: Path, metrics_out: Path, scratch: Path = ckpt.SCRATCH) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    train, val = load_latents_to(latents_dir, "train", dev), load_latents_to(latents_dir, "val", dev)
    ae = load_autoencoder(autoencoder, dev)
    val_traj = load_split(data_dir, "val", cfg.data)
    u_val, x = torch.from_numpy(val_traj.u).to(dev), torch.from_numpy(val_traj.x).to(dev)
    if abs(train["dt"] - cfg.data.dt) > 1e-6:
        raise FileNotFoundError(f"{latents_path(latents_dir, 'train')}: latents have Δt = {train['dt']}, params give {cfg.data.dt}; run `dvc repro encode_latents`")

    u_train = torch.from_numpy(load_split(data_dir, "train", cfg.data).u).to(dev)
    for p in ae.parameters():
        p.requires_grad_(False)

    torch.manual_seed(cfg.train.operator.seed)
    spec = operator_spec(cfg)
    model = build_operator(spec)
    z = train["z"]
    model.set_latent_stats(z.mean(dim=(0, 1, 2)), z.std(dim=(0, 1, 2)).clamp_min(1e-6))
    zn_train = model.to(dev).normalize(z)
    nu_train = train["nu"]
    t = cfg.train.operator
    h, r = cfg.operator.history, t.rollout
    length = h + r
    n_windows = len(z) * ((z.shape[1] - length) // r + 1)

    def batches(epoch, gen):
        pairs = windows(len(z), z.shape[1], length, r, gen)
        return [pairs[i : i + t.batch_size] for i in range(0, len(pairs), t.batch_size)]

    def loss(m, pairs, gen):
        pairs = pairs.to(dev)
        idx = pairs[:, :1] + torch.zeros_like(pairs[:, :1])
        frames = pairs[:, 1:2] + torch.arange(length, device=dev)[None, :]
        fields = (x, u_train[idx, frames]) if t.physical_weight > 0 else None
        return rollout_loss(m, zn_train[idx, frames], nu_train[pairs[:, 0]], cfg.data.dt, h, ae.decoder, fields, t.physical_weight)

    def validate(m):
        e = val_rollout_nrmse(Simulator(ae, m, cfg.data.dt), val["z"], val["nu"], u_val, x)
        return {"selection": e, "val_rollout_nrmse": e}

    task = Task(
        stage=STAGE,
        model=model,
        training=t,
        steps_per_epoch=-(-n_windows // t.batch_size),
        batches=batches,
        loss=loss,
        validate=validate,
        checkpoint_path=Path(checkpoint_out),
        checkpoint_payload=lambda: dict(spec),
        plots_path=Path(plots_out),
        fingerprint=ckpt.fingerprint(stage_params(cfg), [latents_path(latents_dir, "train"), latents_path(latents_dir, "val"), autoencoder]),
        scratch=Path(scratch),
        log_config=stage_params(cfg),
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    model.eval()
    sim = Simulator(ae, model, cfg.data.dt)
    summary["val_rollout_nrmse"] = val_rollout_nrmse(sim, val["z"], val["nu"], u_val, x)
    final = sim.decode(sim.rollout_latent(val["z"][:, :h], val["nu"], u_val.shape[1] - h)[:, -1:], x)[:, 0]
    summary["val_terminal_nrmse"] = float(nrmse_per_frame(final, u_val[:, -1]).mean())
    persistence = u_val[:, h - 1 : h].expand(-1, u_val.shape[1] - h, -1)
    summary["val_persistence_nrmse"] = float(nrmse_per_frame(persistence, u_val[:, h:]).mean())
    summary["val_ratio_to_persistence"] = summary["val_rollout_nrmse"] / summary["val_persistence_nrmse"]
    write_json_atomic(metrics_out, summary)
    return summary


def _probe_models(cfg: Config) -> dict:
    frozen = build_autoencoder(autoencoder_spec(cfg, 0.0, 1.0)).requires_grad_(False)
    return {"operator": build_operator(operator_spec(cfg)), "autoencoder (frozen)": frozen}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b, length = cfg.train.operator.batch_size, cfg.operator.history + cfg.train.operator.rollout
    zn = torch.randn(b, length, cfg.latent.tokens, cfg.latent.dim)
    nu = torch.full((b,), cfg.data.nu[0])
    ae = models["autoencoder (frozen)"]
    fields = (ae.grid, torch.randn(b, length, len(ae.grid)))
    return rollout_loss(models["operator"], zn, nu, cfg.data.dt, cfg.operator.history, ae.decoder, fields, cfg.train.operator.physical_weight)


register(Probe(
    stage=STAGE,
    models=_probe_models,
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: -(-data["trajectories"]["train"] * ((cfg.data.frames - cfg.operator.history - cfg.train.operator.rollout) // cfg.train.operator.rollout + 1) // cfg.train.operator.batch_size),
    training=lambda cfg: cfg.train.operator,
))
