"""The diffusion residual, the consistency student, ensemble scores, and test-time compute."""

import numpy as np
import pytest
import torch

from ups.config import RewardWeights
from ups.data.generate import generate_split
from ups.eval.metrics import ensemble_scores, nrmse
from ups.inference.rollout import Simulator
from ups.inference.stochastic import corrected_rollout, physics_reward, ttc_rollout
from ups.models.autoencoder import Autoencoder
from ups.models.diffusion import ConsistencyStudent, DiffusionResidual
from ups.models.operator import LatentOperator
from ups.training import consistency


def _perturbed(model, scale=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.data.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture
def models(smoke_cfg):
    torch.manual_seed(0)
    ae = _perturbed(Autoencoder.from_config(smoke_cfg), 0.05, 1)
    op = _perturbed(LatentOperator.from_config(smoke_cfg), 0.05, 2)
    teacher = _perturbed(DiffusionResidual.from_config(smoke_cfg), 0.2, 3)
    return ae, op, teacher


def test_diffusion_sampler_is_stochastic_and_deterministic_path_is_reproducible(smoke_cfg, models):
    _, _, teacher = models
    b = 5
    c = torch.randn(b, smoke_cfg.latent.tokens, smoke_cfg.latent.dim)
    dt, nu = torch.full((b,), smoke_cfg.data.dt), torch.full((b,), 0.01)
    a = teacher.sample(c, dt, nu, torch.Generator().manual_seed(1))
    bb = teacher.sample(c, dt, nu, torch.Generator().manual_seed(2))
    assert not torch.allclose(a, bb)  # an ensemble, not one answer
    start = torch.randn(c.shape, generator=torch.Generator().manual_seed(3))
    _, final = teacher.teacher_trajectory(c, dt, nu, start)
    torch.testing.assert_close(final, teacher.sample(c, dt, nu, deterministic=True, start=start))
    # the denoising objective is a real one: it goes down when fitted
    r = torch.randn(c.shape, generator=torch.Generator().manual_seed(4)) * 0.3
    before = float(teacher.loss(r, c, dt, nu, torch.Generator().manual_seed(0)).detach())
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    for i in range(60):
        opt.zero_grad()
        teacher.loss(r, c, dt, nu, torch.Generator().manual_seed(i)).backward()
        opt.step()
    assert float(teacher.loss(r, c, dt, nu, torch.Generator().manual_seed(0)).detach()) < 0.5 * before


def test_zero_student_gets_a_high_distillation_loss(smoke_cfg, models):
    _, _, teacher = models
    for p in teacher.parameters():
        p.requires_grad_(False)
    b = 32
    c = torch.randn(b, smoke_cfg.latent.tokens, smoke_cfg.latent.dim, generator=torch.Generator().manual_seed(5))
    dt, nu = torch.full((b,), smoke_cfg.data.dt), torch.full((b,), 0.01)
    gen = lambda: torch.Generator().manual_seed(11)  # noqa: E731
    _, target = teacher.teacher_trajectory(c, dt, nu, torch.randn(c.shape, generator=gen()))
    zero = float(consistency.distillation_loss(lambda x, s, c_, d, n: torch.zeros_like(x), teacher, c, dt, nu, gen()))
    assert zero == pytest.approx(float((target**2).mean()), rel=1e-5)
    student = ConsistencyStudent.from_config(smoke_cfg)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    for i in range(150):
        opt.zero_grad()
        consistency.distillation_loss(student, teacher, c, dt, nu, torch.Generator().manual_seed(100 + i)).backward()
        opt.step()
    trained = float(consistency.distillation_loss(student, teacher, c, dt, nu, gen()).detach())
    assert zero > 4 * trained, (zero, trained)


def test_ensemble_scores_on_known_cases():
    g = torch.Generator().manual_seed(0)
    centre = torch.randn(50, 4, 32, generator=g)
    truth = centre + torch.randn(50, 4, 32, generator=g)  # the truth and the members: draws of N(centre, 1)
    calibrated = centre[None] + torch.randn(64, 50, 4, 32, generator=g)
    s = ensemble_scores(calibrated, truth)
    assert s["spread_skill"] == pytest.approx(1.0, abs=0.05)
    single = ensemble_scores(calibrated[:1], truth)
    assert single["crps"] == pytest.approx(
        float((calibrated[0] - truth).abs().mean()), rel=1e-6
    )  # CRPS of one member = MAE
    collapsed = ensemble_scores(calibrated[:1].expand(8, -1, -1, -1), truth)
    assert collapsed["spread_skill"] == pytest.approx(0.0, abs=1e-6)


def test_physics_reward_prefers_the_solver_and_penalises_each_term():
    from ups.data.solver import solve

    x = (np.arange(256) + 0.5) / 256
    u0 = np.stack([0.5 * np.sin(2 * np.pi * x + p) + 0.2 for p in (0.0, 1.0, 2.0, 3.0)])
    frames = torch.from_numpy(solve(u0, 0.1, np.array([0.0, 0.05]))).double()  # smooth: ν = 0.1
    u, rows = frames[:, 0], torch.arange(4)
    nu = torch.full((4,), 0.1, dtype=torch.float64)
    reward = physics_reward(RewardWeights(residual=1.0, conservation=1.0, energy=1.0), 0.05, 1.0, nu)
    exact = reward(u, frames[:, 1], 0, rows)
    noisy = reward(u, frames[:, 1] + 0.05 * torch.randn_like(u, generator=None), 0, rows)
    assert torch.all(exact > noisy)
    persistence = reward(u, u, 0, rows)
    assert torch.all(exact > persistence)  # the true next frame beats copying the last one

    def only(**kw):
        return physics_reward(
            RewardWeights(**{"residual": 0.0, "conservation": 0.0, "energy": 0.0, **kw}), 0.05, 1.0, nu
        )

    assert torch.all(
        only(conservation=1.0)(u, frames[:, 1] + 0.1, 0, rows) < only(conservation=1.0)(u, frames[:, 1], 0, rows)
    )
    assert torch.all(only(energy=1.0)(u, 1.2 * u, 0, rows) < 0)
    assert torch.all(only(energy=1.0)(u, 0.8 * u, 0, rows) == 0)


class ScriptedCorrector:
    """Candidate j of every trajectory gets the residual `offsets[j]` (a constant field)."""

    nfe = 1

    def __init__(self, offsets, dim, candidates):
        self.offsets, self.candidates = offsets, candidates
        self.r_std = torch.ones(dim)

    def sample(self, z_op, dt, nu, gen=None):
        j = torch.arange(z_op.shape[0]) % self.candidates
        return torch.stack([torch.full(z_op.shape[1:], float(self.offsets[k])) for k in j.tolist()])


def test_ttc_selects_per_trajectory(smoke_cfg, models):
    ae, op, _ = models
    sim = Simulator(ae, op, smoke_cfg.data.dt)
    x = (torch.arange(smoke_cfg.data.grid) + 0.5) / smoke_cfg.data.grid
    u0 = torch.randn(2, 1, smoke_cfg.data.grid)
    nu = torch.full((2,), 0.01)
    corrector = ScriptedCorrector([0.0, 0.3, -0.3], smoke_cfg.latent.dim, 3)
    z0 = sim.encode(u0, x)
    # what each candidate decodes to after one step, per trajectory
    decoded = [sim.decode(corrected_rollout(sim, _Const(k, corrector), z0, nu, 1), x)[:, 0] for k in range(3)]
    wanted = torch.stack([decoded[0][0], decoded[1][1]])  # trajectory 0 wants candidate 0, trajectory 1 candidate 1

    def oracle(prev, nxt, step, rows):
        return -((nxt - wanted[rows]) ** 2).mean(-1)

    pred, cost = ttc_rollout(sim, corrector, u0, x, nu, 1, oracle, candidates=3)
    torch.testing.assert_close(pred[0, 0], decoded[0][0])
    torch.testing.assert_close(pred[1, 0], decoded[1][1])
    assert cost["nfe_per_step"] == 3 * (1 + corrector.nfe)


class _Const:
    def __init__(self, k, scripted):
        self.k, self.r_std, self.nfe, self.scripted = k, scripted.r_std, 1, scripted

    def sample(self, z_op, dt, nu, gen=None):
        return torch.full_like(z_op, float(self.scripted.offsets[self.k]))


@pytest.mark.parametrize("beam, horizon", [(1, 1), (2, 2)])
def test_ttc_with_an_oracle_reward_strictly_lowers_the_error(smoke_cfg, models, beam, horizon):
    ae, op, teacher = models
    sim = Simulator(ae, op, smoke_cfg.data.dt)
    traj = generate_split(smoke_cfg.data, "val", workers=1)
    u = torch.from_numpy(traj.u)
    x, nu = torch.from_numpy(traj.x), torch.from_numpy(traj.nu)
    steps = 4
    truth = u[:, 1 : 1 + steps]

    def oracle(prev, nxt, step, rows):  # the true error, in a test only
        return -((nxt - truth[rows, step]) ** 2).mean(-1)

    z0 = sim.encode(u[:, :1], x)
    single = nrmse(
        sim.decode(corrected_rollout(sim, teacher, z0, nu, steps, torch.Generator().manual_seed(0)), x), truth
    )
    pred, cost = ttc_rollout(
        sim,
        teacher,
        u[:, :1],
        x,
        nu,
        steps,
        oracle,
        candidates=4,
        beam=beam,
        horizon=horizon,
        gen=torch.Generator().manual_seed(0),
    )
    assert pred.shape == truth.shape
    assert nrmse(pred, truth) < single
    assert cost["nfe_per_step"] >= 4 * (1 + teacher.nfe)


class _CountingSim:
    """A one-number 'simulator': the latent is the field, the operator is the identity."""

    history, dt = 1, 0.1

    class operator:  # noqa: N801 - stands in for the operator's normalisation
        normalize = staticmethod(lambda z: z)

    def encode(self, u, x):
        return u.reshape(u.shape[0], u.shape[1], 1, 1)

    def decode(self, z, x):
        return z.reshape(z.shape[0], z.shape[1], 1)

    def step(self, window, nu):
        return window[:, -1]


class _OffsetCorrector:
    """Candidate k of every state adds k + 1: the same choices on every call, so paths are known."""

    r_std, nfe = torch.tensor(1.0), 1

    def sample(self, z_op, dt, nu, gen=None):
        return (torch.arange(len(z_op)) % 2 + 1.0).reshape(-1, 1, 1).to(z_op)


def test_ttc_beam_is_a_beam_search_over_cumulative_rewards():
    """Step 0: 1 looks better than 2 (greedy takes it); after 1 every state is poor, after 2 the state
    4 is good; at step 2 the best single-step reward (state 3) lies on the poor path. A beam of 2,
    ranking paths by their cumulative reward, finds 2 → 4 → 5 (total −4); greedy ends at −10, and so
    would a beam that ranked candidates by the current step's reward alone."""
    from ups.inference.stochastic import ttc_rollout

    table = {0: {1: 0.0, 2: -1.0}, 1: {2: -10.0, 3: -10.0, 4: 0.0}, 2: {3: 0.0, 4: -3.0, 5: -3.0, 6: -3.5}}

    def oracle(u_prev, u_next, step, rows):
        return torch.tensor([table[step].get(int(round(float(v))), -100.0) for v in u_next[:, 0]])

    def total(path):
        return sum(table[s][int(round(float(v)))] for s, v in enumerate(path))

    u0, x, nu = torch.zeros(1, 1, 1), torch.zeros(1), torch.full((1,), 0.01)
    greedy, _ = ttc_rollout(_CountingSim(), _OffsetCorrector(), u0, x, nu, 3, oracle, candidates=2, beam=1)
    beam, _ = ttc_rollout(_CountingSim(), _OffsetCorrector(), u0, x, nu, 3, oracle, candidates=2, beam=2)
    assert greedy[0, :, 0].tolist() == [1.0, 2.0, 3.0] and total(greedy[0, :, 0]) == -10.0
    assert beam[0, :, 0].tolist() == [2.0, 4.0, 5.0] and total(beam[0, :, 0]) == -4.0
