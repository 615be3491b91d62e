"""Checkpoints (DVC outputs) and resume state (scratch, outside DVC outputs), both written atomically.

A checkpoint is self-describing: it holds the weights, the kind of model, the checkpoint format and
every size needed to rebuild it (the model's `spec`), so inference needs no params.yaml; each model
class rebuilds itself with `from_checkpoint` (`ups.models.base`). Resume state carries a fingerprint
of the stage's params and inputs; state from another configuration is never resumed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from ups.io import atomic_path

SCRATCH = Path("scratch")  # git-ignored; `dvc exp run` resets DVC outputs, not this
FORMAT = 2  # 2: models built from their spec with the shared conditioned stack (`ups.models.layers`)
CHECKPOINT_EXTRAS = ("state_dict", "best_epoch", "selection")  # what a training stage adds to the model's spec


def save_atomic(obj: Any, path: Path | str) -> None:
    """`torch.save` through an open file: given a path, torch writes that file's name (here the
    temporary one, with the PID) into the archive, so equal contents would hash differently in DVC."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load(path: Path | str, kind: str | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint; run the stage that writes it (`dvc repro`) or `dvc pull`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise FileNotFoundError(
            f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); rerun its stage"
        ) from exc
    if not isinstance(ckpt, dict) or "kind" not in ckpt:
        raise FileNotFoundError(f"{path}: not a UPS checkpoint (no model kind); rerun the stage that writes it")
    if kind is not None and ckpt["kind"] != kind:
        raise FileNotFoundError(f"{path}: holds a {ckpt['kind']!r} model, expected {kind!r}")
    if ckpt.get("format", 1) != FORMAT:
        raise FileNotFoundError(
            f"{path}: a {ckpt['kind']} checkpoint in format {ckpt.get('format', 1)}, this version of UPS reads format {FORMAT}; "
            "retrain it with this code (`dvc repro` reruns the stage that writes it)"
        )
    return ckpt


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(params: dict, inputs: list[Path | str]) -> str:
    """Hash of the stage's params and the content of its input files (folders: every file)."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for item in inputs:
        item = Path(item)
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for f in files:
            h.update(str(f.name).encode())
            h.update(_file_digest(f).encode())
    return h.hexdigest()[:16]


def resume_path(stage: str, scratch: Path | str = SCRATCH) -> Path:
    return Path(scratch) / stage / "resume.pt"
