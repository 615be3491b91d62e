"""Reproducible benchmarks of UPS: one command, results as JSON, tables regenerated from them.

    python -m benchmarks.run            # default params: the full pipeline, ~45 min on 2 CPU cores
    python -m benchmarks.run --quick    # a small configuration, < 15 min on 2 CPU cores
    python -m benchmarks.run --workdir DIR --reuse   # benchmark a pipeline that already ran in DIR

Writes `benchmarks/results/<mode>-{pipeline,quality,speed,scaling}.json` and `<mode>-scaling.png`,
then rewrites the tables of `benchmarks/README.md` from every results file present. Every timing is
measured in this one run on this machine; compare ratios, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# --quick: the default model shapes, less data and fewer epochs, so the whole run fits in 15 minutes.
QUICK = {
    "data.splits.train": 48,
    "data.splits.val": 16,
    "data.splits.test": 16,
    "train.autoencoder.epochs": 2,
    "train.operator.epochs": 2,
    "train.diff_residual.epochs": 2,
    "train.consistency.epochs": 1,
    "train.steady_prior.epochs": 5,
    "diffusion.ensemble": 2,
    "ttc.candidates": 2,
}
BUDGET_STAGES = ("train_autoencoder", "train_operator", "train_diff_residual", "train_consistency_distill")
PROTOCOLS = {"1-frame": 1, "PDEBench (10 input frames)": 10}


def sh(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(cwd)}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark: `{' '.join(cmd)}` failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def make_workdir(workdir: Path, overrides: dict, git: bool = True) -> None:
    from ups.pipeline_copy import copy_pipeline

    copy_pipeline(ROOT, workdir, overrides, git=git)


def stage_names(workdir: Path) -> list[str]:
    return list(yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"])


def stage_command(workdir: Path, name: str) -> list[str]:
    """The command `dvc.yaml` gives the stage, run with this Python (for a machine without DVC)."""
    cmd = " ".join(yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"][name]["cmd"].split())
    return [sys.executable, *cmd.split()[1:]] if cmd.startswith("python ") else ["bash", "-c", cmd]


def run_pipeline(workdir: Path, use_dvc: bool = True) -> dict:
    """Each stage through `dvc repro -s` in pipeline order (or, without DVC, the stage's own command
    from `dvc.yaml`), with its wall time and peak memory."""
    probe = "import resource, subprocess, sys, time; t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode; print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
    stages = {}
    for name in stage_names(workdir):
        cmd = [sys.executable, "-m", "dvc", "repro", "-s", name] if use_dvc else stage_command(workdir, name)
        out = sh([sys.executable, "-c", probe, *cmd], workdir).stdout.strip().splitlines()[-1].split()
        stages[name] = {"seconds": round(float(out[0]), 1), "peak_rss_mb": round(int(out[1]) / 1024, 1)}
        print(f"  {name}: {stages[name]['seconds']} s, peak RSS {stages[name]['peak_rss_mb']} MB", flush=True)
    return {
        "stages": stages,
        "end_to_end_seconds": round(sum(s["seconds"] for s in stages.values()), 1),
        "through": "dvc repro -s" if use_dvc else "the stage commands of dvc.yaml (no DVC on this machine)",
    }


def noop_overhead(workdir: Path, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = sh([sys.executable, "-m", "dvc", "repro"], workdir).stdout
        times.append(time.perf_counter() - t)
        assert "Running stage" not in out, "the pipeline was not up to date"
    return round(float(np.median(times)), 2)


def throughput(workdir: Path) -> dict:
    """Training samples per second of each training stage, from its summary and validate's sizes."""
    sizes = json.loads((workdir / "metrics" / "validate.json").read_text())["models"]
    out = {}
    for stage, m in sizes.items():
        path = workdir / "metrics" / stage / "metrics.json"
        if path.exists():
            s = json.loads(path.read_text())
            samples = s["epochs_run"] * m["steps_per_epoch"] * m["batch_size"]
            out[stage] = {
                "samples_per_second": round(samples / max(s["train_seconds"], 1e-9), 1),
                "train_seconds": s["train_seconds"],
                "epochs": s["epochs_run"],
                "validate_estimate_seconds": m["estimated_seconds"] * s["epochs_run"] / max(1, m["epochs"]),
            }
    return out


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(fn, repeats: int = 1, warmup: bool = True):
    if warmup:
        fn()
    _sync()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    _sync()
    return out, (time.perf_counter() - t) / repeats


def quality_and_speed(workdir: Path, fno_budget: float) -> tuple[dict, dict]:
    from benchmarks import fno as fno_mod
    from ups.config import load_config
    from ups.data.dataset import load_split
    from ups.data.solver import solve
    from ups.eval import evaluate as ev
    from ups.eval.metrics import nrmse, nrmse_per_frame, pdebench_metrics
    from ups.inference.rollout import Simulator
    from ups.models.diffusion import ConsistencyStudent, DiffusionResidual

    cfg = load_config(workdir / "params.yaml")
    data, ck = workdir / "data" / "burgers", workdir / "checkpoints"
    test, train, val = (load_split(data, s, cfg.data) for s in ("test", "train", "val"))
    x = torch.from_numpy(test.x)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sim = Simulator.from_checkpoints(ck / "autoencoder.pt", ck / "operator.pt", dev)
    diffusion, student = (
        DiffusionResidual.from_checkpoint(ck / "diff_residual.pt", dev),
        ConsistencyStudent.from_checkpoint(ck / "consistency.pt", dev),
    )

    quality = {"fno_training": {}, "ups_method": cfg.gate.method, "protocols": {}}
    fno_models = {}
    for label, h in PROTOCOLS.items():  # one FNO per protocol: its input channels are the input frames
        print(f"  FNO ({label}): training for {fno_budget:.0f} s (the UPS training stages' total)", flush=True)
        fno_models[label], quality["fno_training"][label] = fno_mod.train(
            torch.from_numpy(train.u), torch.from_numpy(val.u), fno_budget, history=h, device=dev
        )
    b = 64
    for label, h in PROTOCOLS.items():
        fno_model = fno_models[label]
        u_in, truth, _, nu = ev.split_inputs(test, h)
        steps = truth.shape[1]
        preds = {
            "persistence": ev.persistence(u_in, steps),
            "solver": ev.numerical_solver(u_in, nu, test.t, h, cfg, b),
            "UPS operator": ev.operator(sim, u_in, x, nu, steps, b, dev),
        }
        # Every UPS method, each next to its cost: the stochastic ones must earn their place.
        preds["UPS diffusion"] = ev.ensemble(
            "diffusion", sim, diffusion, cfg.diffusion.ensemble, u_in, x, nu, steps, b, dev
        )
        preds["UPS consistency"] = ev.ensemble(
            "consistency", sim, student, cfg.diffusion.ensemble, u_in, x, nu, steps, b, dev
        )
        preds["UPS ttc"] = ev.test_time_compute(sim, student, cfg, u_in, x, nu, steps, cfg.data.dt, b, dev)
        fno_pred, sec = _timed(lambda: fno_model.rollout(u_in, steps, b), warmup=False)
        preds["FNO"] = ev.Prediction("FNO", fno_pred, sec)
        rows = {
            name: {
                **{
                    k: v
                    for k, v in pdebench_metrics(p.prediction, truth).items()
                    if k in ("nrmse", "rmse", "max_error", "frmse_low", "frmse_high")
                },
                "ms_per_trajectory": 1e3 * p.seconds / len(truth),
            }
            for name, p in preds.items()
        }
        curves = {
            name: nrmse_per_frame(p.prediction.double(), truth.double()).mean(0).tolist() for name, p in preds.items()
        }
        best_ups = min((n for n in rows if n.startswith("UPS")), key=lambda n: rows[n]["nrmse"])
        quality["protocols"][label] = {
            "input_frames": h,
            "frames_predicted": steps,
            "trajectories": len(truth),
            "rows": rows,
            "per_frame": curves,
            "ups_best": best_ups,
            "ups_over_fno": rows[best_ups]["nrmse"] / rows["FNO"]["nrmse"],
        }

    # Speed: inference ms per trajectory (batch 64, CPU), and the solver on coarser grids for matched error.
    h = 1
    u_in, truth, _, nu = ev.split_inputs(test, h)
    steps = truth.shape[1]
    n = min(len(truth), 64)
    speed = {
        "batch_size": 64,
        "device": dev.type,
        "threads": torch.get_num_threads(),
        "trajectories": n,
        "inference_ms_per_trajectory": {},
    }
    timings = {
        "UPS operator": lambda: sim.rollout(u_in[:n].to(dev), x.to(dev), nu[:n].to(dev), steps),
        "UPS diffusion (1 sample path)": lambda: (
            ev.ensemble("d", sim, diffusion, 1, u_in[:n], x, nu[:n], steps, 64, dev).prediction
        ),
        "UPS consistency (1 sample path)": lambda: (
            ev.ensemble("c", sim, student, 1, u_in[:n], x, nu[:n], steps, 64, dev).prediction
        ),
        "FNO": lambda: fno_models["1-frame"].rollout(u_in[:n], steps, 64),
    }
    for name, fn in timings.items():
        _, sec = _timed(fn)
        speed["inference_ms_per_trajectory"][name] = round(1e3 * sec / n, 3)
    solver_rows = []
    t_out = np.asarray(test.t) - float(test.t[0])
    for factor in (1, 2, 4, 8):
        grid = test.u.shape[-1] // factor
        u0 = test.u[:n, 0, ::factor].astype(np.float64)
        (sol, sec) = _timed(
            lambda: solve(u0, float(test.nu[0]), t_out, length=cfg.data.length, cfl=cfg.data.solver.cfl)
        )
        coarse_truth = truth[:n, :, ::factor]
        err = nrmse(torch.from_numpy(sol[:, 1:]).float(), coarse_truth)
        solver_rows.append({"grid": grid, "nrmse": err, "ms_per_trajectory": round(1e3 * sec / n, 3)})
    speed["solver_by_grid"] = solver_rows
    ups_err = quality["protocols"]["1-frame"]["rows"]["UPS operator"]["nrmse"]
    matched = [r for r in solver_rows if r["nrmse"] <= ups_err]
    speed["solver_at_matched_error"] = min(matched, key=lambda r: r["ms_per_trajectory"]) if matched else None
    speed["ups_operator_nrmse"] = ups_err
    return quality, speed


def scaling(cfg_path: Path, quick: bool) -> dict:
    """Training seconds per epoch (probe: seconds per batch × batches) and inference ms per trajectory
    as latent.tokens, latent.dim and the grid grow, with random weights (cost does not depend on them)."""
    from ups.config import load_config
    from ups.inference.rollout import Simulator
    from ups.models.autoencoder import Autoencoder
    from ups.models.operator import LatentOperator
    from ups.training.dry_run import PROBES, _time_step

    axes = {"latent.tokens": [8, 16, 32], "latent.dim": [16, 32, 64], "data.grid": [128, 256, 512]}
    out = {}
    for key, values in axes.items():
        rows = []
        for v in values:
            over = {key: v}
            if key == "data.grid":
                over["data.solver.grid"] = max(1024, 2 * v)
            cfg = load_config(cfg_path, over)
            data_summary = {"trajectories": {"train": cfg.data.splits.train}, "frames": cfg.data.frames}
            train_s = 0.0
            for stage in ("train_autoencoder", "train_operator"):
                probe = PROBES[stage]
                _, sec = _time_step(cfg, probe)
                train_s += sec * probe.steps_per_epoch(cfg, data_summary)
            torch.manual_seed(0)
            sim = Simulator(Autoencoder.from_config(cfg), LatentOperator.from_config(cfg), cfg.data.dt)
            n, steps = (16 if quick else 64), cfg.data.frames - 1
            u0 = torch.randn(n, 1, cfg.data.grid) * 0.5
            xs = torch.arange(cfg.data.grid) / cfg.data.grid
            _, sec = _timed(lambda: sim.rollout(u0, xs, torch.full((n,), 0.01), steps))
            rows.append(
                {
                    "value": v,
                    "train_seconds_per_epoch": round(train_s, 2),
                    "inference_ms_per_trajectory": round(1e3 * sec / n, 3),
                }
            )
            print(f"  {key}={v}: {rows[-1]}", flush=True)
        out[key] = rows
    return out


def scaling_png(scale: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(scale), figsize=(4 * len(scale), 3.2), constrained_layout=True)
    for ax, (key, rows) in zip(axes, scale.items(), strict=True):
        v = [r["value"] for r in rows]
        ax.plot(v, [r["train_seconds_per_epoch"] for r in rows], "o-", label="training s/epoch (AE + operator)")
        ax2 = ax.twinx()
        ax2.plot(
            v, [r["inference_ms_per_trajectory"] for r in rows], "s--", color="C1", label="inference ms/trajectory"
        )
        ax.set_xscale("log", base=2)
        ax.set_xlabel(key)
        ax.set_ylabel("s / epoch")
        ax2.set_ylabel("ms / trajectory")
        ax.set_title(key)
        if ax is axes[0]:
            ax.legend(loc="upper left", fontsize=7)
            ax2.legend(loc="lower right", fontsize=7)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a small configuration (< 15 min on 2 cores)")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where the pipeline runs (default: a fresh folder under /tmp)"
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="benchmark the pipeline already run in --workdir (end-to-end time not re-measured)",
    )
    ap.add_argument(
        "--fno-budget", type=float, default=None, help="FNO training seconds (default: the UPS training stages' total)"
    )
    ap.add_argument(
        "--set",
        "-S",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a params override for the benchmarked pipeline, as `dvc exp run -S` takes it (repeatable)",
    )
    ap.add_argument(
        "--no-dvc",
        action="store_true",
        help="run the stage commands of dvc.yaml directly (a machine without DVC); no `dvc repro` overhead is measured",
    )
    a = ap.parse_args(argv)
    from ups.config import parse_override

    overrides = {**(QUICK if a.quick else {}), **dict(parse_override(o) for o in a.set)}
    gpu = torch.cuda.is_available()
    mode = ("gpu-" if gpu else "") + ("quick" if a.quick else "default")
    workdir = a.workdir or Path(f"/tmp/ups-bench-{mode}-{int(time.time())}")
    started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {
        "machine": platform.machine(),
        "cpus": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if gpu else None,
    }

    measured = workdir / "benchmark-pipeline.json"  # the stage timings, kept beside the run they measure
    if a.reuse:
        print(f"benchmark ({mode}): reusing the pipeline in {workdir}", flush=True)
        pipeline = (
            json.loads(measured.read_text())
            if measured.exists()
            else {
                "stages": None,
                "end_to_end_seconds": None,
                "note": "reused an existing run: stage times not measured",
            }
        )
    else:
        print(f"benchmark ({mode}): running the pipeline in {workdir}", flush=True)
        make_workdir(workdir, overrides, git=not a.no_dvc)
        pipeline = run_pipeline(workdir, use_dvc=not a.no_dvc)
        measured.write_text(json.dumps(pipeline, indent=2) + "\n")
    pipeline["noop_repro_seconds"] = None if a.no_dvc else noop_overhead(workdir)
    pipeline["training_throughput"] = throughput(workdir)
    pipeline.update(mode=mode, params=overrides, **machine)
    # The FNO trains for the wall-clock of every UPS training stage the compared UPS methods need
    # (autoencoder, operator, diffusion residual, consistency student): the stages' own wall time
    # when this run measured it (loading and reports included), else their training loops' time.
    stage_s = {k: v["seconds"] for k, v in (pipeline.get("stages") or {}).items()}
    ups_train = sum(stage_s.get(k) or pipeline["training_throughput"][k]["train_seconds"] for k in BUDGET_STAGES)
    budget = a.fno_budget or ups_train

    print("benchmark: quality and speed", flush=True)
    quality, speed = quality_and_speed(workdir, budget)
    quality["ups_training_seconds"] = ups_train
    quality["ups_budget_stages"] = " + ".join(BUDGET_STAGES) + (
        " (stage wall time)" if stage_s else " (training loops)"
    )
    results = {"pipeline": pipeline, "quality": quality, "speed": speed}
    if not gpu:  # the scaling probes time CPU steps; on a GPU machine they would measure the wrong device
        print("benchmark: scaling", flush=True)
        results["scaling"] = scaling(workdir / "params.yaml", a.quick)
        scaling_png(results["scaling"], RESULTS / f"{mode}-scaling.png")
    for name, obj in results.items():
        (RESULTS / f"{mode}-{name}.json").write_text(json.dumps(obj, indent=2) + "\n")
    from benchmarks.report import rewrite_readme

    rewrite_readme()
    print(
        f"benchmark ({mode}): done in {time.perf_counter() - started:.0f} s; results in {RESULTS}, tables in benchmarks/README.md"
    )


if __name__ == "__main__":
    main()
