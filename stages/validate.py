"""DVC stage `validate`: params, data, and every model built and stepped once; a dry-run estimate."""

import argparse
import json

from ups.config import load_config
from ups.errors import run_entry_point
from ups.validate import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="folder of the data files")
    ap.add_argument("--out", required=True, help="metrics JSON to write")
    ap.add_argument("--verdict", default=None, help="file written only when every check passed")
    args = ap.parse_args()
    cfg = load_config(args.params)
    report = validate(cfg, args.data, args.out, args.verdict)
    print(json.dumps(report["estimate"], indent=2))
    print(f"validate: params, data and {len(report['models'])} model stage(s) OK → {args.out}")


if __name__ == "__main__":
    run_entry_point(main, "validate")
