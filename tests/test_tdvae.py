"""TD-VAE: the fused jump bound is the ELBO of its Pyro program, the pairs are drawn as documented, rollouts and
samples have the frames' shapes, and bad input is named."""

from __future__ import annotations

import pyro
import pytest
import torch
from conftest import assert_fused_equals_pyro
from pyro.infer import Trace_ELBO

from pyrogen.data import load
from pyrogen.inference.objectives import objective_for
from pyrogen.models import TDVAE


def _small():
    torch.manual_seed(0)
    return TDVAE(event_shape=(6, 1, 16, 16), latent_dim=3, belief_dim=8, hidden=(16,), max_jump=3, kl_warmup=0)


def _frames(n=8):
    return load("moving-digits").train[:n, :6]


def test_the_jump_bound_is_the_elbo_of_the_pyro_program_in_value_and_gradient():
    m, x = _small(), _frames()
    assert_fused_equals_pyro(m, x, objective=objective_for(m))
    # and by hand: the bound is the ELBO of model and guide for given pairs, one sample each
    s1, delta = torch.tensor([0, 1, 2, 3, 4, 5, 0, 2]), torch.tensor([1, 2, 3, 1, 2, 1, 3, 1])
    pyro.set_rng_seed(3)
    fused = m.jump_bound(x, s1, delta).sum()
    pyro.set_rng_seed(3)
    ref = -Trace_ELBO().differentiable_loss(m.model, m.guide, x, s1, delta)
    assert torch.allclose(fused, ref, rtol=1e-5)


def test_the_warm_up_weighs_the_latent_terms_in_both_paths_while_training_only():
    torch.manual_seed(0)
    m = TDVAE(event_shape=(6, 1, 16, 16), latent_dim=3, belief_dim=8, hidden=(16,), max_jump=3, kl_warmup=10)
    x = _frames()
    m.clock.before_step(4)
    assert m.kl_weight == 0.5
    assert_fused_equals_pyro(m, x, objective=objective_for(m))
    s1, delta = torch.zeros(8, dtype=torch.long), torch.ones(8, dtype=torch.long)
    pyro.set_rng_seed(0)
    half = m.jump_bound(x, s1, delta)
    m.eval()
    assert m.kl_weight == 1.0
    pyro.set_rng_seed(0)
    full = m.jump_bound(x, s1, delta)
    assert not torch.allclose(half, full)


def test_pairs_cover_every_jump_the_model_trains_and_stay_inside_the_sequence():
    m = _small()
    torch.manual_seed(0)
    s1, delta = objective_for(m).draw(m, 20_000, torch.device("cpu"))
    assert int(s1.min()) == 0 and int(s1.max()) == 5
    assert int(delta.min()) == 1 and int(delta.max()) == 3
    assert bool((s1 + delta <= 6).all())
    for s in range(6):  # delta uniform in 1..min(3, 6 - s) given s1
        d = delta[s1 == s]
        counts = torch.bincount(d, minlength=4)[1:].double()
        top = min(3, 6 - s)
        assert bool((counts[top:] == 0).all())
        assert float((counts[:top] / counts[:top].sum() - 1 / top).abs().max()) < 0.05


def test_rollouts_and_samples_are_frames_and_a_bound_improves_with_training():
    m, x = _small(), _frames(64)
    assert m.rollout(x[:3, :2], steps=4, jump=2).shape == (3, 4, 1, 16, 16)
    assert torch.equal(m.rollout(x[:3, :2], steps=3, mean=True), m.rollout(x[:3, :2], steps=3, mean=True))
    assert not torch.equal(m.rollout(x[:3, :2], steps=3), m.rollout(x[:3, :2], steps=3))
    s = m.sample(5)
    assert s.shape == (5, 6, 1, 16, 16) and bool(((s == 0) | (s == 1)).all())
    from pyrogen.inference import fit

    with torch.no_grad():
        before = float(objective_for(m).validation(m, x))
    fit(m, x, None, steps=100, batch_size=32, lr=3e-3)
    with torch.no_grad():
        after = float(objective_for(m).validation(m, x))
    assert after < before - 20, (before, after)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x: m.rollout(x[:, :2, 0], steps=2), "observed must have shape"),
        (lambda m, x: m.rollout(x[:, :0], steps=2), "at least one"),
        (lambda m, x: m.rollout(x[:, :2] * 0.5 + 0.25, steps=2), "only 0 and 1"),
        (lambda m, x: m.rollout(x[:, :2], steps=0), "steps must be a positive integer"),
        (lambda m, x: m.rollout(x[:, :2], steps=2, jump=4), "jump must be an integer in 1..3"),
        (lambda m, x: m.rollout(x[:, :2], steps=2, mean=1), "mean must be True or False"),
        (lambda m, x: m.jump_bound(x, torch.tensor([5, 0]), torch.tensor([2, 1])), "s1 \\+ delta <= 6"),
        (lambda m, x: m.jump_bound(x, torch.tensor([0]), torch.tensor([1])), "one index per sequence"),
        (lambda m, x: TDVAE(event_shape=(6, 16, 16)), "event_shape=\\(T, C, H, W\\)"),
        (lambda m, x: TDVAE(event_shape=(3, 1, 4, 4), max_jump=5), "max_jump must be at most"),
        (lambda m, x: m.model(x), "pass x, s1 and delta"),
    ],
)
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call(_small(), _frames(2))


def test_a_dataset_that_is_not_frames_is_refused():
    from pyrogen.models import registry

    with pytest.raises(ValueError, match="sequences of binary frames"):
        registry.from_dataset("td-vae", load("digits-binary"))


def test_centre_of_mass_and_the_evaluation_metrics():
    from pyrogen.models.sequence import centre_of_mass

    frames = torch.zeros(2, 1, 16, 16)
    frames[0, 0, 3, 5] = 1.0
    frames[1, 0, 2, 2] = frames[1, 0, 4, 6] = 1.0
    torch.testing.assert_close(centre_of_mass(frames), torch.tensor([[3.0, 5.0], [3.0, 4.0]], dtype=torch.float64))
    ds = load("moving-digits")  # the truth against itself: the positions move as the digits do
    com = centre_of_mass(ds.test[:5].double())
    steps = com[:, 1:] - com[:, :-1]
    torch.testing.assert_close(steps.abs(), torch.ones_like(steps))
    metrics = _small().evaluation_metrics(_frames(6))
    assert set(metrics) == {"bound_per_jump", "on_track_3_jumps"} and 0 <= metrics["on_track_3_jumps"] <= 1
    assert metrics["bound_per_jump"] < 0
