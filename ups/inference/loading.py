"""Rebuild models from their self-describing checkpoints (no params.yaml needed)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from ups.config import Config, DecoderConfig, EncoderConfig, LatentConfig, OperatorConfig
from ups.models.autoencoder import Autoencoder
from ups.models.operator import LatentOperator
from ups.training import checkpoint as ckpt


def autoencoder_spec(cfg: Config, mean: float, std: float) -> dict:
    return {
        "kind": "autoencoder",
        "latent": asdict(cfg.latent),
        "encoder": asdict(cfg.encoder),
        "decoder": asdict(cfg.decoder),
        "mean": mean,
        "std": std,
        "length": cfg.data.length,
        "points_per_token": cfg.data.grid // cfg.latent.tokens,
    }


def build_autoencoder(spec: dict) -> Autoencoder:
    return Autoencoder(
        LatentConfig(**spec["latent"]), EncoderConfig(**spec["encoder"]), DecoderConfig(**spec["decoder"]),
        spec["mean"], spec["std"], spec["length"], spec["points_per_token"],
    )


def operator_spec(cfg: Config) -> dict:
    return {"kind": "operator", "latent": asdict(cfg.latent), "operator": asdict(cfg.operator), "dt": cfg.data.dt}


def build_operator(spec: dict) -> LatentOperator:
    return LatentOperator(LatentConfig(**spec["latent"]), OperatorConfig(**spec["operator"]))


def load_autoencoder(path: Path | str, device: str | torch.device = "cpu") -> Autoencoder:
    c = ckpt.load(path, "autoencoder")
    model = build_autoencoder(c)
    model.load_state_dict(c["state_dict"])
    return model.to(device).eval()


def load_operator(path: Path | str, device: str | torch.device = "cpu") -> tuple[LatentOperator, dict]:
    c = ckpt.load(path, "operator")
    model = build_operator(c)
    model.load_state_dict(c["state_dict"])
    return model.to(device).eval(), c
