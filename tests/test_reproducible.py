"""Outputs that DVC hashes are byte-reproducible: equal contents, equal bytes."""

import hashlib
import subprocess
import sys

from conftest import ROOT


def test_checkpoints_saved_by_two_processes_have_identical_bytes(tmp_path):
    """`torch.save(obj, path)` writes the file's name into the archive, and `save_atomic` writes a
    temporary file named after the process id: saved through a path, two identical objects saved by
    two processes differ in bytes (and in DVC hash). Saved through an open file they do not."""
    code = "import sys, torch; from ups.training.checkpoint import save_atomic; save_atomic({'w': torch.arange(12.0).reshape(3, 4), 'kind': 'x'}, sys.argv[1])"
    paths = [tmp_path / f"run{i}" / "model.pt" for i in range(2)]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True, cwd=ROOT)
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    assert len(digests) == 1
