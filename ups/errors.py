"""How stage entry points and the `ups` command report expected failures.

A bad parameter, a missing or corrupt data file or a non-finite loss is the user's to fix: it is
printed as one clear message (no stack trace) and the process exits with status 1. Anything else is
a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from ups.config import ConfigError
from ups.data.dataset import DataError


class StageError(RuntimeError):
    """A stage cannot continue; the message says why and what to do."""


EXPECTED = (ConfigError, DataError, StageError, FileNotFoundError)


def run_entry_point(main: Callable[[], object], name: str) -> None:
    try:
        main()
    except EXPECTED as exc:
        print(f"\n{name}: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"\n{name}: interrupted", file=sys.stderr)
        sys.exit(130)
