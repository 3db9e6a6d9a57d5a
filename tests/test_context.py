"""Every conditional family takes its labels as ``context=`` (Pyro's name) as well as ``y=``: the same numbers."""

from __future__ import annotations

import inspect

import pyro
import pytest
import torch

from pyrogen.data import load
from pyrogen.models import registry

#: (registered name, small configuration with labels): one conditional model of each family that has one.
CONDITIONAL = {
    "maf": {"event_shape": (2,), "num_layers": 2, "hidden": (8,), "classes": 3},
    "nsf": {"event_shape": (2,), "num_layers": 2, "hidden": (8,), "classes": 3},
    "cvae": {"event_shape": (1, 8, 8), "latent_dim": 2, "hidden": (16,), "kl_warmup": 0},
    "cgan": {"event_shape": (1, 8, 8), "latent_dim": 4, "arch": "dcgan", "features": 8, "support": "unit_interval"},
    "naive-bayes": {"event_shape": (1, 8, 8), "classes": 10},
    "ddpm": {"event_shape": (2,), "hidden": (16,), "emb_dim": 8, "timesteps": 5, "classes": 3},
}


def _labels(name):
    return torch.tensor([0, 1, 2, 1]) if name in ("maf", "nsf", "ddpm") else torch.tensor([0, 3, 7, 9])


@pytest.mark.parametrize("name", sorted(CONDITIONAL))
def test_context_is_y(name):
    m = registry.create(name, **CONDITIONAL[name]).eval()
    y = _labels(name)
    pyro.set_rng_seed(0)
    a = m.sample(4, y=y)
    pyro.set_rng_seed(0)
    b = m.sample(4, context=y)
    assert torch.equal(a, b)
    x = b if name != "cgan" else load("digits").train[:4]
    for method in ("log_prob", "elbo", "joint_log_prob"):
        if hasattr(m, method) and "y" in inspect.signature(getattr(m, method)).parameters:
            pyro.set_rng_seed(1)
            ref = getattr(m, method)(x, y=y)
            pyro.set_rng_seed(1)
            torch.testing.assert_close(getattr(m, method)(x, context=y), ref)
    with pytest.raises(TypeError, match="context= or as y=, not both"):
        m.sample(4, y, context=y)
