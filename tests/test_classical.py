"""The classical models: Boltzmann machines against brute-force sums and transition matrices."""

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from conftest import loss

from pyrogen.inference.objectives import objective_for
from pyrogen.inference.samplers import Gibbs, sample_chains
from pyrogen.models import RBM, registry
from pyrogen.models.boltzmann import rbm_ais


def tiny_rbm(d=4, h=3, scale=1.0, seed=0):
    pyro.set_rng_seed(seed)
    m = RBM((d,), hidden=h, chains=8)
    with torch.no_grad():
        m.W.normal_(0, scale)
        m.b.normal_(0, scale)
        m.c.normal_(0, scale)
    return m.double()


def all_bits(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def test_rbm_log_z_by_enumeration_equals_the_brute_force_sum_over_v_and_h():
    m = tiny_rbm()
    V, H = all_bits(4), all_bits(3)
    vv, hh = V.repeat_interleave(len(H), 0), H.repeat(len(V), 1)
    brute = torch.logsumexp(-m.energy(vv, hh), 0)
    torch.testing.assert_close(m.log_normalizer_exact(), brute)
    # the free energy sums out h: exp(-F(v)) = sum_h exp(-E(v, h))
    by_h = torch.logsumexp(-m.energy(vv, hh).reshape(len(V), len(H)), 1)
    torch.testing.assert_close(-m.free_energy(V), by_h)
    # and p(v) sums to one
    torch.testing.assert_close(m.log_prob(V).exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_rbm_ais_approaches_the_exact_log_z_as_temperatures_grow():
    m = tiny_rbm(d=20, h=12, scale=0.5)
    exact = m.log_normalizer_exact().item()
    errors = {}
    for temps in (10, 1000):
        g = torch.Generator().manual_seed(0)
        res = rbm_ais(m, num_temps=temps, chains=500, generator=g)
        errors[temps] = abs(res.log_z - exact)
        if temps == 1000:
            assert errors[temps] < 4 * res.stderr + 0.02, (res.log_z, exact, res.stderr)
    assert errors[1000] < errors[10]


def test_block_gibbs_leaves_the_exact_distribution_invariant():
    """On a tiny RBM, the Gibbs sweep's transition matrix T[v, v'] = sum_h p(h | v) p(v' | h) has the exact p(v)
    as its stationary distribution: p T = p."""
    m = tiny_rbm(d=3, h=2)
    V, H = all_bits(3), all_bits(2)
    ph = m.hidden_probs(V)  # (8, 2)
    p_h_given_v = (ph[:, None, :] ** H[None] * (1 - ph[:, None, :]) ** (1 - H[None])).prod(-1)  # (8 v, 4 h)
    pv = m.visible_probs(H)  # (4, 3)
    p_v_given_h = (pv[:, None, :] ** V[None] * (1 - pv[:, None, :]) ** (1 - V[None])).prod(-1)  # (4 h, 8 v')
    T = p_h_given_v @ p_v_given_h
    torch.testing.assert_close(T.sum(1), torch.ones(8, dtype=torch.float64))
    p = m.log_prob(V).exp()
    torch.testing.assert_close(p @ T, p)
    # and a long sampled chain's visit frequencies agree with p (chi-square-sized tolerance)
    pyro.set_rng_seed(0)
    x = m.gibbs_chains(4000, steps=60, record_every=60).samples[:, -1]
    idx = (x * torch.tensor([4.0, 2.0, 1.0])).sum(-1).long()
    freq = torch.bincount(idx, minlength=8).double() / len(idx)
    assert (freq - p).abs().max() < 4 * math.sqrt(0.25 / len(idx)), (freq, p)


def test_rbm_training_objectives_and_bad_arguments():
    from pyrogen.data import load
    from pyrogen.inference import fit

    data = load("digits-binary")
    m = registry.from_dataset(RBM, data, hidden=8)
    torch.testing.assert_close(torch.sigmoid(m.b), data.train.flatten(1).mean(0).clamp(0.01, 0.99))
    before = float(objective_for(m).validation(m, data.val))
    fit(m, data.train, None, steps=300, batch_size=64, lr=0.01)
    assert float(objective_for(m).validation(m, data.val)) < before - 3
    with pytest.raises(ValueError, match="objective must be one of cd, pcd, exact; got 'ml'"):
        RBM(hidden=4, objective="ml")
    with pytest.raises(ValueError, match="objective 'exact' enumerates 2\\*\\*hidden states: hidden must be <= 20"):
        RBM(hidden=32, objective="exact")
    with pytest.raises(ValueError, match="log Z by enumeration needs hidden <= 20; this RBM has 32"):
        RBM(hidden=32).log_normalizer_exact()
    with pytest.raises(ValueError, match="x must hold only 0 and 1"):
        m.log_prob(torch.full((2, 1, 8, 8), 0.5))


def test_gibbs_chains_become_inference_data():
    m = tiny_rbm(d=6, h=4)
    chains = m.gibbs_chains(4, steps=100, record_every=10)
    assert chains.samples.shape == (4, 10, 6)
    idata = chains.to_inference_data()
    assert "energy" in idata.sample_stats
    # the DBM's chains too, with the joint energy E(v, h1, h2) of each recorded state
    dbm = tiny_dbm(d=6, h=(4, 3))
    pyro.set_rng_seed(0)
    chains = dbm.gibbs_chains(4, steps=50, record_every=10)
    assert chains.samples.shape == (4, 5, 6)
    assert "energy" in chains.to_inference_data().sample_stats


@pytest.mark.parametrize("which", ["rbm", "dbm"])
def test_gibbs_chains_are_the_machine_s_sweeps_run_by_the_driver(which):
    # a Gibbs kernel run by sample_chains: under one seed, the draws and energies of the sweeps written out as a
    # loop, recorded every 7th sweep and at the last (the 30th)
    m = tiny_rbm(d=6, h=4) if which == "rbm" else tiny_dbm(d=6, h=(4, 3))
    pyro.set_rng_seed(3)
    chains = m.gibbs_chains(5, steps=30, record_every=7)
    pyro.set_rng_seed(3)
    state = torch.bernoulli(torch.full((5, m._state_size), 0.5, dtype=m.b.dtype))
    draws, energies = [], []
    for i in range(30):
        state = m.gibbs(state)
        if i + 1 in (9, 16, 23, 30):  # with 30 % 7 = 2 sweeps first, the draws end at the last sweep
            v, e = m._record(state)
            draws.append(v)
            energies.append(e)
    torch.testing.assert_close(chains.samples.flatten(2), torch.stack(draws, 1), rtol=0, atol=0)
    torch.testing.assert_close(chains.stats["energy"], torch.stack(energies, 1))
    with pytest.raises(ValueError, match="sweep must return a state shaped like its input"):
        sample_chains(Gibbs(lambda s: s[:, :2]), state, 1)


# -- Gaussian mixtures ------------------------------------------------------------------------------------------------
def known_mixture(n=600, seed=0):
    g = torch.Generator().manual_seed(seed)
    locs = torch.tensor([[-3.0, 0.0], [2.0, 2.0], [2.0, -3.0]])
    scales = torch.tensor([[0.5, 1.0], [1.0, 0.4], [0.7, 0.7]])
    z = torch.multinomial(torch.tensor([0.5, 0.3, 0.2]), n, replacement=True, generator=g)
    return locs[z] + scales[z] * torch.randn(n, 2, generator=g), locs, scales


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_log_likelihood_never_decreases_and_matches_scikit_learn(covariance):
    from sklearn.mixture import GaussianMixture as SkGMM

    from pyrogen.models import GaussianMixture

    x, _, _ = known_mixture()
    pyro.set_rng_seed(0)
    m = GaussianMixture((2,), components=3, covariance=covariance).double()
    with torch.no_grad():
        m.locs.copy_(x[:3].double())
    with torch.no_grad():  # the whole start, shared with scikit-learn: weights, means and covariances
        comps = m._components()
        cov = comps.covariance_matrix if covariance == "full" else comps.base_dist.scale**2
        weights = torch.softmax(m.logits, -1).numpy()
        precisions = torch.linalg.inv(cov).numpy() if covariance == "full" else (1 / cov).numpy()
    history = m.fit_em(x.double(), iters=200, tol=1e-10)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:], strict=False)), history  # in float64
    sk = SkGMM(
        3,
        covariance_type=covariance,
        weights_init=weights,
        means_init=x[:3].double().numpy(),
        precisions_init=precisions,
        tol=1e-10,
        max_iter=200,
        reg_covar=m.reg,
    )
    sk.fit(x.double().numpy())
    assert abs(history[-1] - sk.score(x.double().numpy())) < 1e-6, (history[-1], sk.score(x.numpy()))
    np.testing.assert_allclose(m.locs.detach().numpy(), sk.means_, atol=1e-4)
    np.testing.assert_allclose(torch.softmax(m.logits, -1).detach().numpy(), sk.weights_, atol=1e-5)
    # in float32 (the default) rounding can make the log-likelihood fall near convergence, by little
    pyro.set_rng_seed(0)
    m32 = GaussianMixture((2,), components=3, covariance=covariance)
    with torch.no_grad():
        m32.locs.copy_(x[:3])
    h32 = m32.fit_em(x, iters=300, tol=-1.0)
    assert max(a - b for a, b in zip(h32, h32[1:], strict=False)) < 1e-5


def test_svi_with_the_assignment_enumerated_recovers_a_known_mixture():
    """Pyro's TraceEnum_ELBO (z summed out) is the exact marginal likelihood; SVI on it finds the mixture."""
    from pyro.infer import SVI, TraceEnum_ELBO

    from pyrogen.models import GaussianMixture

    x, locs, _ = known_mixture(1000)
    pyro.set_rng_seed(1)
    m = GaussianMixture((2,), components=3, covariance="diag")
    with torch.no_grad():
        m.locs.copy_(torch.tensor([[-1.0, 0.0], [1.0, 1.0], [1.0, -1.0]]))
    # the ELBO with z enumerated equals the log-likelihood computed by hand
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    torch.testing.assert_close(
        -elbo.loss(m.model, m.guide, x) / len(x), m.log_prob(x).mean().item(), rtol=1e-5, atol=1e-4
    )
    svi = SVI(m.model, m.guide, pyro.optim.Adam({"lr": 0.1}), elbo)
    for _ in range(250):
        svi.step(x)
    found = m.locs.detach()[m.locs.detach()[:, 0].argsort()]
    truth = locs[locs[:, 0].argsort()]
    # the two components at x=2 sort by their second coordinate
    found = torch.cat([found[:1], found[1:][found[1:, 1].argsort()]])
    truth = torch.cat([truth[:1], truth[1:][truth[1:, 1].argsort()]])
    assert (found - truth).abs().max() < 0.2, (found, truth)
    torch.testing.assert_close(m.weights().sort().values, torch.tensor([0.2, 0.3, 0.5]), atol=0.05, rtol=0)


def test_the_marginal_mixture_model_has_the_enumerated_models_density_and_gradient():
    """NUTS samples ``marginal_model`` (``MixtureSameFamily``); Pyro's enumeration of ``bayesian_model``'s
    assignment gives the same potential and gradient at any parameters."""
    from pyro.infer.mcmc.util import initialize_model

    from pyrogen.models import GaussianMixture

    torch.manual_seed(1)
    x = torch.randn(30, 2) + torch.tensor([1.0, -2.0])
    m = GaussianMixture((2,), components=3, covariance="diag")
    _, enumerated, _, _ = initialize_model(m.bayesian_model, model_args=(x,), max_plate_nesting=1)
    _, marginal, _, _ = initialize_model(m.marginal_model, model_args=(x,), max_plate_nesting=1)
    for _ in range(3):
        params = {
            "weights": torch.randn(2, requires_grad=True),  # unconstrained: the simplex has K - 1 coordinates
            "locs": torch.randn(3, 2, requires_grad=True),
            "scales": torch.randn(3, 2, requires_grad=True),
        }
        a, b = enumerated(params), marginal(params)
        torch.testing.assert_close(b, a)
        wrt = list(params.values())
        for ga, gb in zip(torch.autograd.grad(a, wrt), torch.autograd.grad(b, wrt), strict=True):
            torch.testing.assert_close(gb, ga)


@pytest.mark.slow
def test_nuts_on_the_mixture_parameters_recovers_them_with_labels_matched():
    import arviz as az

    from pyrogen.models import GaussianMixture
    from pyrogen.models.mixture import posterior_predictive_log_prob

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-2.0, 1.0], [2.0, -1.0]])

    def draw(n):
        z = (torch.rand(n, generator=g) < 0.4).long()
        return centres[1 - z] + 0.5 * torch.randn(n, 2, generator=g), z

    x, z = draw(100)
    m = GaussianMixture((2,), components=2, covariance="diag")
    idata = m.nuts(x, num_samples=60, warmup_steps=60, num_chains=2)
    locs = torch.tensor(idata.posterior["locs"].values)  # (chains, draws, K, D), relabelled to a reference draw
    assert locs.shape == (2, 60, 2, 2)
    order = locs.mean((0, 1))[:, 0].argsort()
    torch.testing.assert_close(locs.mean((0, 1))[order], centres, atol=0.2, rtol=0)
    assert float(az.rhat(idata)["locs"].max()) < 1.1  # no label switching left between the chains
    w = torch.tensor(idata.posterior["weights"].values.mean((0, 1)))[order]
    share = float(z.float().mean())
    torch.testing.assert_close(w, torch.tensor([share, 1 - share]), atol=0.06, rtol=0)
    assert "diverging" in idata.sample_stats
    # the posterior predictive density of fresh points against the generating mixture's
    xt, _ = draw(200)
    true_lp = torch.logsumexp(
        torch.distributions.Normal(centres, 0.5).log_prob(xt[:, None]).sum(-1) + torch.tensor([0.4, 0.6]).log(), -1
    )
    # 100 points: the predictive pays about (parameters) / (2 n) = 0.045 nats for the posterior's spread, plus noise
    assert abs(float(posterior_predictive_log_prob(idata, xt).mean() - true_lp.mean())) < 0.2


def test_gmm_bad_arguments_are_named():
    from pyrogen.data import load
    from pyrogen.models import GaussianMixture

    with pytest.raises(ValueError, match="covariance must be one of full, diag; got 'tied'"):
        GaussianMixture(covariance="tied")
    with pytest.raises(ValueError, match="components must be a positive integer; got 0"):
        GaussianMixture(components=0)
    with pytest.raises(ValueError, match="gmm models continuous data; dataset 'digits-binary' is binary"):
        registry.from_dataset(GaussianMixture, load("digits-binary"))
    with pytest.raises(ValueError, match="x must have shape"):
        GaussianMixture().fit_em(torch.zeros(4, 3))


# -- naive Bayes ------------------------------------------------------------------------------------------------------
def tiny_nb(seed=0, d=5, c=3):
    from pyrogen.models import NaiveBayes

    pyro.set_rng_seed(seed)
    m = NaiveBayes((d,), classes=c).double()
    with torch.no_grad():
        m.class_logits.normal_()
        m.feature_logits.normal_(0, 2)
    return m


def test_naive_bayes_posterior_equals_the_formula_by_brute_force():
    m = tiny_nb()
    x = all_bits(5)
    pi = torch.softmax(m.class_logits, -1)
    theta = torch.sigmoid(m.feature_logits)  # (C, D)
    like = (theta[None] ** x[:, None] * (1 - theta[None]) ** (1 - x[:, None])).prod(-1)  # (n, C)
    post = pi * like / (pi * like).sum(-1, keepdim=True)
    torch.testing.assert_close(m.class_log_probs(x).exp(), post)
    torch.testing.assert_close(m.log_prob(x).exp(), (pi * like).sum(-1))
    torch.testing.assert_close(m.log_prob(x).exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    # the Pyro program with y enumerated: TraceEnum_ELBO is -log p(x)
    from pyro.infer import TraceEnum_ELBO

    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(m.model, m.guide, x)
    assert abs(loss + m.log_prob(x).sum().item()) < 1e-6


def test_a_missing_feature_is_summed_out_exactly():
    m = tiny_nb()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0]], dtype=torch.float64)
    observed = torch.tensor([True, False, True, False, True])
    by_model = m.class_log_probs(x, observed).exp()
    # by hand: sum p(y, x) over the four completions of features 1 and 3
    total = torch.zeros(3, dtype=torch.float64)
    for a, b in itertools.product([0.0, 1.0], repeat=2):
        full = x.clone()
        full[0, 1], full[0, 3] = a, b
        total += m.joint_log_probs(full)[0].exp()
    torch.testing.assert_close(by_model[0], total / total.sum())
    with pytest.raises(ValueError, match="observed must broadcast to x's shape \\(1, 5\\); got \\(3,\\)"):
        m.predict(x, torch.tensor([True, False, True]))


def test_naive_bayes_counts_are_the_maximum_likelihood_and_recover_the_generating_tables():
    m = tiny_nb(seed=1, d=6, c=2)
    pyro.set_rng_seed(2)
    y = torch.multinomial(torch.softmax(m.class_logits, -1), 20000, replacement=True)
    x = m.sample(20000, y=y)
    from pyrogen.models import NaiveBayes

    fit = NaiveBayes((6,), classes=2, alpha=0.0).double().fit_counts(x, y)
    theta, theta_hat = torch.sigmoid(m.feature_logits), torch.sigmoid(fit.feature_logits)
    n_y = torch.bincount(y, minlength=2).double()
    se = (theta * (1 - theta) / n_y[:, None]).sqrt()
    assert ((theta_hat - theta).abs() < 4 * se + 1e-6).all()
    # and the counts maximize the joint likelihood: a gradient step from them does not improve it
    loss(fit, (x, y)).backward()
    assert fit.feature_logits.grad.abs().max() < 1e-6 and fit.class_logits.grad.abs().max() < 1e-6


# -- Bayesian networks ------------------------------------------------------------------------------------------------
def student():
    from pyrogen.models import BayesNet

    return BayesNet().double()


def test_the_factorization_sums_to_one_and_queries_equal_brute_force_sums():
    m = student()
    space = m.all_assignments()
    p = m.log_prob(space).exp()
    torch.testing.assert_close(p.sum(), torch.tensor(1.0, dtype=torch.float64))
    names = [nd["name"] for nd in m.nodes]
    for target, evidence in (
        ("intelligence", {"letter": 1, "sat": 0}),
        ("grade", {"difficulty": 1}),
        ("difficulty", {"grade": 2, "intelligence": 1}),
        ("letter", {}),
    ):
        keep = torch.ones(len(space), dtype=torch.bool)
        for k, v in evidence.items():
            keep &= space[:, names.index(k)] == v
        t = names.index(target)
        brute = torch.stack([(p * keep * (space[:, t] == s)).sum() for s in range(m.nodes[t]["states"])])
        torch.testing.assert_close(m.query(target, evidence), brute / brute.sum(), rtol=1e-6, atol=1e-9)
    # Koller and Friedman's explaining-away numbers: P(i1) = 0.3, P(i1 | g3) ~ 0.079, P(i1 | g3, d1) ~ 0.11
    assert abs(float(m.query("intelligence")[1]) - 0.3) < 1e-6  # the tables were stored in float32
    assert abs(float(m.query("intelligence", {"grade": 2})[1]) - 0.0789) < 1e-3
    assert abs(float(m.query("intelligence", {"grade": 2, "difficulty": 1})[1]) - 0.1094) < 1e-3
    # MAP by max-product equals the brute-force argmax among the consistent assignments
    evidence = {"letter": 0}
    keep = space[:, names.index("letter")] == 0
    best = space[torch.where(keep, p, -1.0).argmax()]
    assert m.map_assignment(evidence) == dict(zip(names, best.tolist(), strict=True))


def test_learned_tables_recover_the_generating_ones_from_complete_and_incomplete_data():
    from pyrogen.data import load
    from pyrogen.data.networks import STUDENT
    from pyrogen.inference import fit
    from pyrogen.models import BayesNet

    data = load("student")
    truth = [torch.tensor(nd["table"], dtype=torch.float64) for nd in STUDENT]
    m = registry.from_dataset(BayesNet, data, alpha=1.0).double().fit_counts(data.train)
    for nd, got, want in zip(m.nodes, m.tables(), truth, strict=True):
        assert (got - want).abs().max() < 0.12, nd["name"]  # 2000 rows: the sparsest parent cell has ~80
    # a third of the grades missing: the marginal likelihood (missing values summed out) trains the tables
    g = torch.Generator().manual_seed(0)
    x = data.train.clone()
    x[torch.rand(len(x), generator=g) < 1 / 3, 2] = -1
    pyro.set_rng_seed(0)
    m2 = registry.from_dataset(BayesNet, data)
    fit(m2, x, None, steps=400, batch_size=500, lr=0.05)
    full = registry.from_dataset(BayesNet, data, alpha=0.0).fit_counts(data.train)
    for nd, got, ref in zip(m2.nodes, m2.tables(), full.tables(), strict=True):
        assert (got - ref).abs().max() < 0.08, (nd["name"], got, ref)


def test_bad_networks_raise_errors_naming_the_node():
    from pyrogen.models import BayesNet

    a = {"name": "a", "states": 2, "parents": ["b"], "table": None}
    b = {"name": "b", "states": 2, "parents": ["a"], "table": None}
    with pytest.raises(ValueError, match="the network has a cycle through node"):
        BayesNet(nodes=[a, b])
    with pytest.raises(ValueError, match="node 'a': parent 'c' is not a node"):
        BayesNet(nodes=[{**a, "parents": ["c"]}])
    with pytest.raises(ValueError, match="node 'b': every row of the table must be non-negative and sum to 1"):
        BayesNet(nodes=[{**a, "parents": []}, {**b, "table": [[0.5, 0.6], [0.5, 0.5]]}])
    with pytest.raises(ValueError, match=r"node 'b': the table must have shape \(2, 2\) \(parents, then states\)"):
        BayesNet(nodes=[{**a, "parents": []}, {**b, "table": [0.5, 0.5]}])
    with pytest.raises(ValueError, match="node 'a': states must be an integer >= 2; got 1"):
        BayesNet(nodes=[{**a, "parents": [], "states": 1}])
    m = student()
    with pytest.raises(ValueError, match="x must hold integers in 0..1; found 2 \\(node 'sat'; -1: missing\\)"):
        m.log_prob(torch.tensor([[0, 0, 0, 2, 0]]))
    with pytest.raises(ValueError, match="evidence names an unknown node 'iq'"):
        m.query("grade", {"iq": 1})
    with pytest.raises(ValueError, match="evidence grade=3: node 'grade' takes 0..2"):
        m.query("letter", {"grade": 3})
    with pytest.raises(ValueError, match="fit_counts needs complete rows"):
        m.fit_counts(torch.tensor([[0, -1, 0, 0, 0]]))


# -- the fully visible Boltzmann machine ------------------------------------------------------------------------------
def tiny_bm(d=3, seed=0, **kw):
    from pyrogen.models import BoltzmannMachine

    pyro.set_rng_seed(seed)
    m = BoltzmannMachine((d,), chains=8, **kw)
    with torch.no_grad():
        m.raw_W.normal_(0, 0.7)
        m.b.normal_(0, 0.7)
    return m.double()


def test_bm_log_z_and_a_gibbs_sweep_against_brute_force():
    m = tiny_bm()
    V = all_bits(3)
    W, b = m.W().detach(), m.b.detach()
    assert torch.equal(W, W.T) and torch.all(torch.diagonal(W) == 0)
    brute = torch.logsumexp(torch.stack([b @ v + 0.5 * v @ W @ v for v in V]), 0)
    torch.testing.assert_close(m.log_normalizer()[0], brute)
    p = m.log_prob(V).exp()
    # one sweep = site 0, then 1, then 2, each resampled from its conditional: its matrix leaves p invariant
    T = torch.eye(8, dtype=torch.float64)
    for i in range(3):
        K = torch.zeros(8, 8, dtype=torch.float64)
        for a, v in enumerate(V):
            p1 = torch.sigmoid(b[i] + v @ W[:, i])
            for val, prob in ((1.0, p1), (0.0, 1 - p1)):
                w = v.clone()
                w[i] = val
                K[a, int((w * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum())] += prob
        T = T @ K
    torch.testing.assert_close(p @ T, p)
    # the pseudo-likelihood is the sum of the exact conditionals
    pll = sum(
        torch.log(torch.where(V[:, i] == 1, torch.sigmoid(b[i] + V @ W[:, i]), 1 - torch.sigmoid(b[i] + V @ W[:, i])))
        for i in range(3)
    )
    torch.testing.assert_close(m.pseudo_log_likelihood(V), pll)


def test_bm_ais_agrees_with_enumeration():
    exact = tiny_bm(d=12, seed=3)
    approx = tiny_bm(d=12, seed=3, exact_max=4, ais_temps=800, ais_chains=400)
    log_z, se = approx.log_normalizer()
    assert abs(float(log_z) - exact.log_normalizer()[0].item()) < 4 * se + 0.02, (float(log_z), se)
    assert torch.equal(approx.log_normalizer()[0], log_z)  # seeded: the same parameters, the same estimate


# -- the deep Boltzmann machine ---------------------------------------------------------------------------------------
def tiny_dbm(d=3, h=(2, 2), scale=1.0, seed=0, **kw):
    from pyrogen.models import DBM

    pyro.set_rng_seed(seed)
    m = DBM((d,), hidden=h, chains=8, **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, scale)
    return m.double()


def joint_states(d, h):
    S = all_bits(d + h[0] + h[1])
    return S, S[:, :d], S[:, d : d + h[0]], S[:, d + h[0] :]


def test_dbm_log_z_and_log_p_star_equal_brute_force_sums_over_every_state():
    m = tiny_dbm()
    S, v, h1, h2 = joint_states(3, (2, 2))
    neg_e = -m.energy(v, h1, h2)
    torch.testing.assert_close(m.log_normalizer()[0], torch.logsumexp(neg_e, 0))
    V = all_bits(3)
    by_v = torch.stack([torch.logsumexp(neg_e[(v == x).all(1)], 0) for x in V])
    torch.testing.assert_close(m.unnormalized_log_prob(V), by_v)
    torch.testing.assert_close(m.log_prob(V).exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    for route in ("h1", "h2"):  # either hidden layer summed out gives the same exact sum
        torch.testing.assert_close(m.unnormalized_log_prob(V, route=route), by_v)


def test_dbm_log_p_star_by_either_layer_agrees_on_a_wider_machine_and_names_a_bad_route():
    m = tiny_dbm(d=5, h=(4, 6), scale=0.8, seed=2)
    V = all_bits(5)
    torch.testing.assert_close(m.unnormalized_log_prob(V, route="h1"), m.unnormalized_log_prob(V, route="h2"))
    with pytest.raises(ValueError, match="route must be 'h1', 'h2' or None; got 'h3'"):
        m.unnormalized_log_prob(V, route="h3")
    narrow = tiny_dbm(d=5, h=(4, 6), exact_max=5)
    with pytest.raises(ValueError, match=r"needs hidden\[1\] <= 5; this DBM has 6"):
        narrow.unnormalized_log_prob(V.float(), route="h2")


def test_dbm_mean_field_gap_is_the_kl_to_the_exact_posterior_and_each_update_raises_the_bound():
    m = tiny_dbm(d=4, h=(3, 2), scale=1.5, seed=1)
    S, v, h1, h2 = joint_states(4, (3, 2))
    neg_e = -m.energy(v, h1, h2)
    V = all_bits(4)
    bounds = torch.stack([m.mean_field_bound(V, steps=s) for s in range(0, 8)])
    assert torch.all(bounds[1:] >= bounds[:-1] - 1e-10)  # coordinate ascent never lowers the bound
    exact = m.unnormalized_log_prob(V)
    assert torch.all(bounds[-1] <= exact + 1e-10)
    # gap = KL(q || p(h | v)), q the mean-field product, p by brute force over the 2^5 hidden states
    mu1, mu2 = m.mean_field(V, steps=7)
    for i, x in enumerate(V):
        rows = (v == x).all(1)
        log_post = neg_e[rows] - torch.logsumexp(neg_e[rows], 0)
        hh1, hh2 = h1[rows], h2[rows]
        log_q = (hh1 * mu1[i].log() + (1 - hh1) * (1 - mu1[i]).log()).sum(-1) + (
            hh2 * mu2[i].log() + (1 - hh2) * (1 - mu2[i]).log()
        ).sum(-1)
        kl = (log_q.exp() * (log_q - log_post)).sum()
        torch.testing.assert_close(exact[i] - bounds[-1, i], kl)


def test_dbm_block_gibbs_leaves_the_exact_joint_invariant():
    """The sweep h1 | (v, h2), then (v, h2) | h1, as a 128 x 128 transition matrix over every state, has the
    exact joint distribution as its stationary distribution."""
    m = tiny_dbm()
    S, v, h1, h2 = joint_states(3, (2, 2))
    neg_e = -m.energy(v, h1, h2)
    p = (neg_e - torch.logsumexp(neg_e, 0)).exp()

    def bern(prob, x):
        return (prob**x * (1 - prob) ** (1 - x)).prod(-1)

    p_h1 = torch.sigmoid(m.c1 + v @ m.W1 + h2 @ m.W2.T).detach()  # (128, 2): h1's conditional at each state
    K1 = torch.where(
        ((v[:, None] == v[None]).all(-1) & (h2[:, None] == h2[None]).all(-1)), bern(p_h1[:, None], h1[None]), 0
    )
    p_v = torch.sigmoid(m.b + h1 @ m.W1.T).detach()
    p_h2 = torch.sigmoid(m.c2 + h1 @ m.W2).detach()
    K2 = torch.where((h1[:, None] == h1[None]).all(-1), bern(p_v[:, None], v[None]) * bern(p_h2[:, None], h2[None]), 0)
    T = K1 @ K2
    torch.testing.assert_close(T.sum(1), torch.ones(128, dtype=torch.float64))
    torch.testing.assert_close(p @ T, p.detach())
    # and the sampler is that kernel: a long run's visit frequencies of v agree with the exact marginal
    pyro.set_rng_seed(0)
    x = m.gibbs_chains(4000, steps=40, record_every=40).samples[:, -1]
    idx = (x * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(-1).long()
    freq = torch.bincount(idx, minlength=8).double() / len(idx)
    pv = m.log_prob(all_bits(3)).exp().detach()
    assert (freq - pv).abs().max() < 4 * math.sqrt(0.25 / len(idx)), (freq, pv)


def test_dbm_ais_over_the_first_layer_agrees_with_enumeration():
    exact = tiny_dbm(d=10, h=(12, 6), scale=0.4, seed=2)
    approx = tiny_dbm(d=10, h=(12, 6), scale=0.4, seed=2, exact_max=8, ais_temps=1000, ais_chains=400)
    log_z, se = approx.log_normalizer()
    assert abs(float(log_z) - exact.log_normalizer()[0].item()) < 4 * se + 0.02, (float(log_z), se)
    assert approx.evaluation_metrics(all_bits(10)[:4])["log_z_method"] == "ais"
    # above exact_max for h2, log p*(v) is the mean-field bound, and evaluate says so
    bound = tiny_dbm(d=10, h=(12, 6), scale=0.4, seed=2, exact_max=12)
    bound.exact_max = 5
    x = all_bits(10)[::97]
    assert torch.all(bound.log_prob(x) <= exact.log_prob(x) + 1e-4)
    assert bound.evaluation_metrics(x)["unnormalized_method"] == "mean-field bound"


def test_dbm_pretraining_phases_train_their_layers_and_the_joint_phase_improves_on_them():
    from pyrogen.data import load
    from pyrogen.inference import TrainConfig
    from pyrogen.inference.trainer import make_optimizers, training_step
    from pyrogen.models import DBM

    data = load("digits-binary")
    pyro.set_rng_seed(0)
    m = registry.from_dataset(DBM, data, hidden=(16, 8), pretrain_steps=300)
    phases = [objective_for(m).schedule(m, s) for s in (0, 299, 300, 599, 600)]
    assert phases == [("layer1",)] * 2 + [("layer2",)] * 2 + [("dbm",)]
    cfg = TrainConfig(lr=0.01)
    groups = make_optimizers(m, cfg)
    x = data.train.flatten(1)
    nll, moved = [float(objective_for(m).validation(m, data.val))], []
    for phase in range(3):
        before = {k: v.clone() for k, v in m.state_dict().items()}
        for step in range(300 * phase, 300 * (phase + 1)):
            training_step(m, None, x[torch.randint(len(x), (64,))], step, groups, cfg)
        moved.append(
            {
                k
                for k, v in m.state_dict().items()
                if not torch.equal(v, before[k]) and k not in ("persistent", "chains_started")
            }
        )
        nll.append(float(objective_for(m).validation(m, data.val)))
    assert moved == [{"W1", "b", "c1"}, {"W2", "c2"}, {"W1", "W2", "b", "c1", "c2"}], moved
    # pre-training takes the DBM far from its start; the joint phase improves on it
    assert nll[2] < nll[0] - 5 and nll[3] < nll[2], nll
    with pytest.raises(ValueError, match=r"hidden must give the two hidden layers' sizes \(H1, H2\); got \(8,\)"):
        DBM(hidden=(8,))
    with pytest.raises(ValueError, match="pretrain_steps must be a non-negative integer; got -1"):
        DBM(pretrain_steps=-1)
    with pytest.raises(ValueError, match="trains DBM in the parameter groups 'layer1', 'layer2', 'dbm'; got 'model'"):
        loss(m, x[:4], "model")


def _asia():
    """The asia network (Lauritzen and Spiegelhalter, 1988): ``either`` is a deterministic OR of tub and lung."""
    from pyrogen.models import registry

    nodes = [
        {"name": "asia", "states": 2, "parents": [], "table": [0.99, 0.01]},
        {"name": "tub", "states": 2, "parents": ["asia"], "table": [[0.99, 0.01], [0.95, 0.05]]},
        {"name": "smoke", "states": 2, "parents": [], "table": [0.5, 0.5]},
        {"name": "lung", "states": 2, "parents": ["smoke"], "table": [[0.99, 0.01], [0.9, 0.1]]},
        {
            "name": "either",
            "states": 2,
            "parents": ["tub", "lung"],
            "table": [[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]],
        },
    ]
    return registry.create("bayes-net", event_shape=(5,), nodes=nodes)


def test_impossible_events_are_minus_infinity_and_conditioning_on_them_is_an_error(tmp_path):
    # before: table entries were floored at 1e-12, so impossible rows scored -29 to -46 and a query on evidence of
    # probability 0 returned [0.99, 0.01] (pgmpy gives NaN)
    from pyrogen.io import load_checkpoint, save_checkpoint

    bn = _asia()
    impossible = torch.tensor([[0, 1, 0, 1, 0]])  # tub and lung, yet not either
    assert bn.log_prob(impossible).item() == -math.inf
    for ask in (lambda: bn.query("tub", {"either": 0, "lung": 1}), lambda: bn.map_assignment({"either": 0, "lung": 1})):
        with pytest.raises(ValueError, match="has probability 0 under the network: nothing to condition on"):
            ask()
    # possible evidence: Pyro's enumeration equals the brute-force joint over all 32 states
    joint = bn.query(["tub", "lung"], {"either": 1})
    assert joint[0, 0] == 0  # either=1 rules out neither-tub-nor-lung
    torch.testing.assert_close(bn.query("tub", {"either": 1}), joint.sum(1), rtol=1e-5, atol=1e-7)
    # a zero in a table survives a checkpoint (-inf is a value; NaN and +inf are refused)
    save_checkpoint(tmp_path / "bn.safetensors", bn.state_dict(), {})
    tensors, _ = load_checkpoint(tmp_path / "bn.safetensors")
    assert torch.isneginf(tensors["logits.4"]).sum() == 4
    # maximum likelihood without smoothing: a state never seen has probability 0, a parent configuration never
    # seen a uniform table
    from pyrogen.models import registry

    rows = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 1, 0, 0]])
    learnt = registry.create("bayes-net", event_shape=(5,), nodes=bn.config()["nodes"], alpha=0.0).fit_counts(rows)
    tabs = learnt.tables()
    torch.testing.assert_close(tabs[0], torch.tensor([1.0, 0.0]))  # asia always 0
    torch.testing.assert_close(tabs[1][1], torch.tensor([0.5, 0.5]))  # tub given asia=1: never seen
    assert learnt.log_prob(torch.tensor([[1, 0, 0, 0, 0]])).item() == -math.inf
    assert torch.isfinite(learnt.log_prob(rows)).all()


def test_em_with_missing_values_climbs_to_a_stationary_point_of_the_marginal_likelihood():
    # before: only gradient training of the marginal likelihood, which stopped 0.011 nats from EM's tables
    from pyrogen.data.networks import STUDENT
    from pyrogen.models import registry

    truth = registry.create("bayes-net", event_shape=(5,), nodes=STUDENT)
    pyro.set_rng_seed(0)
    x = truth.sample(600)
    x[torch.rand(600) < 0.3, 1] = -1  # intelligence hidden in about 30% of the rows
    x[torch.rand(600) < 0.2, 2] = -1  # grade in about 20%
    start = [{**nd, "table": None} for nd in STUDENT]
    bn = registry.create("bayes-net", event_shape=(5,), nodes=start, alpha=0.0).double()
    with torch.no_grad():  # away from the symmetric start (where the hidden variable's states are exchangeable)
        for t in bn.logits:
            t.add_(0.3 * torch.randn(t.shape))
    history = bn.fit_em(x, iters=500, tol=1e-12)
    assert all(b >= a - 1e-12 for a, b in zip(history, history[1:], strict=False)), history  # float64
    assert history[-1] > history[0] + 0.1
    # a stationary point: the marginal log-likelihood's gradient in every table's logits vanishes (autograd)
    loss = -bn.log_prob(x).mean()
    grads = torch.autograd.grad(loss, list(bn.logits))
    assert max(float(g.abs().max()) for g in grads) < 1e-5
    assert bn.log_prob(x).mean().item() == pytest.approx(history[-1], abs=1e-9)
    with pytest.raises(ValueError, match="fit_counts needs complete rows; with missing values \\(-1\\) use fit_em"):
        bn.fit_counts(x)


def test_a_seeded_ais_normalizer_is_computed_once_per_parameter_state(monkeypatch):
    # scoring one DBM several times (evaluation, its error bars) ran AIS each time: 7.5 s per call at 64-16
    from pyrogen.data import load
    from pyrogen.models import boltzmann, registry

    calls = []
    real = boltzmann._bipartite_ais

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(boltzmann, "_bipartite_ais", counting)
    m = registry.create("dbm", event_shape=(1, 8, 8), hidden=(8, 4), exact_max=4, ais_temps=30, ais_chains=16)
    x = load("digits-binary").test[:5]
    a = m.log_prob(x)
    b = m.log_prob(x)
    assert torch.equal(a, b) and len(calls) == 1
    with torch.no_grad():
        m.c2.add_(0.1)
    c = m.log_prob(x)
    assert len(calls) == 2 and not torch.equal(a, c)
    m.ais_temps = 40  # another estimate asked for: computed again
    m.log_prob(x)
    assert len(calls) == 3


def test_the_dbms_exact_log_p_star_keeps_little_for_the_backward_pass(monkeypatch):
    # before: with autograd on, the default 64-16 DBM kept every chunk of its 2**16 states for the backward
    # pass, about 23 MB per row (256 rows peaked at 5.95 GB, 1,024 were killed on a 24 GB machine); now each
    # chunk is recomputed in the backward pass, and what autograd keeps does not grow with rows times states
    from pyrogen.data import load
    from pyrogen.models import boltzmann, registry

    torch.manual_seed(0)
    d = load("digits-binary")
    m = registry.from_dataset("dbm", d)
    x = d.train[:96].flatten(1)
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m.unnormalized_log_prob(x)
    assert sum(saved) < 16 * 2**20, sum(saved) / 2**20  # MB; 96 rows x 23 MB before
    # the recomputed chunks give the gradient of the plain computation
    few = x[:4]
    grads = torch.autograd.grad(m.unnormalized_log_prob(few).sum(), (m.W1, m.W2, m.c1, m.c2))
    monkeypatch.setattr(boltzmann, "_chunked", lambda fn, *args: fn(*args))
    plain = torch.autograd.grad(m.unnormalized_log_prob(few).sum(), (m.W1, m.W2, m.c1, m.c2))
    for g, h in zip(grads, plain, strict=True):
        torch.testing.assert_close(g, h)


def test_the_dbm_cost_benchmark_measures_the_default_machines_enumeration():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import classical

    out = classical.dbm_cost(quick=True)
    assert out["states"] == 2**16 and out["units"] == 64, out  # docs/classical.md's 2^16 x 64 softplus terms a digit
    for key in ("log_p_star_s_per_digit", "log_p_star_with_gradient_s_per_digit", "ais_log_z_s", "evaluate_nll_s"):
        assert out[key] > 0, key
