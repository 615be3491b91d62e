"""The training stages through real DVC: caching by params, plots, experiments (smoke sizes)."""

import json

import pytest
from conftest import run, set_params

pytestmark = pytest.mark.slow


def _changed(repo) -> set:
    return set(json.loads(run(["dvc", "status", "--json"], repo).stdout))


def test_params_retrain_only_the_stages_that_read_them(pipeline_repo):
    run(["dvc", "repro"], pipeline_repo)
    summary = json.loads((pipeline_repo / "metrics" / "train_operator" / "metrics.json").read_text())
    assert summary["val_rollout_nrmse"] > 0 and summary["val_persistence_nrmse"] > 0
    # the diagnostics: where the error comes from, all in physical space on val
    assert (
        0 < summary["val_roundtrip_nrmse"]
        and 0 < summary["val_one_step_nrmse"]
        and 0 < summary["val_first_frame_nrmse"]
    )
    assert (
        summary["val_rollout_projected_nrmse"]
        == summary["val_rollout_nrmse"]
        != summary["val_rollout_unprojected_nrmse"]
    )
    assert _changed(pipeline_repo) == set()

    # a docstring edit in the diffusion model: every stage that runs it is stale, eval_full included
    diffusion = pipeline_repo / "ups" / "models" / "diffusion.py"
    original = diffusion.read_text()
    diffusion.write_text(original.replace('"""', '"""(edited) ', 1))
    stale = _changed(pipeline_repo)
    assert {"eval_full", "train_diff_residual", "train_consistency_distill"} <= stale and "generate" not in stale, stale
    diffusion.write_text(original)
    assert _changed(pipeline_repo) == set()

    set_params(pipeline_repo, **{"eval.batch_size": 4})
    assert _changed(pipeline_repo) == {"validate", "eval_small", "eval_full"}  # no training stage reads eval.*
    rerun = run(["dvc", "repro"], pipeline_repo)
    assert "Running stage 'validate'" in rerun.stdout
    assert "Running stage 'train" not in rerun.stdout and "Running stage 'encode" not in rerun.stdout

    run(["git", "add", "-A"], pipeline_repo)
    run(["git", "commit", "-qm", "baseline"], pipeline_repo)  # dvc exp run starts from a commit
    rerun = run(["dvc", "exp", "run", "-n", "fewer-steps", "-S", "diffusion.steps=3"], pipeline_repo)
    ran = {line.split("'")[1] for line in rerun.stdout.splitlines() if line.startswith("Running stage")}
    assert ran == {"validate", "train_diff_residual", "train_consistency_distill", "eval_full", "gate"}, ran

    report = run(["ups", "ttc-report", "--limit", "4"], pipeline_repo).stdout
    assert "TTC (2 candidates, beam 1, horizon 1): nRMSE" in report and '"ttc_nfe_per_step": 4.0' in report


def test_latent_dim_retrains_autoencoder_and_operator(pipeline_repo):
    run(["dvc", "repro", "train_operator"], pipeline_repo)
    set_params(pipeline_repo, **{"latent.dim": 12})
    changed = set(json.loads(run(["dvc", "status", "--json"], pipeline_repo).stdout))
    assert {"train_autoencoder", "train_operator", "validate"} <= changed and "generate" not in changed


def test_dvc_exp_run_with_latent_dim_override(pipeline_repo):
    proc = run(["dvc", "exp", "run", "-n", "dim12", "-S", "latent.dim=12"], pipeline_repo)
    assert "Ran experiment" in proc.stdout + proc.stderr
    shown = json.loads(run(["dvc", "exp", "show", "--json"], pipeline_repo).stdout)
    revs = {
        e.get("name"): e for commit in shown for e in (commit.get("experiments") or []) for e in (e.get("revs") or [])
    }
    assert "dim12" in revs
    # the DVCLive summaries are columns of `dvc exp show`: step (the last epoch) and the stage summary
    metrics = revs["dim12"]["data"]["metrics"]
    operator = metrics["metrics/train_operator/metrics.json"]["data"]
    assert operator["step"] == operator["epochs_run"] >= 1 and operator["val_rollout_nrmse"] > 0
    assert metrics["metrics/train_autoencoder/metrics.json"]["data"]["val_roundtrip_nrmse"] > 0


def test_plots_render_training_curves(pipeline_repo, tmp_path):
    run(["dvc", "repro", "train_operator"], pipeline_repo)
    out = run(["dvc", "plots", "show", "--json"], pipeline_repo).stdout
    plots = json.loads(out)
    titles = " ".join(plots["data"])
    assert "training curves (autoencoder)" in titles and "training curves (operator)" in titles
    ran = ("metrics/train_autoencoder/", "metrics/train_operator/")  # the stages reproduced here
    assert not [e for e in plots.get("errors", []) if e["source"].startswith(ran)], plots["errors"]
    operator = next(p for title, p in plots["data"].items() if "training curves (operator)" in title)
    points = operator[0]["content"]["data"]["values"]
    drawn = json.dumps(points)  # each point names its file and field
    assert "train_loss.tsv::train_loss" in drawn and "val_rollout_nrmse.tsv::val_rollout_nrmse" in drawn
    assert all("step" in p for p in points) and len(points) >= 2
    html = run(["dvc", "plots", "show", "-o", str(tmp_path / "plots")], pipeline_repo)
    assert (tmp_path / "plots" / "index.html").exists(), html.stdout
