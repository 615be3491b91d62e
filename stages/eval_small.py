"""DVC stage `eval_small`: the proxy gate, the operator against persistence on val over a short horizon."""

import argparse

from ups.config import load_config
from ups.errors import run_entry_point
from ups.eval.stages import eval_small


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for name in ("data", "autoencoder", "operator", "out"):
        ap.add_argument(f"--{name}", required=True)
    ap.add_argument("--params", default="params.yaml")
    a = ap.parse_args()
    r = eval_small(load_config(a.params), a.data, a.autoencoder, a.operator, a.out)
    p = r["proxy"]
    verdict = "passed" if p["passed"] else "FAILED: " + "; ".join(p["failures"])
    print(f"eval_small: operator nRMSE {p['nrmse']:.4g} over {r['horizon']} frames on val ({p['ratio_to_persistence']:.3g} × persistence); proxy gate {verdict}")


if __name__ == "__main__":
    run_entry_point(main, "eval_small")
