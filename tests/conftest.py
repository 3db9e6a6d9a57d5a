"""Shared test set-up: a fixed seed, Pyro validation on, warnings as errors (pyproject)."""

from __future__ import annotations

import pyro
import pytest
import torch

from pyrogen.models import registry

#: Small configurations of every registered model, for the generic harness.
#: ``test_every_model_has_a_small_config`` fails when a model is missing here.
SMALL = {
    "realnvp": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "vae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--float64", action="store_true", help="run with float64 as the default dtype")


@pytest.fixture(autouse=True)
def _determinism(request: pytest.FixtureRequest):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    old = torch.get_default_dtype()
    if request.config.getoption("--float64"):
        torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def small_model(name: str):
    pyro.set_rng_seed(0)
    return registry.create(name, **SMALL[name])


def small_data(name: str, n: int = 256) -> torch.Tensor:
    from pyrogen.data import load

    cls = registry.get(name)
    return load(cls.default_data).train[:n]
