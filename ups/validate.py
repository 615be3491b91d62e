"""The validate stage: everything that can be checked before expensive work (SPEC §5).

Parameters are validated when loaded (`ups.config`); here the data is checked and, through
`ups.training.dry_run`, every model is built, run forward and backward once, and timed, giving
parameter counts and a time/cost estimate for each training stage.
"""

from __future__ import annotations

import time
from pathlib import Path

from ups.config import Config
from ups.data.checks import check_dataset
from ups.io import write_json_atomic
from ups.training.dry_run import dry_run


def validate(cfg: Config, data_dir: Path | str, out: Path | str) -> dict:
    started = time.perf_counter()
    report = {"params": "ok", "data": check_dataset(data_dir, cfg.data)}
    report.update(dry_run(cfg, report["data"]))
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_json_atomic(out, report)
    return report
