"""Evaluation metrics against hand-computed values, the gate's decisions, and the gate through DVC."""

import json
import math
import sys

import h5py
import numpy as np
import pytest
import torch
from conftest import ROOT, run, set_params

from ups.config import GateConfig
from ups.eval.metrics import exclude_inputs, frmse, nrmse, pdebench_metrics
from ups.eval.predictions import recompute
from ups.gate import committed_json, decide

X = 64
x = torch.arange(X, dtype=torch.float64) / X


def test_input_frames_are_excluded():
    truth = torch.ones(2, 5, X, dtype=torch.float64)
    truth[:, :2] = 1e6  # input frames: wildly different, must not count
    pred = torch.ones(2, 3, X, dtype=torch.float64) * 1.1
    assert exclude_inputs(truth, 2).shape == (2, 3, X)
    assert nrmse(pred, exclude_inputs(truth, 2)) == pytest.approx(0.1)


def test_nrmse_is_per_sample_and_per_frame_then_averaged():
    truth = torch.stack([torch.full((X,), 1.0), torch.full((X,), 100.0)])[None].double()  # (1, 2 frames, X)
    pred = truth + torch.stack([torch.full((X,), 0.1), torch.full((X,), 1.0)])[None]
    # frame errors 0.1 / 1 = 0.1 and 1 / 100 = 0.01: their mean, not the error of the pooled norms (≈ 0.01)
    assert nrmse(pred, truth) == pytest.approx(0.055)
    two_samples = torch.cat([truth[:, :1], truth[:, 1:]]), torch.cat([pred[:, :1], pred[:, 1:]])
    assert nrmse(two_samples[1], two_samples[0]) == pytest.approx(0.055)


def test_rmse_max_and_mean_errors_of_a_constant_offset():
    truth = torch.sin(2 * math.pi * x).expand(3, 4, X)
    m = pdebench_metrics(truth + 0.25, truth)
    assert (
        m["rmse"] == pytest.approx(0.25) and m["max_error"] == pytest.approx(0.25) and m["crmse"] == pytest.approx(0.25)
    )
    assert m["nrmse"] == pytest.approx(0.25 / math.sqrt(0.5))  # ‖sin‖/√X = √½
    assert m["frmse_low"] == pytest.approx(0.25 / 2)  # all of it in mode 0 of the 4 low modes
    assert m["frmse_mid"] == pytest.approx(0) and m["frmse_high"] == pytest.approx(0)


@pytest.mark.parametrize("k, band, modes", [(2, "low", 4), (6, "mid", 8), (20, "high", X // 2 + 1 - 12)])
def test_fourier_bands(k, band, modes):
    a = 0.3
    truth = torch.zeros(1, 1, X, dtype=torch.float64)
    pred = a * torch.cos(2 * math.pi * k * x)[None, None]
    bands = frmse(pred, truth)
    # rfft/X of a·cos(2πkx) is a/2 at mode k; the band's RMS over its modes
    assert bands[band] == pytest.approx(a / 2 / math.sqrt(modes))
    assert sum(v for b, v in bands.items() if b != band) == pytest.approx(0, abs=1e-12)


GATE = GateConfig(method="diffusion", max_nrmse=0.2, max_ratio_to_persistence=0.5, min_improvement=0.05)
SMALL = {"proxy": {"nrmse": 0.05, "ratio_to_persistence": 0.1, "passed": True, "failures": []}}


def _full(nrmse_value, persistence=1.0):
    return {
        "skipped": False,
        "headline": {
            "method": "diffusion",
            "nrmse": nrmse_value,
            "persistence_nrmse": persistence,
            "ratio_to_persistence": nrmse_value / persistence,
        },
    }


def test_gate_checks_and_champion():
    v = decide(GATE, SMALL, _full(0.1), None, "nothing committed")
    assert v["passed"] and v["checks"]["improvement"]["value"] is None and "absolute checks decide" in v["champion"]
    v = decide(GATE, SMALL, _full(0.1), _full(0.104), "metrics/eval_full.json at abc1234")
    assert not v["passed"] and v["checks"]["improvement"]["value"] == pytest.approx(0.004 / 0.104)
    assert any(f.startswith("improvement:") for f in v["failures"])
    v = decide(GATE, SMALL, _full(0.1), _full(0.2), "x")
    assert v["passed"] and v["checks"]["improvement"]["value"] == pytest.approx(0.5)
    v = decide(GATE, SMALL, _full(0.3, persistence=0.4), None, "x")
    assert {f.split(":")[0] for f in v["failures"]} == {"max_nrmse", "max_ratio_to_persistence"}
    skipped = {"skipped": True, "reason": "the proxy gate (eval_small) failed: max_ratio_to_persistence: 1.2 vs 0.5"}
    v = decide(
        GATE,
        {
            "proxy": {
                "nrmse": 0.6,
                "ratio_to_persistence": 1.2,
                "passed": False,
                "failures": ["max_ratio_to_persistence: 1.2 vs 0.5"],
            }
        },
        skipped,
        None,
        "x",
    )
    assert not v["passed"] and "eval_full skipped" in v["failures"][0] and "proxy gate" in v["failures"][0]


def test_champion_is_read_from_git_not_the_workspace(tmp_path):
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    (tmp_path / "metrics").mkdir()
    target = tmp_path / "metrics" / "eval_full.json"
    assert committed_json("metrics/eval_full.json", cwd=tmp_path)[0] is None  # no commit yet
    target.write_text(json.dumps(_full(0.123)))
    run(["git", "add", "-A"], tmp_path)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "champion"], tmp_path)
    target.write_text(json.dumps(_full(0.5)))  # the candidate's run overwrote the workspace file
    champion, source = committed_json("metrics/eval_full.json", cwd=tmp_path)
    assert champion["headline"]["nrmse"] == 0.123 and source.startswith("metrics/eval_full.json at ")


@pytest.mark.slow
def test_gate_through_dvc(pipeline_repo, tmp_path):
    repo = pipeline_repo
    # 1. smoke models are untrained: the proxy gate fails, eval_full is skipped, the gate fails and says why
    run(["dvc", "repro"], repo)
    full = json.loads((repo / "metrics" / "eval_full.json").read_text())
    gate = json.loads((repo / "metrics" / "gate.json").read_text())
    assert full["skipped"] and "proxy gate" in full["reason"]
    assert gate["passed"] is False and "eval_full skipped" in gate["failures"][0]
    strict = run(["ups", "gate", "check"], repo, check=False)
    assert strict.returncode == 1 and "gate failed" in strict.stdout

    # 2. lenient thresholds: every method is evaluated; the predictions file recomputes the JSON
    set_params(repo, **{"gate.max_nrmse": 10.0, "gate.max_ratio_to_persistence": 10.0})
    rerun = run(["dvc", "repro"], repo)
    assert "Running stage 'train" not in rerun.stdout
    full = json.loads((repo / "metrics" / "eval_full.json").read_text())
    assert not full["skipped"] and set(full["methods"]) == {
        "persistence",
        "solver",
        "operator",
        "diffusion",
        "consistency",
        "ttc",
    }
    recomputed = recompute(repo / "predictions" / "eval_full.h5")
    assert recomputed[full["headline"]["method"]]["nrmse"] == pytest.approx(full["headline"]["nrmse"], rel=1e-9)
    for method, metrics in recomputed.items():
        for key, value in metrics.items():
            assert value == pytest.approx(full["methods"][method][key], rel=1e-6, abs=1e-9), (method, key)
    with h5py.File(repo / "predictions" / "eval_full.h5") as f:
        n, t, xs = f["target"].shape
        assert (
            f.attrs["input_frames"] == 1
            and f["operator/prediction"].shape == (n, t, xs)
            and f["diffusion/members"].shape[1:] == (n, t, xs)
        )
    gate = json.loads((repo / "metrics" / "gate.json").read_text())
    assert gate["passed"] and gate["checks"]["improvement"]["value"] is None
    assert run(["ups", "gate", "check"], repo).returncode == 0
    board = run(["ups", "leaderboard"], repo).stdout  # a plain `dvc repro`, nothing committed yet
    assert "workspace (uncommitted)" in board and "No experiment" not in board, board

    # `ups eval run` on the test split gives eval_full's numbers; on a file in PDEBench's layout it
    # reads every k-th point and frame at the checkpoints' grid and Δt
    out = run(["ups", "eval", "run", "--out", str(tmp_path / "debug.h5")], repo).stdout
    assert "persistence" in out and "operator" in out and "debug.h5" in out, out
    debug = recompute(tmp_path / "debug.h5")
    for method in ("persistence", "solver", "operator"):
        assert debug[method]["nrmse"] == pytest.approx(full["methods"][method]["nrmse"], rel=1e-9), method
    pdebench = _pdebench_file(tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5")
    out = run(["ups", "eval", "run", "--data", str(pdebench)], repo).stdout
    assert "2 trajectories, 64 points, Δt = 0.05, 1 input frame(s), 40 predicted" in out, out
    rows = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[2:]}
    assert set(rows) == {"persistence", "solver", "operator"} and all(math.isfinite(v) for v in rows.values()), out
    assert rows["solver"] < 0.1 * rows["persistence"], out

    # 3. leaderboard columns and plots
    table = run(
        [
            "dvc",
            "exp",
            "show",
            "--no-pager",
            "--csv",
            "--drop",
            ".*",
            "--keep",
            "^(Experiment|passed|nrmse|ratio_to_persistence|training_seconds)$",
        ],
        repo,
    ).stdout
    header = table.splitlines()[0].split(",")
    assert header == ["Experiment", "passed", "nrmse", "ratio_to_persistence", "training_seconds"], header
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert any("per-frame nRMSE" in k for k in plots) and any(k.endswith(".png") for k in plots), list(plots)

    # 4. a committed champion better than the candidate: the gate reads it from git and fails
    champion = dict(full, headline=dict(full["headline"], nrmse=full["headline"]["nrmse"] / 2))
    (repo / "metrics" / "eval_full.json").write_text(json.dumps(champion))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "a better champion"], repo)
    rerun = run(["dvc", "repro"], repo)  # eval_full's output differs from dvc.lock: it runs again
    assert "Running stage 'eval_full'" in rerun.stdout and "Running stage 'gate'" in rerun.stdout
    gate = json.loads((repo / "metrics" / "gate.json").read_text())
    assert gate["passed"] is False and gate["champion_nrmse"] == pytest.approx(champion["headline"]["nrmse"])
    assert gate["checks"]["improvement"]["value"] == pytest.approx(-1.0, rel=1e-6)
    assert run(["ups", "gate", "check"], repo, check=False).returncode == 1


def _pdebench_file(path):
    """Two trajectories in PDEBench's own layout: 201 frames of 1024 points, 202 time stamps, no `nu`
    dataset (ν is in the file name), generated by the reference solver."""
    from ups.config import load_config
    from ups.data.generate import generate_split

    fine = {"data.grid": 1024, "data.frames": 201, "data.t_final": 2.0, "data.solver.grid": 1024, "data.splits.test": 2}
    traj = generate_split(load_config(ROOT / "params.yaml", fine).data, "test", workers=1)
    with h5py.File(path, "w") as f:
        f["tensor"] = traj.u
        f["x-coordinate"] = traj.x
        f["t-coordinate"] = np.append(traj.t, traj.t[-1] + (traj.t[1] - traj.t[0]))
    return path


def test_recompute_names_the_file_and_the_stage_instead_of_a_traceback(tmp_path):
    """A missing, non-HDF5 or wrong-layout predictions file, or NaN predictions: one line each, from
    the library and through `ups eval recompute` (exit 1, no traceback)."""
    from ups.data.dataset import DataError

    missing, text, other = tmp_path / "missing.h5", tmp_path / "notes.h5", tmp_path / "other.h5"
    text.write_text("not hdf5")
    with h5py.File(other, "w") as f:
        f["tensor"] = np.zeros((2, 3))
    nan = tmp_path / "nan.h5"
    with h5py.File(nan, "w") as f:
        f.attrs["methods"] = "operator"
        f["target"] = np.ones((2, 3, 4), dtype=np.float32)
        f["operator/prediction"] = np.full((2, 3, 4), np.nan, dtype=np.float32)
        f["operator/target"] = f["target"]
    for path, words in (
        (missing, "no such predictions file"),
        (text, "not an HDF5 file"),
        (other, "not eval_full's layout"),
        (nan, "non-finite values"),
    ):
        with pytest.raises(DataError, match=words):
            recompute(path)
        out = run(["ups", "eval", "recompute", str(path)], tmp_path, check=False)
        assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_missing_or_corrupt_stage_metrics_are_one_line_naming_the_stage(tmp_path):
    """`ups gate check` and the gate stage read files other stages wrote: a missing, corrupt or foreign
    file is one line naming it and the stage to rerun (exit 1, no traceback)."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    out = run(["ups", "gate", "check"], tmp_path, check=False)
    assert (
        out.returncode == 1
        and "metrics/gate.json does not exist: rerun `dvc repro gate`" in out.stderr
        and "Traceback" not in out.stderr
    )
    (metrics / "gate.json").write_text('{"passed": tru')
    out = run(["ups", "gate", "check"], tmp_path, check=False)
    assert out.returncode == 1 and "is not valid JSON" in out.stderr and "Traceback" not in out.stderr
    (metrics / "eval_small.json").write_text("{}")
    (metrics / "eval_full.json").write_text('{"skipped": true, "reason": "x"}')
    args = [
        sys.executable,
        str(ROOT / "stages" / "gate.py"),
        "--params",
        str(ROOT / "params.yaml"),
        "--small",
        "metrics/eval_small.json",
        "--full",
        "metrics/eval_full.json",
        "--out",
        "metrics/gate.json",
        "--training",
        "metrics/train_operator/metrics.json",
    ]
    out = run(args, tmp_path, check=False)
    assert (
        out.returncode == 1
        and "metrics/eval_small.json lacks 'proxy'" in out.stderr
        and "dvc repro eval_small" in out.stderr
        and "Traceback" not in out.stderr
    )
