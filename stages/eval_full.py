"""DVC stage `eval_full`: every method on test over the full horizon, if the proxy gate passed."""

from ups.config import load_config
from ups.errors import run_entry_point
from ups.eval.stages import eval_full
from ups.stage_args import stage_arguments

CHECKPOINTS = ("autoencoder", "operator", "diff_residual", "consistency", "steady_prior")


def main() -> None:
    a = stage_arguments(__doc__, [*CHECKPOINTS, "data", "small", "out", "per_frame", "images", "predictions"])
    r = eval_full(
        load_config(a.params),
        data_dir=a.data,
        checkpoints={k: getattr(a, k) for k in CHECKPOINTS},
        small_report=a.small,
        out=a.out,
        per_frame=a.per_frame,
        images=a.images,
        predictions=a.predictions,
    )
    if r["skipped"]:
        print(f"eval_full: skipped, {r['reason']}")
        return
    print(f"eval_full: test, {r['trajectories']} trajectories × {r['frames_predicted']} frames, nRMSE per method:")
    for name, m in r["methods"].items():
        print(f"  {name:<12} {m['nrmse']:.4g}   {1e3 * m['seconds_per_trajectory']:.3g} ms/trajectory")
    h = r["headline"]
    print(f"  headline ({h['method']}): {h['nrmse']:.4g}, {h['ratio_to_persistence']:.3g} × persistence")


if __name__ == "__main__":
    run_entry_point(main, "eval_full")
