"""DVC stage `gate`: writes the verdict and every check; always exits 0 (`ups gate check` is strict)."""

import argparse

from ups.config import load_config
from ups.errors import run_entry_point
from ups.gate import run_gate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", required=True)
    ap.add_argument("--full", required=True, help="eval_full's metrics; the champion is this file as committed at HEAD")
    ap.add_argument("--training", nargs="+", required=True, help="training summaries (for the total training time)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    v = run_gate(load_config(a.params).gate, a.small, a.full, a.training, a.out)
    print("gate: passed" if v["passed"] else "gate: FAILED\n  " + "\n  ".join(v["failures"]))


if __name__ == "__main__":
    run_entry_point(main, "gate")
