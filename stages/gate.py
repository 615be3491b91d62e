"""DVC stage `gate`: writes the verdict and every check; always exits 0 (`ups gate check` is strict)."""

from ups.config import load_config
from ups.errors import run_entry_point
from ups.gate import run_gate
from ups.stage_args import stage_arguments


def main() -> None:
    a = stage_arguments(__doc__, ["small", "full", "out"], lists=["training"])
    v = run_gate(load_config(a.params).gate, a.small, a.full, a.training, a.out)
    print("gate: passed" if v["passed"] else "gate: FAILED\n  " + "\n  ".join(v["failures"]))


if __name__ == "__main__":
    run_entry_point(main, "gate")
