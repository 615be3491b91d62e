"""DVC stage `generate`: Burgers-S train/val/test files and train-only normalisation."""

from ups.config import load_config
from ups.data.generate import generate_dataset
from ups.errors import run_entry_point
from ups.stage_args import stage_arguments


def main() -> None:
    args = stage_arguments(__doc__, ["out"])
    cfg = load_config(args.params)
    summary = generate_dataset(cfg.data, args.out)
    print(f"generate: {summary['splits']} in {summary['seconds']:.1f} s → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "generate")
