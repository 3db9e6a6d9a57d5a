"""Hidden Markov models against hmmlearn, Pyro's DiscreteHMM and enumeration, and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from hmmlearn import hmm as hmmlearn
from pyro.infer import TraceEnum_ELBO

from pyrogen.data import load
from pyrogen.models import HiddenMarkovModel, registry


def _categorical(seed=0, states=3, symbols=5, length=7):
    torch.manual_seed(seed)
    m = HiddenMarkovModel(event_shape=(length,), states=states, symbols=symbols).double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
    return m


def _gaussian(seed=0, states=3, dim=2, length=9):
    torch.manual_seed(seed)
    shape = (length, dim) if dim > 1 else (length,)
    m = HiddenMarkovModel(event_shape=shape, states=states, emission="gaussian").double()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p))
        m.locs.mul_(2.0)
    return m


def _theirs(m):
    """hmmlearn's HMM with the same parameters."""
    if m.emission == "categorical":
        ref = hmmlearn.CategoricalHMM(n_components=m.states, init_params="", params="ste", n_iter=1, tol=-np.inf)
        ref.emissionprob_ = torch.softmax(m.emit_logits, -1).detach().numpy()
        ref.n_features = m.symbols
    else:
        ref = hmmlearn.GaussianHMM(n_components=m.states, covariance_type="diag", init_params="", n_iter=1)
        ref.means_ = m.locs.detach().numpy()
        ref.covars_ = m.scales().detach().square().numpy()
        ref.n_features = m.locs.shape[1]
    ref.startprob_ = m.log_start().exp().detach().numpy()
    ref.transmat_ = m.log_transitions().exp().detach().numpy()
    return ref


def _stacked(m, x):
    return x.reshape(-1, 1).numpy() if m.emission == "categorical" else x.reshape(-1, m.locs.shape[1]).numpy()


@pytest.mark.parametrize("make", [_categorical, _gaussian])
def test_likelihood_viterbi_and_posteriors_agree_with_hmmlearn(make):
    m = make()
    x = m.sample(6)
    ref, flat, lengths = _theirs(m), _stacked(m, x), [m.length] * 6
    ll = m.log_prob(x)
    theirs = [ref.score(_stacked(m, row[None])) for row in x]
    torch.testing.assert_close(ll, torch.tensor(theirs, dtype=ll.dtype), rtol=1e-10, atol=1e-10)
    _, path = ref.decode(flat, lengths, algorithm="viterbi")
    assert torch.equal(m.viterbi(x).flatten(), torch.from_numpy(path))
    post = torch.from_numpy(ref.predict_proba(flat, lengths)).reshape(6, m.length, m.states)
    torch.testing.assert_close(m.posterior_marginals(x), post, rtol=1e-8, atol=1e-10)


def test_one_baum_welch_iteration_agrees_with_hmmlearn():
    m = _categorical(1)
    x = m.sample(40)
    ref = _theirs(m)
    ref.fit(_stacked(m, x), [m.length] * 40)
    m.fit_em(x, iters=1)
    torch.testing.assert_close(m.log_start().exp(), torch.from_numpy(ref.startprob_), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(m.log_transitions().exp(), torch.from_numpy(ref.transmat_), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(
        torch.softmax(m.emit_logits, -1), torch.from_numpy(ref.emissionprob_), rtol=1e-8, atol=1e-10
    )


def test_the_likelihood_is_a_brute_force_sum_over_state_paths():
    m = _categorical(2, states=3, symbols=4, length=5)
    x = m.sample(3)
    le, log_a, log_pi = m.emission_log_probs(x), m.log_transitions(), m.log_start()
    terms = []
    for path in itertools.product(range(3), repeat=5):
        lp = log_pi[path[0]] + le[:, 0, path[0]]
        for t in range(1, 5):
            lp = lp + log_a[path[t - 1], path[t]] + le[:, t, path[t]]
        terms.append(lp)
    brute = torch.logsumexp(torch.stack(terms), 0)
    torch.testing.assert_close(m.log_prob(x), brute, rtol=1e-12, atol=1e-12)
    best = torch.stack(terms).argmax(0)
    paths = torch.tensor(list(itertools.product(range(3), repeat=5)))
    assert torch.equal(m.viterbi(x), paths[best])


@pytest.mark.parametrize("make", [_categorical, _gaussian, lambda: _gaussian(3, dim=1)])
def test_pyros_discrete_hmm_and_enumeration_give_the_same_likelihood(make):
    m = make()
    x = m.sample(4)
    ll = m.log_prob(x)
    torch.testing.assert_close(m.as_distribution().log_prob(x), ll, rtol=1e-10, atol=1e-10)
    elbo = TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(m.model, lambda x: None, x)
    torch.testing.assert_close(-elbo, ll.sum(), rtol=1e-10, atol=1e-10)


def test_viterbi_by_infer_discrete_at_temperature_zero():
    m = _categorical(4)
    x = m.sample(8)
    assert torch.equal(m.viterbi_pyro(x), m.viterbi(x))


@pytest.mark.parametrize("make", [_categorical, _gaussian])
def test_em_never_decreases_the_likelihood_in_float64(make):
    m = make(5)
    x = make(6).sample(100)
    history = m.fit_em(x, iters=30, tol=-math.inf)
    assert all(b >= a - 1e-10 for a, b in itertools.pairwise(history)), history
    assert history[-1] > history[0] + 1.0


def test_samples_follow_the_chain():
    # one-step statistics of many samples: the first symbol's frequencies against pi e
    pyro.set_rng_seed(0)
    m = _categorical(7, states=2, symbols=3, length=2)
    x = m.sample(20_000)
    want = m.log_start().exp() @ torch.softmax(m.emit_logits, -1)
    got = torch.bincount(x[:, 0], minlength=3).double() / len(x)
    torch.testing.assert_close(got, want.detach(), rtol=0, atol=0.015)


def test_a_character_hmm_trains_on_the_text_and_scores_per_character():
    text = load("text")
    m = registry.from_dataset("hmm", text, states=8)
    x = text.train[:200]
    before = float(m.log_prob(x).mean().detach())
    m.fit_em(x, iters=5)
    after = float(m.log_prob(x).mean().detach())
    assert after > before  # and in nats per sequence of 128 characters, above the uniform floor
    assert -after / 128 < math.log(160)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"states": 0}, "states"),
        ({"emission": "poisson"}, "emission"),
        ({"symbols": 1}, "symbols"),
        ({"emission": "gaussian", "symbols": 4}, "symbols"),
        ({"event_shape": (4, 2), "symbols": 3}, "event_shape"),
        ({"emission": "gaussian", "reg": 0.0}, "reg"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HiddenMarkovModel(**{"event_shape": (4,), "symbols": 3, **kwargs})


def test_bad_data_are_named():
    m = _categorical()
    with pytest.raises(ValueError, match="x"):
        m.log_prob(torch.full((2, 7), 5))  # symbol 5 of 5
    with pytest.raises(ValueError, match="x"):
        m.log_prob(torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="hmm models sequences"):
        registry.from_dataset("hmm", load("digits-binary"))
