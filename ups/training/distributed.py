"""Data-parallel training under torchrun: PyTorch's own distributed engine, nothing else.

`run_training_stage(main, stage)` is what every training stage's entry point calls. With
`runtime.nproc: 1` it simply runs the stage. With N > 1 and outside torchrun, it starts
`python -m torch.distributed.run --standalone --nproc_per_node N` on the same command line (the
stage command in dvc.yaml never changes), waits, and turns a failing rank into one clear error.
Inside torchrun every rank runs the stage: `fit` joins the process group (NCCL on GPUs, gloo on CPU),
gives each rank a disjoint part of every global batch, and averages gradients across ranks through
PyTorch's `DistributedDataParallel` (bucketed all-reduce overlapping the backward pass). Each rank's
loss is weighted by its share of the batch, so the averaged gradient is the gradient of the global
batch's mean loss, as in one process, also for a last batch smaller than the number of ranks (a rank
without rows computes its loss on one row with weight 0). Rank 0 alone writes checkpoints, resume
state, plots, metrics and logs. Every rank validates the same weights, so early-stopping decisions
agree without talk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from ups.errors import StageError, run_entry_point


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def context() -> Context:
    """This process's place in the torchrun job (rank 0 of 1 outside torchrun)."""
    return Context(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def init(ctx: Context, device: torch.device) -> None:
    """Join the process group on this rank's `device` (cuda:LOCAL_RANK on GPUs, see `stage_device`)."""
    if not ctx.active:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shard(batch, ctx: Context) -> tuple[object, float]:
    """This rank's part of a global batch of indices (rows rank, rank + world, …) and the weight of
    its mean loss, len(part) · world / len(batch), so that the ranks' averaged gradient is the global
    batch's. A rank left without rows (a last batch smaller than the world) gets one row, weight 0."""
    if not ctx.active:
        return batch, 1.0
    part = batch[ctx.rank :: ctx.world]
    if len(part) == 0:
        return batch[:1], 0.0
    return part, len(part) * ctx.world / len(batch)


class LossModule(torch.nn.Module):
    """The model with its stage's loss as `forward`, so that `DistributedDataParallel` wraps the whole
    computation the loss runs (`model.step`, `model.denoise`, … as well as `forward`)."""

    def __init__(self, model: torch.nn.Module, loss: Callable):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, batch, gen: torch.Generator) -> torch.Tensor:
        return self.loss(self.model, batch, gen)


def data_parallel(model: torch.nn.Module, loss: Callable, ctx: Context, device: torch.device) -> Callable:
    """(batch, generator) → loss: through `DistributedDataParallel` under torchrun, directly otherwise."""
    module = LossModule(model, loss)
    if not ctx.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def any_rank(flag: bool, ctx: Context, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any (e.g. a stop signal), so all stop together."""
    if not ctx.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def finish(ctx: Context) -> None:
    if ctx.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _nproc(argv: list[str]) -> int:
    from ups.config import load_config

    params = argv[argv.index("--params") + 1] if "--params" in argv else "params.yaml"
    return load_config(params).runtime.nproc


def run_training_stage(main: Callable[[], None], stage: str) -> None:
    """Run a training stage's `main`, under torchrun when `runtime.nproc` > 1."""
    if "RANK" in os.environ:  # already a torchrun rank
        run_entry_point(main, stage if context().main else f"{stage} (rank {context().rank})")
    else:
        run_entry_point(lambda: _launch(main, stage), stage)


def _entry_point() -> list[str]:
    """How each rank starts this stage: as the module it was started as (`python -m stages.NAME`, so the
    ranks import `ups` from the same working directory), or as the same script."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return ["-m", spec.name] if spec is not None and spec.name else [sys.argv[0]]


def _launch(main: Callable[[], None], stage: str) -> None:
    nproc = _nproc(sys.argv[1:])
    if nproc <= 1:
        main()
        return
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *_entry_point(),
        *sys.argv[1:],
    ]
    print(f"{stage}: runtime.nproc = {nproc}: starting {nproc} processes under torchrun", flush=True)
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise StageError(
            f"a training process failed (torchrun exited with {code}); its own message is above. "
            f"Resume state, if an epoch finished, is in scratch/{stage}/: rerun the stage to resume."
        )
