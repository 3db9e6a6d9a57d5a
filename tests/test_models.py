"""The generic model harness: every registered model passes the same checks."""

import pyro
import pytest
import torch
from conftest import SMALL, assert_fused_equals_pyro, small_data, small_model

from pyrogen.inference import DENSITY_KINDS, GenerativeModelProtocol, TrainableProtocol, fit
from pyrogen.io import load_checkpoint, save_checkpoint
from pyrogen.models import registry
from pyrogen.runs import load_run

NAMES = registry.names()


def test_every_model_has_a_small_config():
    assert set(SMALL) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_model_follows_the_protocol(name):
    m = small_model(name)
    assert isinstance(m, GenerativeModelProtocol) and isinstance(m, TrainableProtocol)
    assert isinstance(m, pyro.nn.PyroModule)
    assert m.density in DENSITY_KINDS and m.family and m.name == name
    rebuilt = registry.create(name, **m.config())
    assert rebuilt.config() == m.config()


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_small_problem(name):
    m = small_model(name)
    x = small_data(name, 256)
    with torch.no_grad():
        before = float(m.validation_loss(x))
    fit(m, x, None, steps=150, batch_size=64, lr=3e-3)
    with torch.no_grad():
        after = float(m.validation_loss(x))
    assert after < before - 0.1 * abs(before), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_finite_gradient(name):
    m = small_model(name)
    m.train()
    m.loss(small_data(name, 32)).backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


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
    for a, b in ((m, m2),):
        pyro.set_rng_seed(1)
        la = a.log_likelihood(x, k=10)
        sa = a.sample(4)
        pyro.set_rng_seed(1)
        lb = b.log_likelihood(x, k=10)
        sb = b.sample(4)
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
        with pytest.raises(ValueError, match=f"x must hold integers in 0..{m.levels - 1}; found {m.levels}"):
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
            m.log_likelihood(torch.full((2, *shape), 0.5), k=2)


@pytest.mark.parametrize("name", NAMES)
def test_pyro_program_matches_the_fast_loss(name):
    """The fused loss equals Pyro's ELBO on model and guide (same seed, same value)."""
    assert_fused_equals_pyro(small_model(name), small_data(name, 64))


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_density_queries_say_what_to_use(name):
    m = small_model(name)
    x = small_data(name, 4)
    if m.density == "exact":
        assert m.log_prob(x).shape == (4,)
    else:
        with pytest.raises(NotImplementedError, match="use"):
            m.log_prob(x)


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
    with pytest.raises(ValueError, match="unknown model 'gan'"):
        registry.get("gan")


def test_load_run_rejects_a_non_run(tmp_path):
    from pyrogen.runs import RunError

    with pytest.raises(RunError, match="not a run directory"):
        load_run(tmp_path)
