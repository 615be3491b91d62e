"""The full evaluation's predictions as HDF5, so that anyone can recompute every metric.

Layout of `eval_full`'s file:

    /target            (N, T, X) float32   the true frames each method predicts (input frames excluded)
    /inputs            (N, H, X) float32   the input frames every method was given
    /x (X,), /t (H+T,), /nu (N,)
    /<method>/prediction  (N, T, X) float32
    /<method>/target      hard link to /target (same data, stored once)
    /<method>/members     (M, N, T, X) float32, stochastic methods only: the sample paths
    attributes: input_frames = H, split, methods (comma-separated); per method its attributes

`recompute(path)` reads it back and returns each method's metrics, as `eval_full` computed them.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from ups.eval.metrics import ensemble_scores, pdebench_metrics
from ups.io import atomic_path


def write_predictions(
    path: Path | str,
    split: str,
    inputs: torch.Tensor,
    target: torch.Tensor,
    x: torch.Tensor,
    t: np.ndarray,
    nu: torch.Tensor,
    predictions: dict,
    skipped: str | None = None,
) -> None:
    """Write atomically; `predictions` maps a method to its `Prediction`. `skipped` records why it is empty."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["split"] = split
        f.attrs["input_frames"] = int(inputs.shape[1]) if inputs is not None else 0
        f.attrs["methods"] = ",".join(predictions)
        if skipped is not None:
            f.attrs["skipped"] = skipped
        if target is not None:
            f["target"] = target.float().numpy()
            f["inputs"] = inputs.float().numpy()
            f["x"], f["t"], f["nu"] = x.numpy(), np.asarray(t), nu.numpy()
        for name, p in predictions.items():
            g = f.create_group(name)
            g["prediction"] = p.prediction.float().numpy()
            g["target"] = f["target"]  # a hard link: the truth is stored once
            if p.members is not None:
                g.create_dataset(
                    "members", data=p.members.float().numpy(), compression="gzip", compression_opts=4, shuffle=True
                )
            for key, value in p.extra.items():
                g.attrs[key] = value


def recompute(path: Path | str) -> dict[str, dict[str, float]]:
    """Every method's field metrics (and ensemble scores) from the predictions file alone.

    A missing file, a file that is not HDF5, one without eval_full's layout, or non-finite
    predictions raise `DataError` naming the file, the problem and the stage that writes it."""
    from ups.data.dataset import DataError

    path = Path(path)
    rerun = "rerun `dvc repro eval_full` (or `dvc pull` it)"
    if not path.exists():
        raise DataError(f"{path}: no such predictions file; {rerun}")
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file, so not eval_full's predictions; {rerun}")
    out = {}
    with h5py.File(path, "r") as f:
        if "skipped" in f.attrs:
            return {}
        if "methods" not in f.attrs or "target" not in f:
            raise DataError(f"{path}: not eval_full's layout (no 'methods' attribute or 'target' dataset); {rerun}")
        for name in str(f.attrs["methods"]).split(","):
            if name not in f or "prediction" not in f[name] or "target" not in f[name]:
                raise DataError(f"{path}: method {name!r} has no '{name}/prediction' and '{name}/target'; {rerun}")
            g = f[name]
            pred, target = torch.from_numpy(g["prediction"][()]), torch.from_numpy(g["target"][()])
            if pred.shape != target.shape:
                raise DataError(
                    f"{path}: {name}/prediction has shape {tuple(pred.shape)}, the target {tuple(target.shape)}; {rerun}"
                )
            bad = int((~torch.isfinite(pred)).sum())
            if bad:
                raise DataError(
                    f"{path}: {name}/prediction holds {bad} non-finite values (NaN or Inf); its metrics are undefined"
                )
            out[name] = pdebench_metrics(pred, target)
            if "members" in g:
                out[name].update(ensemble_scores(torch.from_numpy(g["members"][()]), target))
    return out
