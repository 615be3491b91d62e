"""The evaluation stages: `eval_small`, the cheap proxy gate on val, and `eval_full`, every method on
test over the full horizon, run only when the proxy passed."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ups.config import Config
from ups.data.dataset import load_split
from ups.errors import StageError
from ups.eval import evaluate as ev
from ups.eval.figures import message_png, space_time_png
from ups.eval.predictions import write_predictions
from ups.gate import absolute_checks, failures
from ups.inference.rollout import Simulator
from ups.io import read_stage_json, write_json_atomic, write_text_atomic
from ups.models.diffusion import ConsistencyStudent, DiffusionResidual
from ups.models.steady_prior import SteadyPrior
from ups.runtime import pick_device

PER_FRAME_COLUMNS = ("persistence", "solver", "operator", "diffusion", "consistency", "ttc")


def eval_small(cfg: Config, data_dir: Path, autoencoder: Path, operator: Path, out: Path) -> dict:
    """The operator and persistence on val, `eval.small.horizon` frames after `eval.history` inputs;
    the proxy passes when the operator's nRMSE / persistence's ≤ `gate.max_ratio_to_persistence`."""
    device = pick_device(cfg.runtime)
    traj = load_split(data_dir, "val", cfg.data)
    h, steps, b = cfg.eval.history, cfg.eval.small.horizon, cfg.eval.batch_size
    u_in, truth, x, nu = ev.split_inputs(traj, h, cfg.eval.small.trajectories, frames=steps)
    sim = Simulator.from_checkpoints(autoencoder, operator, device=str(device))
    preds = {"persistence": ev.persistence(u_in, steps), "operator": ev.operator(sim, u_in, x, nu, steps, b, device)}
    methods = {name: ev.method_report(p, truth, b, device) for name, p in preds.items()}
    op, pers = methods["operator"]["nrmse"], methods["persistence"]["nrmse"]
    # The proxy rejects candidates no better than copying frames forward, before the full evaluation
    # spends its time; the absolute ceiling is for the full-horizon headline only (the gate stage).
    checks = {"max_ratio_to_persistence": absolute_checks(cfg.gate, op, pers)["max_ratio_to_persistence"]}
    report = {
        "split": "val",
        "trajectories": len(u_in),
        "input_frames": h,
        "horizon": steps,
        "methods": methods,
        "proxy": {
            "method": "operator",
            "nrmse": op,
            "ratio_to_persistence": op / pers,
            "passed": not failures(checks),
            "failures": failures(checks),
            "checks": checks,
        },
    }
    write_json_atomic(out, report)
    return report


def _load_checkpoint(name: str, path: Path, model_class, device):
    if not Path(path).exists():
        raise StageError(
            f"eval_full: checkpoint {path} for method {name!r} is missing; run `dvc repro` so the training stages write it"
        )
    return model_class.from_checkpoint(path, device)


def _write_per_frame(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    columns = ["frame", "t", *PER_FRAME_COLUMNS]
    w = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def _clear_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()


def _skip(reason: str, proxy: dict, out: Path, per_frame: Path, images: Path, predictions: Path) -> dict:
    """eval_full's outputs when the proxy gate failed: each says why, so nothing stale remains."""
    report = {"skipped": True, "reason": reason, "proxy": proxy}
    write_json_atomic(out, report)
    _write_per_frame(per_frame, [])
    message_png(Path(images) / "skipped.png", f"eval_full skipped: {reason}")
    write_predictions(predictions, "test", None, None, None, None, None, {}, skipped=reason)
    return report


def _predict(cfg: Config, traj, checkpoints: dict[str, Path], device) -> tuple[dict, Simulator, SteadyPrior]:
    """Every method's prediction of the test split's frames after the `eval.history` inputs."""
    h, b = cfg.eval.history, cfg.eval.batch_size
    u_in, truth, x, nu = ev.split_inputs(traj, h)
    steps = truth.shape[1]
    sim = Simulator.from_checkpoints(checkpoints["autoencoder"], checkpoints["operator"], device=str(device))
    diffusion = _load_checkpoint("diffusion", checkpoints["diff_residual"], DiffusionResidual, device)
    student = _load_checkpoint("consistency", checkpoints["consistency"], ConsistencyStudent, device)
    prior = _load_checkpoint("steady_prior", checkpoints["steady_prior"], SteadyPrior, device)
    members = cfg.diffusion.ensemble
    preds = {
        "persistence": ev.persistence(u_in, steps),
        "solver": ev.numerical_solver(u_in, nu, traj.t, h, cfg, b),
        "operator": ev.operator(sim, u_in, x, nu, steps, b, device),
        "diffusion": ev.ensemble("diffusion", sim, diffusion, members, u_in, x, nu, steps, b, device),
        "consistency": ev.ensemble("consistency", sim, student, members, u_in, x, nu, steps, b, device),
    }
    if cfg.eval.full.ttc:
        preds["ttc"] = ev.test_time_compute(sim, student, cfg, u_in, x, nu, steps, traj.dt, b, device)
    return preds, sim, prior


def _headline(method: str, methods: dict) -> dict:
    """The gate's method against persistence and the solver, and the best learned method."""
    head, pers = methods[method], methods["persistence"]["nrmse"]
    learned = [m for m in methods if m not in ("persistence", "solver")]
    return {
        "method": method,
        "nrmse": head["nrmse"],
        "persistence_nrmse": pers,
        "ratio_to_persistence": head["nrmse"] / pers,
        "solver_nrmse": methods["solver"]["nrmse"],
        "operator_nrmse": methods["operator"]["nrmse"],
        "best_method": min(learned, key=lambda m: methods[m]["nrmse"]),
    }


def _example_pictures(cfg: Config, traj, preds: dict, truth, nu, images: Path) -> None:
    """Space-time pictures of the first `eval.examples` test trajectories: truth, the gate's method
    (and the operator when that is another method), and their errors."""
    h, method = cfg.eval.history, cfg.gate.method
    t_pred = np.asarray(traj.t[h:])
    for i in range(min(cfg.eval.examples, len(truth))):
        fields = {"true": truth[i].numpy(), method: preds[method].prediction[i].numpy()}
        if method != "operator":
            fields["operator"] = preds["operator"].prediction[i].numpy()
        title = f"test trajectory {i}, ν = {float(nu[i]):g}: frames {h}…{h + len(t_pred) - 1}"
        space_time_png(Path(images) / f"trajectory_{i:03d}.png", traj.x, t_pred, fields, title)


def eval_full(
    cfg: Config,
    *,
    data_dir: Path,
    checkpoints: dict[str, Path],
    small_report: Path,
    out: Path,
    per_frame: Path,
    images: Path,
    predictions: Path,
) -> dict:
    """Every method on test, full horizon; skipped (and saying why) when the proxy gate failed."""
    small = read_stage_json(small_report, "eval_small", ("proxy",))
    _clear_images(Path(images))
    if not small["proxy"]["passed"]:
        reason = "the proxy gate (eval_small) failed: " + "; ".join(small["proxy"]["failures"])
        return _skip(reason, small["proxy"], out, per_frame, images, predictions)
    device = pick_device(cfg.runtime)
    traj = load_split(data_dir, "test", cfg.data)
    h, b = cfg.eval.history, cfg.eval.batch_size
    u_in, truth, x, nu = ev.split_inputs(traj, h)
    preds, sim, prior = _predict(cfg, traj, checkpoints, device)
    methods = {name: ev.method_report(p, truth, b, device) for name, p in preds.items()}
    operator, persistence = preds["operator"].prediction, preds["persistence"].prediction
    report = {
        "skipped": False,
        "split": "test",
        "trajectories": len(u_in),
        "input_frames": h,
        "frames_predicted": truth.shape[1],
        "headline": _headline(cfg.gate.method, methods),
        "methods": methods,
        "terminal": ev.terminal_report(prior, sim, traj, operator, persistence, cfg.data.t_final, device),
    }
    write_json_atomic(out, report)
    _write_per_frame(per_frame, ev.per_frame_rows(preds, truth, traj.t, h))
    write_predictions(predictions, "test", u_in, truth, x, traj.t, nu, preds)
    _example_pictures(cfg, traj, preds, truth, nu, images)
    return report
