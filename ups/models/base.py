"""What every UPS model shares: it describes itself and rebuilds itself from a checkpoint.

A model's `spec` is a plain dict (its kind, the checkpoint format and every size needed to build
it). `Model.config_spec(cfg, …)` derives it from the config, `Model.from_spec(spec)` builds a fresh
model from it (`Model.from_config(cfg, …)` does both), and the checkpoint a training stage writes is that spec plus the weights, so
`Model.from_checkpoint(path)` needs no params.yaml:

    op = LatentOperator.from_checkpoint("checkpoints/operator.pt")
    op.spec["dt"]  # what the checkpoint says about itself
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, TypeVar

import torch
from torch import nn

from ups import checkpoints

M = TypeVar("M", bound="SpecModel")


class SpecModel(nn.Module):
    kind: ClassVar[str]  # the checkpoint's "kind"
    spec: dict  # set by `from_spec`

    @classmethod
    def from_spec(cls: type[M], spec: dict) -> M:
        """A freshly initialised model of this spec (random weights, drawn from torch's global RNG)."""
        model = cls._build(spec)
        model.spec = {k: v for k, v in spec.items() if k not in checkpoints.CHECKPOINT_EXTRAS}
        return model

    @classmethod
    def from_config(cls: type[M], cfg, *args, **kwargs) -> M:
        """`from_spec(config_spec(cfg, …))`: a fresh model as the params describe it."""
        return cls.from_spec(cls.config_spec(cfg, *args, **kwargs))

    @classmethod
    def config_spec(cls, cfg, *args, **kwargs) -> dict:
        raise NotImplementedError

    @classmethod
    def _build(cls: type[M], spec: dict) -> M:
        raise NotImplementedError

    @classmethod
    def _spec(cls, **sections) -> dict:
        return {"kind": cls.kind, "format": checkpoints.FORMAT, **sections}

    @classmethod
    def from_checkpoint(cls: type[M], path: Path | str, device: str | torch.device = "cpu") -> M:
        """The model saved at `path` by its training stage, in eval mode on `device`."""
        saved = checkpoints.load(path, cls.kind)
        model = cls.from_spec(saved)
        model.load_state_dict(saved["state_dict"])
        return model.to(device).eval()
