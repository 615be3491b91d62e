"""DVC stage `train_autoencoder`: encoder + any-point decoder, selected on val round-trip nRMSE."""

from ups.config import load_config
from ups.stage_args import training_arguments
from ups.training.autoencoder import train_autoencoder
from ups.training.distributed import run_training_stage


def main() -> None:
    args, paths = training_arguments(__doc__, ("data",))
    s = train_autoencoder(load_config(args.params), paths)
    print(
        f"train_autoencoder: val round-trip nRMSE {s['val_roundtrip_nrmse']:.4g} (epoch {s['best_epoch']}), {s['train_seconds']:.0f} s → {paths.checkpoint}"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_autoencoder")
