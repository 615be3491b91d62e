"""`dvc repro validate` end to end in a fresh git + DVC repository (smoke sizes)."""

import json
import sys

import h5py
import numpy as np
import pytest
import yaml
from conftest import run

pytestmark = pytest.mark.slow


def test_repro_validate_then_nothing_to_do(pipeline_repo):
    first = run(["dvc", "repro", "validate"], pipeline_repo)
    assert "Running stage 'generate'" in first.stdout and "Running stage 'validate'" in first.stdout
    report = json.loads((pipeline_repo / "metrics" / "validate.json").read_text())
    assert report["params"] == "ok"
    assert report["data"]["trajectories"] == {"train": 16, "val": 8, "test": 8}
    assert "estimate" in report and report["estimate"]["training_seconds"] >= 0
    second = run(["dvc", "repro", "validate"], pipeline_repo)
    assert "Running stage" not in second.stdout
    assert "didn't change" in second.stdout or "up to date" in second.stdout.lower()
    assert "Data and pipelines are up to date" in run(["dvc", "status", "validate"], pipeline_repo).stdout


def _edit_params(repo, edit):
    path = repo / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    edit(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_typo_key_fails_naming_the_valid_key(pipeline_repo):
    _edit_params(pipeline_repo, lambda raw: raw["latent"].update({"dimm": 64}))
    proc = run(["dvc", "repro", "validate"], pipeline_repo, check=False)
    assert proc.returncode != 0
    assert "latent.dimm: unknown key; did you mean 'latent.dim'?" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_negative_learning_rate_fails_naming_key_and_range(pipeline_repo):
    _edit_params(pipeline_repo, lambda raw: raw["train"]["operator"].update({"lr": -0.001}))
    proc = run(["dvc", "repro", "validate"], pipeline_repo, check=False)
    assert proc.returncode != 0
    assert "train.operator.lr: -0.001 is out of range; allowed: > 0.0 and ≤ 1.0" in proc.stderr + proc.stdout


def test_nan_in_data_fails_naming_file_and_trajectory(pipeline_repo):
    run(["dvc", "repro", "generate"], pipeline_repo)
    data = pipeline_repo / "data" / "burgers"
    broken = pipeline_repo / "broken"
    import shutil

    shutil.copytree(data, broken)
    with h5py.File(broken / "train.h5", "r+") as f:
        f["tensor"][11, 7, 0] = np.inf
    proc = run(
        [sys.executable, "stages/validate.py", "--data", "broken", "--out", "metrics/validate.json"],
        pipeline_repo,
        check=False,
    )
    assert proc.returncode == 1
    assert "broken/train.h5: trajectory 11 (frame 7) contains NaN or Inf" in proc.stderr
    assert "Traceback" not in proc.stderr
