"""Per-epoch metrics: a TSV that DVC plots, mirrored to Weights & Biases when enabled.

DVC's files are the source of truth. W&B gets the same rows, its run named after `DVC_EXP_NAME`
(set by `dvc exp run`), in the mode of `WANDB_MODE` (offline unless set); it never stores checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

from ups.config import WandbConfig
from ups.io import write_text_atomic


class EpochLog:
    def __init__(
        self,
        stage: str,
        path: Path | str,
        wandb_cfg: WandbConfig,
        config: dict,
        rows: list[dict] | None = None,
        write: bool = True,
    ):
        """`write=False` (DDP ranks other than 0) keeps the rows in memory only."""
        self.stage = stage
        self.path = Path(path)
        self.rows: list[dict] = list(rows or [])
        self.run = None
        self.write = write
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

    def log(self, row: dict) -> None:
        self.rows.append(row)
        if not self.write:
            return
        columns = list(self.rows[0])
        lines = ["\t".join(columns)] + ["\t".join(_fmt(r.get(c)) for c in columns) for r in self.rows]
        write_text_atomic(self.path, "\n".join(lines) + "\n")
        if self.run is not None:
            self.run.log({f"{self.stage}/{k}": v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))

    def finish(self, summary: dict) -> None:
        if self.run is not None:
            self.run.summary.update(
                {f"{self.stage}/{k}": v for k, v in summary.items() if isinstance(v, (int, float, str))}
            )
            self.run.finish()
            self.run = None


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
