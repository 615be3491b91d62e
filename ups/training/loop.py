"""The training loop every training stage shares (SPEC §6, §14).

A stage describes its work as a `Task` (model, batches, loss, validation); `fit` does the rest:
seeding and CPU determinism, AdamW with warm-up and cosine decay, gradient clipping, EMA weights,
bf16 autocast and optional `torch.compile` on GPU, model selection and early stopping on the
validation metric (never the training loss), a progress bar, per-epoch plots, resume state in
`scratch/` after every epoch and on SIGTERM/SIGINT, and a guard that stops on a non-finite loss.

Batches are a pure function of (seed, epoch) and per-batch randomness of (seed, epoch, batch), so a
run resumed at any batch ends with the same weights as an uninterrupted run (CPU).

Under torchrun (`runtime.nproc` > 1, see `ups.training.distributed`) each rank computes the loss on
its part of every global batch, gradients are averaged by an all-reduce before clipping and the
step (PyTorch's DistributedDataParallel), and rank 0 alone writes resume state, plots, logs and the
checkpoint.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from ups.config import RuntimeConfig, StageTraining, WandbConfig
from ups.errors import StageError
from ups.training import checkpoint as ckpt
from ups.training import distributed
from ups.training.optim import EMA, build_optimizer, warmup_cosine
from ups.training.tracking import EpochLog


SYNC_EVERY = 32  # batches between host read-backs on a GPU


class Interrupted(StageError):
    """Training was stopped by a signal; its resume state is saved."""


@dataclass
class Task:
    stage: str
    model: nn.Module
    training: StageTraining
    steps_per_epoch: int
    batches: Callable[[int, torch.Generator], Iterable[Any]]  # (epoch, generator) → batches
    loss: Callable[[nn.Module, Any, torch.Generator], torch.Tensor]  # (model, batch, generator) → loss
    validate: Callable[[nn.Module], dict[str, float]]  # EMA model → metrics; "selection" is minimised
    checkpoint_path: Path
    checkpoint_payload: Callable[[], dict]  # kind, sizes, normalisation … saved beside the weights
    plots_path: Path
    fingerprint: str
    scratch: Path = ckpt.SCRATCH
    log_config: dict = field(default_factory=dict)


def pick_device(runtime: RuntimeConfig) -> torch.device:
    if runtime.device == "cuda" and not torch.cuda.is_available():
        raise StageError("runtime.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if runtime.device in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def stage_device(runtime: RuntimeConfig) -> torch.device:
    """The device this process trains on: `fit` moves the model there, and stages put their data there
    (one GPU per torchrun rank; the CPU otherwise)."""
    device = pick_device(runtime)
    ctx = distributed.context()
    return torch.device("cuda", ctx.local_rank) if device.type == "cuda" and ctx.active else device


def seed_everything(seed: int, device: torch.device) -> None:
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)


def shuffled_batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """Indices 0..n−1 in a random order drawn from `gen`, in batches (the last one may be short)."""
    return list(torch.randperm(n, generator=gen).split(batch_size))


def batch_generator(seed: int, epoch: int, batch: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + batch) % (2**63))


class _StopOnSignal:
    """Turns SIGTERM/SIGINT into a request to stop after the current batch."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def compile_hot_paths(model: nn.Module) -> nn.Module:
    """`torch.compile` what a stage's loss calls: the methods named by the model's `compile_targets`
    (`forward` when it names none). Losses that call `model.step` or `model.denoise` bypass
    `forward`, so compiling the module alone would compile nothing they run."""
    for name in getattr(model, "compile_targets", ("forward",)):
        setattr(model, name, torch.compile(getattr(model, name)))
    return model


def _load_resume(stage: str, path: Path) -> dict | None:
    """The resume state at `path`, or None after a warning when it cannot be read (a truncated or
    foreign file): it is set aside as `resume.pt.corrupt` and the stage trains from scratch."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(saved, dict):
            raise ValueError(f"holds a {type(saved).__name__}, not a resume state")
        return saved
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        print(f"{stage}: warning: cannot read the resume state {path} ({type(exc).__name__}: {exc}); set it aside as {aside} and training from scratch", flush=True)
        return None


def fit(task: Task, runtime: RuntimeConfig, wandb_cfg: WandbConfig) -> dict:
    """Train, select on validation, save the best EMA weights to `task.checkpoint_path`."""
    t = task.training
    ctx = distributed.context()
    device = stage_device(runtime)
    distributed.init(ctx, device)
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    seed_everything(t.seed, device)
    model = task.model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    ema = EMA(model, t.ema)
    optimizer = build_optimizer(model, t)
    total_steps = t.epochs * task.steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, t.warmup, t.lr_floor))
    step_model = compile_hot_paths(model) if runtime.compile else model
    autocast = device.type == "cuda" and runtime.bf16

    state = {"epoch": 0, "batch": 0, "best": float("inf"), "best_epoch": -1, "best_state": None, "bad_epochs": 0, "rows": [], "running": [0.0, 0], "seconds": 0.0}
    resume_file = ckpt.resume_path(task.stage, task.scratch)
    saved = _load_resume(task.stage, resume_file) if resume_file.exists() else None
    if saved is not None:
        if saved.get("fingerprint") == task.fingerprint:
            model.load_state_dict(saved["model"])
            ema.load_state_dict(saved["ema"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            state = saved["state"]
            print(f"{task.stage}: resuming from epoch {state['epoch'] + 1}, batch {state['batch'] + 1} ({resume_file})", flush=True)
        else:
            print(f"{task.stage}: ignoring resume state from other params or inputs ({resume_file})", flush=True)
    if ctx.active:
        print(f"{task.stage}: rank {ctx.rank}/{ctx.world} on {device} ({'nccl' if device.type == 'cuda' else 'gloo'}), 1/{ctx.world} of each global batch of {t.batch_size}", flush=True)

    compute_loss = distributed.data_parallel(step_model, task.loss, ctx, device)  # after resume: DDP broadcasts rank 0's weights
    log = EpochLog(task.stage, task.plots_path, wandb_cfg, task.log_config, rows=state["rows"], write=ctx.main)

    def save_resume() -> None:
        if not ctx.main:
            return
        state["rows"] = log.rows
        ckpt.save_atomic(
            {"fingerprint": task.fingerprint, "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "state": state},
            resume_file,
        )

    # On a GPU the host reads losses back every SYNC_EVERY batches only, so the device never waits
    # for Python; on CPU every batch, so a non-finite loss stops the stage before its update.
    sync_every = 1 if device.type == "cpu" else SYNC_EVERY

    def nonfinite_message(what: str, value: float, epoch: int, where: str, consequence: str) -> str:
        return (
            f"{task.stage}: {what} is {value} at epoch {epoch + 1}, {where}{f' (rank {ctx.rank})' if ctx.active else ''}; {consequence}. "
            f"The last good resume state is {resume_file if resume_file.exists() else 'not written yet (no epoch finished)'}. "
            f"Lower train.*.lr or check the data (`dvc repro validate`)."
        )

    started = time.perf_counter() - state["seconds"]
    with _StopOnSignal() as stop:
        for epoch in range(state["epoch"], t.epochs):
            model.train()
            batches = list(task.batches(epoch, torch.Generator().manual_seed(t.seed * 7919 + epoch)))
            bar = tqdm(total=len(batches), initial=state["batch"], desc=f"{task.stage} {epoch + 1}/{t.epochs}", unit="batch", dynamic_ncols=True, leave=False, mininterval=1.0, disable=not ctx.main)
            pending: list[torch.Tensor] = []  # losses (and gradient norms) not yet read back to the host
            for b in range(state["batch"], len(batches)):
                gen = batch_generator(t.seed, epoch, b)
                part, weight = distributed.shard(batches[b], ctx)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    loss = compute_loss(part, gen) * weight
                if sync_every == 1 and not torch.isfinite(loss):
                    raise StageError(nonfinite_message("loss", loss.item(), epoch, f"batch {b + 1}", "stopped before the update"))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # under DDP the gradients arrive averaged across ranks
                if t.grad_clip > 0:
                    norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
                    if sync_every == 1 and not torch.isfinite(norm):
                        raise StageError(nonfinite_message("gradient norm", norm.item(), epoch, f"batch {b + 1}", "stopped before the update"))
                    pending.append(norm.detach().float() * 0.0)  # contributes its finiteness only
                optimizer.step()
                scheduler.step()
                ema.update(model)
                pending.append(loss.detach().float())
                state["batch"] = b + 1
                bar.update(1)
                if state["batch"] % sync_every and state["batch"] != len(batches):
                    continue
                # One read-back per `sync_every` batches (every batch on CPU): running loss, guard, signals.
                values = torch.stack(pending).cpu()
                pending.clear()
                if not torch.isfinite(values).all():
                    raise StageError(nonfinite_message("loss or gradient norm", float("nan"), epoch, f"batches {b + 2 - sync_every}…{b + 1}", "weights since then are not saved"))
                losses = values[1::2] if t.grad_clip > 0 else values
                state["running"][0] += float(losses.sum())
                state["running"][1] += len(losses)
                bar.set_postfix(loss=f"{float(losses[-1]):.3e}", lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
                if distributed.any_rank(stop.signal is not None, ctx, device):
                    state["seconds"] = time.perf_counter() - started
                    save_resume()
                    bar.close()
                    name = signal.Signals(stop.signal).name if stop.signal is not None else "a signal to another rank"
                    raise Interrupted(f"{task.stage}: stopped by {name} at epoch {epoch + 1}, batch {b + 1}; resume state saved to {resume_file}. Rerun the stage to resume.")
            bar.close()
            metrics = task.validate(ema.model)
            train_loss = state["running"][0] / max(1, state["running"][1])
            state["seconds"] = time.perf_counter() - started
            row = {"epoch": epoch + 1, "train_loss": train_loss, **metrics, "lr": scheduler.get_last_lr()[0], "seconds": round(state["seconds"], 2)}
            log.log(row)
            improved = metrics["selection"] < state["best"]
            if improved:
                state.update(best=metrics["selection"], best_epoch=epoch + 1, best_state={k: v.detach().cpu().clone() for k, v in ema.model.state_dict().items()}, bad_epochs=0)
            else:
                state["bad_epochs"] += 1
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "selection")
            if ctx.main:
                print(f"{task.stage} epoch {epoch + 1}/{t.epochs}: train loss {train_loss:.4g}  {shown}{'  *' if improved else ''}", flush=True)
            state.update(epoch=epoch + 1, batch=0, running=[0.0, 0])
            stopping = state["bad_epochs"] >= t.patience
            save_resume()
            if stopping:
                if ctx.main:
                    print(f"{task.stage}: early stop, no validation improvement for {t.patience} epochs", flush=True)
                break

    if state["best_state"] is None:
        raise StageError(f"{task.stage}: no epoch finished; nothing to save")
    if ctx.active:  # rank 0 alone goes on to write; the others are done
        distributed.finish(ctx)
        if not ctx.main:
            raise SystemExit(0)
    payload = task.checkpoint_payload()
    payload.update(state_dict=state["best_state"], best_epoch=state["best_epoch"], selection=state["best"])
    ckpt.save_atomic(payload, task.checkpoint_path)
    summary = {
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "train_seconds": round(state["seconds"], 1),
        "parameters": sum(p.numel() for p in model.parameters()),
        "device": device.type,
        "processes": ctx.world,
        **{f"best_{k}": v for k, v in log.rows[state["best_epoch"] - 1].items() if k not in ("epoch", "lr", "seconds")},
    }
    log.finish(summary)
    resume_file.unlink(missing_ok=True)
    # The model object holds the best weights from here on, for whatever the stage does next.
    model.load_state_dict(state["best_state"])
    return summary
