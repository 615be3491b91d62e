"""DVC stage `train_operator`: the latent PDE-Transformer, selected on val full-rollout nRMSE."""

import argparse

from ups.config import load_config
from ups.training.distributed import run_training_stage
from ups.training.operator import train_operator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--latents", required=True)
    ap.add_argument("--autoencoder", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--plots", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    s = train_operator(load_config(args.params), args.data, args.latents, args.autoencoder, args.checkpoint, args.plots, args.metrics)
    print(
        f"train_operator: val rollout nRMSE {s['val_rollout_nrmse']:.4g} vs persistence {s['val_persistence_nrmse']:.4g} "
        f"(ratio {s['val_ratio_to_persistence']:.3g}), {s['train_seconds']:.0f} s → {args.checkpoint}"
    )


if __name__ == "__main__":
    run_training_stage(main, "train_operator")
