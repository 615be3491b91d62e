"""DVC stage `train_steady_prior`: the terminal state from the initial state and ν."""

from ups.config import load_config
from ups.stage_args import training_arguments
from ups.training.distributed import run_training_stage
from ups.training.steady_prior import train_steady_prior


def main() -> None:
    args, paths = training_arguments(__doc__, ("data", "latents", "autoencoder"))
    s = train_steady_prior(load_config(args.params), paths)
    print(
        f"train_steady_prior: val terminal-frame nRMSE {s['val_terminal_nrmse']:.4g} (persistence {s['val_persistence_terminal_nrmse']:.4g})"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_steady_prior")
