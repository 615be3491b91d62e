"""Data-parallel training under torchrun (SPEC §13): PyTorch's own distributed engine, nothing else.

`run_training_stage(main, stage)` is what every training stage's entry point calls. With
`runtime.nproc: 1` it simply runs the stage. With N > 1 and outside torchrun, it starts
`python -m torch.distributed.run --standalone --nproc_per_node N` on the same command line (the
stage command in dvc.yaml never changes), waits, and turns a failing rank into one clear error.
Inside torchrun every rank runs the stage: `fit` joins the process group (NCCL on GPUs, gloo on CPU),
gives each rank an equal, disjoint part of every global batch, averages gradients across ranks with
an all-reduce before each step, and lets rank 0 alone write checkpoints, resume state, plots, metrics
and logs. Every rank validates the same weights, so early-stopping decisions agree without talk.
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
    return Context(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def init(ctx: Context, device: torch.device) -> None:
    """Join the process group on this rank's `device` (cuda:LOCAL_RANK on GPUs, see `stage_device`)."""
    if not ctx.active:
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def shard(batch, ctx: Context):
    """This rank's part of a global batch of indices: rows rank, rank + world, …"""
    return batch[ctx.rank :: ctx.world] if ctx.active else batch


def average_gradients(params: list[torch.nn.Parameter], ctx: Context) -> None:
    """All-reduce the gradients (one flat buffer) and divide by the number of ranks."""
    if not ctx.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


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


def _launch(main: Callable[[], None], stage: str) -> None:
    nproc = _nproc(sys.argv[1:])
    if nproc <= 1:
        main()
        return
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", sys.argv[0], *sys.argv[1:]]
    print(f"{stage}: runtime.nproc = {nproc}: starting {nproc} processes under torchrun", flush=True)
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise StageError(
            f"a training process failed (torchrun exited with {code}); its own message is above. "
            f"Resume state, if an epoch finished, is in scratch/{stage}/: rerun the stage to resume."
        )
