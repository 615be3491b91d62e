"""What every training stage does around its own loss: build the `Task` `fit` runs, and write the summary.

A stage module (`ups.training.operator`, …) keeps only what is its own: the data it trains on, the
loss, the validation metric and the diagnostics in its summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from ups.checkpoints import fingerprint
from ups.config import StageTraining
from ups.models.base import SpecModel
from ups.stage_args import StagePaths
from ups.training import tracking
from ups.training.loop import Task


def stage_task(
    stage: str,
    model: SpecModel,
    training: StageTraining,
    paths: StagePaths,
    params: dict,
    inputs: list[Path],
    steps_per_epoch: int,
    batches: Callable[[int, torch.Generator], Iterable[Any]],
    loss: Callable[[nn.Module, Any, torch.Generator], torch.Tensor],
    validate: Callable[[nn.Module], dict[str, float]],
) -> Task:
    """The stage's `Task`: its checkpoint, DVCLive directory and scratch from `paths`; resume state is keyed by the
    fingerprint of `params` (also logged as the run's config) and the content of the `inputs` files."""
    return Task(
        stage=stage,
        model=model,
        training=training,
        steps_per_epoch=steps_per_epoch,
        batches=batches,
        loss=loss,
        validate=validate,
        paths=paths,
        fingerprint=fingerprint(params, inputs),
        log_config=params,
    )


def write_summary(paths: StagePaths, summary: dict) -> dict:
    """The stage's summary with its diagnostics, into its DVCLive summary (`metrics.json` in
    `paths.live`, what `dvc exp show` reads); returned for printing."""
    tracking.write_summary(paths.live, summary)
    return summary
