"""Burgers-S generation, its files, the checks of validate, and loading real PDEBench files."""

import h5py
import numpy as np
import pytest

from ups.data.checks import check_dataset
from ups.data.dataset import SPLITS, DataError, load_trajectories, split_path, stats_path
from ups.data.generate import generate_split
from ups.data.normalization import Normalization


def test_files_have_pdebench_layout_and_provenance(smoke_data, smoke_cfg):
    d = smoke_cfg.data
    for split in SPLITS:
        with h5py.File(split_path(smoke_data, split)) as f:
            n = d.split_size(split) * len(d.nu)
            assert f["tensor"].shape == (n, d.frames, d.grid) and f["tensor"].dtype == np.float32
            assert f["x-coordinate"].shape == (d.grid,) and f["t-coordinate"].shape == (d.frames,)
            assert f["nu"].shape == (n,) and f["seed"].shape == (n, 4)
            for key in ("equation", "convention", "domain", "generator", "seed", "split", "solver_grid"):
                assert key in f.attrs, key
            assert f.attrs["split"] == split
            np.testing.assert_allclose(f["t-coordinate"][...], np.linspace(0, d.t_final, d.frames), atol=1e-6)


def test_generation_is_deterministic_and_independent_of_workers(smoke_cfg):
    a = generate_split(smoke_cfg.data, "val", workers=1)
    b = generate_split(smoke_cfg.data, "val", workers=2)
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.seeds, b.seeds)


def test_splits_share_no_trajectory(smoke_data):
    loaded = {s: load_trajectories(split_path(smoke_data, s)) for s in SPLITS}
    seeds = {s: {tuple(r) for r in t.seeds.tolist()} for s, t in loaded.items()}
    ics = {s: {row.tobytes() for row in t.u[:, 0]} for s, t in loaded.items()}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            assert not seeds[a] & seeds[b]
            assert not ics[a] & ics[b]
    # and within a split every initial condition is different
    assert all(len(ics[s]) == len(loaded[s]) for s in SPLITS)


def test_statistics_come_from_train_only(smoke_data):
    stats = Normalization.load(stats_path(smoke_data))
    train = load_trajectories(split_path(smoke_data, "train")).u.astype(np.float64)
    everything = np.concatenate(
        [load_trajectories(split_path(smoke_data, s)).u.astype(np.float64).ravel() for s in SPLITS]
    )
    assert stats.source == "train"
    assert stats.mean == pytest.approx(train.mean(), rel=1e-9) and stats.std == pytest.approx(train.std(), rel=1e-9)
    assert stats.count == train.size
    assert stats.mean != pytest.approx(everything.mean(), rel=1e-6)


def test_check_dataset_passes_on_generated_data(smoke_data, smoke_cfg):
    summary = check_dataset(smoke_data, smoke_cfg.data)
    assert summary["trajectories"] == {"train": 16, "val": 8, "test": 8}


def _copy_data(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_nan_is_reported_with_file_and_trajectory(smoke_data, smoke_cfg, tmp_path):
    data = _copy_data(smoke_data, tmp_path / "data")
    with h5py.File(split_path(data, "val"), "r+") as f:
        f["tensor"][5, 3, 10] = np.nan
    with pytest.raises(DataError) as err:
        check_dataset(data, smoke_cfg.data)
    assert "val.h5: trajectory 5 (frame 3) contains NaN or Inf" in str(err.value)
    from conftest import run

    info = run(["ups", "data", "info", str(split_path(data, "val"))], tmp_path, check=False)
    assert (
        info.returncode == 1
        and "1 non-finite values (NaN or Inf) in 1 trajectories (first: [5])" in info.stderr
        and "Traceback" not in info.stderr
    )
    assert run(["ups", "data", "info", str(split_path(smoke_data, "val"))], tmp_path).returncode == 0


def test_train_stats_that_are_not_from_train_are_refused(smoke_data, smoke_cfg, tmp_path):
    data = _copy_data(smoke_data, tmp_path / "data")
    val = load_trajectories(split_path(data, "val")).u
    Normalization.from_train(val).save(stats_path(data))
    with pytest.raises(DataError, match="are not those of the train split"):
        check_dataset(data, smoke_cfg.data)


def test_wrong_shape_is_reported(smoke_data, smoke_cfg, tmp_path):
    from conftest import ROOT

    from ups.config import load_config

    cfg = load_config(
        ROOT / "params.yaml",
        {
            "data.splits.train": 16,
            "data.splits.val": 8,
            "data.splits.test": 8,
            "data.grid": 32,
            "data.frames": 11,
            "data.t_final": 0.5,
            "data.solver.grid": 256,
            "latent.tokens": 8,
        },
    )
    with pytest.raises(DataError, match=r"tensor has shape \(16, 11, 64\), params.yaml expects \(16, 11, 32\)"):
        check_dataset(smoke_data, cfg.data)


def test_corrupt_file_is_reported(smoke_data, smoke_cfg, tmp_path):
    data = _copy_data(smoke_data, tmp_path / "data")
    split_path(data, "test").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="test.h5: not a readable HDF5 file"):
        check_dataset(data, smoke_cfg.data)


def _pdebench_file(path, x):
    """A file in PDEBench's layout: 201 frames (t-coordinate has 202 entries), 1024 points."""
    rng = np.random.default_rng(0)
    tensor = rng.standard_normal((3, 201, 1024)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["tensor"] = tensor
        f["x-coordinate"] = x.astype(np.float32)
        f["t-coordinate"] = np.linspace(0, 2.01, 202).astype(np.float32)
    return tensor


def test_pdebench_file_loads_and_subsamples(tmp_path):
    path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    tensor = _pdebench_file(path, (np.arange(1024) + 0.5) / 1024)
    traj = load_trajectories(path, frames=41, grid=256)
    assert traj.u.shape == (3, 41, 256)
    np.testing.assert_array_equal(traj.u, tensor[:, ::5, ::4])
    np.testing.assert_allclose(traj.t[[0, 1, -1]], [0.0, 0.05, 2.0], atol=1e-6)
    assert np.all(traj.nu == np.float32(0.01))  # from the file name
    assert traj.dt == pytest.approx(0.05, abs=1e-6)


def test_pdebench_legacy_domain_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    _pdebench_file(path, np.linspace(-1, 1, 1024, endpoint=False) + 1 / 1024)
    with pytest.raises(DataError) as err:
        load_trajectories(path, frames=41, grid=256)
    message = str(err.value)
    assert "the domain (-1, 1) of PDEBench's old" in message and "allow_legacy_domain: true" in message
    assert load_trajectories(path, frames=41, grid=256, allow_legacy_domain=True).u.shape == (3, 41, 256)


def test_uneven_subsampling_is_refused(tmp_path):
    path = tmp_path / "1D_Burgers_Sols_Nu0.01.hdf5"
    _pdebench_file(path, (np.arange(1024) + 0.5) / 1024)
    with pytest.raises(DataError, match="cannot be subsampled evenly to 300"):
        load_trajectories(path, grid=300)
    with pytest.raises(DataError, match="cannot be subsampled evenly to 30;"):
        load_trajectories(path, frames=30)
