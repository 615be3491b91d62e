"""What the dry run of `validate` needs to know about a training stage.

Each training stage module defines a `PROBE`: how to build its models from the config and run one
forward/backward step on a batch of its real shape, and how many optimizer steps one epoch takes.
`ups.training.dry_run.PROBES` lists them; `validate` times each probe and turns it into a stage-time
and GPU-cost estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ups.config import Config, StageTraining


@dataclass(frozen=True)
class Probe:
    stage: str  # the DVC stage name
    models: Callable[[Config], dict[str, torch.nn.Module]]
    step: Callable[[Config, dict[str, torch.nn.Module]], torch.Tensor]  # one forward pass → loss
    steps_per_epoch: Callable[[Config, dict], int]  # (cfg, validate's data summary)
    training: Callable[[Config], StageTraining]
