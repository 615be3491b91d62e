import dataclasses

import pytest
from conftest import ROOT

from ups.config import ConfigError, config_from_dict, load_config, load_raw, reference_markdown


def test_default_params_load_and_derive():
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.data.dt == pytest.approx(cfg.data.t_final / (cfg.data.frames - 1))
    assert cfg.latent.size == cfg.latent.tokens * cfg.latent.dim
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.latent.dim = 3


def test_unknown_key_names_the_closest_valid_key():
    raw = load_raw(ROOT / "params.yaml")
    raw["latent"]["dimm"] = 64
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert "latent.dimm: unknown key; did you mean 'latent.dim'?" in str(err.value)


def test_key_in_wrong_section_is_pointed_to():
    raw = load_raw(ROOT / "params.yaml")
    raw["data"]["tokens"] = 8
    with pytest.raises(ConfigError, match="did you mean 'latent.tokens'"):
        config_from_dict(raw)


def test_negative_learning_rate_names_key_and_range():
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "params.yaml", {"train.operator.lr": -0.001})
    assert "train.operator.lr: -0.001 is out of range; allowed: > 0.0 and ≤ 1.0" in str(err.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("data.grid", "256", "data.grid: expected an integer, got '256'"),
        ("data.grid", True, "data.grid: expected an integer"),
        ("runtime.compile", "yes", "runtime.compile: expected true or false"),
        (
            "diffusion.schedule",
            "sigmoid",
            "diffusion.schedule: 'sigmoid' is not allowed; choose one of 'cosine', 'linear'",
        ),
        ("data.nu", [0.01, -1.0], "data.nu[1]: -1.0 is out of range"),
        ("data.nu", [], "data.nu: expected a non-empty list"),
    ],
)
def test_wrong_types_and_values(key, value, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(ROOT / "params.yaml", {key: value})
    assert message in str(err.value)


def test_all_problems_reported_at_once():
    raw = load_raw(ROOT / "params.yaml")
    raw["latent"]["dimm"] = 1
    raw["train"]["autoencoder"]["lr"] = 0.0
    del raw["encoder"]["width"]
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert len(err.value.problems) == 3
    assert any("encoder.width: missing" in p for p in err.value.problems)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"data.solver.grid": 1000}, "data.solver.grid: 1000 is not a multiple of data.grid (256)"),
        ({"latent.tokens": 12}, "latent.tokens: 12 must divide data.grid (256)"),
        ({"operator.levels": 8}, "latent.tokens (64) must be divisible by 128"),
        ({"operator.heads": 3}, "operator.heads: 3 must divide operator.width (64)"),
        ({"eval.history": 41}, "eval.history: 41 must leave frames to predict"),
    ],
)
def test_cross_checks(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "params.yaml", overrides)
    assert message in str(err.value)


def test_overrides_of_unknown_keys_are_refused():
    with pytest.raises(ConfigError, match="did you mean 'latent.dim'"):
        load_config(ROOT / "params.yaml", {"latent.dimm": 64})


def test_smoke_experiment_is_valid(smoke_cfg):
    assert smoke_cfg.data.splits.train < 100 and smoke_cfg.data.grid <= 64


def test_params_reference_is_up_to_date():
    committed = (ROOT / "docs" / "PARAMS.md").read_text()
    assert committed == reference_markdown(), "docs/PARAMS.md is stale: run `ups params reference > docs/PARAMS.md`"


def test_override_errors_name_the_overrides_and_a_folder_is_not_a_params_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "params.yaml", {"train.operator.lr": -1.0})
    assert "invalid parameters in overrides" in str(err.value) and "train.operator.lr: -1.0 is out of range" in str(
        err.value
    )
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert f"{tmp_path} is a folder" in str(err.value)
