"""Dry run: build every registered model, run one forward/backward step, time it, estimate cost.

The estimate is measured on this machine (CPU here, GPU on a rented instance): seconds per batch ×
steps per epoch × epochs, divided among `runtime.nproc` processes, and priced at
`vast.price_estimate` USD per GPU-hour × the GPUs in use.
"""

from __future__ import annotations

import time

import torch

from ups.config import Config
from ups.training import autoencoder, consistency, diff_residual, operator, steady_prior

PROBES = {
    m.STAGE: m.PROBE for m in (autoencoder, operator, diff_residual, consistency, steady_prior)
}  # in pipeline order

TIMED_STEPS = 3


def _time_step(cfg: Config, probe, device: str | torch.device = "cpu") -> tuple[dict[str, int], float]:
    """Parameter counts and seconds per training step of one stage's models, on `device`: the models
    are built there and the probe's inputs are made there (it is the default device meanwhile)."""
    device = torch.device(device)
    torch.manual_seed(0)
    with torch.device(device):
        return _time_step_here(cfg, probe, device)


def _time_step_here(cfg: Config, probe, device: torch.device) -> tuple[dict[str, int], float]:
    models = {name: m.to(device) for name, m in probe.models(cfg).items()}
    params = [p for m in models.values() for p in m.parameters() if p.requires_grad]
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    loss = probe.step(cfg, models)  # warm-up step, also checks that gradients flow
    if not torch.isfinite(loss):
        raise RuntimeError(f"{probe.stage}: the dry-run loss is {loss.item()}; check the model parameters")
    loss.backward()
    missing = [n for m in models.values() for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    if params and len(missing) == len(params):
        raise RuntimeError(f"{probe.stage}: no parameter received a gradient")
    autocast = device.type == "cuda" and cfg.runtime.bf16  # as `fit` trains there
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(TIMED_STEPS):
        for p in params:
            p.grad = None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = probe.step(cfg, models)
        loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return counts, (time.perf_counter() - started) / TIMED_STEPS


def dry_run(cfg: Config, data_summary: dict) -> dict:
    device = "cuda" if (cfg.runtime.device != "cpu" and torch.cuda.is_available()) else "cpu"
    gpus = cfg.runtime.nproc if device == "cuda" else 0
    stages = {}
    total_seconds = 0.0
    for name, probe in PROBES.items():
        counts, sec_per_batch = _time_step(cfg, probe, device)
        training = probe.training(cfg)
        steps = probe.steps_per_epoch(cfg, data_summary)
        seconds = sec_per_batch * steps * training.epochs / max(1, cfg.runtime.nproc)
        total_seconds += seconds
        stages[name] = {
            "parameters": counts,
            "seconds_per_batch": round(sec_per_batch, 5),
            "batch_size": training.batch_size,
            "steps_per_epoch": steps,
            "epochs": training.epochs,
            "estimated_seconds": round(seconds, 1),
        }
    hours = total_seconds / 3600.0
    return {
        "models": stages,
        "estimate": {
            "device": device,
            "processes": cfg.runtime.nproc,
            "training_seconds": round(total_seconds, 1),
            "gpu_hours": round(hours * max(gpus, cfg.vast.num_gpus), 4),
            "usd_at_price_estimate": round(hours * max(gpus, cfg.vast.num_gpus) * cfg.vast.price_estimate, 4),
            "price_estimate_usd_per_gpu_hour": cfg.vast.price_estimate,
            "note": "measured on this machine; a rented GPU is faster: rerun validate there for its own estimate",
        },
    }
