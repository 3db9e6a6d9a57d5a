"""The generic model harness: every registered model passes the same checks."""

import pyro
import pytest
import torch
from conftest import SMALL, Spy, assert_fused_equals_pyro, loss, small_data, small_model

from pyrogen.inference import DENSITY_KINDS, GenerativeModelProtocol, Objective, fit
from pyrogen.inference.objectives import objective_for
from pyrogen.inference.protocol import ExactDensity, density_kind
from pyrogen.io import load_checkpoint, save_checkpoint
from pyrogen.metrics import log_likelihood
from pyrogen.models import registry
from pyrogen.runs import load_run

NAMES = registry.names()
#: Each registered model's capabilities (density kind, sampler, several groups, labelled): a new family
#: gets the checks that apply to it by declaring what it is.
CAPS = {name: registry.capabilities(small_model(name)) for name in NAMES}


def having(*caps):
    return [n for n in NAMES if set(caps) <= CAPS[n]]


def likelihood_models():
    return [n for n in NAMES if CAPS[n] & {"exact", "estimated", "lower_bound"}]


def test_every_model_has_a_small_config():
    assert set(SMALL) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_model_follows_the_protocol(name):
    m = small_model(name)
    assert isinstance(m, GenerativeModelProtocol) and isinstance(objective_for(m), Objective)
    assert isinstance(m, pyro.nn.PyroModule)
    assert density_kind(m) in DENSITY_KINDS and registry.get(name).family and registry.name_of(m) == name
    rebuilt = registry.create(name, **m.config())
    assert rebuilt.config() == m.config()


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_small_problem(name):
    m = small_model(name)
    x = small_data(name, 256)
    with torch.no_grad():
        before = float(objective_for(m).validation(m, x))
    fit(m, x, None, steps=150, batch_size=64, lr=3e-3)
    with torch.no_grad():
        after = float(objective_for(m).validation(m, x))
    assert after < before - 0.1 * abs(before), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_fit_on_a_dataset_takes_the_recipe_settings(name):
    from pyrogen.data import load
    from pyrogen.inference import trainer

    m, data = small_model(name), load(registry.get(name).data)
    used, config = [], trainer._config

    def spy(*args, **kwargs):
        used.append(config(*args, **kwargs))
        return used[-1]

    trainer._config = spy
    try:
        result = fit(m, data, steps=2)
    finally:
        trainer._config = config
    want = {**registry.get(name).train_defaults_for(data), "steps": 2}
    assert {k: getattr(used[0], k) for k in want} == want
    assert result.step == 2 and not m.training


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_finite_gradient(name):
    m = small_model(name)
    m.train()
    objective, batch = objective_for(m), small_data(name, 32)
    # each group's loss on its own (the critic's and the generator's minimax losses cancel in a sum): every
    # parameter gets a finite gradient from each loss and a nonzero one from at least one
    reached = {pname: torch.tensor(0.0) for pname, _ in m.named_parameters()}
    for group in objective.groups(m):
        m.zero_grad(set_to_none=True)
        pyro.set_rng_seed(0)
        objective(m, batch, group).backward()
        for pname, p in m.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), (group, pname)
                reached[pname] = reached[pname] + p.grad.abs().sum()
    for pname, total in reached.items():
        assert total > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(tmp_path, name):
    m = small_model(name)
    fit(m, small_data(name, 128), None, steps=5, batch_size=32)
    save_checkpoint(tmp_path / "m.safetensors", m.state_dict(), {"config": m.config()})
    tensors, meta = load_checkpoint(tmp_path / "m.safetensors")
    m2 = registry.create(name, **meta["config"])
    m2.load_state_dict(tensors)
    m.eval()
    m2.eval()
    x = small_data(name, 16)
    scores = CAPS[name] & {"exact", "estimated", "lower_bound"}

    def outputs(a):  # what the model computes: its score and its samples, or its validation score if it has neither
        pyro.set_rng_seed(1)
        la = log_likelihood(a, x, k=10) if scores else torch.zeros(())
        with torch.no_grad():
            sa = a.sample(4) if "sampler" in CAPS[name] else objective_for(a).validation(a, x)
        return la, sa

    (la, sa), (lb, sb) = outputs(m), outputs(m2)
    assert torch.equal(la, lb) and torch.equal(sa, sb)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_naming_the_argument(name):
    m = small_model(name)
    shape = tuple(m.event_shape)
    dtype = torch.long if m.support == "integer" else torch.get_default_dtype()
    with pytest.raises(ValueError, match="x must have shape"):
        m.validate(torch.zeros((3, *shape, 1), dtype=dtype))
    if m.support == "integer":
        with pytest.raises(TypeError, match="x must have an integer dtype"):
            m.log_prob(torch.full((3, *shape), float("nan")))
        with pytest.raises(ValueError, match=rf"x must hold integers in 0\.\.\d+; found {m.levels}"):
            m.log_prob(torch.full((3, *shape), m.levels))
    else:
        with pytest.raises(ValueError, match="x must be finite"):
            m.validate(torch.full((3, *shape), float("nan")))
    with pytest.raises(ValueError, match="x is empty"):
        m.validate(torch.zeros((0, *shape), dtype=dtype))
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        m.sample(0)
    if m.support == "binary":
        with pytest.raises(ValueError, match="only 0 and 1"):
            if density_kind(m) == "none":  # no likelihood to ask for: the check at the boundary
                m.validate(torch.full((2, *shape), 0.5))
            else:
                log_likelihood(m, torch.full((2, *shape), 0.5), k=2)


@pytest.mark.parametrize("name", likelihood_models())
def test_pyro_program_matches_the_fast_loss(name):
    """The fused loss equals Pyro's ELBO on model and guide (same seed, same value)."""
    assert_fused_equals_pyro(small_model(name), small_data(name, 64))


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_density_queries_say_what_to_use(name):
    m = small_model(name)
    x = small_data(name, 4)
    if density_kind(m) in ("exact", "estimated"):
        assert m.log_prob(x).shape == (4,)
    else:  # no exact density: no log_prob member (ExactDensity does not hold)
        assert not isinstance(m, ExactDensity)
        if density_kind(m) in ("unnormalized", "none"):  # and the likelihood metric says what to use
            with pytest.raises(NotImplementedError, match="use"):
                log_likelihood(m, x)


def test_from_dataset_checks_the_support():
    from pyrogen.data import load

    with pytest.raises(ValueError, match="bernoulli conditionals; dataset 'digits' is unit_interval"):
        registry.get("fvsbn").from_dataset(load("digits"))
    with pytest.raises(ValueError, match="a bernoulli decoder models binary data; dataset 'digits' is unit_interval"):
        registry.get("vae").from_dataset(load("digits"), likelihood="bernoulli")
    # a VAE picks its decoder from the data
    assert registry.get("vae").from_dataset(load("digits")).likelihood_name == "gaussian"
    m = registry.get("vae").from_dataset(load("digits-int"))
    assert (m.likelihood_name, m.levels, m.support) == ("categorical", 17, "integer")
    with pytest.raises(ValueError, match="unknown model 'gann'"):
        registry.get("gann")
    with pytest.raises(ValueError, match="ns-gan generates continuous data; dataset 'digits-binary' is binary"):
        registry.get("ns-gan").from_dataset(load("digits-binary"))
    gan = registry.get("wgan-gp").from_dataset(load("digits"))
    assert (gan.arch, gan.support, gan.generator(torch.randn(2, gan.latent_dim)).min() >= 0) == (
        "dcgan",
        "unit_interval",
        True,
    )
    assert registry.get("gan").from_dataset(load("8gaussians")).arch == "mlp"


def test_load_run_rejects_a_non_run(tmp_path):
    from pyrogen.runs import RunError

    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)


@pytest.mark.parametrize("name", having("sampler"))
def test_every_sampler_gets_the_sample_quality_metrics_of_its_data(name):
    """Samples of every model that samples are scored like data: the keys of ``pyrogen evaluate``, finite,
    and the data scored against themselves score better than the untrained model's samples."""
    from pyrogen import quality
    from pyrogen.data import load

    m = small_model(name).eval()
    data = load(registry.get(name).default_data)
    if data.kind not in ("image", "toy2d"):
        pytest.skip("no sample-quality metric for text or tables")
    pyro.set_rng_seed(0)
    res = quality.sample_quality(m, data, n=200)
    keys = {"fid", "kid", "precision", "recall"} if data.kind == "image" else {"mmd", "c2st"}
    assert keys <= set(res) and res["samples"] == 200
    for k in keys:
        lo, hi = res[k]["ci"]
        assert all(map(torch.isfinite, map(torch.tensor, (res[k]["value"], lo, hi)))) and lo <= hi, k
    real = data.test[:200] if data.kind == "toy2d" else data.test
    best = quality.compare(real, data.train[: len(real)], data.kind, data.support, data.name)
    first = "fid" if data.kind == "image" else "mmd"
    if type(objective_for(m)).setup is Objective.setup:  # a model set up from the data (a KDE) is no untrained one
        assert best[first]["value"] < res[first]["value"]


@pytest.mark.parametrize("name", having("several_groups"))
def test_a_group_update_leaves_the_other_groups_without_gradient(name):
    from pyrogen.inference import TrainConfig
    from pyrogen.inference.trainer import make_optimizers, training_step

    m = small_model(name)
    for g in objective_for(m).groups(m):
        groups = make_optimizers(m, TrainConfig(), Spy(objective_for(m), only=g))
        m.zero_grad(set_to_none=True)
        training_step(m, None, small_data(name, 32), 0, groups, TrainConfig())
        mine = {id(p) for p in groups.params[g]}  # groups may share parameters (the DBM's joint phase)
        others = [p for h, ps in groups.params.items() if h != g for p in ps if id(p) not in mine]
        assert all(p.grad is None for p in others), g
        assert any(p.grad is not None for p in groups.params[g]), g


@pytest.mark.parametrize("name", NAMES)
def test_data_of_another_float_dtype_is_cast_at_the_boundary(name):
    """float64 data into a float32 model: fit and the likelihood accept it."""
    m = small_model(name)
    x = small_data(name, 64)
    xs = x[0] if isinstance(x, tuple) else x
    if not xs.is_floating_point():
        pytest.skip("integer data")
    wide = (xs.double(), x[1]) if isinstance(x, tuple) else xs.double()
    fit(m, wide, None, steps=2, batch_size=32)
    assert all(p.dtype == torch.float32 for p in m.parameters())
    assert m.validate(xs[:4].double()).dtype == torch.float32
    if CAPS[name] & {"exact", "estimated", "lower_bound"} and not isinstance(x, tuple):
        m.eval()
        pyro.set_rng_seed(0)
        a = log_likelihood(m, xs[:4].double(), k=2)
        pyro.set_rng_seed(0)
        b = log_likelihood(m, xs[:4], k=2)
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_loss_validates_its_batch_like_log_prob(name):
    """``loss`` refuses NaN, empty, wrongly shaped and out-of-support batches by name."""
    m = small_model(name)
    good = small_data(name, 8)
    x = good[0] if isinstance(good, tuple) else good

    def with_x(v):
        return (v, good[1][: len(v)]) if isinstance(good, tuple) else v

    shape = tuple(m.event_shape)
    with pytest.raises(ValueError, match="batch is empty"):
        loss(m, with_x(x[:0]))
    with pytest.raises(ValueError, match="batch must have shape"):
        loss(m, with_x(x.reshape(len(x), -1)[:, :-1]))
    if m.support == "integer":
        with pytest.raises(TypeError, match="batch must have an integer dtype"):
            loss(m, with_x(x.float()))
    else:
        with pytest.raises(ValueError, match="batch must be finite"):
            loss(m, with_x(torch.full((4, *shape), float("nan"))))
    if m.support == "binary":
        with pytest.raises(ValueError, match="batch must hold only 0 and 1"):
            loss(m, with_x(torch.full((4, *shape), 0.5)))
    assert torch.isfinite(loss(m, good))


@pytest.mark.parametrize("name", having("exact"))
def test_as_distribution_honours_expand(name):
    """``expand(batch_shape)`` broadcasts ``log_prob`` (the torch.distributions contract),
    so Pyro's vectorized particles see the right shape and value."""
    m = small_model(name).eval()
    try:
        d = m.as_distribution()
    except (NotImplementedError, ValueError):
        pytest.skip("no unconditional distribution")
    x = small_data(name, 5)
    x = x[0] if isinstance(x, tuple) else x
    with torch.no_grad():
        lp = d.log_prob(x)
        wide = d.expand((3, 5)).log_prob(x)
    assert wide.shape == (3, 5) and d.expand((3, 5)).batch_shape == (3, 5)
    torch.testing.assert_close(wide, lp.expand(3, 5))

    def model(obs):
        with pyro.plate("data", len(obs)):
            pyro.sample("x", m.as_distribution(), obs=obs)

    loss = pyro.infer.Trace_ELBO(num_particles=3, vectorize_particles=True).loss(model, lambda obs: None, x)
    assert loss == pytest.approx(-float(lp.sum()), rel=1e-5)


#: The harness as a list: each check and the capabilities it needs (``None``: every model). A model
#: registered from a test file runs the same checks through :func:`run_harness`.
HARNESS = [
    (test_model_follows_the_protocol, None),
    (test_loss_decreases_on_a_small_problem, None),
    (test_fit_on_a_dataset_takes_the_recipe_settings, None),
    (test_every_parameter_gets_a_finite_gradient, None),
    (test_save_load_round_trip, None),
    (test_bad_input_raises_naming_the_argument, None),
    (test_pyro_program_matches_the_fast_loss, {"likelihood"}),
    (test_unsupported_density_queries_say_what_to_use, None),
    (test_every_sampler_gets_the_sample_quality_metrics_of_its_data, {"sampler"}),
    (test_a_group_update_leaves_the_other_groups_without_gradient, {"several_groups"}),
    (test_data_of_another_float_dtype_is_cast_at_the_boundary, None),
    (test_loss_validates_its_batch_like_log_prob, None),
    (test_as_distribution_honours_expand, {"exact"}),
]


def run_harness(name: str, tmp_path) -> list[str]:
    """Run every check of the harness that applies to the registered model ``name`` (its small configuration in
    ``conftest.SMALL``); returns the checks run."""
    import inspect

    CAPS[name] = caps = registry.capabilities(small_model(name))
    if caps & {"exact", "estimated", "lower_bound"}:
        caps = caps | {"likelihood"}
    ran = []
    for check, needs in HARNESS:
        if needs is not None and not needs <= caps:
            continue
        kwargs = {"tmp_path": tmp_path} if "tmp_path" in inspect.signature(check).parameters else {}
        check(name=name, **kwargs)
        ran.append(check.__name__)
    return ran


def test_the_harness_list_holds_every_check():
    here = {n for n, f in globals().items() if n.startswith("test_") and callable(f)}
    listed = {c.__name__ for c, _ in HARNESS}
    per_model = {n for n in here if "name" in __import__("inspect").signature(globals()[n]).parameters}
    assert per_model == listed
