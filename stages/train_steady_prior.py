"""DVC stage `train_steady_prior`: the terminal state from the initial state and ν."""

import argparse

from ups.config import load_config
from ups.training.distributed import run_training_stage
from ups.training.steady_prior import train_steady_prior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("data", "latents", "autoencoder", "checkpoint", "plots", "metrics"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    s = train_steady_prior(load_config(a.params), a.data, a.latents, a.autoencoder, a.checkpoint, a.plots, a.metrics)
    print(f"train_steady_prior: val terminal-frame nRMSE {s['val_terminal_nrmse']:.4g} (persistence {s['val_persistence_terminal_nrmse']:.4g})")


if __name__ == "__main__":
    run_training_stage(main, "train_steady_prior")
