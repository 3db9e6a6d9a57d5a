"""The transform and distribution harnesses, in the manner of Pyro's and zuko's tests."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats
from torch.autograd.functional import jacobian

from pyrogen.distributions import FlowDistribution, inverse_and_log_det
from pyrogen.models import RealNVP, registry


def _transforms():
    """(id, transform, event dim D): every layer pyrogen's flows use, and whole flows."""
    torch.manual_seed(0)
    out = []
    for d in (2, 5):
        flow = RealNVP(event_shape=(d,), num_layers=3, hidden=(8,)).double()
        with torch.no_grad():  # make the couplings far from the identity
            for p in flow.parameters():
                p.normal_(0, 0.5)
        fd = flow.as_distribution()
        out.append((f"affine-coupling-{d}", fd.transforms[0], d))
        out.append((f"permute-{d}", fd.transforms[1], d))
        out.append((f"realnvp-{d}", torch.distributions.ComposeTransform(fd.transforms), d))
    return out


TRANSFORMS = _transforms()


@pytest.mark.parametrize(("tid", "t", "d"), TRANSFORMS, ids=[x[0] for x in TRANSFORMS])
def test_inverse(tid, t, d):
    x = torch.randn(7, d, dtype=torch.float64)
    y = t(x)
    assert y.shape == x.shape
    x_back, _ = inverse_and_log_det(t, y.clone()) if not tid.startswith("realnvp") else (t.inv(y.clone()), None)
    assert torch.allclose(x_back, x, atol=1e-10)


@pytest.mark.parametrize(("tid", "t", "d"), TRANSFORMS, ids=[x[0] for x in TRANSFORMS])
def test_log_det_equals_autograd_jacobian(tid, t, d):
    x = torch.randn(4, d, dtype=torch.float64)
    for xi in x:
        j = jacobian(lambda v: t(v.unsqueeze(0)).squeeze(0), xi)
        expected = torch.linalg.slogdet(j).logabsdet
        y = t(xi.unsqueeze(0))
        got = t.log_abs_det_jacobian(xi.unsqueeze(0).clone(), y.clone())
        assert torch.allclose(got.squeeze(), expected, atol=1e-9), (got, expected)
        # inverse direction: log|det d t^{-1}/dy| = -log|det dt/dx|, and they sum to zero
        j_inv = jacobian(lambda v: t.inv(v.unsqueeze(0).clone()).squeeze(0), y.squeeze(0).detach())
        inv_ld = torch.linalg.slogdet(j_inv).logabsdet
        assert torch.allclose(inv_ld + expected, torch.zeros((), dtype=torch.float64), atol=1e-9)
        if not tid.startswith("realnvp"):
            _, ld = inverse_and_log_det(t, y.detach().clone())
            assert torch.allclose(ld.squeeze(), expected, atol=1e-9)


def test_flow_distribution_equals_pyro_transformed_distribution():
    torch.manual_seed(1)
    flow = RealNVP(event_shape=(3,), num_layers=4, hidden=(16,)).double()
    fd = flow.as_distribution()
    ref = dist.TransformedDistribution(fd.base_dist, fd.transforms)
    x = torch.randn(50, 3, dtype=torch.float64)
    assert torch.allclose(fd.log_prob(x), ref.log_prob(x), atol=1e-10)
    # scoring the same tensor twice and back-propagating twice works (no transform-cache pitfall)
    for _ in range(2):
        fd.log_prob(x).sum().backward()


def test_non_bijective_transforms_are_rejected():
    with pytest.raises(ValueError, match="must be bijective"):
        FlowDistribution(
            dist.Normal(torch.zeros(2), 1.0).to_event(1),
            [torch.distributions.transforms.AbsTransform()],
        )


#: Every model with an exact density over real vectors (flows, RNADE): the 2-D distribution harness.
EXACT = [
    n
    for n in registry.names()
    if registry.get(n).density == "exact"
    and registry.get(n).support == "real"
    and not getattr(registry.get(n).cls, "image_only", False)
    # the score SDE's density goes through an ODE solve per point: its normalization on a grid has its own
    # test (tests/test_diffusion.py::test_score_sde_likelihood_is_normalized_on_a_grid)
    and registry.get(n).family != "diffusion"
]


def _trained_2d(name):
    from conftest import SMALL

    from pyrogen.data import load
    from pyrogen.inference import fit

    m = registry.create(name, **{**SMALL[name], "event_shape": (2,)})
    fit(m, load("moons").train[:2048], None, steps=100, batch_size=256, lr=3e-3)
    return m


@pytest.mark.parametrize("name", EXACT)
def test_distribution_shapes_and_support(name):
    m = _trained_2d(name)
    d = m.as_distribution()
    assert isinstance(d, pyro.distributions.Distribution)  # Pyro's distribution interface
    assert d.sample((3, 4)).shape == (3, 4, 2)
    batched = d.expand((5,))
    assert batched.sample((3,)).shape == (3, 5, 2) and batched.log_prob(torch.zeros(3, 5, 2)).shape == (3, 5)
    assert d.support.check(d.sample((100,))).all()


@pytest.mark.parametrize("name", EXACT)
def test_density_integrates_to_one_and_fits_its_samples(name):
    m = _trained_2d(name).double()
    d = m.as_distribution()
    lim, n = 7.0, 401
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.flatten(), yy.flatten()], 1)
    with torch.no_grad():
        dens = d.log_prob(pts).exp().reshape(n, n)
    cell = (g[1] - g[0]) ** 2
    assert float(dens.sum() * cell) == pytest.approx(1.0, abs=0.01)
    # goodness of fit: histogram of samples against the density integrated over bins
    torch.manual_seed(0)
    with torch.no_grad():
        s = d.sample((20000,))
    bins = 20
    edges = torch.linspace(-4, 4, bins + 1, dtype=torch.float64)
    obs = torch.histogramdd(s, bins=[edges, edges]).hist.flatten()
    sub = 8
    fine = torch.linspace(-4, 4, bins * sub + 1, dtype=torch.float64)
    mid = (fine[1:] + fine[:-1]) / 2
    fx, fy = torch.meshgrid(mid, mid, indexing="ij")
    with torch.no_grad():
        p = d.log_prob(torch.stack([fx.flatten(), fy.flatten()], 1)).exp().reshape(bins * sub, bins * sub)
    prob = p.reshape(bins, sub, bins, sub).sum((1, 3)).flatten() * (fine[1] - fine[0]) ** 2
    keep = prob * len(s) > 20
    expected = prob[keep] / prob[keep].sum() * obs[keep].sum()
    chi = stats.chisquare(obs[keep].numpy(), expected.numpy())
    assert chi.pvalue > 1e-3, chi


def test_flow_is_a_likelihood_and_a_prior_in_a_user_program():
    torch.manual_seed(0)
    flow = RealNVP(event_shape=(2,), num_layers=2, hidden=(8,))
    x = torch.randn(10, 2)

    def model(x):
        shift = pyro.sample("shift", dist.Normal(0.0, 1.0))
        with pyro.plate("data", len(x)):
            pyro.sample("x", flow.as_distribution(), obs=x - shift)

    tr = pyro.poutine.trace(pyro.poutine.condition(model, data={"shift": torch.tensor(0.5)})).get_trace(x)
    tr.compute_log_prob()
    assert torch.allclose(tr.nodes["x"]["log_prob_sum"], flow.log_prob(x - 0.5).sum())
    z = math.log(2 * math.pi)
    assert torch.allclose(tr.nodes["shift"]["log_prob_sum"], torch.tensor(-0.5 * z - 0.125))


def test_soft_clip_as_one_node_equals_its_composed_formula_to_the_bit():
    """The conditioners' soft clip, written as one autograd node for speed, computes what the composed formula
    does (forward and backward, bit for bit), and its second derivative is right (gradgradcheck)."""
    from pyrogen.nn.mlp import soft_clip

    def composed(x, c):
        a = x.abs()
        return torch.where(a <= c, x, torch.sign(x) * (c + torch.log1p((a - c).clamp_min(0))))

    torch.manual_seed(0)
    x = (torch.randn(10000) * 30).requires_grad_()
    g = torch.randn(10000)
    for inputs in (x, (x / 100).detach().requires_grad_()):  # with values beyond the level, and all within
        a, b = soft_clip(inputs, 20.0), composed(inputs, 20.0)
        assert torch.equal(a, b)
        assert torch.equal(torch.autograd.grad(a, inputs, g)[0], torch.autograd.grad(b, inputs, g)[0])
    v = (torch.randn(20, dtype=torch.float64) * 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: soft_clip(t, 2.0), (v,))
    assert torch.autograd.gradgradcheck(lambda t: soft_clip(t, 2.0), (v,))
