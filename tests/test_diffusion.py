"""Diffusion and score models: schedules, samplers with the exact score of a Gaussian, the bound and the
probability-flow likelihood against closed forms, and the models' Pyro programs."""

import math

import pyro
import pytest
import torch
from conftest import loss
from scipy import stats

from pyrogen.distributions import DiscretizedNormal
from pyrogen.inference import diffusion as D
from pyrogen.inference.objectives import objective_for
from pyrogen.inference.samplers import AnnealedLangevin
from pyrogen.inference.schedules import VESDE, VPSDE, NoiseSchedule, SubVPSDE, geometric_sigmas, make_sde
from pyrogen.models import DDPM, NCSN, ScoreSDE, registry

MU = torch.tensor([1.0, -2.0])
S = torch.tensor([0.5, 1.5])


def gaussian_eps(schedule, mu=MU, s=S):
    """The exact eps-prediction of data N(mu, diag s^2) under the DDPM chain."""

    def eps_fn(x, t):
        ab = schedule.alpha_bars[t].to(x)[:, None]
        var = ab * s**2 + 1 - ab
        return (1 - ab).sqrt() * (x - ab.sqrt() * mu) / var

    return eps_fn


def gaussian_score(sde, mu=MU, s=S):
    def score_fn(x, t):
        m, sd = sde.marginal(t)
        m, sd = m.to(x)[:, None], sd.to(x)[:, None]
        return -(x - m * mu) / (m**2 * s**2 + sd**2)

    return score_fn


def assert_gaussian(x, mu=MU, s=S, mean_tol=4.0, std_rel=0.04):
    """Sample moments within ``mean_tol`` standard errors, stds within ``std_rel``, and a KS test per axis."""
    n = len(x)
    se = s / math.sqrt(n)
    assert ((x.mean(0) - mu).abs() < mean_tol * se).all(), (x.mean(0), mu)
    assert ((x.std(0) / s - 1).abs() < std_rel).all(), (x.std(0), s)
    for i in range(x.shape[1]):
        p = stats.kstest(x[:, i].numpy(), "norm", args=(float(mu[i]), float(s[i]))).pvalue
        assert p > 1e-3, (i, p)


# -- schedules -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_closed_form_marginal_equals_composing_the_one_step_chain(name):
    sch = NoiseSchedule.make(name, 50)
    x0 = torch.tensor([[2.0, -1.0]]).expand(20000, 2)
    x = x0.clone()
    for t in range(1, 51):
        x = sch.q_step(x, torch.full((len(x),), t))
        if t in (1, 10, 50):
            mean, std = sch.q_moments(x0[:1], torch.tensor([t]))
            se = float(std) / math.sqrt(len(x))
            assert (x.mean(0) - mean[0]).abs().max() < 5 * se, t
            assert (x.std(0) / std[0] - 1).abs().max() < 0.03, t


def test_schedule_tables_and_bad_arguments():
    lin = NoiseSchedule.make("linear", 1000)
    torch.testing.assert_close(lin.betas[1:], torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    torch.testing.assert_close(lin.alpha_bars, torch.cumprod(1 - lin.betas, 0))
    cos = NoiseSchedule.make("cosine", 1000)
    t = torch.arange(1001, dtype=torch.float64) / 1000
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(cos.alpha_bars[1:-1], (f / f[0])[1:-1], rtol=1e-6, atol=1e-9)
    assert (lin.snr[1:] < lin.snr[:-1]).all() and math.isinf(lin.snr[0])
    with pytest.raises(ValueError, match="schedule must be one of linear, cosine; got 'quad'"):
        NoiseSchedule.make("quad", 10)
    with pytest.raises(ValueError, match="timesteps must be a positive integer; got 0"):
        NoiseSchedule.make("linear", 0)
    with pytest.raises(ValueError, match="betas must be"):
        NoiseSchedule(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match="t must hold steps in 0..10"):
        NoiseSchedule.make("linear", 10).q_sample(torch.zeros(2, 2), torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="sde must be one of vp, subvp, ve; got 'vv'"):
        make_sde("vv")
    with pytest.raises(ValueError, match="sigma_min must be below sigma_max"):
        VESDE(sigma_min=2.0, sigma_max=1.0)
    s = geometric_sigmas(10.0, 0.01, 4)
    torch.testing.assert_close(s, torch.tensor([10.0, 1.0, 0.1, 0.01], dtype=torch.float64))


def test_posterior_is_bayes_rule_on_the_two_gaussians():
    """q(x_{t-1} | x_t, x_0) from the closed form equals the product q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalized."""
    sch = NoiseSchedule.make("cosine", 20)
    x0, xt, t = torch.tensor([[0.7]]), torch.tensor([[0.2]]), torch.tensor([9])
    mean, var = sch.posterior(x0.double(), xt.double(), t)
    grid = torch.linspace(-6, 6, 200001, dtype=torch.float64)[:, None]
    a, ab_prev = sch.alphas[9], sch.alpha_bars[8]
    logp = torch.distributions.Normal(a.sqrt() * grid, (1 - a).sqrt()).log_prob(xt.double())
    logp = logp + torch.distributions.Normal(ab_prev.sqrt() * x0.double(), (1 - ab_prev).sqrt()).log_prob(grid)
    w = torch.softmax(logp.flatten(), 0)
    m = (w * grid.flatten()).sum()
    v = (w * (grid.flatten() - m) ** 2).sum()
    torch.testing.assert_close(m, mean.flatten()[0], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(v, var.flatten()[0], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("p", ["eps", "x0", "v", "score"])
def test_parametrizations_convert_to_eps_and_back(p):
    sch = NoiseSchedule.make("linear", 100)
    x0, eps = torch.randn(8, 3), torch.randn(8, 3)
    t = torch.randint(1, 101, (8,))
    xt = sch.q_sample(x0, t, eps)
    out = sch.from_eps(eps, xt, t, p)
    torch.testing.assert_close(sch.to_eps(out, xt, t, p), eps, rtol=1e-4, atol=1e-4)
    ab = sch.alpha_bars[t].float()[:, None]
    expected = {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0, "score": -eps / (1 - ab).sqrt()}
    torch.testing.assert_close(out, expected[p], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(sch.eps_to_score(eps, xt, t), -eps / (1 - ab).sqrt())


def test_the_denoising_target_is_the_noisy_score():
    r"""E[-z / sigma | x + sigma z] is the score of the blurred data (Vincent, 2011): NCSN's loss at the exact
    blurred score of N(0, s^2) is its known minimum 1/2 s^2 / (s^2 + sigma^2) per dimension, and a wrong score
    scores worse."""
    torch.manual_seed(0)
    s = 0.8
    m = NCSN((2,), sigma_max=2.0, sigma_min=0.1, num_scales=3, ema=None)
    exact = {"scale": 1.0}

    def net(z, c, y=None):  # o(z, log sigma) = sigma * score
        sigma = c.exp()[:, None]
        return exact["scale"] * sigma * (-z / (s**2 + sigma**2))

    m.net.forward = net
    x = s * torch.randn(200000, 2)
    loss = float(m.denoising_loss(x).mean())
    expected = float(torch.mean(0.5 * s**2 / (s**2 + m.sigmas.float() ** 2)))
    assert abs(loss - expected) < 0.005, (loss, expected)
    exact["scale"] = 0.8
    assert float(m.denoising_loss(x).mean()) > expected + 0.005


# -- samplers with the exact score ------------------------------------------------------------------------------
def test_ancestral_and_ddim_reproduce_a_gaussian():
    torch.manual_seed(0)
    sch = NoiseSchedule.make("linear", 1000)
    eps_fn = gaussian_eps(sch)
    x = torch.randn(20000, 2)
    assert_gaussian(D.ancestral(eps_fn, sch, x).samples[:, -1])
    assert_gaussian(D.ddim(eps_fn, sch, x, steps=1000).samples[:, -1])
    # DDIM at 200 steps: the discretization error is a 1-2% shrinkage (measured: 0.987 of the std at 200 steps)
    assert_gaussian(D.ddim(eps_fn, sch, x, steps=200).samples[:, -1], std_rel=0.03)
    assert_gaussian(D.ddim(eps_fn, sch, x, steps=1000, eta=1.0).samples[:, -1])


def test_ddim_is_deterministic_at_eta_zero_and_bad_arguments_are_named():
    sch = NoiseSchedule.make("linear", 100)
    x = torch.randn(5, 2)
    a = D.ddim(gaussian_eps(sch), sch, x, steps=10).samples
    b = D.ddim(gaussian_eps(sch), sch, x, steps=10).samples
    assert torch.equal(a, b)
    assert D.ddim_timesteps(100, 10) == [100, 89, 78, 67, 56, 45, 34, 23, 12, 1]
    with pytest.raises(ValueError, match="steps must be at most the model's 100 timesteps; got 101"):
        D.ddim(gaussian_eps(sch), sch, x, steps=101)
    with pytest.raises(ValueError, match="eta must be a finite number >= 0; got -1.0"):
        D.ddim(gaussian_eps(sch), sch, x, eta=-1.0)
    with pytest.raises(ValueError, match="variance must be 'posterior' or 'beta'"):
        D.ancestral(gaussian_eps(sch), sch, x, variance="big")
    with pytest.raises(ValueError, match="the network must return a tensor shaped like x"):
        D.ancestral(lambda x, t: x[:, :1], sch, x)
    with pytest.raises(ValueError, match="start must be finite"):
        D.ddim(gaussian_eps(sch), sch, torch.full((2, 2), float("nan")))


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=50.0)], ids=["vp", "subvp", "ve"])
def test_sde_samplers_reproduce_a_gaussian(sde):
    torch.manual_seed(1)
    mu = MU if sde.name != "ve" else torch.zeros(2)  # VE's prior N(0, 50^2) ignores the data's mean
    score_fn = gaussian_score(sde, mu)
    x1 = sde.prior_sample((20000, 2), mu)
    assert_gaussian(D.euler_maruyama(score_fn, sde, x1, steps=500, t_min=1e-4).samples[:, -1], mu)
    assert_gaussian(D.predictor_corrector(score_fn, sde, x1, steps=200, t_min=1e-4).samples[:, -1], mu)
    x, nfe = D.probability_flow(score_fn, sde, x1[:5000], t_min=1e-5)
    assert_gaussian(x, mu)
    assert nfe > 10


def test_annealed_langevin_reproduces_a_gaussian():
    torch.manual_seed(2)
    sigmas = geometric_sigmas(5.0, 0.01, 10)

    def score(x, sigma):
        return -(x - MU) / (S**2 + sigma[:, None] ** 2)

    x = AnnealedLangevin(score, sigmas, steps_per_level=100, eps=5e-5, denoise=False).run(5 * torch.randn(20000, 2))
    assert_gaussian(x.samples[:, -1], std_rel=0.05)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=50.0)], ids=["vp", "subvp", "ve"])
def test_probability_flow_likelihood_of_a_gaussian_is_its_log_density(sde):
    torch.manual_seed(3)
    mu = torch.tensor([0.3, -0.2])  # near the prior's mean: p_1 is then N(0, I) (or N(0, 50^2 I)) to 1e-4
    score_fn = gaussian_score(sde, mu)
    x = mu + S * torch.randn(300, 2)
    exact = torch.distributions.Normal(mu, S).log_prob(x).sum(-1)
    lp, _ = D.probability_flow_log_prob(score_fn, sde, x.double(), t_min=1e-5, rtol=1e-7, atol=1e-7)
    # VE's ODE is the stiffest (its drift grows like sigma(t) over five decades): measured max error 0.022
    assert (lp.float() - exact).abs().max() < (0.03 if sde.name == "ve" else 0.01), (lp.float() - exact).abs().max()
    # Hutchinson's estimate is unbiased: its mean over examples and probes agrees with the exact one
    gen = torch.Generator().manual_seed(0)
    lph, _ = D.probability_flow_log_prob(score_fn, sde, x, t_min=1e-5, trace="hutchinson", probes=4, generator=gen)
    diff = lph - lp.float()
    assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(len(diff)) + 1e-3
    assert float(diff.std()) > 0  # it is an estimate, not the exact value


def test_reverse_chains_become_inference_data():
    sch = NoiseSchedule.make("linear", 100)
    chains = D.ancestral(gaussian_eps(sch), sch, torch.randn(4, 2), record_every=10)
    assert chains.samples.shape == (4, 10, 2)
    idata = chains.to_inference_data()
    assert set(idata.sample_stats.data_vars) == {"t", "noise_std", "grad_norm"}
    assert idata.sample_stats["t"].values[0].tolist() == [91, 81, 71, 61, 51, 41, 31, 21, 11, 1]


# -- the discretized decoder -------------------------------------------------------------------------------------
def test_discretized_normal_sums_to_one_and_matches_the_normal_cdf():
    loc = torch.tensor([0.03, 0.5, 0.98, 2.0], dtype=torch.float64)
    scale = torch.tensor([0.01, 0.2, 0.05, 0.3], dtype=torch.float64)
    d = DiscretizedNormal(loc, scale, levels=17)
    k = torch.arange(17, dtype=torch.float64)
    probs = torch.stack([d.bin_log_prob(((kk + 0.5) / 17).expand(4)).exp() for kk in k])
    torch.testing.assert_close(probs.sum(0), torch.ones(4, dtype=torch.float64))
    cdf = stats.norm.cdf
    lo = torch.where(k == 0, -math.inf, k / 17)
    hi = torch.where(k == 16, math.inf, (k + 1) / 17)
    ref = cdf((hi[:, None].numpy() - loc.numpy()) / scale.numpy()) - cdf(
        (lo[:, None].numpy() - loc.numpy()) / scale.numpy()
    )
    torch.testing.assert_close(probs, torch.tensor(ref), rtol=1e-6, atol=1e-12)
    # far tails stay finite in log space
    far = DiscretizedNormal(torch.tensor([0.5]), torch.tensor([1e-3]), levels=17)
    assert torch.isfinite(far.log_prob(torch.tensor([0.95]))).all()
    with pytest.raises(ValueError, match="levels must be an integer >= 2; got 1"):
        DiscretizedNormal(loc, scale, levels=1)


# -- the models -----------------------------------------------------------------------------------------------------
def small_ddpm(timesteps=6, **kw):
    pyro.set_rng_seed(0)
    return DDPM((2,), hidden=(32, 32), emb_dim=16, timesteps=timesteps, ema=None, **kw)


def test_ddpm_elbo_decomposition_sums_to_the_direct_elbo():
    """The closed-form bound (prior matching + consistency + reconstruction, ``elbo``) equals the plain Monte
    Carlo ELBO of the Pyro program (log p - log q on a sampled chain, per example) in expectation; here with
    the exact eps of Gaussian data, where both are near the true log-likelihood."""
    m = small_ddpm(timesteps=100)
    m.eps = lambda z, t, y=None, guidance=0.0, averaged=True: gaussian_eps(m.schedule, MU / 2, S / 2)(z, t)
    pyro.set_rng_seed(0)
    x = 0.5 * (MU + S * torch.randn(5000, 2))  # in the diffusion's space: data scale 1, so N(MU/2, S/2)
    m.shift, m.scale = 0.0, 1.0
    closed = m.elbo(x)
    gt = pyro.poutine.trace(m.guide).get_trace(x)
    mt = pyro.poutine.trace(pyro.poutine.replay(m.model, trace=gt)).get_trace(x)
    gt.compute_log_prob()
    mt.compute_log_prob()
    log_p = sum(site["log_prob"] for site in mt.nodes.values() if site["type"] == "sample")
    log_q = sum(site["log_prob"] for site in gt.nodes.values() if site["type"] == "sample")
    direct = (log_p - log_q).detach()
    diff = direct - closed
    se = float(diff.std()) / math.sqrt(len(diff))
    assert abs(float(diff.mean())) < 4 * se, (float(direct.mean()), float(closed.mean()), se)


def test_ddpm_bound_gap_with_the_exact_score_is_the_variance_mismatch():
    r"""For data N(mu, I) every marginal q(x_t) is N(sqrt(abar_t) mu, I) and the true reverse kernel has the
    exact score's mean and variance beta_t; DDPM's p_theta has variance beta~_t. So the gap between the exact
    log-likelihood and the bound is, in closed form,
    KL(q(x_T) || N(0, I)) + D sum_{t>=2} 1/2 (r_t - 1 - log r_t), r_t = beta_t / beta~_t."""
    torch.manual_seed(5)
    m = small_ddpm(timesteps=100)
    mu, one = MU / 2, torch.ones(2)
    m.eps = lambda z, t, y=None, guidance=0.0, averaged=True: gaussian_eps(m.schedule, mu, one)(z, t)
    x = mu + torch.randn(4000, 2)
    gap = torch.distributions.Normal(mu, one).log_prob(x).sum(-1) - m.elbo(x)
    sch = m.schedule
    t = torch.arange(2, 101)
    r = sch.betas[t] / sch.posterior_variance(t, torch.zeros(99, 1)).flatten()
    expected = float(2 * 0.5 * (r - 1 - r.log()).sum() + 0.5 * (sch.alpha_bars[100] * mu**2).sum())
    se = float(gap.std()) / math.sqrt(len(gap))
    assert abs(float(gap.mean()) - expected) < 4 * se, (float(gap.mean()), expected, se)


def test_ddpm_vlb_objective_is_an_unbiased_estimate_of_the_bound():
    m = small_ddpm(objective="vlb")
    x = torch.tensor([[0.5, -1.0]]).expand(20000, 2).contiguous()
    pyro.set_rng_seed(0)
    with torch.no_grad():
        one_step = m.denoising_loss(x, averaged=False)
        bound = -m.elbo(x)
    se = float(one_step.std()) / math.sqrt(len(one_step))
    assert abs(float(one_step.mean()) - float(bound.mean())) < 4 * se, (float(one_step.mean()), float(bound.mean()), se)


def test_ddpm_discretized_bound_is_a_bound_on_the_bins():
    """With ``levels``, the bound is on log P(bin) + D log L: below the log-probability of the bin under the
    model, and the decoder term alone equals the discretized normal computed by hand."""
    pyro.set_rng_seed(0)
    m = DDPM(
        (2,), hidden=(16,), emb_dim=8, timesteps=4, support="unit_interval", levels=4, shift=0.5, scale=0.5, ema=None
    )
    x = torch.tensor([[0.1, 0.6], [0.9, 0.3]])
    z0 = m.to_latent_space(x)
    t1 = torch.ones(2, dtype=torch.long)
    z1 = m.schedule.q_sample(z0, t1)
    with torch.no_grad():
        term = m._term(x, z0, z1, t1, None, False)
        x0_hat = m._x0(z1, t1, None, False)
    loc = 0.5 + 0.5 * x0_hat
    scale = 0.5 * math.sqrt(float(m.schedule.betas[1]))
    k = (x * 4).floor()
    lo = torch.where(k == 0, -math.inf, k / 4)
    hi = torch.where(k == 3, math.inf, (k + 1) / 4)
    n = torch.distributions.Normal(loc, scale)
    by_hand = (n.cdf(hi) - n.cdf(lo)).log().sum(-1) + 2 * math.log(4)
    torch.testing.assert_close(-term, by_hand, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("p", ["x0", "v"])
def test_ddpm_parametrizations_train_and_sample(p):
    m = small_ddpm(parametrization=p)
    from pyrogen.inference import fit

    x = torch.randn(256, 2) * 0.3 + 1.0
    before = float(objective_for(m).validation(m, x))
    fit(m, x, None, steps=100, batch_size=64, lr=3e-3)
    assert float(objective_for(m).validation(m, x)) < before
    s = m.sample(8, sampler="ddim", steps=3)
    assert s.shape == (8, 2) and torch.isfinite(s).all()


def test_ddpm_inpainting_with_the_exact_score_approaches_the_gaussian_conditional():
    """Inpainting x_2 given x_1 = 1.5 with the exact eps of a correlated Gaussian (rho = 0.9): the conditional
    law is N(1.35, 0.436^2). Replacement alone ignores the known part's pull (measured: mean 0.93); RePaint's
    resampling brings the generated part close (5 rounds: mean 1.28, std 0.43; 20 rounds: 1.33) -- both are
    approximations, RePaint much the better."""
    torch.manual_seed(4)
    rho = 0.9
    cov = torch.tensor([[1.0, rho], [rho, 1.0]])
    m = DDPM((2,), hidden=(8,), emb_dim=8, timesteps=200, ema=None)
    sch = m.schedule

    def eps(z, t, y=None, guidance=0.0, averaged=True):
        ab = sch.alpha_bars[t].to(z)[:, None, None]
        sigma_t = ab * cov + (1 - ab) * torch.eye(2)
        score = -torch.linalg.solve(sigma_t, z[..., None])[..., 0]
        return -(1 - ab[:, :, 0]).sqrt() * score

    m.eps = eps
    n = 4000
    x = torch.stack([torch.full((n,), 1.5), torch.zeros(n)], -1)
    known = torch.tensor([True, False])
    filled = m.inpaint(x, known, method="repaint", resample=5)
    assert torch.equal(filled[:, 0], x[:, 0])  # the known part is kept as it is
    err = abs(float(filled[:, 1].mean()) - rho * 1.5)
    assert err < 0.1, float(filled[:, 1].mean())
    assert abs(float(filled[:, 1].std()) - math.sqrt(1 - rho**2)) < 0.05, float(filled[:, 1].std())
    replaced = m.inpaint(x, known, method="replace")[:, 1]
    assert abs(float(replaced.mean()) - rho * 1.5) > 3 * err
    with pytest.raises(ValueError, match=r"known must broadcast to x's shape \(4000, 2\); got \(3,\)"):
        m.inpaint(x, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match="known must be a boolean tensor"):
        m.inpaint(x, torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="method must be one of replace, repaint; got 'paint'"):
        m.inpaint(x, known, method="paint")
    with pytest.raises(ValueError, match="x must be finite"):
        m.inpaint(torch.full((2, 2), float("nan")), known)


def test_classifier_free_guidance_combines_the_two_predictions():
    pyro.set_rng_seed(0)
    m = DDPM((2,), hidden=(16,), emb_dim=8, timesteps=10, classes=3, ema=None).eval()
    z, t = torch.randn(5, 2), torch.full((5,), 4)
    y = torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        cond, uncond = m.eps(z, t, y, 0.0), m.eps(z, t, None, 0.0)
        torch.testing.assert_close(m.eps(z, t, y, 2.0), 3 * cond - 2 * uncond)
    assert m.labelled and m.sample(4, y=1, guidance=1.5, sampler="ddim", steps=3).shape == (4, 2)
    with pytest.raises(ValueError, match="y must hold classes in 0..2"):
        m.sample(2, y=3)
    with pytest.raises(ValueError, match="guidance needs a class-conditional model"):
        small_ddpm().sample(2, guidance=1.0)
    with pytest.raises(ValueError, match="give \\(examples, labels\\)"):
        loss(m, torch.zeros(4, 2))


def test_score_sde_likelihood_is_normalized_on_a_grid():
    """The probability-flow density of an (untrained) score SDE integrates to 1 over the plane."""
    pyro.set_rng_seed(0)
    m = ScoreSDE((2,), hidden=(16,), emb_dim=8, ode_tol=1e-4, ema=None)
    g = torch.linspace(-700, 700, 141)  # the untrained score is ~0: the ODE spreads N(0, I) by e^5 per axis
    grid = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    lp = m.log_prob(grid)
    mass = float(lp.exp().sum() * (g[1] - g[0]) ** 2)
    assert abs(mass - 1) < 0.02, mass


def test_model_options_are_checked_by_name():
    with pytest.raises(ValueError, match="objective must be one of simple, vlb; got 'l2'"):
        DDPM((2,), objective="l2")
    with pytest.raises(ValueError, match="parametrization must be one of eps, x0, v; got 'score'"):
        DDPM((2,), parametrization="score")
    with pytest.raises(ValueError, match="sampler must be one of ode, em, pc; got 'ddim'"):
        ScoreSDE((2,), sampler="ddim")
    with pytest.raises(ValueError, match="levels \\(a discretized decoder\\) needs unit-interval data"):
        DDPM((2,), levels=17)
    with pytest.raises(ValueError, match="classes must be 0 \\(unconditional\\) or an integer >= 2; got 1"):
        NCSN((2,), classes=1)
    with pytest.raises(ValueError, match="the ancestral sampler takes all 6 steps; got steps=3"):
        small_ddpm().sample(2, steps=3)
    from pyrogen.data import load

    with pytest.raises(ValueError, match="dataset 'digits-binary' is binary"):
        registry.from_dataset(DDPM, load("digits-binary"))
    m = registry.from_dataset(DDPM, load("digits"))
    assert (m.arch, m.levels_, m.clip, m.shift, m.scale) == ("unet", 17, 1.0, 0.5, 0.5)


def test_ddpm_pyro_program_on_images_equals_the_closed_form_bound_on_the_same_noise():
    """The U-Net DDPM with the discretized decoder: Pyro's TraceMeanField_ELBO on model and guide equals the
    fused bound on one chain, value and gradients, on the same seed (in float64: the bound is a sum of terms of
    hundreds of nats, and its smallest gradients differ by float32 rounding, 1e-5)."""
    from conftest import assert_fused_equals_pyro

    from pyrogen.data import load

    torch.set_default_dtype(torch.float64)  # the autouse fixture restores it
    pyro.set_rng_seed(0)
    m = registry.from_dataset(DDPM, load("digits"), features=8, emb_dim=8, timesteps=5, ema=None)
    assert m.levels_ == 17
    assert_fused_equals_pyro(m, load("digits").train[:16].double())


def test_flow_matching_likelihood_and_samples_of_known_velocity_fields(monkeypatch):
    # the ODE machinery against closed forms: v = a moves N(0, I) to N(a, I); v = c x scales it by e^c
    import math

    from pyrogen.models import FlowMatching

    torch.manual_seed(0)
    fm = FlowMatching(event_shape=(2,), hidden=(8,), emb_dim=8, ode_tol=1e-7).double().eval()
    x = torch.randn(6, 2, dtype=torch.float64)
    a = torch.tensor([0.7, -1.2], dtype=torch.float64)
    monkeypatch.setattr(fm, "velocity", lambda z, tau, *args, **kw: a + 0 * z)  # a graph through z
    want = torch.distributions.Normal(a, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(fm.log_prob(x), want, rtol=1e-5, atol=1e-5)
    c = 0.4
    monkeypatch.setattr(fm, "velocity", lambda z, tau, *args, **kw: c * z)
    want = torch.distributions.Normal(0.0, math.exp(c)).log_prob(x).sum(-1)
    torch.testing.assert_close(fm.log_prob(x), want, rtol=1e-5, atol=1e-5)
    pyro.set_rng_seed(1)
    s = fm.sample(4000, steps=20)  # midpoint steps: e^c x0 to second order
    assert abs(float(s.std()) - math.exp(c)) < 0.05, float(s.std())
    pyro.set_rng_seed(1)
    adaptive = fm.sample(4000)
    assert abs(float(adaptive.std()) - math.exp(c)) < 0.05


def test_flow_matching_learns_a_gaussian():
    from pyrogen.inference import fit
    from pyrogen.models import FlowMatching

    torch.manual_seed(0)
    data = torch.randn(2000, 2) * torch.tensor([0.5, 2.0]) + torch.tensor([1.0, -1.0])
    fm = FlowMatching(event_shape=(2,), hidden=(64, 64), emb_dim=16, ode_tol=1e-4, ema=None)
    fit(fm, data, None, steps=400, batch_size=256, lr=3e-3)
    truth = torch.distributions.Normal(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    test = truth.sample((200,))
    with torch.no_grad():
        gap = float(truth.log_prob(test).sum(-1).mean() - fm.log_prob(test).mean())
    assert 0 <= gap + 0.02 and gap < 0.1, gap  # within 0.1 nats of the true density, and no better by chance


def test_ffjord_density_integrates_to_one_and_its_training_trace_is_unbiased():
    from pyrogen.models import FFJORD

    torch.manual_seed(0)
    f = FFJORD(event_shape=(2,), hidden=(16, 16), emb_dim=8, ode_tol=1e-5).double()
    # a random field's density, summed over a grid that holds its mass
    g = torch.linspace(-7, 7, 141, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)
    with torch.no_grad():
        mass = float(f.eval().log_prob(grid).exp().sum()) * float(g[1] - g[0]) ** 2
    assert abs(mass - 1) < 0.01, mass
    # training: Hutchinson's divergence at train_tol, with a graph; its mean over probes is the exact value
    x = torch.randn(4, 2, dtype=torch.float64)
    f.train()
    f.train_tol = 1e-6
    exact = f._log_prob(x, "exact", 1, True, averaged=False).detach()
    draws = torch.stack([f.log_prob(x, differentiable=True).detach() for _ in range(300)])
    assert draws.std(0).min() > 0  # an estimate, not the exact trace
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact).abs() < 4 * se + 1e-6).all(), (draws.mean(0), exact)
    loss = -f.log_prob(x, differentiable=True).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in f.net.parameters())
    with pytest.raises(NotImplementedError, match="maximum likelihood"):
        f.denoising_loss(x)


def test_ffjord_learns_a_gaussian_by_maximum_likelihood():
    from pyrogen.inference import fit
    from pyrogen.models import FFJORD

    torch.manual_seed(0)
    data = torch.randn(2000, 2) * torch.tensor([0.5, 2.0]) + torch.tensor([1.0, -1.0])
    f = FFJORD(event_shape=(2,), hidden=(32, 32), emb_dim=8, shift=0.0, scale=1.0, ode_tol=1e-4, train_tol=1e-2)
    fit(f, data, None, steps=100, batch_size=128, lr=1e-2)
    truth = torch.distributions.Normal(torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    test = truth.sample((200,))
    with torch.no_grad():
        gap = float(truth.log_prob(test).sum(-1).mean() - f.eval().log_prob(test).mean())
    assert -0.05 < gap < 0.15, gap


def test_ffjord_draws_are_reparameterized_and_match_its_density():
    from pyrogen.models import FFJORD

    torch.manual_seed(0)
    f = FFJORD(event_shape=(2,), hidden=(16, 16), emb_dim=8, ode_tol=1e-5).eval()
    d = f.as_distribution()
    x = d.rsample((3,))
    assert d.has_rsample and x.shape == (3, 2) and x.requires_grad
    x.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.net.parameters())
    # the ODE's draws follow its own density: E_p[log p] from the draws equals the grid's -entropy
    with torch.no_grad():
        draws = d.sample((4000,))
        lp = d.log_prob(draws)
        g = torch.linspace(-7, 7, 141)
        grid = torch.cartesian_prod(g, g)
        p = d.log_prob(grid).exp() * float(g[1] - g[0]) ** 2
        neg_entropy = float((p * d.log_prob(grid)).sum() / p.sum())
    assert abs(float(lp.mean()) - neg_entropy) < 4 * float(lp.std()) / math.sqrt(len(lp)) + 0.01


def _schedulers():
    sch = NoiseSchedule.make("linear", 40)
    x0 = torch.zeros(6, 1, 3, 3)
    known = torch.zeros(1, 3, 3, dtype=torch.bool)
    known[:, 0] = True
    return {
        "ancestral": lambda: D.AncestralScheduler(sch, clip=1.0),
        "ddim": lambda: D.DDIMScheduler(sch, steps=10, eta=0.5),
        "euler-maruyama": lambda: D.EulerMaruyamaScheduler(VPSDE(), steps=20),
        "predictor-corrector": lambda: D.PredictorCorrectorScheduler(VESDE(), steps=20, corrector_steps=2),
        "repaint": lambda: D.RePaintScheduler(sch, x0, known, resample=3),
        "midpoint": lambda: D.MidpointScheduler(6),
    }


@pytest.mark.parametrize("name", list(_schedulers()))
def test_every_scheduler_keeps_the_shared_contract(name):
    # what every step-wise diffusion sampler keeps under run_scheduler (the pattern of diffusers'
    # SchedulerCommonTest): one seed, one chain; any event shape; step() gives x_prev and x0_hat shaped like x;
    # a network that returns NaN and a NaN start are refused with the step named
    make = _schedulers()[name]

    def net(x, t):
        return -0.5 * x + 0.01 * t.float().view(-1, *([1] * (x.dim() - 1)))

    x = torch.randn(6, 1, 3, 3)
    torch.manual_seed(2)
    a = D.run_scheduler(net, make(), x, record_every=4)
    torch.manual_seed(2)
    b = D.run_scheduler(net, make(), x, record_every=4)
    assert torch.equal(a.samples, b.samples)
    s = make()
    assert a.samples.shape == (6, math.ceil(len(s.timesteps) / 4), 1, 3, 3)
    assert set(a.stats) == {"t", "noise_std", "grad_norm"}
    assert all(v.shape == a.samples.shape[:2] for v in a.stats.values())
    x_prev, x0_hat = s.step(net(x, s.network_time(0, x)), 0, x)
    assert x_prev.shape == x0_hat.shape == x.shape and torch.isfinite(x0_hat).all()
    if name != "repaint":  # (its known part has the image's shape)
        assert D.run_scheduler(lambda v, t: -v, make(), torch.randn(5, 2)).samples.shape[::2] == (5, 2)
    with pytest.raises(ValueError, match="non-finite values at t = "):
        D.run_scheduler(lambda v, t: v * math.nan, make(), x)
    with pytest.raises(ValueError, match="must be finite"):
        D.run_scheduler(net, make(), x * math.nan)
    with pytest.raises(TypeError, match="scheduler must be a pyrogen.inference.diffusion.Scheduler; got str"):
        D.run_scheduler(net, "ddim", x)


def test_the_scheduled_samplers_draw_what_the_step_by_step_formulas_draw():
    # DDPM's ancestral step written out with the schedule's tensor formulas (eps -> x0, the posterior of q): the
    # scheduler's Python-float arithmetic draws the same chain under one seed
    sch = NoiseSchedule.make("cosine", 30)
    x = torch.randn(8, 2, dtype=torch.float64)

    def net(v, t):
        return 0.3 * v + 0.01 * t.double()[:, None]

    torch.manual_seed(6)
    got = D.ancestral(net, sch, x).samples[:, -1]
    torch.manual_seed(6)
    z = x
    for step in range(30, 0, -1):
        t = torch.full((8,), step, dtype=torch.long)
        mean, var = sch.posterior(sch.eps_to_x0(net(z, t), z, t), z, t)
        z = mean + var.sqrt() * torch.randn_like(z) if step > 1 else mean
    torch.testing.assert_close(got, z, rtol=1e-10, atol=1e-10)
