"""DVC stage `train_consistency_distill`: a 1–2 evaluation student of the diffusion sampler."""

from ups.config import load_config
from ups.stage_args import training_arguments
from ups.training.consistency import train_consistency
from ups.training.distributed import run_training_stage


def main() -> None:
    args, paths = training_arguments(__doc__, ("data", "latents", "autoencoder", "operator", "teacher"))
    s = train_consistency(load_config(args.params), paths)
    print(
        f"train_consistency_distill: val rollout nRMSE (mean of sample paths) student {s['student_rollout_nrmse']:.4g} "
        f"({s['student_nfe_per_step']} NFE/step) vs teacher {s['teacher_deterministic_rollout_nrmse']:.4g} deterministic, "
        f"{s['teacher_rollout_nrmse']:.4g} stochastic ({s['teacher_nfe_per_step']} NFE/step); distillation loss "
        f"{s['best_val_distillation_loss']:.4g} vs {s['val_zero_student_loss']:.4g} for a zero student"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_consistency_distill")
