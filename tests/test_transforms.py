"""The generic transform harness: every flow layer against autograd and its own inverse."""

from __future__ import annotations

import io
import math

import pyro.distributions.transforms as T
import pytest
import torch
from torch import nn

from pyrogen.distributions import FlowDistribution
from pyrogen.distributions.transforms import (
    ActNorm,
    AdditiveCoupling,
    ConditionalMaskedAutoregressive,
    DiagonalScale,
    InvertibleConv1x1,
    MaskedAutoregressive,
    MintNetLayer,
    MixtureCDFGaussianization,
    Partial,
    Squeeze,
    Unsqueeze,
    actnorm,
    additive_coupling,
    masked_autoregressive,
    mixture_cdf_gaussianization,
    planar,
)
from pyrogen.nn import MADENet


class _ConvNet(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.tanh(x))


#: name -> (builder, event shape)
LAYERS = {
    "additive-coupling": (lambda: additive_coupling(4, [8]), (4,)),
    "additive-coupling-image": (lambda: AdditiveCoupling(1, _ConvNet(1, 1), dim=-3), (2, 4, 4)),
    "diagonal-scale": (lambda: DiagonalScale((3,)), (3,)),
    "diagonal-scale-image": (lambda: DiagonalScale((2, 2, 2)), (2, 2, 2)),
    "actnorm": (lambda: ActNorm((3,)), (3,)),
    "actnorm-image": (lambda: ActNorm((2, 2, 2)), (2, 2, 2)),
    "conv1x1": (lambda: InvertibleConv1x1(3), (3, 2, 2)),
    "squeeze": (lambda: Squeeze(), (1, 4, 4)),
    "unsqueeze": (lambda: Unsqueeze(), (4, 2, 2)),
    "partial-multiscale": (
        lambda: Partial([Squeeze(), InvertibleConv1x1(4), ActNorm((4, 1, 1)), Unsqueeze()], size=1),
        (2, 2, 2),
    ),
    "partial-vector": (lambda: Partial([planar(2)], size=2, dim=-1), (3,)),
    "gaussianization": (lambda: MixtureCDFGaussianization(3, components=3), (3,)),
    "planar": (lambda: planar(3), (3,)),
    "pyro-householder": (lambda: T.householder(3, count_transforms=2), (3,)),
    "mintnet": (lambda: MintNetLayer(2, hidden=4), (2, 3, 3)),
    "iaf-layer": (lambda: MaskedAutoregressive(MADENet(4, [8], out_mult=2, order=[2, 0, 3, 1])), (4,)),
    "maf-layer": (lambda: MaskedAutoregressive(MADENet(4, [8], out_mult=2)).inv, (4,)),
    "builder-maf": (lambda: masked_autoregressive(3, [8]), (3,)),
    "builder-gaussianization": (lambda: mixture_cdf_gaussianization(2, 4), (2,)),
    "builder-actnorm": (lambda: actnorm((2,)), (2,)),
    "conditional-layer": (
        lambda: _Conditioned(ConditionalMaskedAutoregressive(MADENet(3, [8], out_mult=2, context=2))),
        (3,),
    ),
}


class _Conditioned(nn.Module):
    """A conditional layer fixed at one context, as a module (so the harness sees its parameters)."""

    def __init__(self, layer: ConditionalMaskedAutoregressive) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer("ctx", torch.tensor([[1.0, -0.5]]))

    def t(self):
        return self.layer.condition(self.ctx)

    def __call__(self, x):
        return self.t()(x)

    @property
    def inv(self):
        return self.t().inv

    def log_abs_det_jacobian(self, x, y):
        return self.t().log_abs_det_jacobian(x, y)


def _module(t) -> nn.Module | None:
    if isinstance(t, nn.Module):
        return t
    inner = getattr(t, "_inv", None)
    return inner if isinstance(inner, nn.Module) else None


def _layer(name: str, seed: int = 0) -> tuple[torch.distributions.Transform, tuple[int, ...]]:
    torch.manual_seed(seed)
    build, shape = LAYERS[name]
    t = build()
    m = _module(t)
    if m is not None:
        m.double()
        for p in m.parameters():  # away from identity-like initialisations
            p.data.add_(0.3 * torch.randn_like(p))
        for b in m.buffers():
            if b.dtype == torch.bool:
                b.fill_(True)  # ActNorm: already initialised
        m.eval()
    return t, shape


def _jacobian_logdet(f, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of f at each example of x, by autograd."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: f(v.unsqueeze(0)).squeeze(0), xi)
        n = xi.numel()
        out.append(torch.linalg.slogdet(jac.reshape(n, n))[1])
    return torch.stack(out)


def _inputs(shape: tuple[int, ...], n: int = 3) -> torch.Tensor:
    """Standard normal draws, the last one scaled by 3: inputs far in the tails (|x| up to about 8) too,
    where a clamped CDF stops being one-to-one."""
    torch.manual_seed(1)
    x = torch.randn((n, *shape), dtype=torch.double)
    x[-1] *= 3.0
    return x


@pytest.mark.parametrize("name", LAYERS)
def test_inverse_undoes_forward(name):
    t, shape = _layer(name)
    x = _inputs(shape)
    y = t(x)
    assert y.shape[0] == 3 and y.numel() == x.numel()
    if hasattr(t, "forward_shape"):
        assert y.shape == t.forward_shape(x.shape)
    torch.testing.assert_close(t.inv(y), x, atol=1e-7, rtol=1e-7)
    t2, _ = _layer(name)  # a fresh instance: no cache can help
    torch.testing.assert_close(t2(t2.inv(y)), y, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("name", LAYERS)
def test_log_det_matches_autograd_both_ways(name):
    t, shape = _layer(name)
    x = _inputs(shape)
    y = t(x)
    fwd = t.log_abs_det_jacobian(x, y)
    torch.testing.assert_close(fwd, _jacobian_logdet(t, x), atol=1e-6, rtol=1e-6)
    fresh, _ = _layer(name)
    inv = fresh.inv.log_abs_det_jacobian(y, fresh.inv(y))
    torch.testing.assert_close(inv, _jacobian_logdet(fresh.inv, y), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fwd + inv, torch.zeros_like(fwd), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", [k for k in LAYERS if k not in ("squeeze", "unsqueeze")])
def test_every_parameter_gets_a_gradient_on_both_paths(name):
    t, shape = _layer(name)
    x = _inputs(shape)
    for path in ("forward", "inverse"):
        if path == "forward":
            y = t(x)
            loss = y.pow(2).sum() + t.log_abs_det_jacobian(x, y).sum()
        else:
            fresh, _ = _layer(name)
            t = fresh
            u = t.inv(x)
            loss = u.pow(2).sum() + t.log_abs_det_jacobian(u, x).sum()
        loss.backward()
        for pname, p in _module(t).named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, (path, pname)


@pytest.mark.parametrize("name", [k for k in LAYERS if k not in ("squeeze", "unsqueeze")])
def test_state_dict_round_trip(name):
    t, shape = _layer(name, seed=0)
    other, _ = _layer(name, seed=5)
    buf = io.BytesIO()
    torch.save(_module(t).state_dict(), buf)
    buf.seek(0)
    _module(other).load_state_dict(torch.load(buf, weights_only=True))
    x = _inputs(shape)
    torch.testing.assert_close(other(x), t(x))


def test_additive_coupling_preserves_volume_exactly():
    t, _ = _layer("additive-coupling")
    x = _inputs((4,), n=50) * 10
    assert torch.equal(t.log_abs_det_jacobian(x, t(x)), torch.zeros(50, dtype=torch.double))


def test_actnorm_initialises_from_the_first_batch_only_once():
    torch.manual_seed(0)
    t = ActNorm((2, 3, 3))
    y = torch.randn(64, 2, 3, 3) * torch.tensor([3.0, 0.5]).view(2, 1, 1) + torch.tensor([1.0, -4.0]).view(2, 1, 1)
    x = t.inv(y)
    assert bool(t.initialized)
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.ones(2), atol=1e-4, rtol=0)
    loc = t.loc.detach().clone()
    t.inv(y * 7)
    assert torch.equal(t.loc.detach(), loc)
    t2 = ActNorm((2, 3, 3)).eval()
    t2.inv(y)  # evaluation mode never initialises
    assert not bool(t2.initialized)
    t2.load_state_dict(t.state_dict())
    assert bool(t2.initialized)


def test_fast_conv1x1_equals_pyros_generalized_channel_permute():
    torch.manual_seed(0)
    fast = InvertibleConv1x1(4)
    ref = T.GeneralizedChannelPermute(4)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(5, 4, 3, 3)
    torch.testing.assert_close(fast(x), ref(x))


def test_squeeze_is_the_space_to_depth_permutation():
    x = torch.arange(2 * 4 * 6.0).view(1, 2, 4, 6)
    y = Squeeze()(x)
    assert y.shape == (1, 8, 2, 3)
    torch.testing.assert_close(y, torch.nn.functional.pixel_unshuffle(x, 2))
    assert torch.equal(Unsqueeze()(y), x)
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


def test_gaussianization_maps_its_own_mixture_to_a_standard_normal():
    """When the data follow the layer's mixture, the data-to-base map yields N(0, 1) (Kolmogorov-Smirnov)."""
    torch.manual_seed(0)
    t = MixtureCDFGaussianization(1, components=2).double()
    with torch.no_grad():
        t.loc.copy_(torch.tensor([[-2.0, 1.5]]))
        t.log_scale.copy_(torch.tensor([[math.log(0.5), math.log(1.0)]]))
        t.logits.copy_(torch.tensor([[0.0, math.log(3.0)]]))
    comp = torch.bernoulli(torch.full((20000, 1), 0.75, dtype=torch.double))
    y = torch.where(comp > 0, 1.5 + torch.randn_like(comp), -2.0 + 0.5 * torch.randn_like(comp))
    u = t.inv(y).flatten().sort().values
    ecdf = torch.arange(1, len(u) + 1, dtype=torch.double) / len(u)
    ks = (ecdf - torch.special.ndtr(u)).abs().max()
    assert ks < 1.36 / math.sqrt(len(u))  # 5% critical value


def test_composition_log_det_is_the_sum():
    """Seed claim: the log-determinant of a composition is the sum of the layers' log-determinants."""
    layers = [_layer(k)[0] for k in ("actnorm", "planar", "gaussianization", "pyro-householder")]
    x = _inputs((3,))
    flow = FlowDistribution(
        torch.distributions.Independent(torch.distributions.Normal(0.0, 1.0).expand([3]), 1), layers
    )
    composed = T.ComposeTransform(flow.transforms)
    total = composed.log_abs_det_jacobian(x, composed(x))
    torch.testing.assert_close(total, _jacobian_logdet(composed, x), atol=1e-6, rtol=1e-6)


def test_maf_inverse_is_iaf_forward_with_the_same_network():
    """Seed claim: MAF's data-to-base map is IAF's base-to-data map with the same network: same numbers."""
    torch.manual_seed(0)
    layer = MaskedAutoregressive(MADENet(5, [16, 16], out_mult=2)).double()
    maf, iaf = layer.inv, layer
    y = torch.randn(7, 5, dtype=torch.double)
    torch.testing.assert_close(maf.inv(y), iaf(y))  # MAF density path == IAF sampling path
    x = torch.randn(7, 5, dtype=torch.double)
    torch.testing.assert_close(maf(x), iaf.inv(x))  # MAF sampling path == IAF density path
    net = layer.net
    out = net(y)
    torch.testing.assert_close(iaf(y), y * out[..., 1].clamp(-5, 3).exp() + out[..., 0])


def test_d_pass_inverse_costs_exactly_d_network_passes():
    torch.manual_seed(0)
    net = MADENet(6, [8], out_mult=2)
    calls = []
    net.register_forward_hook(lambda *a: calls.append(1))
    layer = MaskedAutoregressive(net)
    layer.inv(torch.randn(3, 6))
    assert len(calls) == 6


def test_conditional_layer_depends_on_the_context():
    torch.manual_seed(0)
    layer = ConditionalMaskedAutoregressive(MADENet(3, [8], out_mult=2, context=2))
    x = torch.randn(4, 3)
    a = layer.condition(torch.tensor([[1.0, 0.0]]))(x)
    b = layer.condition(torch.tensor([[0.0, 1.0]]))(x)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="context of size 2"):
        MaskedAutoregressive(layer.net)(x)


def test_mintnet_fixed_point_inverse_converges_well_before_the_worst_case():
    """The iteration is exact after at most CHW steps; with a contractive g it stops far sooner."""
    torch.manual_seed(0)
    layer = MintNetLayer(3, hidden=6).double()
    x = torch.randn(8, 3, 6, 6, dtype=torch.double)
    y = layer(x)
    back = layer.inv(y)
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)
    assert 1 < layer.last_iterations < 3 * 6 * 6 // 2, layer.last_iterations
    # strongly non-contractive g: still exact, within the CHW bound
    with torch.no_grad():
        layer.second.weight.mul_(30.0)
    y = layer(x)
    torch.testing.assert_close(layer.inv(y), x, atol=1e-5, rtol=0)
    assert layer.last_iterations <= 3 * 6 * 6 + 1


def _flow_models():
    from pyrogen.models import registry

    shapes = {"glow": (1, 4, 4), "mintnet": (1, 3, 3)}
    small = {
        "glow": {"scales": 2, "steps": 1, "hidden": 4},
        "mintnet": {"num_layers": 2, "hidden": 4},
        "planar": {"num_layers": 3},
        "gaussianization": {"num_layers": 2, "components": 3},
    }
    from pyrogen.models.flows import FlowModel

    for name in registry.names():  # the flows made of transforms (a continuous-time flow has its own tests)
        if registry.get(name).family == "flow" and issubclass(registry.get(name).cls, FlowModel):
            kwargs = small.get(name, {"num_layers": 2, "hidden": (8,)})
            yield name, shapes.get(name, (3,)), kwargs


@pytest.mark.parametrize(("name", "shape", "kwargs"), list(_flow_models()), ids=[n for n, _, _ in _flow_models()])
def test_every_flow_model_is_a_correct_bijection(name, shape, kwargs):
    """The harness on whole flows: inverse, log-det against autograd in both directions, zero sum."""
    from pyrogen.models import registry

    torch.manual_seed(0)
    m = registry.create(name, event_shape=shape, **kwargs).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    m.eval()
    t = T.ComposeTransform(m.as_distribution().transforms)
    u = _inputs(m._base_shape(), n=2)
    x = t(u)
    torch.testing.assert_close(t.inv(x), u, atol=1e-7, rtol=1e-7)
    fwd = t.log_abs_det_jacobian(u, x)
    torch.testing.assert_close(fwd, _jacobian_logdet(t, u), atol=1e-6, rtol=1e-6)
    inv = t.inv.log_abs_det_jacobian(x, u)
    torch.testing.assert_close(inv, _jacobian_logdet(t.inv, x), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(fwd + inv, torch.zeros_like(fwd), atol=1e-6, rtol=0)


def test_linear_change_of_variables():
    """Seed claim: y = A x + b has density p_x(A^-1 (y - b)) / |det A|."""
    torch.manual_seed(0)
    a = torch.randn(3, 3, dtype=torch.double) + 3 * torch.eye(3, dtype=torch.double)
    b = torch.randn(3, dtype=torch.double)
    base = torch.distributions.MultivariateNormal(torch.zeros(3, dtype=torch.double), torch.eye(3, dtype=torch.double))
    linear = T.LowerCholeskyAffine(b, torch.linalg.cholesky(a @ a.T))  # a lower-triangular square root of A A^T
    flow = FlowDistribution(base, [linear])
    y = torch.randn(5, 3, dtype=torch.double)
    closed = torch.distributions.MultivariateNormal(b, a @ a.T).log_prob(y)
    torch.testing.assert_close(flow.log_prob(y), closed)


def test_gaussianization_is_one_to_one_far_in_the_tails():
    """The clamped CDF made the map constant beyond |x| = 4.75 (inv(f(5)) = inv(f(6)) = 4.7534)."""
    from pyrogen.distributions.transforms import MixtureCDFGaussianization

    torch.manual_seed(0)
    t = MixtureCDFGaussianization(2, 4).double()
    for s in (5.0, 6.0, 10.0, 20.0):
        x = torch.tensor([[s, -s]], dtype=torch.double)
        y = t(x)
        torch.testing.assert_close(t.inv(y), x, atol=1e-9, rtol=1e-9)
        torch.testing.assert_close(t.log_abs_det_jacobian(x, y), _jacobian_logdet(t, x), atol=1e-8, rtol=1e-8)
    y = torch.tensor([[15.0, -15.0]], dtype=torch.double)  # data far out: scored, not saturated
    assert torch.isfinite(t.inv.log_abs_det_jacobian(y, t.inv(y))).all()
    assert t.inv(y)[0, 0] > t.inv(torch.tensor([[12.0, 0.0]], dtype=torch.double))[0, 0]


def test_planar_keeps_the_shape_of_an_unbatched_input():
    """One point of shape (D,) gives a log-det of shape () and an inverse of shape (D,)."""
    from pyrogen.distributions.transforms import Planar

    torch.manual_seed(0)
    t = Planar(3)
    x = torch.randn(3)
    y = t(x)
    assert y.shape == (3,) and t.log_abs_det_jacobian(x, y).shape == () and t.inv(y).shape == (3,)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), t.log_abs_det_jacobian(x[None], y[None])[0])
    flow = FlowDistribution(torch.distributions.Independent(torch.distributions.Normal(torch.zeros(3), 1.0), 1), [t])
    assert flow.log_prob(y).shape == ()


def test_logit_transform_with_scalar_events_and_cdf():
    """LogitTransform(event_dim=0) scores and gives a TransformedDistribution a cdf."""
    from pyrogen.distributions.transforms import LogitTransform

    t = LogitTransform(0.05, event_dim=0)
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.double)
    y = t(x)
    jac = torch.autograd.functional.jacobian(t, x).diagonal()
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), jac.log())
    d = torch.distributions.TransformedDistribution(torch.distributions.Normal(torch.tensor(0.0).double(), 1.0), [t])
    torch.testing.assert_close(d.cdf(y), torch.distributions.Normal(0.0, 1.0).cdf(x))
    with pytest.raises(ValueError, match="event_dim must be a non-negative integer; got -1"):
        LogitTransform(event_dim=-1)


def test_every_pyrogen_layer_keeps_a_cache_when_asked():
    """with_cache(1) on a layer built uncached (ComposeTransform(cache_size=1), UnitJacobianReparam) returns a twin
    with the same parameters and results that keeps torch's cache: inverting its own output returns the very input
    (before: the layer itself came back uncached, and planar raised NotImplementedError)."""
    from pyro.infer.reparam import UnitJacobianReparam

    from pyrogen.distributions.transforms import LogitTransform, additive_coupling

    names = ("additive-coupling", "diagonal-scale", "actnorm", "partial-vector", "gaussianization", "mintnet", "planar")
    for name in names:
        t, shape = _layer(name)
        x = _inputs(shape)
        cached = T.ComposeTransform([t], cache_size=1)
        y = cached(x)
        torch.testing.assert_close(y, t(x))
        assert cached.inv(y) is x, name
        twin = t.with_cache(1)
        assert twin is not t and twin.with_cache(1) is twin and t.with_cache(0) is t
        assert all(a is b for a, b in zip(twin.parameters(), t.parameters(), strict=True)), name
        y2 = twin(x)
        torch.testing.assert_close(y2, t(x))
        assert twin.inv(y2) is x, name
        assert t.inv(t(x)) is not x  # the layer itself still recomputes
    UnitJacobianReparam(additive_coupling(4))
    logit = LogitTransform(0.05)
    u, twin = torch.rand(3), logit.with_cache(1)
    assert twin.inv(twin(u)) is u and logit.inv(logit(u)) is not u
    with pytest.raises(ValueError, match="cache_size must be 0 or 1; got 2"):
        logit.with_cache(2)
