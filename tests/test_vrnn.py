"""VRNN: each step's closed-form KL against Monte Carlo, the IWAE bound above the ELBO, samples, bad input."""

from __future__ import annotations

import pytest
import torch

from pyrogen.data import load
from pyrogen.models import VRNN


def _small():
    torch.manual_seed(0)
    m = VRNN(event_shape=(6, 20), latent_dim=3, state_dim=8, hidden=(16,), features=8)
    for p in m.parameters():  # away from the near-symmetric initialisation, so the KL terms are not tiny
        p.data.add_(0.3 * torch.randn_like(p))
    return m


def test_the_closed_form_kl_terms_are_the_mean_of_the_sampled_ones():
    m, x = _small(), load("spoken-digits").train[:4, :6]
    torch.manual_seed(1)
    rec_a, kl_a = m.elbo_terms(x, None, 4000, analytic=True)
    torch.manual_seed(1)
    rec_s, kl_s = m.elbo_terms(x, None, 4000, analytic=False)
    # the same draws of z (the same seed): the reconstructions agree exactly, the two KL estimates on average
    torch.testing.assert_close(rec_a, rec_s)
    err = (kl_s - kl_a).mean(0)
    se = (kl_s - kl_a).std(0) / 4000**0.5
    assert bool((err.abs() < 4 * se + 1e-3).all()), (err, se)


def test_the_importance_weighted_bound_is_above_the_elbo_and_grows_with_k():
    m, x = _small(), load("spoken-digits").test[:16, :6]
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = m.elbo(x).mean()
        i10, i200 = m.iwae(x, k=10).mean(), m.iwae(x, k=200).mean()
    assert elbo < i10 < i200


def test_samples_and_bad_input():
    m = _small()
    assert m.sample(3).shape == (3, 6, 20)
    with pytest.raises(ValueError, match=r"event_shape=\(T, D\)"):
        VRNN(event_shape=(6,))
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        VRNN(latent_dim=0)
    with pytest.raises(ValueError, match="x must be finite"):
        m.elbo(torch.full((2, 6, 20), float("nan")))
    with pytest.raises(ValueError, match="pass x"):
        m.guide()
    from pyrogen.models import registry

    with pytest.raises(ValueError, match="sequences of real-valued frames"):
        registry.from_dataset("vrnn", load("moons"))
