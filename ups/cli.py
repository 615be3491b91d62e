"""The `ups` command: helpers around the DVC pipeline.

    ups params check [--params FILE] [-S key=value ...]   validate params.yaml (+ overrides)
    ups params reference                               print the params reference (docs/PARAMS.md)
    ups data info FILE [--frames T --grid X]           describe a Burgers-S or PDEBench file
    ups ttc-report [--split val --corrector consistency]  TTC's gain and cost against one sample
    ups gate check [--gate metrics/gate.json]          strict gate: exit 1 unless it passed (CI, promotion)
    ups eval recompute [predictions/eval_full.h5]      every metric again, from the saved predictions

The pipeline itself runs through DVC: `dvc repro`, `dvc exp run -S key=value`, `dvc exp show`.
"""

from __future__ import annotations

import argparse
import sys

from ups.errors import run_entry_point


def _params_check(args: argparse.Namespace) -> None:
    from ups.config import load_config, parse_override

    overrides = dict(parse_override(o) for o in args.set or [])
    cfg = load_config(args.params, overrides)
    print(f"{args.params}: OK ({len(cfg.data.nu)} viscosities, {cfg.latent.tokens}×{cfg.latent.dim} latent, Δt = {cfg.data.dt:g})")


def _params_reference(args: argparse.Namespace) -> None:
    from ups.config import reference_markdown

    sys.stdout.write(reference_markdown())


def _data_info(args: argparse.Namespace) -> None:
    import numpy as np

    from ups.data.dataset import load_trajectories, read_attrs

    traj = load_trajectories(args.file, frames=args.frames, grid=args.grid, allow_legacy_domain=args.allow_legacy_domain)
    print(f"{args.file}: {len(traj)} trajectories × {traj.u.shape[1]} frames × {traj.u.shape[2]} points")
    print(f"  x ∈ [{traj.x.min():.4g}, {traj.x.max():.4g}], t ∈ [{traj.t.min():.4g}, {traj.t.max():.4g}] (Δt = {traj.dt:.4g})")
    print(f"  ν ∈ {sorted(set(np.round(traj.nu.astype(float), 8).tolist()))}, u ∈ [{traj.u.min():.4g}, {traj.u.max():.4g}]")
    for key, value in read_attrs(args.file).items():
        print(f"  {key}: {value}")


def _ttc_report(args: argparse.Namespace) -> None:
    import json

    from ups.config import load_config
    from ups.eval.ttc_report import ttc_report

    report = ttc_report(load_config(args.params), args.data, args.checkpoints, args.split, args.corrector, args.limit)
    print(json.dumps(report, indent=2))
    change = report["ttc_nrmse"] / report["single_sample_nrmse"] - 1
    print(
        f"TTC ({report['candidates']} candidates, beam {report['beam']}, horizon {report['horizon']}): nRMSE "
        f"{report['ttc_nrmse']:.4g} vs {report['single_sample_nrmse']:.4g} for one sample ({abs(change):.1%} {'lower' if change < 0 else 'higher'}), at "
        f"{report['ttc_nfe_per_step'] / report['single_nfe_per_step']:.1f}× the network evaluations and "
        f"{report['ttc_seconds'] / max(report['single_seconds'], 1e-9):.1f}× the seconds"
    )


def _gate_check(args: argparse.Namespace) -> None:
    from ups.gate import strict

    passed, summary = strict(args.gate)
    print(summary)
    if not passed:
        sys.exit(1)


def _eval_recompute(args: argparse.Namespace) -> None:
    from ups.eval.predictions import recompute

    metrics = recompute(args.file)
    if not metrics:
        print(f"{args.file}: eval_full was skipped; no predictions to score")
        return
    keys = ["nrmse", "rmse", "max_error", "crmse", "frmse_low", "frmse_mid", "frmse_high", "ensemble_mean_nrmse", "spread_skill", "crps"]
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, m in metrics.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.4g}" if k in m else "" for k in keys) + " |")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ups", description="UPS, the Universal Physics Stack: helpers around the DVC pipeline.")
    sub = ap.add_subparsers(dest="command", required=True)

    params = sub.add_parser("params", help="check or document params.yaml").add_subparsers(dest="action", required=True)
    check = params.add_parser("check", help="validate params.yaml and overrides")
    check.add_argument("--params", default="params.yaml")
    check.add_argument("-S", "--set", action="append", metavar="KEY=VALUE", help="override, as `dvc exp run -S`")
    check.set_defaults(func=_params_check)
    params.add_parser("reference", help="print the params reference as Markdown").set_defaults(func=_params_reference)

    data = sub.add_parser("data", help="inspect data files").add_subparsers(dest="action", required=True)
    info = data.add_parser("info", help="describe a Burgers-S or PDEBench HDF5 file")
    info.add_argument("file")
    info.add_argument("--frames", type=int, default=None, help="subsample to this many frames")
    info.add_argument("--grid", type=int, default=None, help="subsample to this many points")
    info.add_argument("--allow-legacy-domain", action="store_true")
    info.set_defaults(func=_data_info)

    ttc = sub.add_parser("ttc-report", help="test-time compute's gain and cost against one corrected sample")
    ttc.add_argument("--params", default="params.yaml")
    ttc.add_argument("--data", default="data/burgers")
    ttc.add_argument("--checkpoints", default="checkpoints")
    ttc.add_argument("--split", default="val", choices=["val", "test"])
    ttc.add_argument("--corrector", default="consistency", choices=["consistency", "diffusion"])
    ttc.add_argument("--limit", type=int, default=None, help="first N trajectories only")
    ttc.set_defaults(func=_ttc_report)

    gate = sub.add_parser("gate", help="the promotion gate").add_subparsers(dest="action", required=True)
    gate_check = gate.add_parser("check", help="exit 1 unless the gate passed")
    gate_check.add_argument("--gate", default="metrics/gate.json")
    gate_check.set_defaults(func=_gate_check)

    evaluation = sub.add_parser("eval", help="evaluation outputs").add_subparsers(dest="action", required=True)
    recompute = evaluation.add_parser("recompute", help="recompute every metric from eval_full's predictions file")
    recompute.add_argument("file", nargs="?", default="predictions/eval_full.h5")
    recompute.set_defaults(func=_eval_recompute)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_entry_point(lambda: args.func(args), "ups")


if __name__ == "__main__":
    main()
