"""Per-epoch metrics and the stage summary through DVCLive, mirrored to Weights & Biases when enabled.

Each training stage owns one DVCLive directory (`--live metrics/<stage>`, a DVC output):

- `metrics.json`: DVCLive's summary. After every epoch it holds that epoch's values and `step` (the
  epoch), so `dvc exp show` follows a running (also a queued) experiment epoch by epoch; when the
  stage ends, the stage summary (best epoch, seconds, diagnostics) is added to it. It is what
  `dvc exp show`, `dvc metrics diff` and the gate read.
- `plots/metrics/<name>.tsv`: one curve per metric (`step` = epoch), what `dvc plots show` draws.

DVCLive writes nothing else: no dvc.yaml edits (dvc.yaml declares these files), no experiment of its
own (`dvc exp run` makes the experiment). W&B gets the same rows, its run named after `DVC_EXP_NAME`
(set by `dvc exp run`), in the mode of `WANDB_MODE` (offline unless set); it never stores
checkpoints. Under DDP only rank 0 writes (`write=False` elsewhere keeps the rows in memory).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ups.config import WandbConfig


def open_live(live_dir: Path | str, resume: bool = False):
    """A DVCLive logger on `live_dir` that writes only its own files. `resume=False` clears the
    directory's earlier metrics and curves; `resume=True` keeps them and goes on at the same step."""
    from dvclive import Live

    logging.getLogger("dvclive").setLevel(logging.WARNING)  # no "Logging to experiment …" per stage
    live = Live(str(live_dir), resume=resume, dvcyaml=None, save_dvc_exp=False, report=None)
    if resume:
        live.step = live.read_step()  # DVCLive would go on at the next step; the summary belongs to this one
    return live


class TrainingLog:
    def __init__(
        self,
        stage: str,
        live_dir: Path | str,
        wandb_cfg: WandbConfig,
        config: dict,
        rows: list[dict] | None = None,
        write: bool = True,
    ):
        """`rows`: the epochs already run (a resumed stage); they are written again, since DVC removes
        the stage's outputs before it runs. `write=False` (DDP ranks other than 0) keeps rows in memory."""
        self.stage = stage
        self.rows: list[dict] = []
        self.live = open_live(live_dir) if write else None
        self.run = None
        if wandb_cfg.enabled and write:
            import wandb

            name = os.environ.get("DVC_EXP_NAME") or stage
            self.run = wandb.init(
                project=wandb_cfg.project,
                entity=wandb_cfg.entity or None,
                name=f"{name}/{stage}",
                group=name,
                job_type=stage,
                mode=os.environ.get("WANDB_MODE", "offline"),
                config=config,
                reinit="finish_previous",
            )
        for row in rows or []:
            self._write(row, mirror=False)

    def log(self, row: dict) -> None:
        """One epoch's values (`row["epoch"]` counts from 1): a point on each curve, the live summary."""
        self._write(row, mirror=True)

    def _write(self, row: dict, mirror: bool) -> None:
        self.rows.append(row)
        if self.live is None:
            return
        self.live.step = int(row["epoch"])
        for name, value in row.items():
            if name != "epoch" and value is not None:
                self.live.log_metric(name, value)
        self.live.make_summary()
        if mirror and self.run is not None:
            self.run.log({f"{self.stage}/{k}": v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def finish(self, summary: dict) -> None:
        """The training summary into the live summary (the stage may add diagnostics later with
        `write_summary`); the W&B run ends with it."""
        if self.live is not None:
            self.live.summary.update(summary)
            self.live.make_summary()
        if self.run is not None:
            self.run.summary.update(
                {f"{self.stage}/{k}": v for k, v in summary.items() if isinstance(v, (int, float, str))}
            )
            self.run.finish()
            self.run = None


def write_summary(live_dir: Path | str, summary: dict) -> None:
    """Add `summary` to the stage's DVCLive summary (`metrics.json`, what `dvc exp show` reads)."""
    live = open_live(live_dir, resume=True)
    live.summary.update(summary)
    live.make_summary()
