"""The shared training loop through the real autoencoder stage: resume after SIGTERM, the NaN guard,
the W&B mirror."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, write_params

from ups.checkpoints import resume_path
from ups.config import load_config
from ups.errors import StageError
from ups.stage_args import StagePaths
from ups.training import autoencoder as ae_stage

STAGE_ARGS = ["--checkpoint", "ae.pt", "--live", "live"]


@pytest.fixture
def workdir(tmp_path, smoke_data, smoke_overrides):
    """A folder with the smoke data and params where small batches make epochs long enough to interrupt."""
    import shutil

    shutil.copytree(smoke_data, tmp_path / "data")
    overrides = {**smoke_overrides, "train.autoencoder.batch_size": 1, "train.autoencoder.epochs": 3}
    write_params(tmp_path / "params.yaml", overrides)
    return tmp_path


def _stage(workdir, *extra):
    return [sys.executable, str(ROOT / "stages" / "train_autoencoder.py"), "--data", "data", *STAGE_ARGS, *extra]


def _weights(path):
    return torch.load(path, weights_only=False)["state_dict"]


def test_sigterm_mid_epoch_then_resume_gives_the_same_weights(workdir, tmp_path):
    # Uninterrupted reference, in its own folder so it shares no resume state.
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "params.yaml").write_text((workdir / "params.yaml").read_text())
    (ref / "data").symlink_to(workdir / "data")
    subprocess.run(_stage(ref), cwd=ref, check=True, capture_output=True)

    proc = subprocess.Popen(_stage(workdir), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the end of epoch 1 is announced on stdout; epoch 2 then takes seconds
        if "epoch 1/3:" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "stopped by SIGTERM at epoch 2, batch" in err
    assert resume_path("train_autoencoder", workdir / "scratch").exists()
    assert not (workdir / "ae.pt").exists()
    live = json.loads((workdir / "live" / "metrics.json").read_text())  # what `dvc exp show` sees mid-run
    assert live["step"] == 1 and live["val_roundtrip_nrmse"] > 0 and "best_epoch" not in live

    rerun = subprocess.run(_stage(workdir), cwd=workdir, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "train_autoencoder: resuming from epoch 2, batch" in rerun.stdout
    resumed, reference = _weights(workdir / "ae.pt"), _weights(ref / "ae.pt")
    for key in reference:
        assert torch.allclose(resumed[key], reference[key], atol=1e-6, rtol=0), key
    assert not resume_path("train_autoencoder", workdir / "scratch").exists()  # cleaned after success
    # DVC clears a stage's outputs before it reruns: the resumed run writes the earlier epochs again
    for d in (workdir, ref):
        steps, values = _curve(d / "live", "val_roundtrip_nrmse")
        assert steps == [1, 2, 3], d
    assert _curve(workdir / "live", "val_roundtrip_nrmse")[1] == pytest.approx(
        _curve(ref / "live", "val_roundtrip_nrmse")[1], rel=1e-5
    )
    assert json.loads((workdir / "live" / "metrics.json").read_text())["epochs_run"] == 3


def _curve(live: Path, name: str) -> tuple[list[int], list[float]]:
    """A DVCLive curve: (steps, values) from plots/metrics/NAME.tsv."""
    lines = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
    assert lines[0] == f"step\t{name}"
    rows = [line.split("\t") for line in lines[1:]]
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


def test_nan_loss_stops_naming_stage_epoch_batch_and_keeps_resume_state(workdir, monkeypatch):
    cfg = load_config(workdir / "params.yaml", {"train.autoencoder.batch_size": 16})
    calls = {"n": 0}
    real_build = ae_stage.Autoencoder.from_config

    class Poisoned(torch.nn.Module):
        """The real autoencoder, whose output turns NaN at the 3rd training batch of epoch 2."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, u, x):
            out = self.inner(u, x)
            if self.training:  # the EMA copy used for validation is in eval mode
                calls["n"] += 1
                if calls["n"] == 11 + 3:  # 176 smoke fields / 16 = 11 batches per epoch
                    return out * float("nan")
            return out

    monkeypatch.setattr(ae_stage.Autoencoder, "from_config", lambda cfg, *args: Poisoned(real_build(cfg, *args)))
    scratch = workdir / "scratch"
    with pytest.raises(StageError) as err:
        ae_stage.train_autoencoder(
            cfg,
            StagePaths(
                data=workdir / "data",
                checkpoint=workdir / "ae.pt",
                live=workdir / "live",
                scratch=scratch,
            ),
        )
    assert "train_autoencoder: loss is nan at epoch 2, batch 3" in str(err.value)
    state = torch.load(resume_path("train_autoencoder", scratch), weights_only=False)
    assert state["state"]["epoch"] == 1 and state["state"]["batch"] == 0  # the end of epoch 1, intact
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def _wandb_records(path):
    """Read a W&B offline run file: a 7-byte header, then LevelDB-log blocks of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B", "not a W&B run file"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(raw):
        if (pos % block) > block - 7:  # trailer too short for a header: skip to the next block
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(raw[pos + 4 : pos + 6], "little"), raw[pos + 6]
        data = raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending += data
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_mirrors_every_epoch(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("DVC_EXP_NAME", "wandb-test")
    cfg = load_config(workdir / "params.yaml", {"train.autoencoder.batch_size": 16, "logging.wandb.enabled": True})
    ae_stage.train_autoencoder(cfg, StagePaths(data="data", checkpoint="ae.pt", live="live"))
    runs = list((workdir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = [
        {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
        for record in _wandb_records(next(runs[0].glob("*.wandb")))
        if record.WhichOneof("record_type") == "history"
    ]
    epochs_logged = [h for h in history if "train_autoencoder/val_roundtrip_nrmse" in h]
    assert len(epochs_logged) == 3
    steps, values = _curve(workdir / "live", "val_roundtrip_nrmse")
    assert steps == [1, 2, 3]
    assert values == pytest.approx([h["train_autoencoder/val_roundtrip_nrmse"] for h in epochs_logged], rel=1e-6)
    summary = json.loads((workdir / "live" / "metrics.json").read_text())
    assert summary["step"] == 3 and summary["epochs_run"] == 3 and summary["best_epoch"] in (1, 2, 3)


def test_a_corrupt_resume_state_is_set_aside_and_training_starts_over(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    resume = resume_path("train_autoencoder", Path("scratch"))
    resume.parent.mkdir(parents=True)
    resume.write_bytes(b"PK\x03\x04 not a torch archive")  # a truncated write, say
    cfg = load_config(workdir / "params.yaml", {"train.autoencoder.batch_size": 16, "train.autoencoder.epochs": 1})
    summary = ae_stage.train_autoencoder(cfg, StagePaths(data="data", checkpoint="ae.pt", live="live"))
    out = capsys.readouterr().out
    assert "warning: cannot read the resume state" in out and "training from scratch" in out
    assert summary["epochs_run"] == 1 and Path("ae.pt").exists()
    assert resume.with_name("resume.pt.corrupt").read_bytes().startswith(b"PK")


def test_the_dry_run_times_on_the_device_it_names_and_draws_noise_from_cpu_generators(smoke_cfg):
    """validate's probes build the models and their inputs on the device they report, with that device
    as the default device meanwhile: the samplers' seeded CPU generators must still draw (on the CPU)
    and move the noise to the data. On CPU both settings give the same estimate's shape."""
    from ups.training.dry_run import PROBES, _time_step, dry_run

    report = dry_run(
        smoke_cfg, {"trajectories": {"train": smoke_cfg.data.splits.train}, "frames": smoke_cfg.data.frames}
    )
    assert report["estimate"]["device"] == "cpu" and set(report["models"]) == set(PROBES)
    counts, seconds = _time_step(smoke_cfg, PROBES["train_consistency_distill"], torch.device("cpu"))
    assert seconds > 0 and counts["consistency"] > 0
    with torch.device("cpu"):  # a default-device context, as on a GPU: generator draws follow the generator
        from ups.models.layers import generator_device

        assert generator_device(torch.Generator()) == torch.device("cpu") and generator_device(None) == torch.device(
            "cpu"
        )
