"""DVC stage `encode_latents`: train/val fields through the trained encoder (never stale: the
autoencoder checkpoint is a dependency)."""

from ups.config import load_config
from ups.errors import run_entry_point
from ups.stage_args import stage_arguments
from ups.training.latents import encode_latents


def main() -> None:
    args = stage_arguments(__doc__, ["data", "autoencoder", "out"])
    cfg = load_config(args.params)
    shapes = encode_latents(args.data, args.autoencoder, args.out, cfg.data.pdebench.allow_legacy_domain)
    print(f"encode_latents: {shapes} → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "encode_latents")
