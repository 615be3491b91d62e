"""Space-time pictures of predicted vs true fields, written as PNG for `dvc plots show`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ups.io import atomic_path  # noqa: E402


def space_time_png(path: Path | str, x: np.ndarray, t: np.ndarray, fields: dict[str, np.ndarray], title: str) -> None:
    """One panel per field (T, X) on a shared colour scale, plus the error of each prediction.

    `fields` starts with the truth (key "true"); every other entry is a prediction of the same frames.
    """
    truth = fields["true"]
    names = list(fields)
    errors = {f"{n} − true": fields[n] - truth for n in names[1:]}
    panels = {**fields, **errors}
    vmax = float(np.abs(truth).max()) or 1.0
    emax = max((float(np.abs(e).max()) for e in errors.values()), default=1.0) or 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0), sharey=True, constrained_layout=True)
    axes = np.atleast_1d(axes)
    extent = (float(x[0]), float(x[-1]), float(t[0]), float(t[-1]))
    for ax, (name, field) in zip(axes, panels.items(), strict=True):
        is_error = name in errors
        lim = emax if is_error else vmax
        im = ax.imshow(
            field,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="PuOr" if is_error else "RdBu_r",
            vmin=-lim,
            vmax=lim,
            interpolation="nearest",
        )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x")
        fig.colorbar(im, ax=ax, shrink=0.8)
    axes[0].set_ylabel("t")
    fig.suptitle(title, fontsize=10)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)


def message_png(path: Path | str, text: str) -> None:
    """A picture that says why there is no picture (e.g. eval_full skipped by the proxy gate)."""
    fig = plt.figure(figsize=(6, 1.5))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
