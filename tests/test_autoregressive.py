"""The autoregressive family: exact normalization, structure, sampling, completion and the seed claims."""

import itertools
import math

import pyro
import pytest
import torch
from scipy import stats

from pyrogen.inference import fit
from pyrogen.models import FVSBN, MADE, NADE, RNADE, CharRNN, GatedPixelCNN, PixelCNN, PixelRNN, Transformer, registry
from pyrogen.models.autoregressive import AutoregressiveModel

# Tiny instances: (name, builder). Every binary/categorical model appears with each
# of its conditionals, PixelCNNs also with three colour channels.
TINY = {
    "fvsbn": lambda: FVSBN(event_shape=(6,)),
    "nade": lambda: NADE(event_shape=(6,), hidden=5),
    "nade-cat": lambda: NADE(event_shape=(3,), hidden=5, likelihood="categorical", levels=3),
    "made": lambda: MADE(event_shape=(6,), hidden=(12, 12)),
    "made-ensemble": lambda: MADE(event_shape=(6,), hidden=(12,), num_masks=3),
    "made-cat": lambda: MADE(event_shape=(3,), hidden=(12,), likelihood="categorical", levels=3, num_masks=2),
    "pixelcnn": lambda: PixelCNN(event_shape=(1, 2, 3), features=6, layers=1, kernel_size=3),
    "pixelcnn-rgb": lambda: PixelCNN(event_shape=(3, 1, 2), features=6, layers=1, kernel_size=3),
    "pixelcnn-cat": lambda: PixelCNN(event_shape=(1, 1, 3), features=4, layers=1, likelihood="categorical", levels=3),
    "gated-pixelcnn": lambda: GatedPixelCNN(event_shape=(1, 2, 3), features=6, layers=2),
    "gated-pixelcnn-rgb": lambda: GatedPixelCNN(event_shape=(3, 1, 2), features=6, layers=2),
    "pixelrnn": lambda: PixelRNN(event_shape=(1, 2, 3), features=6, layers=1, kernel_size=3),
    "pixelrnn-row-rgb": lambda: PixelRNN(event_shape=(3, 1, 2), features=6, layers=1, kernel_size=3, cell="row-lstm"),
    "char-rnn": lambda: CharRNN(event_shape=(3,), levels=3, embed=4, hidden=8),
    "char-rnn-gru": lambda: CharRNN(event_shape=(5,), likelihood="bernoulli", embed=4, hidden=8, cell="gru"),
    "transformer": lambda: Transformer(event_shape=(6,), likelihood="bernoulli", dim=8, heads=2, layers=2),
    "transformer-cat": lambda: Transformer(event_shape=(3,), likelihood="categorical", levels=3, dim=8, heads=2),
}


def _tiny(key):
    torch.manual_seed(0)
    m = TINY[key]().double().eval()
    for p in m.parameters():  # move away from the symmetric initialisation
        p.data.add_(0.3 * torch.randn_like(p))
    return m


def _all_configurations(m):
    levels = m.num_levels
    d = m.num_vars
    grid = torch.tensor(list(itertools.product(range(levels), repeat=d)))
    x = grid.view(-1, *m.event_shape)
    return x.double() if m.likelihood == "bernoulli" else x


@pytest.mark.parametrize("key", TINY)
def test_probabilities_of_all_configurations_sum_to_one(key):
    m = _tiny(key)
    x = _all_configurations(m)
    with torch.no_grad():
        total = m.log_prob(x).exp().sum()
    assert abs(float(total) - 1.0) < 1e-6, float(total)


def _perturb(m, x, j):
    y = x.clone().reshape(len(x), -1)
    if m.likelihood == "bernoulli":
        y[:, j] = 1 - y[:, j]
    else:
        y[:, j] = (y[:, j] + 1) % m.num_levels
    return y.view_as(x)


@pytest.mark.parametrize("key", TINY)
def test_conditional_i_ignores_inputs_at_or_after_i(key):
    """Changing x_j changes no conditional at or before j in the ordering (exactly), and some after it."""
    m = _tiny(key)
    x = m.sample(16)
    with torch.no_grad():
        base = m._params(x)
    rank = torch.empty(m.num_vars, dtype=torch.long)
    rank[m.ordering()] = torch.arange(m.num_vars)
    seen_later = 0
    for j in range(m.num_vars):
        with torch.no_grad():
            out = m._params(_perturb(m, x, j))
        changed = (out != base).flatten(2).any(-1).any(0)  # per position i
        early = rank <= rank[j]
        assert not changed[early].any(), (j, changed.nonzero().flatten().tolist())
        seen_later += int(changed[~early].any())
    assert seen_later >= m.num_vars - 2  # the structure is not vacuous


@pytest.mark.parametrize(
    "key", ["fvsbn", "nade", "made", "made-ensemble", "pixelcnn", "pixelcnn-rgb", "gated-pixelcnn-rgb"]
)
def test_autograd_jacobian_is_strictly_lower_triangular_in_the_ordering(key):
    m = _tiny(key)
    x = m.sample(1).double()
    jac = torch.autograd.functional.jacobian(lambda v: m._params(v)[..., 0].sum(0), x).reshape(m.num_vars, -1)
    order = m.ordering()
    permuted = jac[order][:, order]  # rows: conditional, columns: input, both in generation order
    assert torch.equal(permuted.triu(), torch.zeros_like(permuted))
    assert permuted.tril(-1).abs().sum() > 0


def test_pixelcnn_has_a_blind_spot_and_the_gated_one_has_none():
    torch.manual_seed(0)
    plain = PixelCNN(event_shape=(1, 5, 5), features=8, layers=2, kernel_size=3, dropout=0.0).double()
    gated = GatedPixelCNN(event_shape=(1, 5, 5), features=8, layers=4, kernel_size=3, dropout=0.0).double()
    x = torch.rand(1, 1, 5, 5, dtype=torch.double)
    target = 2 * 5 + 1  # pixel (2, 1)
    for m, expect_blind in ((plain, True), (gated, False)):
        jac = torch.autograd.functional.jacobian(lambda v, m=m: m._params(v)[0, target, 0], x).flatten()
        earlier = jac[:target]
        blind = (earlier == 0).nonzero().flatten().tolist()
        assert bool(blind) == expect_blind, (type(m).__name__, blind)
        assert torch.equal(jac[target:], torch.zeros_like(jac[target:]))
    # the plain stack's blind spot lies above and to the right: e.g. pixel (0, 4)
    jac = torch.autograd.functional.jacobian(lambda v: plain._params(v)[0, target, 0], x).flatten()
    assert jac[4] == 0


@pytest.mark.parametrize(
    "key", ["fvsbn", "nade", "nade-cat", "made-ensemble", "pixelcnn-rgb", "gated-pixelcnn", "char-rnn"]
)
def test_samples_follow_log_prob(key):
    """Chi-square goodness of fit of 6000 ancestral samples against exp(log_prob) of every configuration."""
    m = _tiny(key)
    x = _all_configurations(m)
    probs = m.log_prob(x).exp().detach()
    pyro.set_rng_seed(1)
    s = m.sample(6000)
    flat = s.reshape(len(s), -1).long()
    index = torch.zeros(len(s), dtype=torch.long)
    for j in range(m.num_vars):
        index = index * m.num_levels + flat[:, j]
    counts = torch.bincount(index, minlength=len(x)).double()
    expected = probs * len(s)
    keep = expected > 5
    obs, exp = counts[keep], expected[keep]
    if (~keep).any():  # pool the rare configurations into one bin
        obs = torch.cat([obs, counts[~keep].sum().view(1)])
        exp = torch.cat([exp, expected[~keep].sum().view(1)])
    exp = exp * obs.sum() / exp.sum()
    p = stats.chisquare(obs.numpy(), exp.numpy()).pvalue
    assert p > 1e-3, p


def test_parameter_counts():
    for d in (3, 10, 64):
        assert sum(p.numel() for p in FVSBN(event_shape=(d,)).parameters()) == d * (d + 1) // 2
    count = [sum(p.numel() for p in NADE(event_shape=(d,), hidden=7).parameters()) for d in (10, 20, 30)]
    assert count[2] - count[1] == count[1] - count[0] == 10 * (7 + 7 + 1)  # W, V and b grow with d; c does not


@pytest.mark.parametrize(
    "model",
    [
        lambda: NADE(event_shape=(1, 3, 3), hidden=6),
        lambda: NADE(event_shape=(11,), hidden=6),  # blocks of 3 positions, the last one padded
        lambda: NADE(event_shape=(1,), hidden=6),
        lambda: NADE(event_shape=(7,), hidden=6, likelihood="categorical", levels=4),
        lambda: RNADE(event_shape=(5,), hidden=6, components=3),
    ],
)
def test_nade_one_pass_equals_the_d_pass_reference(model):
    torch.manual_seed(0)
    m = model().double()
    for p in m.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    x = m.sample(20)
    torch.testing.assert_close(m.log_prob(x), m._log_prob_naive(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "model",
    [
        lambda: FVSBN(event_shape=(9,)),
        lambda: NADE(event_shape=(1, 3, 3), hidden=6),
        lambda: NADE(event_shape=(5,), hidden=6, likelihood="categorical", levels=4),
        lambda: RNADE(event_shape=(5,), hidden=6, components=3),
    ],
)
def test_the_running_sum_sampler_draws_what_the_one_pass_per_position_route_draws(model):
    """FVSBN's and NADE's samplers carry the running sum; under one seed they draw the generic route's samples,
    and completion keeps the observed part."""
    torch.manual_seed(0)
    m = model().double()
    for p in m.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    order = m.ordering()
    pyro.set_rng_seed(3)
    fast = m._fill(m._empty(50), order, None, 1.3)
    pyro.set_rng_seed(3)
    slow = AutoregressiveModel._fill(m, m._empty(50), order, None, 1.3)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)
    skip = torch.zeros(m.num_vars, dtype=torch.bool)
    skip[:2] = True
    start = fast.clone()
    done = m._fill(start.clone(), order, skip, 1.0)
    assert torch.equal(done[:, :2], start[:, :2]) and not torch.equal(done[:, 2:], start[:, 2:])


def test_rnade_density_integrates_to_one():
    torch.manual_seed(0)
    m = RNADE(event_shape=(2,), hidden=6, components=3).double()
    for p in m.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    g = torch.linspace(-12, 12, 601, dtype=torch.double)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    dens = m.log_prob(torch.stack([xx.flatten(), yy.flatten()], -1)).exp().detach()
    assert abs(float(dens.sum() * (g[1] - g[0]) ** 2) - 1.0) < 0.01


def test_fitted_nll_minus_entropy_is_the_kl():
    """NLL = H(p_data) + KL(p_data || p_theta): Monte Carlo NLL minus the known entropy matches the enumerated KL."""
    torch.manual_seed(0)
    configs = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4)))
    p_data = torch.distributions.Dirichlet(torch.ones(16)).sample().double()
    entropy = float(-(p_data * p_data.log()).sum())
    draw = lambda n: configs[torch.multinomial(p_data.float(), n, replacement=True)]  # noqa: E731
    m = FVSBN(event_shape=(4,))
    kl_uniform = math.log(16) - entropy  # the zero-initialised FVSBN is uniform
    fit(m, draw(20000), None, steps=400, batch_size=256, lr=0.05)
    m = m.double()
    test = draw(200_000).double()
    with torch.no_grad():
        nll = -m.log_prob(test)
        log_q = m.log_prob(configs.double())
    kl = float((p_data * (p_data.log() - log_q)).sum())
    se = float(nll.std() / math.sqrt(len(nll)))
    assert abs(float(nll.mean()) - entropy - kl) < 4 * se, (float(nll.mean()) - entropy, kl, se)
    assert 0 < kl < 0.8 * kl_uniform  # training moved towards p_data; an FVSBN cannot hold every 4-bit law


def test_completion_samples_the_conditional_of_the_missing_part():
    m = _tiny("nade")  # 6 binary variables; observe the first 3
    observed = torch.tensor([True, True, True, False, False, False])
    x0 = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0], dtype=torch.double)
    pyro.set_rng_seed(2)
    done = m.complete(x0.expand(4000, 6), observed)
    assert torch.equal(done[:, :3], x0[:3].expand(4000, 3))
    tails = torch.tensor(list(itertools.product((0.0, 1.0), repeat=3)), dtype=torch.double)
    full = torch.cat([x0[:3].expand(8, 3), tails], 1)
    cond = m.log_prob(full).exp().detach()
    cond = cond / cond.sum()
    idx = (done[:, 3:] * torch.tensor([4.0, 2.0, 1.0], dtype=torch.double)).sum(1).long()
    counts = torch.bincount(idx, minlength=8).double()
    assert stats.chisquare(counts.numpy(), (cond * 4000).numpy()).pvalue > 1e-3


def test_completion_needs_a_compatible_ordering_except_for_an_order_agnostic_made():
    observed = torch.tensor([False, True, True, True, True, True])  # the first variable is missing
    x = torch.ones(3, 6)
    with pytest.raises(ValueError, match="observed positions must all come before the missing ones"):
        _tiny("nade").float().complete(x, observed)
    with pytest.raises(ValueError, match="observed positions must all come before"):
        _tiny("made").float().complete(x, observed)
    made = _tiny("made-ensemble").float()
    out = made.complete(x, observed)
    assert torch.equal(out[:, 1:], x[:, 1:]) and set(out[:, 0].tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="observed must have shape"):
        made.complete(x, observed[:3])


def test_autoregressive_model_is_a_pyro_likelihood():
    """Inside a user's Pyro program: the trace's log density equals the model's log_prob."""
    m = _tiny("made-ensemble")
    x = m.sample(5)

    def program(data):
        with pyro.plate("data", len(data)):
            pyro.sample("x", m.as_distribution(), obs=data)

    tr = pyro.poutine.trace(program).get_trace(x)
    tr.compute_log_prob()
    torch.testing.assert_close(tr.nodes["x"]["log_prob"], m.log_prob(x))
    assert m.as_distribution().sample((2, 3)).shape == (2, 3, 6)


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="NADE offers likelihood \\('bernoulli', 'categorical'\\); got 'gaussian'"):
        NADE(event_shape=(3,), likelihood="gaussian")
    with pytest.raises(ValueError, match="levels must be an integer >= 2 for likelihood='categorical'; got None"):
        MADE(event_shape=(3,), likelihood="categorical")
    with pytest.raises(ValueError, match="event_shape=\\(C, H, W\\)"):
        PixelCNN(event_shape=(8, 8))
    with pytest.raises(ValueError, match="temperature must be a positive finite number; got 0.0"):
        _tiny("fvsbn").sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be a positive finite number; got -1"):
        _tiny("nade").complete(torch.zeros(2, 6, dtype=torch.double), torch.ones(6, dtype=torch.bool), temperature=-1)
    with pytest.raises(TypeError, match="observed must be a boolean tensor; got list"):
        _tiny("nade").complete(torch.zeros(2, 6, dtype=torch.double), [True] * 6)
    assert _tiny("made-ensemble").as_distribution().sample((0,)).shape == (0, 6)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru'"):
        CharRNN(event_shape=(3,), levels=3, cell="rnn")
    from pyrogen.data import load

    with pytest.raises(ValueError, match="fvsbn offers bernoulli conditionals; dataset 'text' is integer"):
        registry.from_dataset(FVSBN, load("text"))
    m = registry.from_dataset(NADE, load("digits-int"))
    assert m.likelihood == "categorical" and m.num_levels == 17


@pytest.mark.parametrize(
    "model",
    [
        lambda: PixelCNN(event_shape=(1, 9, 4), features=8, layers=2, kernel_size=5),
        lambda: GatedPixelCNN(event_shape=(1, 9, 4), features=8, layers=3),
        lambda: PixelCNN(
            event_shape=(3, 4, 4), features=12, layers=1, kernel_size=3, likelihood="categorical", levels=3
        ),
    ],
)
def test_the_pixel_sampler_runs_the_network_on_the_rows_up_to_the_current_one_and_draws_the_same(model):
    """The convolutional nets are row-causal: the output of row i from rows 0..i, or from the rows_above rows
    above it, equals the whole image's (with the position bias cut to the rows given); under one seed the cut-off
    sampler draws the whole-image route's samples, and completion keeps the observed part."""
    torch.manual_seed(0)
    m = model().double().eval()
    for p in m.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    c, h, w = m.event_shape
    x = m.sample(6)
    full = m._params(x).view(6, c, h, w, -1)
    for row in range(h):
        cut = m._params(x[:, :, : row + 1]).view(6, c, row + 1, w, -1)
        torch.testing.assert_close(cut, full[:, :, : row + 1], rtol=1e-10, atol=1e-10)
        top = max(0, row - m.net.rows_above)  # and from above: the rows the output of `row` reads
        cut = m._params(x[:, :, top : row + 1], top).view(6, c, row + 1 - top, w, -1)
        torch.testing.assert_close(cut[:, :, -1], full[:, :, row], rtol=1e-10, atol=1e-10)
        if top > 0:  # one row fewer and the output moves: rows_above is not larger than it needs to be
            short = m._params(x[:, :, top + 1 : row + 1], top + 1).view(6, c, row - top, w, -1)
            assert not torch.allclose(short[:, :, -1], full[:, :, row])
    order = m.ordering()
    pyro.set_rng_seed(3)
    fast = m._fill(m._empty(40), order, None, 1.2)
    pyro.set_rng_seed(3)
    slow = AutoregressiveModel._fill(m, m._empty(40), order, None, 1.2)
    assert torch.equal(fast, slow)
    skip = torch.zeros(m.num_vars, dtype=torch.bool)
    skip[-w:] = True  # the last row observed
    start = fast.clone()
    done = m._fill(start.clone(), order, skip, 1.0)
    assert torch.equal(done[:, -w:], start[:, -w:])
