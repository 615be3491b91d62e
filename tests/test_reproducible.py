"""Outputs that DVC hashes are byte-reproducible: equal contents, equal bytes."""

import hashlib
import subprocess
import sys

from conftest import ROOT


def test_checkpoints_saved_by_two_processes_have_identical_bytes(tmp_path):
    """`torch.save(obj, path)` writes the file's name into the archive, and `save_atomic` writes a
    temporary file named after the process id: saved through a path, two identical objects saved by
    two processes differ in bytes (and in DVC hash). Saved through an open file they do not."""
    code = "import sys, torch; from ups.checkpoints import save_atomic; save_atomic({'w': torch.arange(12.0).reshape(3, 4), 'kind': 'x'}, sys.argv[1])"
    paths = [tmp_path / f"run{i}" / "model.pt" for i in range(2)]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, cwd=ROOT)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(digests) == 1


def test_two_runs_of_a_stage_write_identical_bytes(tmp_path, smoke_data, smoke_cfg):
    """Two runs of train_autoencoder (1 epoch) and of encode_latents on the same machine: the
    checkpoint and the latents have the same sha256, so DVC sees one output, not two."""
    from ups.stage_args import StagePaths
    from ups.training.autoencoder import train_autoencoder
    from ups.training.latents import encode_latents

    digests = []
    for i in range(2):
        run_dir = tmp_path / f"run{i}"
        train_autoencoder(
            smoke_cfg,
            StagePaths(
                data=smoke_data,
                checkpoint=run_dir / "ae.pt",
                live=run_dir / "live",
                scratch=run_dir / "scratch",
            ),
        )
        encode_latents(smoke_data, run_dir / "ae.pt", run_dir / "latents")
        digests.append(
            [
                hashlib.sha256((run_dir / p).read_bytes()).hexdigest()
                for p in ("ae.pt", "latents/train.pt", "latents/val.pt")
            ]
        )
    assert digests[0] == digests[1]
