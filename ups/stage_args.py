"""How every stage entry point (`stages/*.py`) reads its command line, the one dvc.yaml writes.

Each path is a `--name` option (`--per-frame` for `per_frame`), required unless listed as optional;
`--params` (default params.yaml) names the parameter file. dvc.yaml is the only place where the paths
themselves are written down. A training stage's paths travel as one `StagePaths`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

from ups.checkpoints import SCRATCH


@dataclass(frozen=True)
class StagePaths:
    data: Path | None = None  # the data folder (generate's output)
    latents: Path | None = None  # encode_latents' output
    autoencoder: Path | None = None  # trained checkpoints the stage reads
    operator: Path | None = None
    teacher: Path | None = None  # the diffusion residual, for the consistency student
    checkpoint: Path | None = None  # what the stage writes: its model,
    live: Path | None = None  # and its DVCLive directory (per-epoch curves, the summary)
    scratch: Path = SCRATCH  # resume state, outside DVC's outputs

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, Path(value))


def stage_arguments(
    description: str | None,
    required: Iterable[str],
    optional: Iterable[str] = (),
    lists: Iterable[str] = (),
    argv: list[str] | None = None,
) -> argparse.Namespace:
    """Parse `--params` and one `--name` option per name; `lists` take one or more values."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", default="params.yaml", help="the parameter file (default params.yaml)")
    for name in required:
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True)
    for name in optional:
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)
    for name in lists:
        ap.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs="+", required=True)
    return ap.parse_args(argv)


def training_arguments(
    description: str | None, inputs: Iterable[str], argv: list[str] | None = None
) -> tuple[argparse.Namespace, StagePaths]:
    """A training stage's command line: its `inputs` (data, latents, checkpoints it reads) and the
    checkpoint and DVCLive directory (per-epoch curves, summary) it writes, as `StagePaths`."""
    names = (*inputs, "checkpoint", "live")
    args = stage_arguments(description, names, argv=argv)
    return args, StagePaths(**{name: getattr(args, name) for name in names})
