"""DVC stage `eval_small`: the proxy gate, the operator against persistence on val over a short horizon."""

from ups.config import load_config
from ups.errors import run_entry_point
from ups.eval.stages import eval_small
from ups.stage_args import stage_arguments


def main() -> None:
    a = stage_arguments(__doc__, ["data", "autoencoder", "operator", "out"])
    r = eval_small(load_config(a.params), a.data, a.autoencoder, a.operator, a.out)
    p = r["proxy"]
    verdict = "passed" if p["passed"] else "FAILED: " + "; ".join(p["failures"])
    print(
        f"eval_small: operator nRMSE {p['nrmse']:.4g} over {r['horizon']} frames on val ({p['ratio_to_persistence']:.3g} × persistence); proxy gate {verdict}"
    )


if __name__ == "__main__":
    run_entry_point(main, "eval_small")
