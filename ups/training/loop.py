"""The training loop every training stage shares.

A stage describes its work as a `Task` (model, batches, loss, validation); `fit` does the rest:
seeding and CPU determinism, AdamW with warm-up and cosine decay, gradient clipping, EMA weights,
bf16 autocast and optional `torch.compile` on GPU, model selection and early stopping on the
validation metric (never the training loss), a progress bar, per-epoch curves (DVCLive), resume state in
`scratch/` after every epoch and on SIGTERM/SIGINT, and a guard that stops on a non-finite loss.

`fit` reads top to bottom: `restore` (resume state of the same fingerprint), then per epoch
`run_epoch` (`train_batch` per batch, `read_back` of losses and gradient norms to the host) and
`end_epoch` (validate the EMA weights, keep the best, save resume state, stop early), then `finish`
(save the best weights with the model's spec, write the summary). Where it stands is one `FitState`.

Batches are a pure function of (seed, epoch) and per-batch randomness of (seed, epoch, batch), so a
run resumed at any batch ends with the same weights as an uninterrupted run (CPU).

Under torchrun (`runtime.nproc` > 1, see `ups.training.distributed`) each rank computes the loss on
its part of every global batch, gradients are averaged by an all-reduce before clipping and the
step (PyTorch's DistributedDataParallel), and rank 0 alone writes resume state, curves, logs and the
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

from ups import checkpoints
from ups.config import RuntimeConfig, StageTraining, WandbConfig
from ups.errors import StageError
from ups.models.base import SpecModel
from ups.runtime import pick_device
from ups.stage_args import StagePaths
from ups.training import distributed
from ups.training.optim import EMA, build_optimizer, warmup_cosine
from ups.training.tracking import TrainingLog

SYNC_EVERY = 32  # batches between host read-backs on a GPU


class Interrupted(StageError):
    """Training was stopped by a signal; its resume state is saved."""


@dataclass
class Task:
    """What a training stage asks of `fit` (built by `ups.training.stage.task`)."""

    stage: str
    model: SpecModel  # saved with its spec, so the checkpoint rebuilds it
    training: StageTraining
    steps_per_epoch: int
    batches: Callable[[int, torch.Generator], Iterable[Any]]  # (epoch, generator) → batches
    loss: Callable[[nn.Module, Any, torch.Generator], torch.Tensor]  # (model, batch, generator) → loss
    validate: Callable[[nn.Module], dict[str, float]]  # EMA model → metrics; "selection" is minimised
    paths: StagePaths  # checkpoint, DVCLive directory, scratch
    fingerprint: str  # of the params and inputs; resume state of another fingerprint is not used
    log_config: dict = field(default_factory=dict)


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
        print(
            f"{stage}: warning: cannot read the resume state {path} ({type(exc).__name__}: {exc}); set it aside as {aside} and training from scratch",
            flush=True,
        )
        return None


@dataclass
class FitState:
    """Where a fit stands; saved in the resume state after every epoch and on a stop signal."""

    epoch: int = 0  # epochs finished
    batch: int = 0  # batches finished in the current epoch
    best: float = float("inf")  # the best validation "selection" so far
    best_epoch: int = -1
    best_state: dict | None = None  # the EMA weights of the best epoch (CPU)
    bad_epochs: int = 0  # epochs since the last improvement
    rows: list[dict] = field(default_factory=list)  # per-epoch metrics
    loss_sum: float = 0.0  # the running train loss of the current epoch
    loss_count: int = 0
    seconds: float = 0.0  # training time so far, over resumes


class _Fit:
    """One call of `fit`: the model on its device, optimizer, schedule, EMA, log and `FitState`."""

    def __init__(self, task: Task, runtime: RuntimeConfig, wandb_cfg: WandbConfig):
        self.task, self.t = task, task.training
        self.ctx = distributed.context()
        self.device = stage_device(runtime)
        distributed.init(self.ctx, self.device)
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        seed_everything(self.t.seed, self.device)
        self.model = task.model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.ema = EMA(self.model, self.t.ema)
        self.optimizer = build_optimizer(self.model, self.t)
        schedule = warmup_cosine(self.t.epochs * task.steps_per_epoch, self.t.warmup, self.t.lr_floor)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.step_model = compile_hot_paths(self.model) if runtime.compile else self.model
        self.autocast = self.device.type == "cuda" and runtime.bf16
        # On a GPU the host reads losses back every SYNC_EVERY batches only, so the device never waits
        # for Python; on CPU every batch, so a non-finite loss stops the stage before its update.
        self.sync_every = 1 if self.device.type == "cpu" else SYNC_EVERY
        self.resume_file = checkpoints.resume_path(task.stage, task.paths.scratch)
        self.state = FitState()
        self.wandb_cfg = wandb_cfg

    def say(self, message: str) -> None:
        if self.ctx.main:
            print(f"{self.task.stage}{message}", flush=True)

    # -- restore ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Resume from the stage's resume state when it was written for the same params and inputs."""
        saved = _load_resume(self.task.stage, self.resume_file) if self.resume_file.exists() else None
        if (
            saved is not None
            and saved.get("fingerprint") == self.task.fingerprint
            and saved.get("format") == checkpoints.FORMAT
        ):
            self.model.load_state_dict(saved["model"])
            self.ema.load_state_dict(saved["ema"])
            self.optimizer.load_state_dict(saved["optimizer"])
            self.scheduler.load_state_dict(saved["scheduler"])
            self.state = FitState(**saved["state"])
            self.say(f": resuming from epoch {self.state.epoch + 1}, batch {self.state.batch + 1} ({self.resume_file})")
        elif saved is not None:
            self.say(f": ignoring resume state from other params, inputs or code ({self.resume_file})")
        if self.ctx.active:
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            print(
                f"{self.task.stage}: rank {self.ctx.rank}/{self.ctx.world} on {self.device} ({backend}), 1/{self.ctx.world} of each global batch of {self.t.batch_size}",
                flush=True,
            )
        # After the resume: DDP broadcasts rank 0's weights.
        self.compute_loss = distributed.data_parallel(self.step_model, self.task.loss, self.ctx, self.device)
        self.log = TrainingLog(
            self.task.stage,
            self.task.paths.live,
            self.wandb_cfg,
            self.task.log_config,
            rows=self.state.rows,
            write=self.ctx.main,
        )

    def save_resume(self) -> None:
        if not self.ctx.main:
            return
        self.state.rows = self.log.rows
        payload = {
            "format": checkpoints.FORMAT,
            "fingerprint": self.task.fingerprint,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "state": vars(self.state),
        }
        checkpoints.save_atomic(payload, self.resume_file)

    # -- one epoch -------------------------------------------------------------------------------
    def nonfinite(self, what: str, value: float, epoch: int, where: str, consequence: str) -> StageError:
        rank = f" (rank {self.ctx.rank})" if self.ctx.active else ""
        last_good = self.resume_file if self.resume_file.exists() else "not written yet (no epoch finished)"
        return StageError(
            f"{self.task.stage}: {what} is {value} at epoch {epoch + 1}, {where}{rank}; {consequence}. "
            f"The last good resume state is {last_good}. Lower train.*.lr or check the data (`dvc repro validate`)."
        )

    def train_batch(self, batch, epoch: int, b: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One optimizer step; the loss and gradient norm stay on the device until read back."""
        part, weight = distributed.shard(batch, self.ctx)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.compute_loss(part, batch_generator(self.t.seed, epoch, b)) * weight
        checked = self.sync_every == 1
        if checked and not torch.isfinite(loss):
            raise self.nonfinite("loss", loss.item(), epoch, f"batch {b + 1}", "stopped before the update")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients arrive averaged across ranks
        norm = None
        if self.t.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, self.t.grad_clip)
            if checked and not torch.isfinite(norm):
                raise self.nonfinite("gradient norm", norm.item(), epoch, f"batch {b + 1}", "stopped before the update")
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update(self.model)
        return loss.detach().float(), None if norm is None else norm.detach().float()

    def read_back(self, losses: list[torch.Tensor], norms: list[torch.Tensor], epoch: int, b: int, bar: tqdm) -> None:
        """Losses and gradient norms of the last batches to the host (one transfer): the guard against
        non-finite values and the running loss."""
        values = torch.cat([torch.stack(losses), *([torch.stack(norms)] if norms else [])]).cpu()
        if not torch.isfinite(values).all():
            where = f"batches {b + 2 - len(losses)}…{b + 1}"
            raise self.nonfinite(
                "loss or gradient norm", float("nan"), epoch, where, "weights since then are not saved"
            )
        loss_values = values[: len(losses)]
        self.state.loss_sum += float(loss_values.sum())
        self.state.loss_count += len(loss_values)
        bar.set_postfix(
            loss=f"{float(loss_values[-1]):.3e}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}", refresh=False
        )
        losses.clear()
        norms.clear()

    def run_epoch(self, epoch: int, stop: _StopOnSignal, started: float) -> None:
        self.model.train()
        batches = list(self.task.batches(epoch, torch.Generator().manual_seed(self.t.seed * 7919 + epoch)))
        desc = f"{self.task.stage} {epoch + 1}/{self.t.epochs}"
        bar = tqdm(
            total=len(batches),
            initial=self.state.batch,
            desc=desc,
            unit="batch",
            dynamic_ncols=True,
            leave=False,
            mininterval=1.0,
            disable=not self.ctx.main,
        )
        losses: list[torch.Tensor] = []
        norms: list[torch.Tensor] = []  # read back for their finiteness only
        for b in range(self.state.batch, len(batches)):
            loss, norm = self.train_batch(batches[b], epoch, b)
            losses.append(loss)
            if norm is not None:
                norms.append(norm)
            self.state.batch = b + 1
            bar.update(1)
            if self.state.batch % self.sync_every and self.state.batch != len(batches):
                continue
            self.read_back(losses, norms, epoch, b, bar)
            if distributed.any_rank(stop.signal is not None, self.ctx, self.device):
                self.state.seconds = time.perf_counter() - started
                self.save_resume()
                bar.close()
                name = signal.Signals(stop.signal).name if stop.signal is not None else "a signal to another rank"
                raise Interrupted(
                    f"{self.task.stage}: stopped by {name} at epoch {epoch + 1}, batch {b + 1}; resume state saved to {self.resume_file}. Rerun the stage to resume."
                )
        bar.close()

    # -- end of epoch ----------------------------------------------------------------------------
    def end_epoch(self, epoch: int, started: float) -> bool:
        """Validate the EMA weights, log, keep the best, save resume state; True to stop early."""
        st = self.state
        metrics = self.task.validate(self.ema.model)
        train_loss = st.loss_sum / max(1, st.loss_count)
        st.seconds = time.perf_counter() - started
        self.log.log(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                **metrics,
                "lr": self.scheduler.get_last_lr()[0],
                "seconds": round(st.seconds, 2),
            }
        )
        improved = metrics["selection"] < st.best
        if improved:
            st.best, st.best_epoch, st.bad_epochs = metrics["selection"], epoch + 1, 0
            st.best_state = {k: v.detach().cpu().clone() for k, v in self.ema.model.state_dict().items()}
        else:
            st.bad_epochs += 1
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "selection")
        self.say(f" epoch {epoch + 1}/{self.t.epochs}: train loss {train_loss:.4g}  {shown}{'  *' if improved else ''}")
        st.epoch, st.batch, st.loss_sum, st.loss_count = epoch + 1, 0, 0.0, 0
        self.save_resume()
        if st.bad_epochs >= self.t.patience:
            self.say(f": early stop, no validation improvement for {self.t.patience} epochs")
            return True
        return False

    # -- finish ----------------------------------------------------------------------------------
    def finish(self) -> dict:
        """Save the best EMA weights with the model's spec; the model object holds them from here on."""
        st = self.state
        if st.best_state is None:
            raise StageError(f"{self.task.stage}: no epoch finished; nothing to save")
        if self.ctx.active:  # rank 0 alone goes on to write; the others are done
            distributed.finish(self.ctx)
            if not self.ctx.main:
                raise SystemExit(0)
        payload = {**self.model.spec, "state_dict": st.best_state, "best_epoch": st.best_epoch, "selection": st.best}
        checkpoints.save_atomic(payload, self.task.paths.checkpoint)
        best_row = self.log.rows[st.best_epoch - 1]
        summary = {
            "best_epoch": st.best_epoch,
            "epochs_run": st.epoch,
            "train_seconds": round(st.seconds, 1),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "device": self.device.type,
            "processes": self.ctx.world,
            **{f"best_{k}": v for k, v in best_row.items() if k not in ("epoch", "lr", "seconds")},
        }
        self.log.finish(summary)
        self.resume_file.unlink(missing_ok=True)
        self.model.load_state_dict(st.best_state)
        return summary


def fit(task: Task, runtime: RuntimeConfig, wandb_cfg: WandbConfig) -> dict:
    """Train, select on validation, save the best EMA weights to `task.paths.checkpoint`."""
    run = _Fit(task, runtime, wandb_cfg)
    run.restore()
    started = time.perf_counter() - run.state.seconds
    with _StopOnSignal() as stop:
        for epoch in range(run.state.epoch, task.training.epochs):
            run.run_epoch(epoch, stop, started)
            if run.end_epoch(epoch, started):
                break
    return run.finish()
