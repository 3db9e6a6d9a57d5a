"""Uses of a latent space and the amortization gap, checked against closed forms and brute force."""

import math

import pytest
import torch
from conftest import small_data, small_model
from test_vae import _ppca

from pyrogen import diagnostics
from pyrogen.inference import amortization_gap, latent_nuts, optimize_local_posterior
from pyrogen.latent import class_means, impute, interpolate, latent_arithmetic, lerp, slerp
from pyrogen.metrics import auroc, linear_probe, log_likelihoods, outlier_scores


def test_slerp_keeps_the_norm_and_moves_at_constant_angle():
    torch.manual_seed(0)
    a, b = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    b = b * a.norm() / b.norm()
    t = torch.linspace(0, 1, 9, dtype=torch.float64)
    path = slerp(a, b, t)
    assert torch.allclose(path[0], a) and torch.allclose(path[-1], b)
    assert torch.allclose(path.norm(dim=1), a.norm().expand(9))
    omega = torch.arccos(a @ b / a.norm() ** 2)
    angles = torch.arccos((path @ a / a.norm() ** 2).clamp(-1, 1))
    assert torch.allclose(angles, t * omega, atol=1e-6)
    assert torch.allclose(lerp(a, b, t)[4], (a + b) / 2)
    assert torch.allclose(slerp(a, 2 * a, t), lerp(a, 2 * a, t))  # parallel codes: the straight line


def test_interpolation_ends_at_the_reconstructions():
    m = small_model("vae")
    x = small_data("vae", 2)
    for method in ("linear", "spherical"):
        path = interpolate(m, x[0], x[1], steps=5, method=method)
        assert path.shape == (5, 1, 8, 8)
        with torch.no_grad():
            ends = m.decode(m.encode(x)[0])
        assert torch.allclose(path[[0, -1]], ends, atol=1e-5)
    with pytest.raises(ValueError, match="method must be one of .*; got 'cubic'"):
        interpolate(m, x[0], x[1], method="cubic")
    with pytest.raises(ValueError, match="steps must be an integer >= 2; got 1"):
        interpolate(m, x[0], x[1], steps=1)
    with pytest.raises(ValueError, match=r"x2 must be one example of shape \(1, 8, 8\); got \(2, 1, 8, 8\)"):
        interpolate(m, x[0], x)


def test_class_means_and_arithmetic_match_a_brute_force():
    m = small_model("vae")
    x, y = small_data("vae", 64), torch.arange(64) % 3
    means = class_means(m, x, y)
    with torch.no_grad():
        codes = m.encode(x)[0]
        for c in range(3):
            assert torch.allclose(means[c], codes[y == c].mean(0), atol=1e-6)
        moved = latent_arithmetic(m, x[:4], means[0], means[2], strength=0.5)
        assert torch.allclose(moved, m.decode(codes[:4] + 0.5 * (means[2] - means[0])))
    with pytest.raises(ValueError, match=r"classes \[3\] have no examples"):
        class_means(m, x, y, classes=4)
    with pytest.raises(ValueError, match="labels must be a 1-D integer tensor with one entry per example"):
        class_means(m, x, y[:10])


def test_auroc_equals_the_pairwise_count():
    torch.manual_seed(0)
    a, b = torch.randn(40), torch.randn(30) + 1
    a[:5] = b[:5]  # ties count one half
    brute = sum((float(j > i) + 0.5 * float(j == i)) for i in a for j in b) / (len(a) * len(b))
    assert auroc(a, b) == pytest.approx(brute)
    assert auroc(torch.zeros(3), torch.ones(3)) == 1.0 and auroc(torch.ones(3), torch.ones(3)) == 0.5
    with pytest.raises(ValueError, match="outlier_scores must be a non-empty set of finite scores"):
        auroc(a, torch.tensor([float("nan")]))


def test_linear_probe_separates_separable_features_and_not_noise():
    torch.manual_seed(0)
    y = torch.arange(200) % 4
    informative = torch.nn.functional.one_hot(y, 4).float() + 0.05 * torch.randn(200, 4)
    assert linear_probe(informative[:100], y[:100], informative[100:], y[100:]) == 1.0
    noise = torch.randn(200, 4)
    assert linear_probe(noise[:100], y[:100], noise[100:], y[100:]) < 0.45
    with pytest.raises(ValueError, match=r"train features \(100\) and labels \(99\) differ"):
        linear_probe(noise[:100], y[:99], noise[100:], y[100:])


def test_outlier_score_is_the_negative_log_likelihood():
    m = small_model("vae")
    x = small_data("vae", 8)
    torch.manual_seed(3)
    a = outlier_scores(m, x, k=20)
    torch.manual_seed(3)
    assert torch.equal(a, -log_likelihoods(m, x, k=20))


def test_local_posterior_recovers_the_exact_ppca_posterior():
    """The best diagonal Gaussian for a linear-Gaussian model with orthogonal loadings is the exact posterior."""
    m, x, log_px, post_mean, post_cov = _ppca(perturb=0.5)
    local = optimize_local_posterior(m, x, steps=1500, lr=0.02, samples=32, eval_samples=4000)
    assert torch.allclose(local.loc, post_mean, atol=0.02)
    assert torch.allclose(local.scale, post_cov.diagonal().sqrt().expand_as(local.scale), rtol=0.05)
    assert torch.allclose(local.elbo, log_px, atol=0.02)
    assert (local.amortized_elbo < local.elbo - 0.1).all()  # the perturbed encoder pays an amortization gap


@pytest.mark.slow
def test_nuts_over_ppca_latents_matches_the_closed_form_posterior():
    m, x, log_px, post_mean, post_cov = _ppca()
    x = x[:3]
    runs = latent_nuts(m, x, num_chains=2, num_samples=400, warmup_steps=300)
    table = diagnostics.summary(diagnostics.from_pyro(runs))
    assert table["r_hat"].max() < 1.05
    z = torch.cat([r.get_samples()["z"] for r in runs])  # (draws, 3, 2)
    mcse = torch.tensor(table["mcse_mean"].to_numpy(copy=True)).reshape(3, 2)
    assert ((z.mean(0) - post_mean[:3]).abs() < 5 * mcse + 1e-3).all(), (z.mean(0), post_mean[:3], mcse)
    assert torch.allclose(z.std(0), post_cov.diagonal().sqrt().expand(3, 2), rtol=0.15)
    out = amortization_gap(m, x, k=100, nuts=False)
    assert out["approximation_gap"] == pytest.approx(0.0, abs=0.02)  # the Gaussian family holds the posterior
    assert out["amortization_gap"] == pytest.approx(0.0, abs=0.02) and math.isfinite(out["log_px"])


def test_amortization_gap_rejects_models_it_does_not_cover():
    with pytest.raises(ValueError, match="unconditional VAE with one stochastic layer"):
        optimize_local_posterior(small_model("hvae"), small_data("hvae", 2))
    with pytest.raises(ValueError, match="steps must be a positive integer; got 0"):
        optimize_local_posterior(small_model("vae"), small_data("vae", 2), steps=0)


def test_imputation_with_the_exact_posterior_is_the_gaussian_conditional():
    """On PPCA with the exact encoder the pseudo-Gibbs chain is a Gibbs sampler: its mean is E[x_miss | x_obs]."""
    m, x, _, _, _ = _ppca()
    W, b = m.decoder[0].weight.detach(), m.decoder[0].bias.detach()
    cov = W @ W.T + 0.25 * torch.eye(5, dtype=torch.float64)
    obs = torch.tensor([True, True, False, True, False])
    o, u = obs.nonzero().flatten(), (~obs).nonzero().flatten()
    expected = b[u] + (x[:, o] - b[o]) @ torch.linalg.solve(cov[o][:, o], cov[o][:, u])
    torch.manual_seed(0)
    draw, mean = impute(m, x, obs, steps=6000, burn_in=100)
    assert torch.equal(draw[:, o], x[:, o]) and torch.equal(mean[:, o], x[:, o])
    assert torch.allclose(mean[:, u], expected, atol=0.06), (mean[:, u], expected)
    with pytest.raises(ValueError, match="observed must be a boolean tensor"):
        impute(m, x, obs.float())
    with pytest.raises(ValueError, match=r"burn_in \(10\) must be smaller than steps \(10\)"):
        impute(m, x, obs, steps=10, burn_in=10)


def test_imputation_of_binary_digits_keeps_the_observed_pixels():
    m = small_model("vae")
    x = small_data("vae", 6)
    top = torch.zeros(1, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    draw, mean = impute(m, x, top, steps=5, burn_in=1)
    assert torch.equal(draw[:, :, :4], x[:, :, :4]) and set(draw.unique().tolist()) <= {0.0, 1.0}
    assert ((mean[:, :, 4:] > 0) & (mean[:, :, 4:] < 1)).all()
