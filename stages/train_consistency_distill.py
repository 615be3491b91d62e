"""DVC stage `train_consistency_distill`: a 1–2 evaluation student of the diffusion sampler."""

import argparse

from ups.config import load_config
from ups.training.distributed import run_training_stage
from ups.training.consistency import train_consistency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("data", "latents", "autoencoder", "operator", "teacher", "checkpoint", "plots", "metrics"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    s = train_consistency(load_config(a.params), a.data, a.latents, a.autoencoder, a.operator, a.teacher, a.checkpoint, a.plots, a.metrics)
    print(
        f"train_consistency_distill: val rollout nRMSE (mean of sample paths) student {s['student_rollout_nrmse']:.4g} "
        f"({s['student_nfe_per_step']} NFE/step) vs teacher {s['teacher_deterministic_rollout_nrmse']:.4g} deterministic, "
        f"{s['teacher_rollout_nrmse']:.4g} stochastic ({s['teacher_nfe_per_step']} NFE/step); distillation loss "
        f"{s['best_val_distillation_loss']:.4g} vs {s['val_zero_student_loss']:.4g} for a zero student"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_consistency_distill")
