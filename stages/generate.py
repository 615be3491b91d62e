"""DVC stage `generate`: Burgers-S train/val/test files and train-only normalisation (SPEC §3)."""

import argparse

from ups.config import load_config
from ups.data.generate import generate_dataset
from ups.errors import run_entry_point


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="output folder of the data files")
    args = ap.parse_args()
    cfg = load_config(args.params)
    summary = generate_dataset(cfg.data, args.out)
    print(f"generate: {summary['splits']} in {summary['seconds']:.1f} s → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "generate")
