"""The batched MCMC kernels against closed forms, against each other, and inside Pyro's MCMC."""

import math

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC

from pyrogen import diagnostics
from pyrogen.inference import samplers as S
from pyrogen.inference.mcmc import run_chains


def gauss(scale=1.0):
    return lambda x: -0.5 * (x**2).sum(-1) / scale**2


COV = torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)
PREC = torch.linalg.inv(COV)


def correlated(x):
    return -0.5 * torch.einsum("ci,ij,cj->c", x, PREC.to(x), x)


def _moments(samples):
    flat = samples.flatten(0, 1)
    return flat.mean(0), torch.cov(flat.T)


def test_unadjusted_langevin_has_its_known_bias():
    # ULA on N(0, 1) with step eps is the AR(1) chain x' = (1 - eps) x + sqrt(2 eps) xi, whose
    # stationary variance is 1 / (1 - eps / 2): biased, and exactly so
    torch.manual_seed(0)
    eps = 0.2
    ch = S.sample_chains(S.Langevin(gauss(), eps), torch.zeros(4000, 1, dtype=torch.float64), 50, warmup_steps=100)
    var = float(ch.samples.pow(2).mean())
    assert abs(var - 1 / (1 - eps / 2)) < 0.03
    assert var > 1.06  # the bias is there: MALA below removes it


def test_langevin_score_only_equals_density_version():
    score = lambda x: -x  # noqa: E731
    a = S.Langevin(gauss(), 0.1)
    b = S.Langevin(score=score, step_size=0.1)
    torch.manual_seed(1)
    ca = S.sample_chains(a, torch.ones(8, 3), 20)
    torch.manual_seed(1)
    cb = S.sample_chains(b, torch.ones(8, 3), 20)
    torch.testing.assert_close(ca.samples, cb.samples)
    assert torch.isnan(cb.stats["lp"]).all() and "lp" not in cb.to_inference_data().sample_stats


@pytest.mark.parametrize(
    "kernel",
    [
        lambda: S.MALA(correlated, 0.3),
        lambda: S.RandomWalkMH(correlated, 0.8),
        lambda: S.HMC(correlated, 0.3, num_steps=5),
    ],
    ids=["mala", "rwmh", "hmc"],
)
def test_adjusted_kernels_are_exact_on_a_correlated_gaussian(kernel):
    torch.manual_seed(2)
    ch = S.sample_chains(kernel(), torch.randn(500, 2, dtype=torch.float64) * 3, 100, warmup_steps=200)
    mean, cov = _moments(ch.samples)
    assert mean.abs().max() < 0.06
    torch.testing.assert_close(cov, COV, atol=0.06, rtol=0)


def test_mala_removes_the_langevin_bias_at_a_large_step():
    torch.manual_seed(3)
    k = S.MALA(gauss(), 0.9, adapt_step_size=False)
    ch = S.sample_chains(k, torch.zeros(4000, 1, dtype=torch.float64), 50, warmup_steps=100)
    assert abs(float(ch.samples.pow(2).mean()) - 1.0) < 0.03  # ULA at 0.9 would give 1.82


def test_hmc_with_one_leapfrog_step_is_mala():
    # one leapfrog step of size eps with r ~ N(0, I) proposes x + eps^2/2 grad + eps r: MALA's proposal
    # with step eps^2/2. HMC accepts by the energy error, MALA by the proposal densities: two different
    # computations of the same Metropolis-Hastings ratio, so with the same random numbers the chains agree.
    def lp(x):
        return -(x**4).sum(-1) / 4 - (x**2).sum(-1)  # not Gaussian, so the ratio is not trivially 1

    eps = 0.7
    torch.manual_seed(4)
    h = S.sample_chains(S.HMC(lp, eps, num_steps=1), torch.randn(64, 3, dtype=torch.float64), 30)
    torch.manual_seed(4)
    m = S.sample_chains(S.MALA(lp, eps**2 / 2), torch.randn(64, 3, dtype=torch.float64), 30)
    torch.testing.assert_close(h.samples, m.samples)
    torch.testing.assert_close(h.stats["acceptance_rate"], m.stats["acceptance_rate"])
    assert 0.2 < float(m.acceptance_rate.mean()) < 0.99  # some proposals are rejected: the test has teeth


def test_leapfrog_is_reversible_and_second_order():
    k = S.HMC(correlated, 0.1, num_steps=20)
    torch.manual_seed(5)
    x0, r0 = torch.randn(16, 2, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    _, g0 = k._log_prob_and_grad(x0)
    step = torch.full((16,), 0.1, dtype=torch.float64)
    x1, r1, _, g1 = k.leapfrog(x0, r0, g0, step)
    x2, r2, _, _ = k.leapfrog(x1, -r1, g1, step)
    torch.testing.assert_close(x2, x0)
    torch.testing.assert_close(-r2, r0)

    def energy_error(eps, steps):
        kk = S.HMC(correlated, eps, num_steps=steps)
        x, r, lp, _ = kk.leapfrog(x0, r0, g0, torch.full((16,), eps, dtype=torch.float64))
        h0 = -correlated(x0) + 0.5 * (r0**2).sum(-1)
        return (-lp + 0.5 * (r**2).sum(-1) - h0).abs().max()

    ratio = float(energy_error(0.1, 10) / energy_error(0.05, 20))  # same trajectory length
    assert 3.0 < ratio < 5.0  # O(eps^2)


@pytest.mark.parametrize("cls,target", [(S.MALA, 0.574), (S.RandomWalkMH, 0.234), (S.HMC, 0.8)])
def test_warmup_adapts_each_chain_to_the_target_acceptance(cls, target):
    torch.manual_seed(6)
    d = 10
    k = cls(gauss(), 5.0)  # far too large a start
    ch = S.sample_chains(k, torch.randn(16, d), 300, warmup_steps=500)
    # unadapted, a step of 5 accepts ~nothing; dual averaging's averaged step alone overshoots HMC's 0.8 beyond
    # this tolerance (its iterates are noisy and the acceptance is concave in log step there), the final
    # Robbins-Monro stage does not
    assert abs(float(ch.acceptance_rate.mean()) - target) < 0.05
    steps = ch.stats["step_size"][:, 0]
    assert (steps < 5.0).all() and steps.unique().numel() > 1  # each chain has its own step


def test_chains_as_inference_data_give_bfmi_rhat_and_energy():
    torch.manual_seed(7)
    ch = S.sample_chains(
        S.HMC(correlated, 0.3, num_steps=5), torch.randn(4, 2, dtype=torch.float64), 400, warmup_steps=200
    )
    idata = ch.to_inference_data("theta")
    for key in ("lp", "acceptance_rate", "step_size", "energy", "diverging"):
        assert key in idata.sample_stats
    assert idata.posterior["theta"].shape == (4, 400, 2)
    assert float(az.rhat(idata)["theta"].max()) < 1.05
    bfmi = az.bfmi(idata)
    assert bfmi.shape == (4,) and (bfmi > 0.3).all()
    # HMC's energy is the Hamiltonian: never below the potential of the kept point
    assert (ch.stats["energy"] >= -ch.stats["lp"] - 1e-9).all()
    assert not bool(ch.stats["diverging"].any())


def test_divergences_are_flagged():
    def lp(x):  # a funnel-like wall: the leapfrog blows up at any large step
        return -(x**2).sum(-1) - 1e4 * (x**4).sum(-1)

    torch.manual_seed(8)
    ch = S.sample_chains(S.HMC(lp, 1.0, num_steps=10, adapt_step_size=False), torch.full((8, 2), 0.5), 5)
    assert ch.stats["diverging"].all()
    assert torch.equal(ch.samples[:, -1], torch.full((8, 2), 0.5))  # a diverging proposal is never taken


def test_annealed_langevin_gets_the_mode_weights_right():
    # Song and Ermon (2019), Fig. 3: on 0.8 N(-4, 1) + 0.2 N(4, 1), Langevin with the data score keeps
    # whatever weights the start had; annealing over noise levels recovers 0.8 / 0.2.
    w, mu = torch.tensor([0.8, 0.2], dtype=torch.float64), torch.tensor([-4.0, 4.0], dtype=torch.float64)

    def score(x, sigma):
        var = 1 + sigma[:, None] ** 2  # the mixture convolved with N(0, sigma^2)
        logits = w.log() - 0.5 * (x - mu) ** 2 / var - 0.5 * var.log()
        r = torch.softmax(logits, -1)
        return (r * (mu - x) / var).sum(-1, keepdim=True)

    torch.manual_seed(9)
    x0 = torch.rand(4000, 1, dtype=torch.float64) * 16 - 8
    sigmas = torch.logspace(math.log10(20), math.log10(0.1), 10)
    ann = S.AnnealedLangevin(score, sigmas, steps_per_level=100, eps=1e-3).run(x0)
    assert ann.samples.shape == (4000, 11, 1)  # one draw per level, then the denoised one
    right = float((ann.samples[:, -1] > 0).double().mean())
    assert abs(right - 0.2) < 0.03
    plain = S.sample_chains(
        S.Langevin(score=lambda x: score(x, torch.full((len(x),), 0.1)), step_size=1e-2), x0, 1, warmup_steps=1000
    )
    assert abs(float((plain.samples[:, -1] > 0).double().mean()) - 0.5) < 0.05  # stuck at the start's 0.5
    idata = ann.to_inference_data()
    assert "sigma" in idata.sample_stats


def test_annealed_langevin_is_song_and_ermons_algorithm_run_by_the_driver():
    # Algorithm 1 of Song and Ermon (2019) written out as a loop: under one seed the wrapper (a Langevin kernel per
    # level, run by sample_chains) draws the same chains, and records every 7th step within a level and its end
    def score(x, sigma):
        return -x / (1 + sigma[:, None] ** 2) + 0.1 * torch.sin(3 * x)

    sigmas, steps, eps = [3.0, 1.0, 0.3], 20, 1e-3
    x0 = torch.randn(64, 2, dtype=torch.float64)
    torch.manual_seed(4)
    x, ends = x0, []
    for level in sigmas:
        alpha = eps * level**2 / sigmas[-1] ** 2
        for _ in range(steps):
            x = x + alpha * score(x, torch.full((64,), level, dtype=torch.float64))
            x = x + math.sqrt(2 * alpha) * torch.randn_like(x)
        ends.append(x)
    ends.append(x + sigmas[-1] ** 2 * score(x, torch.full((64,), sigmas[-1], dtype=torch.float64)))
    torch.manual_seed(4)
    ann = S.AnnealedLangevin(score, sigmas, steps_per_level=steps, eps=eps).run(x0)
    torch.testing.assert_close(ann.samples, torch.stack(ends, 1), rtol=1e-12, atol=1e-12)
    torch.manual_seed(4)
    every = S.AnnealedLangevin(score, sigmas, steps_per_level=steps, eps=eps).run(x0, record_every=7)
    assert every.samples.shape == (64, 3 * 2 + 1, 2)  # steps 13 and 20 of each level, then the denoised draw
    torch.testing.assert_close(every.samples[:, [1, 3, 5, 6]], ann.samples[:, [0, 1, 2, 3]], rtol=0, atol=0)
    assert every.stats["sigma"][0].tolist() == [3.0, 3.0, 1.0, 1.0, 0.3, 0.3, 0.3]
    torch.testing.assert_close(
        every.stats["grad_norm"][:, 1], score(every.samples[:, 1], torch.full((64,), 3.0)).norm(dim=-1).double()
    )


def _conjugate_model(data):
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("s", dist.LogNormal(0.0, 0.5))  # constrained and a priori only: sampled in log space
    with pyro.plate("n", len(data)):
        pyro.sample("obs", dist.Normal(mu, 1.0), obs=data)


@pytest.mark.slow
@pytest.mark.parametrize("cls,kwargs", [(S.MALA, {"step_size": 0.3}), (S.HMC, {"step_size": 0.3, "num_steps": 4})])
def test_pyro_mcmc_runs_the_kernels_on_a_model(cls, kwargs):
    data = torch.tensor([0.5, 1.2, -0.3, 2.0, 0.9, 1.1, 0.4, 1.6, 0.2, 1.0])
    runs = run_chains(
        lambda: S.PyroKernel(cls, model=_conjugate_model, **kwargs),
        num_chains=2,
        num_samples=800,
        warmup_steps=300,
        model_args=(data,),
        seed=0,
    )
    mu = torch.cat([r.get_samples()["mu"] for r in runs])
    s = torch.cat([r.get_samples()["s"] for r in runs])
    n = len(data)
    assert abs(float(mu.mean()) - float(data.sum()) / (n + 1)) < 0.05  # posterior N(sum / (n + 1), 1 / (n + 1))
    assert abs(float(mu.var()) - 1 / (n + 1)) < 0.025
    assert (s > 0).all() and abs(float(s.log().mean())) < 0.1  # back in constrained space
    idata = diagnostics.from_pyro(runs)
    assert float(az.rhat(idata)["mu"]) < 1.05
    assert "diverging" in idata.sample_stats
    single = az.from_pyro(runs[0])  # ArviZ's own converter accepts the run
    assert "diverging" in single.sample_stats
    assert 0.3 < runs[0].diagnostics()["acceptance rate"]["chain 0"] < 1.0


def test_pyro_mcmc_on_a_potential_fn():
    def potential(p):
        return 0.5 * (p["z"] ** 2).sum()

    pyro.set_rng_seed(0)
    mcmc = MCMC(
        S.PyroKernel(S.RandomWalkMH, potential_fn=potential, step_size=1.0),
        2000,
        warmup_steps=500,
        initial_params={"z": torch.zeros(3)},
        disable_progbar=True,
    )
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert z.shape == (2000, 3)
    assert abs(float(z.var(0).mean()) - 1.0) < 0.15


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="step_size"):
        S.MALA(gauss(), 0.0)
    with pytest.raises(ValueError, match="step_size"):
        S.MALA(gauss(), float("nan"))
    with pytest.raises(ValueError, match="target_accept"):
        S.HMC(gauss(), 0.1, target_accept=1.0)
    with pytest.raises(ValueError, match="num_steps"):
        S.HMC(gauss(), 0.1, num_steps=0)
    with pytest.raises(ValueError, match="exactly one of log_prob and score"):
        S.Langevin()
    with pytest.raises(TypeError, match="log_prob"):
        S.MALA("not callable")  # type: ignore[arg-type]
    k = S.MALA(gauss(), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        k.init(torch.tensor([[float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="floating point"):
        k.init(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="chains"):
        k.init(torch.zeros(3))
    with pytest.raises(ValueError, match="chains"):
        k.init(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="one value per chain"):
        S.MALA(lambda x: x.sum(), 0.1).init(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="num_samples"):
        S.sample_chains(k, torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match="strictly decreasing"):
        S.AnnealedLangevin(lambda x, s: x, [0.1, 1.0])
    with pytest.raises(ValueError, match="shaped like x"):
        S.AnnealedLangevin(lambda x, s: x.sum(-1), [1.0, 0.1]).run(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="exactly one of model and potential_fn"):
        S.PyroKernel(S.MALA)
    with pytest.raises(TypeError, match="Kernel class"):
        S.PyroKernel(object, model=_conjugate_model)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="initial_params"):
        MCMC(S.PyroKernel(S.MALA, potential_fn=lambda p: p["z"].sum()), 5, disable_progbar=True).run()


def test_float32_and_float64_keep_their_dtype():
    for dt in (torch.float32, torch.float64):
        ch = S.sample_chains(S.MALA(gauss(), 0.2), torch.zeros(3, 2, dtype=dt), 4)
        assert ch.samples.dtype == dt and ch.stats["step_size"].dtype == dt


def test_inference_data_of_unknown_stats_leaves_them_out():
    ch = S.sample_chains(S.Langevin(score=lambda x: -x, step_size=0.1), torch.zeros(2, 2), 5)
    stats = ch.to_inference_data().sample_stats
    assert "energy" not in stats and "acceptance_rate" in stats
    assert np.all(stats["acceptance_rate"].values == 1)


@pytest.mark.parametrize("cls", [S.MALA, S.RandomWalkMH])
def test_detailed_balance_on_a_grid(cls):
    # p(x) K(x -> y) = p(y) K(y -> x) for every pair of a small grid, K the kernel's transition density off
    # the diagonal (proposal density times acceptance probability, the functions step() accepts by)
    def lp(x):  # skewed and non-Gaussian
        return -(x**4).sum(-1) / 4 + torch.sin(3 * x[:, 0]) - 0.5 * (x[:, 1] - 0.3 * x[:, 0]) ** 2

    axis = torch.linspace(-1.5, 1.5, 6, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    n = len(grid)
    x, y = grid.repeat_interleave(n, 0), grid.repeat(n, 1)
    off = ~torch.eye(n, dtype=torch.bool).flatten()
    x, y = x[off], y[off]
    k = cls(lp, 0.4)
    step = torch.full((len(x),), 0.4, dtype=torch.float64)
    forward = lp(x) + k.transition_log_density(x, y, step)
    backward = lp(y) + k.transition_log_density(y, x, step)
    torch.testing.assert_close(forward, backward)
    assert (
        k.transition_log_density(x, y, step)
        < k.proposal_log_density(x, None if cls is S.RandomWalkMH else k._log_prob_and_grad(x)[1], y, step) - 1e-3
    ).any()  # some moves are damped by the test


@pytest.mark.parametrize("cls", [S.MALA, S.RandomWalkMH])
def test_the_proposal_density_is_the_proposal_step_draws(cls):
    # detailed balance above holds for *any* q plugged into the ratio: what makes it the kernel's is that q
    # is the law step() draws from. step's accepted moves are x + mean shift + scale * xi with its own xi,
    # and q integrates to one with that mean and covariance.
    eps = 0.3
    k = cls(correlated, eps, adapt_step_size=False)
    state = k.init(torch.tensor([[0.5, -0.2]], dtype=torch.float64).repeat(64, 1))
    torch.manual_seed(11)
    xi = torch.randn_like(state.position)
    torch.manual_seed(11)
    moved = k.step(state)
    if cls is S.MALA:
        shift, scale, cov = eps * state.grad, math.sqrt(2 * eps), 2 * eps
    else:
        shift, scale, cov = 0.0, eps, eps**2
    drawn = state.position + shift + scale * xi
    assert moved.accepted.any()
    torch.testing.assert_close(moved.position[moved.accepted], drawn[moved.accepted])
    axis = torch.linspace(-4, 4, 321, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    x = state.position[:1].expand(len(grid), 2)
    g = None if state.grad is None else state.grad[:1].expand(len(grid), 2)
    w = (
        k.proposal_log_density(x, g, grid, torch.full((len(grid),), eps, dtype=torch.float64)).exp()
        * (axis[1] - axis[0]) ** 2
    )
    assert abs(float(w.sum()) - 1) < 1e-3
    mean = (w[:, None] * grid).sum(0)
    torch.testing.assert_close(mean, (state.position + shift)[0], atol=1e-4, rtol=0)
    centred = grid - mean
    torch.testing.assert_close(
        (w[:, None, None] * centred[:, :, None] * centred[:, None, :]).sum(0),
        cov * torch.eye(2, dtype=torch.float64),
        atol=1e-3,
        rtol=0,
    )


@pytest.mark.parametrize(
    "make",
    [lambda lp: S.MALA(lp, 0.5), lambda lp: S.RandomWalkMH(lp, 1.0), lambda lp: S.HMC(lp, 0.3, num_steps=3)],
    ids=["mala", "rwmh", "hmc"],
)
def test_every_kernel_reaches_a_2d_mixture(make):
    # 0.4 N((-1, 0), I) + 0.6 N((1.5, 1), I): both marginals pass a KS test against their closed forms, the
    # mean is right within Monte Carlo error, and R-hat over four chains is below 1.01
    from scipy import stats

    w = torch.tensor([0.4, 0.6], dtype=torch.float64)
    mu = torch.tensor([[-1.0, 0.0], [1.5, 1.0]], dtype=torch.float64)

    def lp(x):
        return torch.logsumexp(w.log() - 0.5 * ((x[:, None, :] - mu) ** 2).sum(-1), -1)

    torch.manual_seed(12)
    ch = S.sample_chains(make(lp), torch.randn(4, 2, dtype=torch.float64), 6000, warmup_steps=500)
    assert float(az.rhat(ch.to_inference_data())["x"].max()) < 1.01
    thinned = ch.samples[:, ::15].flatten(0, 1)
    torch.testing.assert_close(thinned.mean(0), (w[:, None] * mu).sum(0), atol=0.1, rtol=0)
    for d in range(2):
        cdf = lambda v, d=d: 0.4 * stats.norm.cdf(v, mu[0, d].item()) + 0.6 * stats.norm.cdf(v, mu[1, d].item())  # noqa: E731
        assert stats.kstest(thinned[:, d].numpy(), cdf).pvalue > 0.01


@pytest.mark.parametrize("cls", [S.MALA, S.HMC, S.RandomWalkMH])
def test_the_same_seed_gives_the_same_chains_with_adaptation(cls):
    # the benchmark's speed rows (MALA, HMC) repeat exactly from the same seed, warm-up adaptation included
    def run():
        torch.manual_seed(0)
        k = cls(correlated, 0.3) if cls is not S.HMC else cls(correlated, 0.3, num_steps=10)
        return S.sample_chains(k, torch.randn(8, 2, dtype=torch.float64), 50, warmup_steps=60)

    a, b = run(), run()
    assert torch.equal(a.samples, b.samples) and torch.equal(a.stats["step_size"], b.stats["step_size"])


def test_a_nan_log_density_and_a_kernel_name_are_refused_clearly():
    from pyrogen.inference.samplers import HMC, MALA, Langevin, RandomWalkMH, sample_chains

    x0 = torch.zeros(4, 2)

    def nan_target(x):
        return x.sum(-1) * float("nan")

    for kernel in (Langevin(nan_target), MALA(nan_target), RandomWalkMH(nan_target), HMC(nan_target)):
        with pytest.raises(ValueError, match="log_prob is nan at the starting position"):
            sample_chains(kernel, x0, 5)
    with pytest.raises(TypeError, match="got the string 'mala'"):
        sample_chains("mala", x0, 5)
    # -inf (outside the support) is a legal value at a start
    state = MALA(lambda x: torch.where(x[:, 0] > 0, -x.pow(2).sum(-1), torch.full((len(x),), -math.inf))).init(
        torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    )
    assert state.log_prob[1] == -math.inf


# -- ChEES-HMC -----------------------------------------------------------------------------------------------


def _scaled_gaussian(sd: torch.Tensor):
    return lambda x: -0.5 * ((x / sd) ** 2).sum(-1)


def test_chees_leaves_the_target_invariant_for_fixed_tuning():
    # exact draws of an anisotropic Gaussian stay exact draws: moments against the closed form, within 4
    # standard errors of the 4000 independent chains
    torch.manual_seed(0)
    sd = torch.tensor([1.0, 3.0])
    x0 = torch.randn(4000, 2) * sd
    k = S.ChEES(_scaled_gaussian(sd), step_size=0.3, trajectory_length=2.0, adapt_step_size=False, adapt_mass=False)
    ch = S.sample_chains(k, x0, 20)
    x = ch.samples[:, -1]
    assert 0.5 < float(ch.acceptance_rate.mean()) < 1
    se_mean, se_var = sd / math.sqrt(4000), sd**2 * math.sqrt(2 / 4000)
    assert (x.mean(0).abs() < 4 * se_mean).all(), x.mean(0)
    assert ((x.var(0) - sd**2).abs() < 4 * se_var).all(), x.var(0)


def test_chees_warmup_learns_the_mass_matrix_the_trajectory_length_and_samples_the_target():
    torch.manual_seed(1)
    sd = torch.tensor([1.0, 10.0, 0.1])
    k = S.ChEES(_scaled_gaussian(sd), step_size=0.01, trajectory_length=0.05)
    ch = S.sample_chains(k, torch.randn(128, 3), 300, warmup_steps=400)
    tuning = ch.state.adaptation
    ratio = tuning["inv_mass"] / sd**2
    assert ((ratio > 0.7) & (ratio < 1.4)).all(), tuning["inv_mass"]  # the variances, from the chains
    assert float(tuning["log_T"].exp()) > 0.5  # from 0.05: the ChEES criterion asks for longer trajectories
    assert torch.equal(ch.stats["step_size"], ch.stats["step_size"][:1, :1].expand_as(ch.stats["step_size"]))
    x = ch.samples.reshape(-1, 3)
    assert ((x.std(0) / sd - 1).abs() < 0.1).all(), x.std(0)
    assert (x.mean(0).abs() < 0.1 * sd).all(), x.mean(0)


def test_chees_refuses_a_target_that_is_not_finite_and_runs_under_pyro_mcmc():
    with pytest.raises(ValueError, match="log_prob is nan at the starting position"):
        S.ChEES(lambda x: x.sum(-1) * math.nan).init(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="trajectory_length must be"):
        S.ChEES(_scaled_gaussian(torch.ones(2)), trajectory_length=0.0)

    def model():
        pyro.sample("z", dist.Normal(3.0, 0.5))

    pyro.set_rng_seed(0)
    mcmc = MCMC(S.PyroKernel(S.ChEES, model=model, step_size=0.2), num_samples=400, warmup_steps=200)
    mcmc.run()
    z = mcmc.get_samples()["z"]
    assert abs(float(z.mean()) - 3.0) < 0.15 and 0.35 < float(z.std()) < 0.65


def test_no_loop_outside_the_two_drivers_makes_chains():
    # every function of pyrogen that builds Chains either is a driver (sample_chains for transition kernels,
    # run_scheduler for the diffusion schedulers) or has no loop but loops that hand their work to a driver:
    # the transitions of every sampler go through one of the two
    import ast
    import pathlib

    import pyrogen

    drivers = {"sample_chains", "run_scheduler"}
    root = pathlib.Path(pyrogen.__file__).parent
    offenders, builders = [], []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)]
            names = {getattr(c.func, "id", getattr(c.func, "attr", None)) for c in calls}
            if not names & {"Chains", "_Recorder"}:  # (the diffusion samplers' recorder of draws)
                continue
            builders.append(fn.name)
            if fn.name in drivers:
                continue
            for loop in (n for n in ast.walk(fn) if isinstance(n, ast.For | ast.While)):
                called = {
                    getattr(c.func, "id", getattr(c.func, "attr", None))
                    for c in ast.walk(loop)
                    if isinstance(c, ast.Call)
                }
                if not called & drivers:
                    offenders.append(f"{path.relative_to(root)}:{fn.name}:{loop.lineno}")
    assert {"sample_chains", "run_scheduler", "run", "gibbs_chains"} <= set(builders)  # the check sees them
    assert not offenders, offenders


# -- the shared suite every kernel joins -----------------------------------------------------------------------
def _ising_sweep(x):
    # single-site Gibbs on two coupled +-1 spins with fields: p(x) ∝ exp(0.8 x1 x2 + 0.3 x1 - 0.5 x2)
    x = x.clone()
    for i, (field, other) in enumerate(((0.3, 1), (-0.5, 0))):
        a = field + 0.8 * x[:, other]
        x[:, i] = torch.where(torch.rand(len(x), dtype=x.dtype) < torch.sigmoid(2 * a), 1.0, -1.0)
    return x


def _ising_log_prob(x):
    return 0.8 * x[:, 0] * x[:, 1] + 0.3 * x[:, 0] - 0.5 * x[:, 1]


SHARED = {
    **{
        name: (lambda name=name: S.kernel_class(name)(lambda x: -0.5 * x.flatten(1).pow(2).sum(-1), 0.05))
        for name in S.KERNELS
    },
    "gibbs": lambda: S.Gibbs(_ising_sweep, _ising_log_prob),
}


@pytest.mark.parametrize("name", list(SHARED))
def test_every_kernel_keeps_the_shared_contract(name):
    # what every kernel of the one protocol keeps under sample_chains (the pattern of diffusers'
    # SchedulerCommonTest): started at exact draws of its target it stays there (the Gaussian's first two moments,
    # the Ising pair's four probabilities); one seed, one chain; any event shape; a start where the log density is
    # NaN is refused
    torch.manual_seed(0)
    if name == "gibbs":
        start = torch.where(torch.rand(20000, 2, dtype=torch.float64) < 0.5, 1.0, -1.0)
        for _ in range(30):  # the exact law of the pair, reached by the sweep itself from a uniform start
            start = _ising_sweep(start)
    else:
        start = torch.randn(20000, 2, dtype=torch.float64)
    ch = S.sample_chains(SHARED[name](), start, 1, warmup_steps=0, thin=20)
    end = ch.samples[:, -1]
    if name == "gibbs":
        states = torch.tensor([[a, b] for a in (-1.0, 1.0) for b in (-1.0, 1.0)], dtype=torch.float64)
        p = _ising_log_prob(states).softmax(0)
        freq = torch.stack([(end == s).all(-1).double().mean() for s in states])
        torch.testing.assert_close(freq, p, atol=4 * math.sqrt(0.25 / 20000), rtol=0)
    else:
        se = 1 / math.sqrt(20000)
        assert end.mean(0).abs().max() < 4 * se, end.mean(0)
        # the unadjusted kernel's known bias at this step: var = 1 / (1 - 0.05 / 2)
        var = 1 / (1 - 0.025) if name == "langevin" else 1.0
        assert (end.var(0) - var).abs().max() < 4 * math.sqrt(2) * se, end.var(0)
    # one seed, one chain (with warm-up adaptation where the kernel adapts)
    runs = []
    for _ in range(2):
        torch.manual_seed(1)
        runs.append(S.sample_chains(SHARED[name](), start[:16], 5, warmup_steps=10).samples)
    assert torch.equal(runs[0], runs[1])
    # any event shape: images (chains, 1, 2, 2) for the continuous kernels
    if name != "gibbs":
        img = S.sample_chains(SHARED[name](), torch.randn(3, 1, 2, 2), 4, warmup_steps=2)
        assert img.samples.shape == (3, 4, 1, 2, 2) and img.stats["lp"].shape == (3, 4)
        nan = S.kernel_class(name)(lambda x: x.flatten(1).sum(-1) * math.nan, 0.1)
    else:
        nan = S.Gibbs(_ising_sweep, lambda x: x.sum(-1) * math.nan)
    with pytest.raises(ValueError, match="log_prob is nan at the starting position"):
        S.sample_chains(nan, start[:4], 2)
