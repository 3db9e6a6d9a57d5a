"""A trained pyrogen model inside a Pyro program a user writes from scratch.

The rules (docs/python.md, "Into a Pyro program"): a model enters frozen -- nothing in Pyro's param store,
nothing an outer
``SVI`` trains -- unless asked (``as_distribution(trainable=True)``); in eval mode ``model``/``guide`` use the
weights ``sample`` and the reported bound use (the EMA's); the rows' plate is the caller's; unbatched input
works as in ``torch.distributions``. Each test is a program a user would write, and failed on the code before
these rules.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import pyro_reference, small_data, small_model
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoNormal

from pyrogen.data import load
from pyrogen.inference import fit


def _trained(name: str, steps: int = 60):
    m = small_model(name)
    fit(m, small_data(name), steps=steps, batch_size=64, lr=1e-3, seed=0)
    return m.eval()


def _snapshot(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _changed(m: torch.nn.Module, before: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in m.state_dict().items() if not torch.equal(v, before[k])]


def _noisy_observation_program(prior: dist.Distribution):
    def model(obs: torch.Tensor) -> None:
        z = pyro.sample("z", prior)
        pyro.sample("obs", dist.Normal(z, 0.5).to_event(1), obs=obs)

    return model


def test_a_trained_energy_prior_stays_frozen_under_an_outer_svi():
    # before: the energy trained along with the guide, the loss went to -4e13 and the guide's mean to 4.5e6
    ebm = _trained("ebm-sm")
    before = _snapshot(ebm)
    model = _noisy_observation_program(ebm.as_distribution())
    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    obs = torch.tensor([0.5, 0.2])
    losses = [svi.step(obs) for _ in range(200)]
    assert not _changed(ebm, before)
    assert all(not k.startswith("ebm-sm") for k in pyro.get_param_store().keys())
    assert max(abs(v) for v in losses[-20:]) < 100
    assert float(guide.median()["z"].abs().max()) < 5


def test_a_trained_flow_prior_stays_frozen_unless_asked():
    # before: 48 of 51 tensors of a trained RealNVP changed in 300 SVI steps
    flow = _trained("realnvp")
    before = _snapshot(flow)
    obs = torch.tensor([1.0, 0.0])
    for trainable, expect_change in ((False, False), (True, True)):
        pyro.clear_param_store()

        def model(obs: torch.Tensor, trainable: bool = trainable) -> None:
            z = pyro.sample("z", flow.as_distribution(trainable=trainable))
            pyro.sample("obs", dist.Normal(z, 0.5).to_event(1), obs=obs)

        guide = AutoNormal(model)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
        for _ in range(30):
            svi.step(obs)
        changed = _changed(flow, before)
        assert bool(changed) is expect_change, changed
        in_store = [k for k in pyro.get_param_store().keys() if k.startswith("realnvp")]
        assert bool(in_store) is expect_change
    with pytest.raises(TypeError, match="trainable must be True or False; got 'yes'"):
        flow.as_distribution(trainable="yes")


def test_ddpm_model_and_guide_use_the_ema_weights_in_eval_mode():
    # before: model/guide ran the raw network while elbo() and sample() used the EMA: Pyro's ELBO on the pair
    # was another model's bound
    m = _trained("ddpm", steps=40)
    x = small_data("ddpm", 128)
    raw = {n: p.detach().clone() for n, p in m.net.named_parameters()}
    assert any(not torch.equal(raw[n], a) for n, a in m.ema.averaged_parameters().items())  # they differ

    def pyro_bound(seed: int) -> torch.Tensor:
        pyro.set_rng_seed(seed)
        return -TraceMeanField_ELBO().differentiable_loss(m.model, m.guide, x) / len(x)

    with torch.no_grad():
        bound = pyro_bound(3)
        pyro.set_rng_seed(3)
        torch.testing.assert_close(bound, -pyro_reference(m).loss(m, x))  # the fused path keeps to the same rule
        m.train()
        with m.ema.averaged():  # the EMA weights copied into the network, run as its own
            copied = pyro_bound(3)
        own = pyro_bound(3)  # training mode: the raw weights, what SVI updates
        m.eval()
        torch.testing.assert_close(bound, copied)
        assert not torch.allclose(bound, own)
        # and it estimates the bound pyrogen reports: over seeds the two agree within their Monte Carlo error
        draws = torch.stack([pyro_bound(s) for s in range(8)])
        ref = m.elbo(x).mean()
        assert abs(float(draws.mean() - ref)) < 4 * float(draws.std() / 8**0.5) + 0.02


def test_svi_on_an_eval_mode_ddpm_is_refused_naming_train():
    # before: SVI on a DDPM opened by load_run (eval mode) ran, filled the param store and changed nothing
    m = _trained("ddpm", steps=5).eval()
    x = small_data("ddpm", 32)
    svi = pyro.infer.SVI(m.model, m.guide, pyro.optim.Adam({"lr": 1e-2}), TraceMeanField_ELBO())
    with pytest.raises(ValueError, match=r"eval mode.*\.train\(\)"):
        svi.step(x)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    with torch.no_grad():  # evaluating the bound in eval mode is no training: no refusal
        TraceMeanField_ELBO().loss(m.model, m.guide, x)
    m.train()
    svi.step(x)  # in training mode the step trains the network
    assert any(not torch.equal(before[n], p) for n, p in m.named_parameters())


@pytest.mark.parametrize("plate_name", ["data", "rows"])
def test_a_bayes_net_takes_the_callers_plate(plate_name):
    # before: its own plate "data" collided with a user's ("Multiple sample sites named 'data'") and under
    # another name at that dim compute_marginals failed with KeyError: 'a'
    bn = small_model("bayes-net").fit_counts(load("student").train)
    x = load("student").test[:5].clone()
    x[:, 0] = -1  # the first node unobserved

    def users(x: torch.Tensor) -> None:
        with pyro.plate(plate_name, len(x)):
            bn.model(x)

    marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(users, lambda x: None, x)
    first = bn.nodes[0]["name"]
    probs = torch.softmax(marginals[first].logits.detach(), -1).reshape(len(x), -1)
    for i in range(len(x)):
        evidence = {nd["name"]: int(x[i, j]) for j, nd in enumerate(bn.nodes) if j}
        torch.testing.assert_close(probs[i], bn.query(first, evidence).to(probs), rtol=1e-5, atol=1e-6)
    tr = pyro.poutine.trace(users).get_trace(x)
    assert [f.name for f in tr.nodes[first]["cond_indep_stack"]] == [plate_name]


def test_a_model_called_outside_a_plate_leaves_the_name_data_to_the_user():
    # before: a Bayesian network called outside a plate opened its own plate "data"; a user who then opened
    # pyro.plate("data") for their own sites got "Multiple sample sites named 'data'"
    from pyrogen.inference.program import ROWS_PLATE

    bn = small_model("bayes-net").fit_counts(load("student").train)
    x = load("student").test[:5]

    def users(x: torch.Tensor) -> None:
        bn.model(x)
        with pyro.plate("data", 3):
            pyro.sample("mine", pyro.distributions.Normal(0.0, 1.0))

    tr = pyro.poutine.trace(users).get_trace(x)
    first = bn.nodes[0]["name"]
    assert [f.name for f in tr.nodes[first]["cond_indep_stack"]] == [ROWS_PLATE]
    assert [f.name for f in tr.nodes["mine"]["cond_indep_stack"]] == ["data"]


def test_a_bayes_net_takes_one_row_batched_or_not():
    bn = small_model("bayes-net").fit_counts(load("student").train)
    x = load("student").test[:1].clone()
    x[:, 0] = -1
    first = bn.nodes[0]["name"]
    evidence = {nd["name"]: int(x[0, j]) for j, nd in enumerate(bn.nodes) if j}
    expected = bn.query(first, evidence)
    for row in (x, x[0]):
        marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(bn.model, lambda x: None, row)
        got = torch.softmax(marginals[first].logits.detach(), -1).reshape(-1)
        torch.testing.assert_close(got, expected.to(got), rtol=1e-5, atol=1e-6)
    tr = pyro.poutine.trace(bn.model).get_trace(x[0])
    assert tr.nodes[bn.nodes[1]["name"]]["fn"].batch_shape == ()
    torch.testing.assert_close(bn.log_prob(x[0]), bn.log_prob(x)[0])


def test_a_gan_generates_from_one_unbatched_code():
    gan = small_model("ns-gan").eval()
    z = torch.randn(2, gan.latent_dim)
    one = gan.generate(z[0])
    assert one.shape == gan.event_shape
    torch.testing.assert_close(one, gan.generate(z)[0])


def test_log_prob_takes_one_unbatched_example_like_torch_distributions():
    flow = small_model("realnvp").eval()
    x = load("moons").test[:3]
    torch.testing.assert_close(flow.log_prob(x[0]), flow.log_prob(x)[0])
    assert flow.log_prob(x[0]).shape == ()
    cond = small_model("cvae").eval()
    d = load("digits-binary")
    xs, ys = d.test[:2], d.labels["test"][:2]
    pyro.set_rng_seed(1)
    one = cond.elbo(xs[0], int(ys[0]))
    pyro.set_rng_seed(1)
    assert one.shape == () and torch.allclose(one, cond.elbo(xs[:1], ys[:1])[0])


def test_api_edges_a_user_hits():
    # each refused or answered where it used to pass silently or fail obscurely
    sde = small_model("score-sde")
    with pytest.raises(ValueError, match="record_every must be a non-negative integer; got -1"):
        sde.reverse_chain(2, record_every=-1)
    rbm = small_model("rbm")
    images = load("digits-binary").test[:4]
    torch.testing.assert_close(rbm.free_energy(images), rbm.free_energy(images.flatten(1)))
    torch.testing.assert_close(-rbm.free_energy(images) - rbm.log_normalizer()[0], rbm.log_prob(images))
    for bad, match in (
        (torch.full_like(images, 0.5), "only 0 and 1"),
        (torch.full_like(images, float("nan")), "finite"),
    ):
        with pytest.raises(ValueError, match=match):
            rbm.free_energy(bad)
    gan = small_model("wgan-gp")
    with pytest.raises(ValueError, match="by its own estimator.*objective='pyro' does not apply"):
        fit(gan, small_data("wgan-gp", 64), steps=1, batch_size=32, objective="pyro")
    with pytest.raises(ValueError, match="patience must be a positive integer or None; got True"):
        fit(small_model("realnvp"), small_data("realnvp", 64), steps=1, patience=True)
    bn = small_model("bayes-net").fit_counts(load("student").train)
    joint = bn.query(["difficulty", "grade"], {"letter": 1})
    assert joint.shape == (2, 3)
    torch.testing.assert_close(joint.sum(1), bn.query("difficulty", {"letter": 1}), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(joint.sum(0), bn.query("grade", {"letter": 1}), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="must be distinct nodes and not evidence"):
        bn.query(["grade", "letter"], {"letter": 1})
