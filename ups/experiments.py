"""Experiment files: `experiments/NAME.yaml`, one per planned experiment (SPEC §9).

    name: latent64
    hypothesis: a 64-channel latent halves the autoencoder error and lowers rollout nRMSE
    params:            # flat dotted keys, exactly what `dvc exp run -S` would set
      latent.dim: 64
    result: {...}      # written once it ran

`load_experiment` validates the file: the name is safe for a shell, a path and a label, and every
override names a real parameter with a valid value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ups.config import ConfigError, load_config

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(
            [f"experiment name {name!r} is not allowed: use 1–63 letters, digits, '-' or '_', starting with a letter or digit"],
            source="experiment",
        )
    return name


@dataclass
class Experiment:
    name: str
    hypothesis: str
    params: dict[str, Any]
    result: dict[str, Any] | None = None
    path: Path | None = field(default=None, compare=False)

    def set_args(self) -> list[str]:
        """The `-S key=value` arguments for `dvc exp run`."""
        out = []
        for key, value in self.params.items():
            out += ["-S", f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"]
        return out


def load_experiment(path: Path | str, params_file: Path | str = "params.yaml") -> Experiment:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such experiment file")
    raw = yaml.safe_load(path.read_text()) or {}
    problems = [f"{path}: missing '{k}'" for k in ("name", "hypothesis", "params") if k not in raw]
    unknown = set(raw) - {"name", "hypothesis", "params", "result"}
    problems += [f"{path}: unknown field '{k}' (allowed: name, hypothesis, params, result)" for k in sorted(unknown)]
    if problems:
        raise ConfigError(problems, source=str(path))
    if not isinstance(raw["params"], dict):
        raise ConfigError([f"{path}: params must be a mapping of dotted keys to values"], source=str(path))
    exp = Experiment(name=validate_name(raw["name"]), hypothesis=str(raw["hypothesis"]), params=dict(raw["params"]), result=raw.get("result"), path=path)
    load_config(params_file, exp.params)  # every override must be a valid parameter
    return exp
