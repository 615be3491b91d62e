"""DVC stage `encode_latents`: train/val fields through the trained encoder (never stale: the
autoencoder checkpoint is a dependency)."""

import argparse

from ups.config import load_config
from ups.errors import run_entry_point
from ups.training.latents import encode_latents


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--autoencoder", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    cfg = load_config(args.params)
    shapes = encode_latents(args.data, args.autoencoder, args.out, cfg.data.pdebench.allow_legacy_domain)
    print(f"encode_latents: {shapes} → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "encode_latents")
