"""Adding a model: a family written in this file, registered, and run through the whole generic harness.

What a new model needs (docs/python.md, "Adding a model", walks through this one): its class, with its data
``support``; ``model`` (a Pyro program over a batch, its rows in the caller's plate), ``log_prob`` (or
``elbo``/``iwae`` or ``energy``: the protocol it implements is its density kind), ``sample`` and
``as_distribution`` (written with ``@frozen_unless_trainable``); its recipe,
``register("name", family=..., data=..., objective=...)``, which names the objective it trains under (here
maximum likelihood; the model itself holds no loss); and its small configuration for the harness. Its
configuration is recorded from its constructor; everything else -- validation, the trainer, checkpoints, the
CLI -- comes from the contracts.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import SMALL
from torch import nn

from pyrogen.inference import objectives
from pyrogen.inference.objectives import MaximumLikelihood
from pyrogen.inference.program import data_plate
from pyrogen.models import GenerativeModel, registry
from pyrogen.models.base import accepts_unbatched, check_positive_int, frozen_unless_trainable


class DiagonalGaussian(GenerativeModel):
    r"""A diagonal Gaussian :math:`N(\mu, \operatorname{diag} \sigma^2)` fitted by maximum likelihood: the smallest
    exact density, to show what the contracts ask of a family."""

    support = "real"

    def __init__(self, event_shape: tuple[int, ...] = (2,)) -> None:
        super().__init__(event_shape)
        self.loc = nn.Parameter(torch.zeros(self.event_shape))
        self.log_scale = nn.Parameter(torch.zeros(self.event_shape))

    @frozen_unless_trainable  # enters a Pyro program frozen unless as_distribution(trainable=True)
    def as_distribution(self) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.log_scale.exp()).to_event(len(self.event_shape))

    def model(self, x: torch.Tensor | None = None) -> torch.Tensor:
        pyro.module("diagonal-gaussian", self)
        with data_plate(1 if x is None else len(x)):
            return pyro.sample("x", self.as_distribution(), obs=x)

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.as_distribution().log_prob(self.validate(x))

    def sample(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.as_distribution().sample((check_positive_int("n", n),))


@pytest.fixture
def registered():
    name = "diagonal-gaussian"
    registry.register(name, family="example", data="moons", objective=lambda m: MaximumLikelihood())(DiagonalGaussian)
    SMALL[name] = {"event_shape": (2,)}
    yield name
    del registry._REGISTRY[name], SMALL[name], objectives._DEFAULTS[DiagonalGaussian]


def test_a_model_registered_here_passes_the_whole_harness(registered, tmp_path):
    from test_models import HARNESS, run_harness

    ran = run_harness(registered, tmp_path)
    # every check of an exact density that samples and trains one group
    assert len(ran) == len(HARNESS) - 1 and "test_a_group_update_leaves_the_other_groups_without_gradient" not in ran
    # and its numbers are right: maximum likelihood of a diagonal Gaussian is the sample mean and sd
    from pyrogen.data import load
    from pyrogen.inference import fit

    m = registry.create(registered, event_shape=(2,))
    x = load("moons").train[:2000]
    fit(m, x, None, steps=1500, batch_size=2000, lr=0.05)
    torch.testing.assert_close(m.loc.detach(), x.mean(0), atol=2e-3, rtol=0)
    torch.testing.assert_close(m.log_scale.exp().detach(), x.std(0, unbiased=False), atol=2e-3, rtol=0)
