"""Model shapes, derived sizes, any-point decoding, and the operator's identity start."""

import pytest
import torch
from conftest import ROOT

from ups.checkpoints import save_atomic
from ups.config import load_config
from ups.models.autoencoder import Autoencoder
from ups.models.diffusion import ConsistencyStudent, DiffusionResidual
from ups.models.operator import LatentOperator
from ups.models.steady_prior import SteadyPrior


def _grid(cfg):
    return (torch.arange(cfg.data.grid) + 0.5) * cfg.data.length / cfg.data.grid


def test_latent_dim_alone_gives_consistent_models(smoke_overrides):
    for dim in (8, 24):
        cfg = load_config(ROOT / "params.yaml", {**smoke_overrides, "latent.dim": dim})
        ae = Autoencoder.from_config(cfg)
        op = LatentOperator.from_config(cfg)
        u = torch.randn(3, cfg.data.grid)
        z = ae.encoder(u, _grid(cfg))
        assert z.shape == (3, cfg.latent.tokens, dim)
        nxt = op(z[:, None], torch.full((3,), cfg.data.dt), torch.full((3,), 0.01))
        assert nxt.shape == z.shape
        assert ae.decoder(nxt, _grid(cfg)).shape == (3, cfg.data.grid)


def test_decoder_answers_any_points_and_encoder_takes_any_points(smoke_cfg):
    ae = Autoencoder.from_config(smoke_cfg, 0.3, 2.0)
    z = ae.encoder(torch.randn(2, smoke_cfg.data.grid), _grid(smoke_cfg))
    query = torch.rand(37) * smoke_cfg.data.length
    assert ae.decoder(z, query).shape == (2, 37)
    scattered = torch.sort(torch.rand(200))[0]
    assert ae.encoder(torch.randn(2, 200), scattered).shape == z.shape
    # and it says which token spans hold no point
    try:
        ae.encoder(torch.randn(2, 3), torch.tensor([0.01, 0.02, 0.03]))
    except ValueError as exc:
        assert "every token span needs at least one point" in str(exc)
    else:
        raise AssertionError("an encoder with empty tokens must refuse")


def test_operator_starts_as_identity_and_depends_on_dt_and_nu(smoke_cfg):
    op = LatentOperator.from_config(smoke_cfg)
    z = torch.randn(4, 1, smoke_cfg.latent.tokens, smoke_cfg.latent.dim)
    dt, nu = torch.full((4,), smoke_cfg.data.dt), torch.full((4,), 0.01)
    torch.testing.assert_close(op(z, dt, nu), z[:, 0])  # adaLN-Zero: a residual update of zero
    for p in op.parameters():  # perturb: the conditioning must now matter
        p.data.add_(0.05 * torch.randn_like(p))
    assert not torch.allclose(op(z, dt, nu), op(z, 2 * dt, nu))
    assert not torch.allclose(op(z, dt, nu), op(z, dt, 10 * nu))


def test_operator_is_equivariant_to_token_shifts(smoke_cfg):
    op = LatentOperator.from_config(smoke_cfg)
    for p in op.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    z = torch.randn(2, 1, smoke_cfg.latent.tokens, smoke_cfg.latent.dim)
    dt, nu = torch.full((2,), smoke_cfg.data.dt), torch.full((2,), 0.01)
    shift = 2 ** (smoke_cfg.operator.levels - 1)  # a shift the token merging respects
    torch.testing.assert_close(
        op(z.roll(shift, dims=2), dt, nu), op(z, dt, nu).roll(shift, dims=1), atol=1e-5, rtol=1e-5
    )


def test_operator_loss_is_the_decoded_relative_error_of_the_projected_unroll(smoke_cfg):
    """The training unroll does what `Simulator.step` does (operator, decode, encode again) and is
    scored by the per-sample relative L2 error of each decoded step, the nRMSE evaluation reports."""
    from ups.training.operator import relative_l2, rollout_loss

    torch.manual_seed(0)
    ae = Autoencoder.from_config(smoke_cfg)
    op = LatentOperator.from_config(smoke_cfg)
    for p in op.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    zn = torch.randn(4, 1, smoke_cfg.latent.tokens, smoke_cfg.latent.dim)
    nu, x, dt = torch.full((4,), 0.01), _grid(smoke_cfg), smoke_cfg.data.dt
    u = torch.randn(4, 3, smoke_cfg.data.grid)
    loss = rollout_loss(op, ae, zn, u, x, nu, dt, project=True)
    with torch.no_grad():
        window, expected = zn, []
        for r in range(3):
            field = ae.decoder(op.denormalize(op.step(window, torch.full((4,), dt), nu)), x)
            expected.append(float(((field - u[:, r]).norm(dim=-1) / u[:, r].norm(dim=-1)).mean()))
            window = op.normalize(ae.encoder(field, x))[:, None]
    torch.testing.assert_close(loss.item(), sum(expected) / 3, rtol=1e-5, atol=1e-6)
    assert (
        abs(rollout_loss(op, ae, zn, u, x, nu, dt, project=False).item() - loss.item()) > 1e-4
    )  # projection changes the unroll
    zn_true = torch.randn(4, 3, smoke_cfg.latent.tokens, smoke_cfg.latent.dim)
    assert rollout_loss(op, ae, zn, u, x, nu, dt, True, 0.5, zn_true) > loss  # the latent term adds
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in op.net.out.parameters())
    assert relative_l2(2 * u[:, 0], u[:, 0]).item() == 1.0


def test_training_windows_start_at_the_first_frame_as_often_as_asked():
    from ups.training.operator import windows, windows_per_epoch

    gen = torch.Generator().manual_seed(0)
    pairs = windows(100, 41, 3, 2, 0.5, gen)
    assert len(pairs) == windows_per_epoch(100, 41, 2) == 2000
    assert (
        set(pairs[:, 0].tolist()) == set(range(100)) and torch.bincount(pairs[:, 0]).min() == 20
    )  # every trajectory evenly
    first = float((pairs[:, 1] == 0).float().mean())
    assert 0.45 < first < 0.56, first  # 0.5 asked, plus 1/39 of the uniform draws
    assert pairs[:, 1].max() <= 41 - 3 and pairs[:, 1].min() >= 0
    none = windows(100, 41, 3, 2, 0.0, torch.Generator().manual_seed(0))
    assert float((none[:, 1] == 0).float().mean()) < 0.05


def test_simulator_projects_every_predicted_latent(smoke_cfg):
    """With operator.project each predicted latent is decode→encode of the operator's output (a
    latent the encoder produced), so a rollout cannot drift off the autoencoder's manifold; without
    it the rollout is the raw operator's, a different trajectory."""
    from ups.inference.rollout import Simulator

    assert smoke_cfg.operator.project  # the default
    torch.manual_seed(0)
    ae = Autoencoder.from_config(smoke_cfg).eval()
    torch.testing.assert_close(ae.grid.float(), _grid(smoke_cfg))  # the stored grid, derived
    op = LatentOperator.from_config(smoke_cfg).eval()
    for p in op.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    sim = Simulator(ae, op, smoke_cfg.data.dt)
    z0 = ae.encoder(torch.randn(3, smoke_cfg.data.grid), ae.grid)[:, None]
    nu, dt = torch.full((3,), 0.01), torch.full((3,), smoke_cfg.data.dt)
    projected = sim.rollout_latent(z0, nu, 3)
    with torch.no_grad():
        for k in range(3):
            window = z0 if k == 0 else projected[:, k - 1 : k]
            torch.testing.assert_close(projected[:, k], ae.encoder(ae.decoder(op(window, dt, nu), ae.grid), ae.grid))
    op.project = False
    raw = sim.rollout_latent(z0, nu, 3)
    with torch.no_grad():
        torch.testing.assert_close(raw[:, 0], op(z0, dt, nu))
    assert (raw[:, -1] - projected[:, -1]).abs().max() > 1e-3


def test_no_hidden_hyperparameters_heads_mlp_betas_and_lr_floor_come_from_params(smoke_overrides):
    from ups.models.diffusion import DiffusionResidual
    from ups.models.steady_prior import SteadyPrior
    from ups.training.optim import build_optimizer, warmup_cosine

    cfg = load_config(
        ROOT / "params.yaml",
        {
            **smoke_overrides,
            "diffusion.heads": 8,
            "diffusion.mlp_ratio": 3.0,
            "steady_prior.heads": 1,
            "train.operator.betas": [0.8, 0.95],
            "train.operator.lr_floor": 0.1,
        },
    )
    block = DiffusionResidual(cfg.latent, cfg.diffusion).net.down[0][0]
    assert block.mix.heads == 8 and block.mlp[0].out_features == int(3.0 * cfg.diffusion.width)
    assert SteadyPrior(cfg.latent, cfg.steady_prior).net.down[0][0].mix.heads == 1
    opt = build_optimizer(LatentOperator.from_config(cfg), cfg.train.operator)
    assert opt.param_groups[0]["betas"] == (0.8, 0.95)
    assert warmup_cosine(100, 0.0, cfg.train.operator.lr_floor)(100) == pytest.approx(0.1)


def test_runtime_compile_compiles_what_each_loss_calls(smoke_cfg):
    """The operator's and steady prior's losses call `step`, the diffusion residual's `denoise`: those
    are compiled, not only `forward` (which those losses never call)."""
    from ups.models.diffusion import DiffusionResidual
    from ups.models.steady_prior import SteadyPrior
    from ups.training.loop import compile_hot_paths

    ae = Autoencoder.from_config(smoke_cfg)
    for model, names in (
        (LatentOperator.from_config(smoke_cfg), ["step"]),
        (SteadyPrior(smoke_cfg.latent, smoke_cfg.steady_prior), ["step"]),
        (DiffusionResidual(smoke_cfg.latent, smoke_cfg.diffusion), ["denoise"]),
        (ae, ["forward"]),
    ):
        compiled = compile_hot_paths(model)
        for name in names:
            assert hasattr(getattr(compiled, name), "_torchdynamo_orig_callable"), (type(model).__name__, name)


@pytest.mark.parametrize(
    "model_class", [Autoencoder, LatentOperator, DiffusionResidual, ConsistencyStudent, SteadyPrior]
)
def test_each_model_rebuilds_itself_from_its_checkpoint(tmp_path, smoke_cfg, model_class):
    torch.manual_seed(0)
    model = model_class.from_config(smoke_cfg)
    for p in model.parameters():  # away from the zero-initialised output layers
        p.data.add_(0.01 * torch.randn(p.shape))
    save_atomic({**model.spec, "state_dict": model.state_dict(), "best_epoch": 1, "selection": 0.5}, tmp_path / "m.pt")
    loaded = model_class.from_checkpoint(tmp_path / "m.pt")
    assert loaded.spec == model.spec and loaded.spec["kind"] == model_class.kind and not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_an_old_format_or_foreign_checkpoint_is_refused_in_one_line(tmp_path, smoke_cfg):
    model = LatentOperator.from_config(smoke_cfg)
    old = {k: v for k, v in model.spec.items() if k != "format"}  # what the code before format 2 wrote
    save_atomic({**old, "state_dict": model.state_dict()}, tmp_path / "old.pt")
    with pytest.raises(FileNotFoundError) as err:
        LatentOperator.from_checkpoint(tmp_path / "old.pt")
    message = str(err.value)
    assert "\n" not in message and "format 1" in message and "dvc repro" in message
    save_atomic({**model.spec, "state_dict": model.state_dict()}, tmp_path / "op.pt")
    with pytest.raises(FileNotFoundError, match="holds a 'operator' model, expected 'autoencoder'"):
        Autoencoder.from_checkpoint(tmp_path / "op.pt")
