"""DVC stage `train_diff_residual`: the diffusion model of the frozen operator's residual."""

from ups.config import load_config
from ups.stage_args import training_arguments
from ups.training.diff_residual import train_diff_residual
from ups.training.distributed import run_training_stage


def main() -> None:
    args, paths = training_arguments(__doc__, ("data", "latents", "autoencoder", "operator"))
    s = train_diff_residual(load_config(args.params), paths)
    print(
        f"train_diff_residual: val rollout nRMSE operator {s['operator_rollout_nrmse']:.4g}, ensemble mean of {s['members']} "
        f"{s['ensemble_mean_nrmse']:.4g}, spread/skill {s['spread_skill']:.3g}, CRPS {s['crps']:.4g}, NFE/step {s['nfe_per_step']}"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_diff_residual")
