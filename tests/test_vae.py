"""The latent-variable family against closed forms (probabilistic PCA), Pyro's ELBOs and a digit classifier."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import assert_fused_equals_pyro, loss, small_data, small_model
from pyro.infer import RenyiELBO, Trace_ELBO

from pyrogen.data import load
from pyrogen.inference import fit, gaussian_kl, iwae_bound, training_data
from pyrogen.inference.objectives import objective_for
from pyrogen.models import CVAE, SSVAE, VAE, HierarchicalVAE

# -- probabilistic PCA: log p(x) and p(z | x) in closed form ---------------------------------------------------------
D, L, SIGMA = 5, 2, 0.5


def _ppca(perturb: float = 0.0):
    """A linear-Gaussian VAE whose encoder is the exact posterior (``perturb`` moves it away), and its truth."""
    torch.manual_seed(0)
    m = VAE(event_shape=(D,), latent_dim=L, hidden=(), kl_warmup=0, likelihood="gaussian", decoder_scale=SIGMA)
    m = m.double()
    g = torch.Generator().manual_seed(0)  # the truth does not depend on how the VAE drew its initial weights
    q, _ = torch.linalg.qr(torch.randn(D, L, dtype=torch.float64, generator=g))
    W = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns: the posterior covariance is diagonal
    b = torch.randn(D, dtype=torch.float64, generator=g)
    post_cov = torch.linalg.inv(torch.eye(L, dtype=torch.float64) + W.T @ W / SIGMA**2)
    A = post_cov @ W.T / SIGMA**2
    std = post_cov.diagonal().sqrt() * (1 + perturb)
    with torch.no_grad():
        m.decoder[0].weight.copy_(W)
        m.decoder[0].bias.copy_(b)
        enc = m.encoder[0]
        enc.weight.zero_()
        enc.weight[:L] = A * (1 + perturb)
        enc.bias[:L] = -A @ b + perturb
        enc.bias[L:] = torch.log(torch.expm1(std - 1e-4))
    x = torch.randn(7, D, dtype=torch.float64, generator=g) * 2
    log_px = dist.MultivariateNormal(b, W @ W.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)).log_prob(x)
    post_mean = (x - b) @ A.T
    return m, x, log_px, post_mean, post_cov


def test_ppca_exact_posterior_makes_every_importance_weight_equal_log_px():
    m, x, log_px, post_mean, post_cov = _ppca()
    loc, scale = m.encode(x)
    assert torch.allclose(loc, post_mean, atol=1e-10) and torch.allclose(scale**2, post_cov.diagonal().expand(7, L))
    with torch.no_grad():
        rec, log_r = m.elbo_terms(x, None, 50, analytic=False)
        assert torch.allclose(rec + log_r, log_px.expand(50, 7), atol=1e-9)  # zero-variance weights
        assert torch.allclose(m.iwae(x, k=1), log_px, atol=1e-9)
        elbos = torch.stack([m.elbo(x) for _ in range(4000)])  # closed-form KL, Monte Carlo reconstruction
    se = elbos.std(0) / math.sqrt(len(elbos))
    assert ((elbos.mean(0) - log_px).abs() < 4 * se).all(), (elbos.mean(0) - log_px, se)


def test_ppca_elbo_gap_equals_kl_to_the_exact_posterior():
    m, x, log_px, post_mean, post_cov = _ppca(perturb=0.3)
    loc, scale = m.encode(x)
    q = dist.MultivariateNormal(loc, torch.diag_embed(scale**2))
    kl = torch.distributions.kl_divergence(q, dist.MultivariateNormal(post_mean, post_cov))
    with torch.no_grad():
        rec, log_r = m.elbo_terms(x, None, 40_000, analytic=False)
    w = rec + log_r
    elbo, se = w.mean(0), w.std(0) / math.sqrt(len(w))
    assert (elbo < log_px).all() and (kl > 0.05).all()
    assert ((elbo - (log_px - kl)).abs() < 4 * se + 1e-6).all(), (elbo, log_px - kl, se)


def test_ppca_iwae_increases_with_k_towards_log_px():
    m, x, log_px, _, _ = _ppca(perturb=0.3)
    gap = {}  # log p(x) - IWAE_k, averaged over 7 examples and 50 seeds
    with torch.no_grad():
        for k in (1, 5, 50, 500):
            gap[k] = float((log_px - torch.stack([m.iwae(x, k=k, chunk=500) for _ in range(50)]).mean(0)).mean())
    print("log p(x) - IWAE_k, k = 1, 5, 50, 500:", {k: round(v, 3) for k, v in gap.items()})
    assert gap[1] > gap[5] > gap[50] > gap[500] > -1e-3, gap
    assert gap[500] < 0.05 * gap[1], gap  # pytest -s prints them


# -- Pyro is the reference ------------------------------------------------------------------------------------------
CONFIGS = {
    "gaussian-learned-conv": {"likelihood": "gaussian", "arch": "conv", "hidden": (16,)},
    "gaussian-fixed": {"likelihood": "gaussian", "decoder_scale": 0.2},
    "categorical": {"likelihood": "categorical", "levels": 17},
    "planar-posterior": {"posterior_flow": "planar", "flow_layers": 3},
    "iaf-posterior-mixture-prior": {"posterior_flow": "iaf", "prior": "mixture", "prior_components": 2},
    "beta-warmup": {"beta": 3.0, "kl_warmup": 10},
    "iwae-flow-prior": {"k": 3, "prior": "flow", "prior_layers": 2},
}
DATA = {"bernoulli": "digits-binary", "gaussian": "digits", "categorical": "digits-int"}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fused_loss_equals_pyro_on_every_option(name):
    kwargs = {"latent_dim": 3, "hidden": (24,), "kl_warmup": 0, **CONFIGS[name]}
    m = VAE(event_shape=(1, 8, 8), **kwargs)
    m.train()
    m.clock.before_step(4)
    assert_fused_equals_pyro(m, load(DATA[kwargs.get("likelihood", "bernoulli")]).train[:32], seed=3)


def test_iwae_bound_equals_renyi_elbo_alpha_zero():
    m = small_model("iwae")
    m.eval()
    x = small_data("iwae", 16)
    renyi = RenyiELBO(alpha=0, num_particles=m.k, vectorize_particles=True, max_plate_nesting=1)
    with torch.no_grad():  # RenyiELBO.loss calls float() on a tensor that requires grad
        pyro.set_rng_seed(7)
        ours = -iwae_bound(m.model, m.guide, m.k, x, None).sum()
        pyro.set_rng_seed(7)
        assert float(ours) == pytest.approx(renyi.loss(m.model, m.guide, x, None), rel=1e-5)
        pyro.set_rng_seed(7)
        assert float(loss(m, x)) == pytest.approx(float(ours) / len(x), rel=1e-5)


def test_iwae_bound_refuses_a_global_latent():
    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site 'mu' is outside every data plate"):
        iwae_bound(model, guide, 3, torch.zeros(4))


def test_iwae_with_k1_is_trace_elbo():
    m = small_model("hvae")
    m.eval()
    x = small_data("hvae", 16)
    pyro.set_rng_seed(1)
    a = -iwae_bound(m.model, m.guide, 1, x, None).sum()
    pyro.set_rng_seed(1)
    b = Trace_ELBO().differentiable_loss(m.model, m.guide, x, None)
    assert torch.allclose(a, b, rtol=1e-6)


def test_closed_form_kl_equals_monte_carlo():
    torch.manual_seed(0)
    loc, scale = torch.randn(3, 4, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64) + 0.3
    q = dist.Normal(loc, scale).to_event(1)
    p = dist.Normal(torch.zeros_like(loc), 1.0).to_event(1)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    assert torch.allclose(gaussian_kl(loc, scale), mc, atol=0.02)
    assert torch.allclose(gaussian_kl(loc, scale), torch.distributions.kl_divergence(q, p), atol=1e-12)


def test_iwae_bound_increases_with_k_and_k1_is_the_elbo():
    m = small_model("vae")
    fit(m, small_data("vae", 512), None, steps=200, batch_size=64, lr=3e-3)
    x = small_data("vae", 32)
    means = {}
    for k in (1, 5, 50, 500):
        vals = []
        for seed in range(3):
            pyro.set_rng_seed(seed)
            with torch.no_grad():
                vals.append(m.iwae(x, k=k, chunk=64).mean())
        means[k] = float(torch.stack(vals).mean())
    assert means[1] < means[5] < means[50] < means[500], means
    with torch.no_grad():
        elbo = torch.stack([m.elbo(x).mean() for _ in range(200)]).mean()
    assert means[1] == pytest.approx(float(elbo), abs=0.5)


def test_kl_warmup_and_beta_weight_the_kl_in_both_programs():
    m = VAE(event_shape=(1, 8, 8), latent_dim=3, hidden=(16,), kl_warmup=10, beta=2.0)
    m.train()
    m.clock.before_step(4)
    assert m.kl_weight == pytest.approx(1.0)  # beta 2 times warm-up 0.5
    x = small_data("vae", 16)
    pyro.set_rng_seed(2)
    rec, neg_kl = m.elbo_terms(x, None, None, analytic=True)
    pyro.set_rng_seed(2)
    assert torch.allclose(objective_for(m).pyro_loss(m, x), -(rec + neg_kl).mean(), atol=1e-5)
    m.eval()
    assert m.kl_weight == 2.0
    pyro.set_rng_seed(2)
    rec, neg_kl = m.elbo_terms(x, None, None, analytic=True)
    pyro.set_rng_seed(2)
    assert torch.allclose(m.elbo(x), rec + neg_kl)  # the reported ELBO is unweighted


def test_sampling_and_active_units():
    m = small_model("vae")
    s = m.sample(10)
    assert s.shape == (10, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= m.active_units(small_data("vae", 64)) <= m.latent_dim
    means = m.sample(5, mean=True)
    assert ((means > 0) & (means < 1)).all()


def test_decoders_cover_their_data():
    g = VAE(latent_dim=2, hidden=(8,), likelihood="gaussian")
    c = VAE(latent_dim=2, hidden=(8,), likelihood="categorical", levels=17, arch="conv")
    xg, xc = load("digits").train[:4], load("digits-int").train[:4]
    assert g.iwae(xg, k=3).shape == (4,) and c.iwae(xc, k=3).shape == (4,)
    s = c.sample(6)
    assert s.dtype == torch.long and s.shape == (6, 1, 8, 8) and 0 <= int(s.min()) and int(s.max()) <= 16
    assert ((c.decode(torch.zeros(2, 2)) >= 0) & (c.decode(torch.zeros(2, 2)) <= 16)).all()
    # the categorical decoder's log-likelihood is a sum over pixels of log softmax: check against a brute force
    z = torch.randn(4, 2)
    h = c._decoder_out(z, None)  # (4, 17, 1, 8, 8)
    brute = torch.log_softmax(h, dim=1).gather(1, xc[:, None]).sum((1, 2, 3, 4))
    assert torch.allclose(c._log_lik(h, xc), brute, atol=1e-5)


def test_bad_options_and_labels_are_named():
    with pytest.raises(ValueError, match="latent_dim must be a positive integer; got -2"):
        VAE(latent_dim=-2)
    with pytest.raises(ValueError, match="hidden must be a sequence of positive integers"):
        VAE(hidden=(0,))
    with pytest.raises(ValueError, match="likelihood must be one of .*; got 'poisson'"):
        VAE(likelihood="poisson")
    with pytest.raises(ValueError, match="prior must be one of"):
        VAE(prior="vamp")
    with pytest.raises(ValueError, match="beta must be a positive finite number; got 0"):
        VAE(beta=0)
    with pytest.raises(ValueError, match="even H and W"):
        VAE(event_shape=(1, 7, 7), arch="conv")
    with pytest.raises(ValueError, match="a flow prior needs latent_dim >= 2; got 1"):
        VAE(latent_dim=1, prior="flow")
    with pytest.raises(ValueError, match="HierarchicalVAE .* prior='mixture' is not supported"):
        HierarchicalVAE(prior="mixture")
    with pytest.raises(ValueError, match="label_fraction must be in"):
        SSVAE(label_fraction=0)
    m = small_model("cvae")
    x, y = small_data("cvae", 8)
    with pytest.raises(ValueError, match="VAE is class-conditional: pass the labels y"):
        m.iwae(x, k=2)
    with pytest.raises(ValueError, match=r"labels y must be in 0..9; got \[10\]"):
        m.iwae(x, k=2, y=torch.full((8,), 10))
    with pytest.raises(ValueError, match="VAE is class-conditional: give"):
        loss(m, x)
    with pytest.raises(ValueError, match="VAE is unconditional"):
        loss(small_model("vae"), (x, y))


def test_any_vae_with_classes_trains_on_labelled_pairs():
    m = VAE(latent_dim=2, hidden=(8,), classes=10, kl_warmup=0)
    x, y = small_data("cvae", 32)
    assert m.labelled and not VAE(latent_dim=2, hidden=(8,)).labelled
    pyro.set_rng_seed(0)
    fused = loss(m, (x, y))
    pyro.set_rng_seed(0)
    assert torch.allclose(fused, objective_for(m).pyro_loss(m, (x, y)), rtol=1e-5)
    assert m.sample(4, y=3).shape == (4, 1, 8, 8)


def test_ssvae_keeps_a_balanced_tenth_of_the_labels_and_sums_out_the_rest():
    data = load("digits-binary")
    m = SSVAE(latent_dim=3, hidden=(16,), kl_warmup=0)
    x, y = training_data(m, data, "train")
    kept = y[y >= 0]
    assert abs(len(kept) - 0.1 * len(y)) <= 10 and torch.bincount(kept, minlength=10).min() >= 10
    assert torch.equal(y[y >= 0], data.labels["train"][y >= 0])
    assert torch.equal(training_data(m, data, "val")[1], data.labels["val"])
    # the marginal IWAE sums p(y) p(x | y) over all labels: with k = 1 and one label it is that label's ELBO term
    xs = x[:5]
    pyro.set_rng_seed(0)
    per = torch.stack([VAE._iwae(m, xs, torch.full((5,), c), 1, 1) for c in range(10)])
    pyro.set_rng_seed(0)
    assert torch.allclose(m.iwae(xs, k=1), torch.logsumexp(per - math.log(10), 0), atol=1e-5)
    assert m.predict(xs).shape == (5,)


@pytest.mark.slow
def test_cvae_samples_carry_the_requested_label():
    """A logistic regression trained on the binarized digits agrees with the label asked of the CVAE."""
    from sklearn.linear_model import LogisticRegression

    data = load("digits-binary")
    clf = LogisticRegression(max_iter=2000).fit(data.train.flatten(1).numpy(), data.labels["train"].numpy())
    test_acc = clf.score(data.test.flatten(1).numpy(), data.labels["test"].numpy())
    pyro.set_rng_seed(0)
    m = CVAE(latent_dim=8, hidden=(256, 256), kl_warmup=500)
    fit(m, (data.train, data.labels["train"]), (data.val, data.labels["val"]), steps=2500, batch_size=128, lr=1e-3)
    m.eval()
    labels = torch.arange(10).repeat_interleave(50)
    samples = m.sample(len(labels), y=labels, mean=True) > 0.5
    agree = (torch.as_tensor(clf.predict(samples.flatten(1).float().numpy())) == labels).float().mean()
    print(f"classifier test accuracy {test_acc:.3f}, agreement with the requested label {float(agree):.3f}")
    assert test_acc > 0.85 and agree > 0.85, (test_acc, float(agree))


def test_implicit_vae_entropy_gradient_matches_the_exact_one_for_a_gaussian_q():
    # q = N(mu, sigma^2) written implicitly as z = mu + sigma * eps: H = sum log sigma + const, so
    # dH/dmu = 0 and dH/dlog sigma = 1. The surrogate with the exact score -(z - mu) / sigma^2 reproduces
    # it; with a score network trained by denoising score matching on q's samples, within 10%.
    from pyrogen.models.implicit_vae import entropy_gradient_surrogate

    torch.manual_seed(0)
    mu = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    log_sigma = torch.tensor([0.0, -0.5, 0.7], requires_grad=True)

    def draw(n):
        return mu + log_sigma.exp() * torch.randn(n, 3)

    z = draw(200000)
    exact_score = -(z - mu) / log_sigma.exp() ** 2
    g_mu, g_ls = torch.autograd.grad(entropy_gradient_surrogate(z, exact_score).mean(), [mu, log_sigma])
    torch.testing.assert_close(g_mu, torch.zeros(3), atol=0.02, rtol=0)
    torch.testing.assert_close(g_ls, torch.ones(3), atol=0.02, rtol=0)

    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 3))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 3000)
    sigma = 0.05
    for _ in range(3000):
        zs = draw(512).detach()
        noise = torch.randn_like(zs)
        loss = 0.5 * (sigma * net(zs + sigma * noise) + noise).pow(2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    z = draw(200000)
    g_mu, g_ls = torch.autograd.grad(entropy_gradient_surrogate(z, net(z)).mean(), [mu, log_sigma])
    assert (g_mu.abs() < 0.1).all()
    assert ((g_ls - 1).abs() < 0.1).all()


def test_implicit_vae_bounds_are_ordered_and_checked():
    from pyrogen.models import registry

    torch.manual_seed(0)
    m = registry.create("implicit-vae", event_shape=(1, 8, 8), latent_dim=4, noise_dim=4, hidden=(32,))
    x = load("digits-binary").test[:16]
    elbo, iwae = m.elbo(x, k=200), m.iwae(x, k=200)
    assert elbo.shape == iwae.shape == (16,)
    assert (iwae >= elbo).all()  # Jensen: the log of the mean weight is at least the mean log weight
    with pytest.raises(ValueError, match="k must be a positive integer"):
        m.iwae(x, k=0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        m.iwae(torch.full((2, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="score_method must be 'sliced-vr' or 'denoising'; got 'exact'"):
        registry.create("implicit-vae", event_shape=(1, 8, 8), score_method="exact")


def test_the_ladder_vaes_merge_is_the_normalized_product_of_two_gaussians_and_its_bound_is_pyros():
    from pyrogen.models import LadderVAE

    g = torch.Generator().manual_seed(0)
    la, lb = torch.randn(5, generator=g), torch.randn(5, generator=g)
    sa, sb = torch.rand(5, generator=g) + 0.2, torch.rand(5, generator=g) + 0.2
    loc, scale = LadderVAE.merge(la, sa, lb, sb)
    # N(z; a) N(z; b) / its integral, on a grid, against N(z; loc, scale)
    z = torch.linspace(-8, 8, 20001)[:, None]
    prod = (torch.distributions.Normal(la, sa).log_prob(z) + torch.distributions.Normal(lb, sb).log_prob(z)).exp()
    dz = float(z[1] - z[0])
    mean = (prod * z).sum(0) / prod.sum(0)
    var = (prod * (z - mean) ** 2).sum(0) / prod.sum(0)
    torch.testing.assert_close(loc, mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scale, var.sqrt(), rtol=1e-4, atol=1e-4)
    assert float(prod.sum(0).min() * dz) > 0
    # the guide is top-down: z2 before z1, and z1's posterior reads the prior network
    torch.manual_seed(0)
    m = LadderVAE(latent_dim=4, hidden=(16,), top_dim=2, top_hidden=(8,), kl_warmup=0)
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.3))
    trace = pyro.poutine.trace(m.guide).get_trace(x)
    sites = [n for n, s in trace.nodes.items() if s["type"] == "sample" and not s["is_observed"]]
    assert [n for n in sites if n.startswith("z")] == ["z2", "z1"]
    (-m.iwae(x, k=4).sum()).backward()
    assert all(p.grad is not None for p in m.conditional_prior.parameters())
    assert set(m.active_units_per_level(x)) == {"z1", "z2"}


def test_the_ladder_vae_takes_the_hierarchical_vae_s_arguments_and_reads_the_encoder_s_hidden_layer():
    # its constructor keeps the named signature (help, --set checks) and its top level reads the deterministic
    # path: the encoder's last hidden layer for the MLP, the mean of z1 for the convolutional encoder
    import inspect

    from pyrogen.models import HierarchicalVAE, LadderVAE

    ladder, hvae = inspect.signature(LadderVAE).parameters, inspect.signature(HierarchicalVAE).parameters
    assert {k: v for k, v in ladder.items() if k != "free_bits"} == dict(hvae)  # and its own free_bits
    assert LadderVAE(hidden=(64, 32)).top_encoder[0].in_features == 32
    assert LadderVAE(arch="conv").top_encoder[0].in_features == 16
    torch.manual_seed(0)
    m = LadderVAE(hidden=(64, 32))
    x = (torch.rand(5, 1, 8, 8) > 0.5).float()
    loc1, scale1, _ = m._encode(x, None)
    a, b, loc2, _ = m._bottom_up(x)
    torch.testing.assert_close((a, b), (loc1, scale1))
    d1 = m.encoder.hidden_features(x.reshape(5, -1))
    torch.testing.assert_close(loc2, m._gaussian(m.top_encoder(d1))[0])


def test_the_ladder_vae_s_closed_form_kl_terms_and_their_free_bits_floor():
    # both KLs by the two-Gaussian formula written out, at the same draw of z2; with free_bits, in training, each
    # unit's KL whose batch mean is below the floor counts as the floor; in eval mode the bound is the ELBO again
    from torch.distributions.utils import _standard_normal

    from pyrogen.models import LadderVAE

    def kl(mq, sq, mp, sp):
        return torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5

    torch.manual_seed(0)
    m = LadderVAE(latent_dim=4, hidden=(16,), top_dim=3, top_hidden=(8,), kl_warmup=0, free_bits=0.3)
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.3))
    for training in (True, False):
        m.train(training)
        torch.manual_seed(1)
        _, log_r = m.elbo_terms(x, None, None, analytic=True)
        with torch.no_grad():
            torch.manual_seed(1)
            loc1, scale1, loc2, scale2 = m._bottom_up(x)
            z2 = loc2 + _standard_normal(loc2.shape, dtype=loc2.dtype, device=loc2.device) * scale2
            loc_p, scale_p = m._gaussian(m.conditional_prior(z2))
            loc_q, scale_q = m.merge(loc1, scale1, loc_p, scale_p)
            units = [kl(loc_q, scale_q, loc_p, scale_p), kl(loc2, scale2, torch.zeros(3), torch.ones(3))]
        if training:
            floored = [torch.where(u.mean(0) < 0.3, torch.full_like(u, 0.3), u) for u in units]
            assert any(bool((u.mean(0) < 0.3).any()) for u in units)  # the floor is reached in this example
            units = floored
        torch.testing.assert_close(log_r.detach(), -(units[0].sum(-1) + units[1].sum(-1)), rtol=1e-5, atol=1e-5)
    assert LadderVAE(free_bits=[0.1, 0.2]).free_bits == (0.1, 0.2)
    from pyrogen.models import registry

    assert registry.create("ladder-vae").free_bits == (0.25, 0.5)  # the recipe's; the class trains the ELBO
    assert LadderVAE().free_bits == (0.0, 0.0)
    for bad in (-0.1, (0.1, 0.2, 0.3), (0.1, float("nan"))):
        with pytest.raises(ValueError, match="free_bits must be"):
            LadderVAE(free_bits=bad)
