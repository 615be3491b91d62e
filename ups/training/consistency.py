"""Stage train_consistency_distill: a student that reproduces the diffusion sampler in 1–2 evaluations.

Teacher matching along the teacher's own deterministic sampling path: for a starting noise ε the
teacher's DDIM-like sampler visits states x_k at its K levels and ends at a sample r̂(ε). The student
f(x_k, σ_k) is trained to map every state of the path to r̂(ε) (a consistency function of the path).
A student that outputs zero scores E‖r̂‖², far above a trained one: the objective cannot be met by
switching the corrector off (a student matched to a residual target can learn to output zero).
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from ups.config import Config
from ups.data.dataset import load_split
from ups.eval.metrics import nrmse
from ups.inference.rollout import Simulator
from ups.inference.stochastic import corrected_rollout
from ups.models.diffusion import SIGMA_MAX, ConsistencyStudent, DiffusionResidual
from ups.models.layers import generator_device
from ups.stage_args import StagePaths
from ups.training.diff_residual import one_step_pairs
from ups.training.latents import latents_path, load_latents_to
from ups.training.loop import fit, shuffled_batches, stage_device
from ups.training.registry import Probe
from ups.training.stage import stage_task, write_summary

STAGE = "train_consistency_distill"
REPORT_PATHS = 2  # sample paths averaged in the rollout report


class _Deterministic:
    """The teacher's deterministic (DDIM-like) K-step sampler: what the student distils."""

    def __init__(self, teacher):
        self.teacher, self.r_std, self.nfe = teacher, teacher.r_std, teacher.nfe

    def sample(self, z_op, dt, nu, gen=None):
        start = torch.randn(z_op.shape, generator=gen, device=generator_device(gen)).to(z_op)
        return self.teacher.sample(z_op, dt, nu, deterministic=True, start=start)


def stage_params(cfg: Config) -> dict:
    return {
        "latent": asdict(cfg.latent),
        "consistency": asdict(cfg.consistency),
        "diffusion": asdict(cfg.diffusion),
        "train": asdict(cfg.train.consistency),
        "runtime": asdict(cfg.runtime),
    }


def distillation_loss(
    student, teacher, c: torch.Tensor, dt: torch.Tensor, nu: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Mean ‖f(x_k, σ_k) − r̂(ε)‖² over the teacher's path, at one random level per sample."""
    start = SIGMA_MAX * torch.randn(c.shape, generator=gen, device=generator_device(gen)).to(c)
    states, target = teacher.teacher_trajectory(c, dt, nu, start)
    k = torch.randint(0, len(states), (c.shape[0],), generator=gen, device=generator_device(gen))
    k = k.to(c.device)
    x = torch.stack(states)[k, torch.arange(c.shape[0], device=c.device)]
    return ((student(x, teacher.levels[k], c, dt, nu) - target) ** 2).mean()


def train_consistency(cfg: Config, paths: StagePaths) -> dict:
    dev = stage_device(cfg.runtime)  # the data lives where the model trains
    sim = Simulator.from_checkpoints(paths.autoencoder, paths.operator, device=dev)
    teacher = DiffusionResidual.from_checkpoint(paths.teacher, dev).requires_grad_(False)
    train, val = load_latents_to(paths.latents, "train", dev), load_latents_to(paths.latents, "val", dev)
    z_op, _, nus = one_step_pairs(sim, train["z"], train["nu"])
    vz_op, _, vnus = one_step_pairs(sim, val["z"], val["nu"])
    c_n, vc_n = sim.operator.normalize(z_op), sim.operator.normalize(vz_op)
    dts, vdts = torch.full((len(c_n),), cfg.data.dt, device=dev), torch.full((len(vc_n),), cfg.data.dt, device=dev)
    torch.manual_seed(cfg.train.consistency.seed)
    student = ConsistencyStudent.from_config(cfg)
    student.r_std.copy_(teacher.r_std)
    t = cfg.train.consistency

    def validate(m):
        with torch.no_grad():
            e = float(distillation_loss(m, teacher, vc_n, vdts, vnus, torch.Generator().manual_seed(0)))
        return {"selection": e, "val_distillation_loss": e}

    def loss(m, idx, gen):
        idx = idx.to(dev)
        return distillation_loss(m, teacher, c_n[idx], dts[idx], nus[idx], gen)

    task = stage_task(
        STAGE,
        student,
        t,
        paths,
        stage_params(cfg),
        [latents_path(paths.latents, "train"), paths.operator, paths.teacher],
        steps_per_epoch=-(-len(c_n) // t.batch_size),
        batches=lambda epoch, gen: shuffled_batches(len(c_n), t.batch_size, gen),
        loss=loss,
        validate=validate,
    )
    summary = fit(task, cfg.runtime, cfg.logging.wandb)
    student.eval()
    with torch.no_grad():
        summary["val_zero_student_loss"] = float(
            distillation_loss(_zero_student, teacher, vc_n, vdts, vnus, torch.Generator().manual_seed(0))
        )
    correctors = {"teacher": teacher, "teacher_deterministic": _Deterministic(teacher), "student": student}
    summary.update(rollout_report(cfg, paths, sim, val, correctors, t.seed, dev))
    # The student distils the deterministic sampler; both teacher samplers are reported.
    summary["student_vs_teacher"] = summary["student_rollout_nrmse"] / summary["teacher_deterministic_rollout_nrmse"]
    summary["student_vs_teacher_stochastic"] = summary["student_rollout_nrmse"] / summary["teacher_rollout_nrmse"]
    summary["evaluations_saved"] = len(teacher.levels) / student.nfe
    return write_summary(paths, summary)


def _zero_student(x, sigma, c, dt, nu) -> torch.Tensor:
    """The student that switches the corrector off: the loss a trained student must beat."""
    return torch.zeros_like(x)


def rollout_report(
    cfg: Config, paths: StagePaths, sim: Simulator, val: dict, correctors: dict, seed: int, dev: torch.device
) -> dict:
    """Val full-rollout nRMSE of each corrector, the mean over REPORT_PATHS sample paths (one path is noisy)."""
    val_traj = load_split(paths.data, "val", cfg.data)
    u_val, x = torch.from_numpy(val_traj.u).to(dev), torch.from_numpy(val_traj.x).to(dev)
    h, steps = sim.history, u_val.shape[1] - sim.history
    truth = u_val[:, h:]
    out = {}
    for name, corrector in correctors.items():
        gen = torch.Generator().manual_seed(seed)
        errors = [
            nrmse(sim.decode(corrected_rollout(sim, corrector, val["z"][:, :h], val["nu"], steps, gen), x), truth)
            for _ in range(REPORT_PATHS)
        ]
        out[f"{name}_rollout_nrmse"] = sum(errors) / len(errors)
        out[f"{name}_nfe_per_step"] = 1 + corrector.nfe
    return out


def _probe_models(cfg: Config) -> dict:
    return {"consistency": ConsistencyStudent.from_config(cfg), "teacher": DiffusionResidual.from_config(cfg)}


def _probe_step(cfg: Config, models: dict) -> torch.Tensor:
    b = cfg.train.consistency.batch_size
    c = torch.randn(b, cfg.latent.tokens, cfg.latent.dim)
    teacher = models["teacher"]
    return distillation_loss(
        models["consistency"],
        teacher,
        c,
        torch.full((b,), cfg.data.dt),
        torch.full((b,), cfg.data.nu[0]),
        torch.Generator().manual_seed(0),
    )


PROBE = Probe(
    stage=STAGE,
    models=_probe_models,
    step=_probe_step,
    steps_per_epoch=lambda cfg, data: (
        -(-data["trajectories"]["train"] * (cfg.data.frames - cfg.operator.history) // cfg.train.consistency.batch_size)
    ),
    training=lambda cfg: cfg.train.consistency,
)
