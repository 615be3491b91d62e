"""DVC stage `train_autoencoder`: encoder + any-point decoder, selected on val round-trip nRMSE."""

import argparse

from ups.config import load_config
from ups.training.distributed import run_training_stage
from ups.training.autoencoder import train_autoencoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--plots", required=True, help="per-epoch TSV")
    ap.add_argument("--metrics", required=True, help="summary JSON")
    args = ap.parse_args()
    s = train_autoencoder(load_config(args.params), args.data, args.checkpoint, args.plots, args.metrics)
    print(f"train_autoencoder: val round-trip nRMSE {s['val_roundtrip_nrmse']:.4g} (epoch {s['best_epoch']}), {s['train_seconds']:.0f} s → {args.checkpoint}")


if __name__ == "__main__":
    run_training_stage(main, "train_autoencoder")
