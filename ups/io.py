"""Atomic writes: a temporary file in the destination folder, then a rename."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix) to write; on success rename it to `path`.

    A crash or an exception leaves `path` as it was and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path | str, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_stage_json(path: Path | str, stage: str, required: tuple[str, ...] = ()) -> dict:
    """A JSON file a pipeline stage wrote (`metrics/eval_small.json`, …). Missing, unreadable or
    incomplete, it raises `StageError` naming the file and the stage to rerun, not a traceback."""
    from ups.errors import StageError

    path = Path(path)
    rerun = f"rerun `dvc repro {stage}`"
    if not path.exists():
        raise StageError(f"{path} does not exist: {rerun}")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StageError(f"{path} is not valid JSON ({exc}): {rerun}") from exc
    missing = [k for k in required if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise StageError(
            f"{path} lacks {', '.join(repr(k) for k in missing)}, so it was not written by this version of `{stage}`: {rerun}"
        )
    return obj
