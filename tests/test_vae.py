import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import small_data, small_model

from pyrogen.inference import gaussian_kl
from pyrogen.models import VAE


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
    from pyrogen.inference import fit

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


def test_kl_warmup_weights_the_kl_in_both_programs():
    m = VAE(event_shape=(1, 8, 8), latent_dim=3, hidden=(16,), kl_warmup=10)
    m.train()
    m.set_step(4)
    assert m.kl_weight == pytest.approx(0.5)
    x = small_data("vae", 16)
    pyro.set_rng_seed(2)
    rec, kl = m._terms(x)
    pyro.set_rng_seed(2)
    assert torch.allclose(m.pyro_loss(x), (0.5 * kl - rec).mean(), atol=1e-5)
    m.eval()
    assert m.kl_weight == 1.0


def test_sampling_and_active_units():
    m = small_model("vae")
    s = m.sample(10)
    assert s.shape == (10, 1, 8, 8) and set(s.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= m.active_units(small_data("vae", 64)) <= m.latent_dim
    with pytest.raises(ValueError, match="k must be a positive integer; got 0"):
        m.iwae(small_data("vae", 2), k=0)
    with pytest.raises(ValueError, match="latent_dim must be a positive integer; got -2"):
        VAE(latent_dim=-2)
    with pytest.raises(ValueError, match="hidden must be a sequence of positive integers"):
        VAE(hidden=(0,))
