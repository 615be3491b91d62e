"""DVC stage `train_operator`: the latent PDE-Transformer, selected on val full-rollout nRMSE."""

from ups.config import load_config
from ups.stage_args import training_arguments
from ups.training.distributed import run_training_stage
from ups.training.operator import train_operator


def main() -> None:
    args, paths = training_arguments(__doc__, ("data", "latents", "autoencoder"))
    s = train_operator(load_config(args.params), paths)
    print(
        f"train_operator: val rollout nRMSE {s['val_rollout_nrmse']:.4g} vs persistence {s['val_persistence_nrmse']:.4g} "
        f"(ratio {s['val_ratio_to_persistence']:.3g}), {s['train_seconds']:.0f} s → {paths.checkpoint}"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_operator")
