"""The `ups` command: helpers around the DVC pipeline.

    ups params check [--params FILE] [-S key=value ...]   validate params.yaml (+ overrides)
    ups params reference                               print the params reference (docs/PARAMS.md)
    ups data info FILE [--frames T --grid X]           describe a Burgers-S or PDEBench file
    ups pipeline deps [--write]                        check (or rewrite) dvc.yaml's code deps from each stage's imports
    ups ttc-report [--split val --corrector consistency]  TTC's gain and cost against one sample
    ups gate check [--gate metrics/gate.json]          strict gate: exit 1 unless it passed (CI, promotion)
    ups eval recompute [predictions/eval_full.h5]      every metric again, from the saved predictions
    ups exp queue experiments/NAME.yaml [--run]        queue (or run) the experiment the file describes
    ups exp record NAME                                write its measured result into experiments/NAME.yaml
    ups leaderboard [--format md|csv --top N]          experiments of every commit, best first
    ups promote NAME [--no-push]                       apply a gate-passing experiment, commit, dvc push
    ups remote check [NAME]                            can the DVC remote (B2) be reached with these credentials?
    ups vast launch -n NAME [-S key=value …] [--dry-run]  run an experiment on a rented Vast.ai GPU
    ups vast status | logs NAME | destroy NAME | reap   our Vast.ai instances

The pipeline itself runs through DVC: `dvc repro`, `dvc exp run -S key=value`, `dvc exp show`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ups.errors import StageError, run_entry_point


def _params_check(args: argparse.Namespace) -> None:
    from ups.config import load_config, parse_override

    overrides = dict(parse_override(o) for o in args.set or [])
    cfg = load_config(args.params, overrides)
    print(
        f"{args.params}: OK ({len(cfg.data.nu)} viscosities, {cfg.latent.tokens}×{cfg.latent.dim} latent, Δt = {cfg.data.dt:g})"
    )


def _params_reference(args: argparse.Namespace) -> None:
    from ups.config import reference_markdown

    sys.stdout.write(reference_markdown())


def _data_info(args: argparse.Namespace) -> None:
    import numpy as np

    from ups.data.dataset import load_trajectories, read_attrs

    traj = load_trajectories(
        args.file, frames=args.frames, grid=args.grid, allow_legacy_domain=args.allow_legacy_domain
    )
    print(f"{args.file}: {len(traj)} trajectories × {traj.u.shape[1]} frames × {traj.u.shape[2]} points")
    print(
        f"  x ∈ [{traj.x.min():.4g}, {traj.x.max():.4g}], t ∈ [{traj.t.min():.4g}, {traj.t.max():.4g}] (Δt = {traj.dt:.4g})"
    )
    finite = np.isfinite(traj.u)
    values = traj.u[finite]
    span = f"[{values.min():.4g}, {values.max():.4g}]" if values.size else "(no finite value)"
    print(f"  ν ∈ {sorted(set(np.round(traj.nu.astype(float), 8).tolist()))}, u ∈ {span} over its finite values")
    for key, value in read_attrs(args.file).items():
        print(f"  {key}: {value}")
    bad = int((~finite).sum())
    if bad:
        rows = np.flatnonzero((~finite).any(axis=(1, 2)))
        print(
            f"{args.file}: {bad} non-finite values (NaN or Inf) in {len(rows)} trajectories (first: {rows[:5].tolist()}); this file cannot be trained on",
            file=sys.stderr,
        )
        sys.exit(1)


def _pipeline_deps(args: argparse.Namespace) -> None:
    from ups.pipeline_deps import missing_deps, write_deps

    if args.write:
        changed = write_deps(".")
        print(
            f"dvc.yaml: code deps rewritten from the import closure of {len(changed)} stage(s): {', '.join(changed) or 'none changed'}"
        )
        return
    missing = missing_deps(".")
    for stage, files in missing.items():
        print(f"{stage}: runs {', '.join(files)} without depending on it")
    if missing:
        print(
            "dvc.yaml misses code deps: `ups pipeline deps --write` rewrites them from each stage's imports",
            file=sys.stderr,
        )
        sys.exit(1)
    print("dvc.yaml: every stage depends on all the code it runs")


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


def _eval_run(args: argparse.Namespace) -> None:
    from ups.config import load_config
    from ups.eval.checkpoint_eval import evaluate_pair, table

    cfg = load_config(args.params)
    history = args.history if args.history is not None else cfg.eval.history
    report = evaluate_pair(cfg, args.autoencoder, args.operator, args.data, history, args.out, args.limit)
    print(table(report))
    if args.out:
        print(f"predictions → {args.out} (`ups eval recompute {args.out}` rescored them)")


def _eval_recompute(args: argparse.Namespace) -> None:
    from ups.eval.predictions import recompute

    metrics = recompute(args.file)
    if not metrics:
        print(f"{args.file}: eval_full was skipped; no predictions to score")
        return
    keys = [
        "nrmse",
        "rmse",
        "max_error",
        "crmse",
        "frmse_low",
        "frmse_mid",
        "frmse_high",
        "ensemble_mean_nrmse",
        "spread_skill",
        "crps",
    ]
    print("| method | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, m in metrics.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.4g}" if k in m else "" for k in keys) + " |")


def _experiment_path(arg: str) -> Path:
    return Path(arg) if arg.endswith((".yaml", ".yml")) or "/" in arg else Path("experiments") / f"{arg}.yaml"


def _exp_queue(args: argparse.Namespace) -> None:
    from ups.experiments import load_experiment, queue

    exp = load_experiment(_experiment_path(args.file), args.params)
    print(queue(exp, ".", run_now=args.run))
    if not args.run:
        print(
            f"queued {exp.name!r}: start the queue with `dvc queue start` (`-j N` for N at once), follow it with `dvc queue status`"
        )


def _exp_record(args: argparse.Namespace) -> None:
    from ups.experiments import record

    exp = record(_experiment_path(args.name), ".", args.params)
    r = exp.result
    verdict = "passed" if r.get("passed") else f"failed ({r.get('failures', 'no verdict')})"
    print(f"{exp.path}: result recorded: {r.get('method')} nRMSE {r.get('nrmse', float('nan')):.4g}, gate {verdict}")


def _exp_new(args: argparse.Namespace) -> None:
    from ups.config import parse_override
    from ups.experiments import new

    params = dict(parse_override(item) for item in args.set or [])
    exp = new(args.name, params, args.hypothesis, ".", args.params)
    print(f"{exp.path}: written; queue it with `ups exp queue {exp.name}`")


def _exp_list(args: argparse.Namespace) -> None:
    from ups.lifecycle import listing, statuses

    items = statuses(".")
    if args.state:
        items = [s for s in items if s.state == args.state]
    sys.stdout.write(listing(items))


def _exp_archive(args: argparse.Namespace) -> None:
    from ups.lifecycle import archive, plan, select, statuses

    if not (args.names or args.status or args.stale is not None):
        raise StageError("name the experiments to archive, or choose them with --status failed|done or --stale DAYS")
    chosen = select(statuses("."), args.names, args.status, args.stale)
    if not chosen:
        print("nothing to archive")
        return
    for line in plan(chosen, args.remote):
        print(("would archive " if args.dry_run else "archiving ") + line)
    if not args.dry_run:
        done = archive(chosen, ".", args.remote)
        print(f"archived {len(done)} experiment(s) in one commit; `dvc exp pull {args.remote} NAME` brings one back")


def _exp_decide(args: argparse.Namespace) -> None:
    from ups.experiments import decide, experiment_path, load_experiment

    exp = decide(load_experiment(experiment_path(args.name), args.params), args.decision)
    print(f"{exp.path}: decision recorded; commit it with the change it led to")


def _leaderboard(args: argparse.Namespace) -> None:
    from ups.leaderboard import exp_show, markdown, rows_from_exp_show, table

    df = table(
        rows_from_exp_show(exp_show(".", all_commits=not args.current), workspace=True),
        args.top,
        args.params.split(",") if args.params else None,
    )
    sys.stdout.write(df.to_csv(index=False) if args.format == "csv" else markdown(df))


def _promote(args: argparse.Namespace) -> None:
    from ups.promote import promote

    sha = promote(args.name, ".", push=not args.no_push)
    print(f"promoted {args.name!r}: commit {sha[:7]}" + ("" if args.no_push else ", outputs pushed to the DVC remote"))


def _remote_check(args: argparse.Namespace) -> None:
    from ups.remote import check_remote

    print(check_remote(".", args.name))


def _vast_launch(args: argparse.Namespace) -> None:
    import json

    from ups import vast
    from ups.config import load_config

    v = load_config(args.params).vast
    machine = vast.Machine(
        gpu=args.gpu or v.gpu,
        num_gpus=args.num_gpus or v.num_gpus,
        max_price=args.max_price or v.max_price,
        disk=args.disk or v.disk,
        image=args.image or v.image,
        max_hours=args.max_hours or v.max_hours,
    )
    p = vast.plan(".", args.name, args.set or [], machine, args.git_remote)
    estimate = Path("metrics/validate.json")
    if estimate.exists():
        e = json.loads(estimate.read_text()).get("estimate", {})
        if "gpu_hours" in e:
            print(
                f"cost: validate estimates {e['gpu_hours']:.3g} GPU-hours for training (measured on {e.get('device', '?')}); "
                f"at most ${machine.max_price * machine.max_hours:.2f} for the {machine.max_hours:g} h limit at ${machine.max_price}/h"
            )
    if args.dry_run:
        print("offer query:", json.dumps({"query": p.query, "order": p.order, "storage_gb": machine.disk}, indent=2))
        print("instance request (secret values masked):", json.dumps(p.request("<cheapest offer>"), indent=2))
        print(f"start-up script ({len(p.script.encode())} bytes):\n{p.script}")
        return
    result = vast.launch(p)
    o = result["offer"]
    print(
        f"launched {p.name!r}: instance {result['instance']} on offer {o['id']} ({o.get('num_gpus', '?')}× {o.get('gpu_name', '?')}, ${float(o.get('dph_total', 0)):.3f}/h), commit {p.commit[:7]}"
    )
    print(
        f"follow it: `ups vast logs {p.name}`; results: `dvc exp pull origin {p.name}` once it finished; stop it: `ups vast destroy {p.name}`"
    )


def _vast_status(args: argparse.Namespace) -> None:
    from ups import vast

    print(vast.status_table())


def _vast_logs(args: argparse.Namespace) -> None:
    from ups import vast

    print(vast.logs(args.name, args.tail))


def _vast_destroy(args: argparse.Namespace) -> None:
    from ups import vast

    print(f"destroyed instance(s) {', '.join(map(str, vast.destroy(args.name)))} of {args.name!r}")


def _vast_reap(args: argparse.Namespace) -> None:
    from ups import vast

    reaped = vast.reap()
    for r in reaped:
        print(f"destroyed instance {r['id']} ({r['experiment']}): {r['hours']:.2f} h > {r['max_hours']:g} h limit")
    if not reaped:
        print("no UPS instance past its wall-time limit")


def _add_params(sub) -> None:
    params = sub.add_parser("params", help="check or document params.yaml").add_subparsers(dest="action", required=True)
    check = params.add_parser("check", help="validate params.yaml and overrides")
    check.add_argument("--params", default="params.yaml")
    check.add_argument("-S", "--set", action="append", metavar="KEY=VALUE", help="override, as `dvc exp run -S`")
    check.set_defaults(func=_params_check)
    params.add_parser("reference", help="print the params reference as Markdown").set_defaults(func=_params_reference)


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="inspect data files").add_subparsers(dest="action", required=True)
    info = data.add_parser("info", help="describe a Burgers-S or PDEBench HDF5 file")
    info.add_argument("file")
    info.add_argument("--frames", type=int, default=None, help="subsample to this many frames")
    info.add_argument("--grid", type=int, default=None, help="subsample to this many points")
    info.add_argument("--allow-legacy-domain", action="store_true")
    info.set_defaults(func=_data_info)


def _add_pipeline(sub) -> None:
    pipeline = sub.add_parser("pipeline", help="the DVC pipeline's definition").add_subparsers(
        dest="action", required=True
    )
    deps = pipeline.add_parser(
        "deps", help="check (or --write) that each stage's code deps in dvc.yaml cover every module it imports"
    )
    deps.add_argument(
        "--write", action="store_true", help="rewrite the code deps of dvc.yaml from each stage's import closure"
    )
    deps.set_defaults(func=_pipeline_deps)


def _add_ttc_report(sub) -> None:
    ttc = sub.add_parser("ttc-report", help="test-time compute's gain and cost against one corrected sample")
    ttc.add_argument("--params", default="params.yaml")
    ttc.add_argument("--data", default="data/burgers")
    ttc.add_argument("--checkpoints", default="checkpoints")
    ttc.add_argument("--split", default="val", choices=["val", "test"])
    ttc.add_argument("--corrector", default="consistency", choices=["consistency", "diffusion"])
    ttc.add_argument("--limit", type=int, default=None, help="first N trajectories only")
    ttc.set_defaults(func=_ttc_report)


def _add_gate(sub) -> None:
    gate = sub.add_parser("gate", help="the promotion gate").add_subparsers(dest="action", required=True)
    gate_check = gate.add_parser("check", help="exit 1 unless the gate passed")
    gate_check.add_argument("--gate", default="metrics/gate.json")
    gate_check.set_defaults(func=_gate_check)


def _add_eval(sub) -> None:
    evaluation = sub.add_parser("eval", help="evaluation outputs").add_subparsers(dest="action", required=True)
    recompute = evaluation.add_parser("recompute", help="recompute every metric from eval_full's predictions file")
    recompute.add_argument("file", nargs="?", default="predictions/eval_full.h5")
    recompute.set_defaults(func=_eval_recompute)
    run = evaluation.add_parser(
        "run", help="evaluate any autoencoder + operator checkpoints on any Burgers-S or PDEBench file"
    )
    run.add_argument("--autoencoder", default="checkpoints/autoencoder.pt")
    run.add_argument("--operator", default="checkpoints/operator.pt")
    run.add_argument("--data", default="data/burgers/test.h5", help="an HDF5 file in PDEBench's layout")
    run.add_argument("--history", type=int, default=None, help="input frames (default eval.history)")
    run.add_argument("--limit", type=int, default=None, help="first N trajectories only")
    run.add_argument("--out", default=None, help="write the predictions here (HDF5, as eval_full's)")
    run.add_argument("--params", default="params.yaml", help="for the solver's settings and the batch size")
    run.set_defaults(func=_eval_run)


def _add_exp(sub) -> None:
    exp = sub.add_parser("exp", help="experiment files (experiments/NAME.yaml)").add_subparsers(
        dest="action", required=True
    )
    q = exp.add_parser("queue", help="queue `dvc exp run -n NAME -S …` from an experiment file")
    q.add_argument("file", help="experiments/NAME.yaml (or NAME)")
    q.add_argument("--run", action="store_true", help="run it now instead of queueing it")
    q.add_argument("--params", default="params.yaml")
    q.set_defaults(func=_exp_queue)
    rec = exp.add_parser("record", help="write the experiment's measured result into its file")
    rec.add_argument("name", help="NAME (experiments/NAME.yaml) or a path")
    rec.add_argument("--params", default="params.yaml")
    rec.set_defaults(func=_exp_record)
    nw = exp.add_parser("new", help="write experiments/NAME.yaml from -S overrides and a hypothesis")
    nw.add_argument("name")
    nw.add_argument("-S", "--set", action="append", metavar="KEY=VALUE", help="param override, as `dvc exp run -S`")
    nw.add_argument("--hypothesis", required=True, help="what you expect the change to do, and why")
    nw.add_argument("--params", default="params.yaml")
    nw.set_defaults(func=_exp_new)
    ls = exp.add_parser("list", help="every experiment: state, age, headline nRMSE, gate, hypothesis")
    states = ["planned", "queued", "running", "failed", "done", "promoted", "archived"]
    ls.add_argument("--state", choices=states, help="only experiments in this state")
    ls.set_defaults(func=_exp_list)
    ar = exp.add_parser("archive", help="push experiments to the remotes, remove them here, move their files")
    ar.add_argument("names", nargs="*", help="experiment names")
    ar.add_argument("--status", choices=["failed", "done"], help="every experiment in this state")
    ar.add_argument(
        "--stale",
        type=float,
        nargs="?",
        const=30.0,
        default=None,
        metavar="DAYS",
        help="every experiment without activity for DAYS days (30 when given without a value)",
    )
    ar.add_argument("--dry-run", action="store_true", help="say what would be archived; change nothing")
    ar.add_argument("--remote", default="origin", help="the git remote (default origin)")
    ar.set_defaults(func=_exp_archive)
    dc = exp.add_parser("decide", help="record a free-text decision in the experiment's file")
    dc.add_argument("name")
    dc.add_argument("decision")
    dc.add_argument("--params", default="params.yaml")
    dc.set_defaults(func=_exp_decide)


def _add_leaderboard(sub) -> None:
    lb = sub.add_parser("leaderboard", help="experiments across commits, sorted by the headline nRMSE")
    lb.add_argument("--format", choices=["md", "csv"], default="md")
    lb.add_argument("--top", type=int, default=None, help="first N rows only")
    lb.add_argument(
        "--params",
        default=None,
        help="comma-separated params to show (default: latent size and every param that differs)",
    )
    lb.add_argument(
        "--current", action="store_true", help="only the current commit's experiments (default: all commits)"
    )
    lb.set_defaults(func=_leaderboard)


def _add_promote(sub) -> None:
    pr = sub.add_parser("promote", help="apply a gate-passing experiment, commit it with its numbers, dvc push")
    pr.add_argument("name")
    pr.add_argument("--no-push", action="store_true", help="commit only; push later with `dvc push`")
    pr.set_defaults(func=_promote)


def _add_remote(sub) -> None:
    remote = sub.add_parser("remote", help="the DVC remote").add_subparsers(dest="action", required=True)
    rc = remote.add_parser("check", help="reach the remote's bucket once and say what is wrong, if anything")
    rc.add_argument("name", nargs="?", default=None)
    rc.set_defaults(func=_remote_check)


def _add_vast(sub) -> None:
    vast = sub.add_parser("vast", help="run experiments on rented Vast.ai GPUs").add_subparsers(
        dest="action", required=True
    )
    la = vast.add_parser(
        "launch", help="pre-flight, find an offer, create an instance that runs `dvc exp run` and destroys itself"
    )
    la.add_argument("-n", "--name", required=True, help="experiment name")
    la.add_argument("-S", "--set", action="append", metavar="KEY=VALUE", help="param override, as `dvc exp run -S`")
    la.add_argument("--gpu", help="Vast GPU name, e.g. RTX_4090 (default vast.gpu)")
    la.add_argument(
        "--num-gpus", type=int, help="GPUs; training runs under torchrun with one process each (default vast.num_gpus)"
    )
    la.add_argument("--max-price", type=float, help="USD per hour for the instance (default vast.max_price)")
    la.add_argument("--disk", type=int, help="GB (default vast.disk)")
    la.add_argument("--image", help="Docker image (default vast.image)")
    la.add_argument(
        "--max-hours",
        type=float,
        help="wall-time limit; the instance stops itself and the reaper destroys it after (default vast.max_hours)",
    )
    la.add_argument("--git-remote", default="origin")
    la.add_argument(
        "--dry-run",
        action="store_true",
        help="print the offer query, the request (secrets masked) and the script; rent nothing",
    )
    la.add_argument("--params", default="params.yaml")
    la.set_defaults(func=_vast_launch)
    vast.add_parser("status", help="our instances: experiment, state, price, hours").set_defaults(func=_vast_status)
    lg = vast.add_parser("logs", help="the log of an experiment's instance (or the uploaded log once it finished)")
    lg.add_argument("name")
    lg.add_argument("--tail", type=int, default=200)
    lg.set_defaults(func=_vast_logs)
    de = vast.add_parser("destroy", help="destroy the instance(s) of an experiment")
    de.add_argument("name")
    de.set_defaults(func=_vast_destroy)
    vast.add_parser("reap", help="destroy UPS instances past their wall-time limit").set_defaults(func=_vast_reap)


COMMAND_GROUPS = (
    _add_params,
    _add_data,
    _add_pipeline,
    _add_ttc_report,
    _add_gate,
    _add_eval,
    _add_exp,
    _add_leaderboard,
    _add_promote,
    _add_remote,
    _add_vast,
)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ups", description="UPS, the Universal Physics Stack: helpers around the DVC pipeline."
    )
    sub = ap.add_subparsers(dest="command", required=True)
    for add in COMMAND_GROUPS:
        add(sub)
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run_entry_point(lambda: args.func(args), "ups")


if __name__ == "__main__":
    main()
