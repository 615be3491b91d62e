"""Stage train_consistency_distill: a student that reproduces the diffusion sampler in 1–2 evaluations.

Teacher matching along the teacher's own deterministic sampling path: for a starting noise ε the
teacher's DDIM-like sampler visits states x_k at its K levels and ends at a sample r̂(ε). The student
f(x_k, σ_k) is trained to map every state of the path to r̂(ε) (a consistency function of the path).
A student that outputs zero scores E‖r̂‖², far above a trained one: the objective cannot be met by
switching the corrector off (the old system distilled its corrector to zero).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config, ConsistencyConfig, LatentConfig
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse
from ups.inference.loading import load_autoencoder, load_operator
from ups.inference.rollout import Simulator
from ups.inference.stochastic import corrected_rollout
from ups.io import write_json_atomic
from ups.models.diffusion import SIGMA_MAX, ConsistencyStudent
from ups.training import checkpoint as ckpt
from ups.training import diff_residual
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import Task, fit, shuffled_batches, stage_device
from ups.training.registry import Probe, register
from ups.models.layers import generator_device

STAGE = "train_consistency_distill"
REPORT_PATHS = 2  # sample paths averaged in the rollout report


class _Deterministic:
    """The teacher's deterministic (DDIM-like) K-step sampler: what the student distils."""

    def __init__(self, teacher):
        self.teacher, self.r_std, self.nfe = teacher, teacher.r_std, teacher.nfe

    def sample(self, z_op, dt, nu, gen=None):
        start = torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op)
        return self.teacher.sample(z_op, dt, nu, deterministic=True, start=start)


def spec(cfg: Config) -> dict:
    return {"kind": "consistency", "latent": asdict(cfg.latent), "consistency": asdict(cfg.consistency), "diffusion": asdict(cfg.diffusion)}


def build(spec: dict) -> ConsistencyStudent:
    from ups.config import DiffusionConfig
    from ups.models.diffusion import noise_levels

    d = DiffusionConfig(**spec["diffusion"])
    return ConsistencyStudent(LatentConfig(**spec["latent"]), ConsistencyConfig(**spec["consistency"]), noise_levels(d.steps, d.min_noise, d.schedule))


def load(path: Path | str) -> ConsistencyStudent:
    c = ckpt.load(path, "consistency")
    model = build(c)
    model.load_state_dict(c["state_dict"])
    return model.eval()


def distillation_loss(student, teacher, c: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mean ‖f(x_k, σ_k) − r̂(ε)‖² over the teacher's path, at one random level per sample."""
    start = SIGMA_MAX * torch.randn(c.shape, generator=gen, device=generator_device(gen)).to(c)
    states, target = teacher.teacher_trajectory(c, dt, nu, start)
    k = torch.randint(0, len(states), (c.shape[0],), generator=gen, device=generator_device(gen))
    k = k.to(c.device)
    x = torch.stack(states)[k, torch.arange(c.shape[0], device=c.device)]
    return ((student(x, teacher.levels[k], c, dt, nu) - target) ** 2).mean()


def train_consistency(cfg: Config, data_dir: Path, latents_dir: Path, autoencoder: Path, operator: Path, teacher_path: Path, checkpoint_out: Path, plots_out: Path, metrics_out: Path, scratch: Path = ckpt.SCRATCH) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    op, _ = load_operator(operator, dev)
    ae = load_autoencoder(autoencoder, dev)
    teacher = diff_residual.load(teacher_path).to(dev)
    teacher.nfe = len(teacher.levels)
    for p in teacher.parameters():
        p.requires_grad_(False)
    sim = Simulator(ae, op, cfg.data.dt)
    train, val = load_latents_to(latents_dir, "train", dev), load_latents_to(latents_dir, "val", dev)
    z_op, _, nus = diff_residual.one_step_pairs(sim, train["z"], train["nu"])
    vz_op, _, vnus = diff_residual.one_step_pairs(sim, val["z"], val["nu"])
    c_n, vc_n = op.normalize(z_op), op.normalize(vz_op)
    dts, vdts = torch.full((len(c_n),), cfg.data.dt, device=dev), torch.full((len(vc_n),), cfg.data.dt, device=dev)
    torch.manual_seed(cfg.train.consistency.seed)
    s = spec(cfg)
    student = build(s)
    student.r_std.copy_(teacher.r_std)
    t = cfg.train.consistency

    def validate(m):
        with torch.no_grad():
            e = float(distillation_loss(m, teacher, vc_n, vdts, vnus, torch.Generator().manual_seed(0)))
        return {"selection": e, "val_distillation_loss": e}

    task = Task(
        stage=STAGE, model=student, training=t, steps_per_epoch=-(-len(c_n) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(c_n), t.batch_size, gen),
        loss=lambda m, idx, gen: distillation_loss(m, teacher, c_n[idx.to(dev)], dts[idx.to(dev)], nus[idx.to(dev)], gen),
        validate=validate, checkpoint_path=Path(checkpoint_out), checkpoint_payload=lambda: dict(s), plots_path=Path(plots_out),
        fingerprint=ckpt.fingerprint({"latent": asdict(cfg.latent), "consistency": asdict(cfg.consistency), "diffusion": asdict(cfg.diffusion), "train": asdict(t), "runtime": asdict(cfg.runtime)}, [latents_path(latents_dir, "train"), operator, teacher_path]),
        scratch=Path(scratch), log_config={"consistency": asdict(cfg.consistency), "train": asdict(t)},
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    student.eval()
    with torch.no_grad():
        summary["val_zero_student_loss"] = float(distillation_loss(lambda x, sigma, c, dt, nu: torch.zeros_like(x), teacher, vc_n, vdts, vnus, torch.Generator().manual_seed(0)))
    val_traj = load_split(data_dir, "val", cfg.data)
    u_val, x = torch.from_numpy(val_traj.u).to(dev), torch.from_numpy(val_traj.x).to(dev)
    h, steps = sim.history, u_val.shape[1] - sim.history
    truth = u_val[:, h:]
    teachers = {"teacher": teacher, "teacher_deterministic": _Deterministic(teacher), "student": student}
    for name, corrector in teachers.items():  # the mean over REPORT_PATHS sample paths: one path is noisy
        gen = torch.Generator().manual_seed(t.seed)
        errors = [nrmse(sim.decode(corrected_rollout(sim, corrector, val["z"][:, :h], val["nu"], steps, gen), x), truth) for _ in range(REPORT_PATHS)]
        summary[f"{name}_rollout_nrmse"] = sum(errors) / len(errors)
        summary[f"{name}_nfe_per_step"] = 1 + corrector.nfe
    # The student distils the deterministic sampler; both teacher samplers are reported.
    summary["student_vs_teacher"] = summary["student_rollout_nrmse"] / summary["teacher_deterministic_rollout_nrmse"]
    summary["student_vs_teacher_stochastic"] = summary["student_rollout_nrmse"] / summary["teacher_rollout_nrmse"]
    summary["evaluations_saved"] = len(teacher.levels) / student.nfe
    write_json_atomic(metrics_out, summary)
    return summary


def _probe_models(cfg: Config) -> dict:
    return {"consistency": build(spec(cfg)), "teacher": diff_residual.build(diff_residual.spec(cfg))}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b = cfg.train.consistency.batch_size
    c = torch.randn(b, cfg.latent.tokens, cfg.latent.dim)
    teacher = models["teacher"]
    return distillation_loss(models["consistency"], teacher, c, torch.full((b,), cfg.data.dt), torch.full((b,), cfg.data.nu[0]), torch.Generator().manual_seed(0))


register(Probe(
    stage=STAGE, models=_probe_models, step=_probe_step,
    steps_per_epoch=lambda cfg, data: -(-data["trajectories"]["train"] * (cfg.data.frames - cfg.operator.history) // cfg.train.consistency.batch_size),
    training=lambda cfg: cfg.train.consistency,
))
