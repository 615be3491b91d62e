"""DVC stage `train_diff_residual`: the diffusion model of the frozen operator's residual."""

import argparse

from ups.config import load_config
from ups.training.distributed import run_training_stage
from ups.training.diff_residual import train_diff_residual


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("data", "latents", "autoencoder", "operator", "checkpoint", "plots", "metrics"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    s = train_diff_residual(load_config(a.params), a.data, a.latents, a.autoencoder, a.operator, a.checkpoint, a.plots, a.metrics)
    print(
        f"train_diff_residual: val rollout nRMSE operator {s['operator_rollout_nrmse']:.4g}, ensemble mean of {s['members']} "
        f"{s['ensemble_mean_nrmse']:.4g}, spread/skill {s['spread_skill']:.3g}, CRPS {s['crps']:.4g}, NFE/step {s['nfe_per_step']}"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_diff_residual")
