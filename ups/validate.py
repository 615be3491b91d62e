"""The validate stage: everything that can be checked before expensive work.

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


def validate(cfg: Config, data_dir: Path | str, out: Path | str, verdict: Path | str | None = None) -> dict:
    """Check everything; write the report (`out`) and, when all passed, the verdict file.

    The verdict holds only what was checked about the data, never timings, so it is byte-identical
    as long as the data is: training stages depend on it, which orders them after validate without
    retraining when validate reruns for an unrelated parameter.
    """
    started = time.perf_counter()
    report = {"params": "ok", "data": check_dataset(data_dir, cfg.data)}
    report.update(dry_run(cfg, report["data"]))
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_json_atomic(out, report)
    if verdict is not None:
        write_json_atomic(verdict, {"validated": True, "data": report["data"]})
    return report
