"""DVC stage `validate`: params, data, and every model built and stepped once; a dry-run estimate."""

import json

from ups.config import load_config
from ups.errors import run_entry_point
from ups.stage_args import stage_arguments
from ups.validate import validate


def main() -> None:
    args = stage_arguments(__doc__, ["data", "out"], optional=["verdict"])
    cfg = load_config(args.params)
    report = validate(cfg, args.data, args.out, args.verdict)
    print(json.dumps(report["estimate"], indent=2))
    print(f"validate: params, data and {len(report['models'])} model stage(s) OK → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "validate")
