"""pro-VLAE: the growth schedule, the fused bound against Pyro's at every stage, growth kept with the parameters."""

from __future__ import annotations

import pyro
import pytest
import torch
from conftest import assert_fused_equals_pyro

from pyrogen.data import load
from pyrogen.inference import fit
from pyrogen.models import ProVAE, registry


def _small(**kw):
    torch.manual_seed(0)
    return ProVAE(**{"latent_levels": 3, "latent_dim": 2, "width": 16, "grow_every": 10, "fade_steps": 4, **kw})


def test_levels_enter_top_first_and_fade_in_linearly():
    m = _small()
    seen = {}
    for step in (0, 9, 10, 11, 13, 19, 20, 23, 40):
        m.clock.before_step(step)
        seen[step] = m.alphas()
    assert seen[0] == seen[9] == [0.0, 0.0, 1.0]
    assert seen[10] == [0.0, 0.25, 1.0] and seen[11] == [0.0, 0.5, 1.0] and seen[13] == [0.0, 1.0, 1.0]
    assert seen[20] == [0.25, 1.0, 1.0] and seen[23] == seen[40] == [1.0, 1.0, 1.0]
    assert _small(grow_every=0).alphas() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("step", [0, 11, 21, 40])
def test_the_fused_bound_is_pyros_at_every_stage_and_a_level_not_in_has_no_site(step):
    m, x = _small(), load("digits-binary").train[:16]
    m.clock.before_step(step)
    assert_fused_equals_pyro(m, x)
    trace = pyro.poutine.trace(m.guide).get_trace(x)
    sites = {name for name, site in trace.nodes.items() if site["type"] == "sample" and name.startswith("z")}
    assert sites == {f"z{level + 1}" for level, a in enumerate(m.alphas()) if a > 0}


def test_growth_is_saved_with_the_parameters_and_training_grows_the_model():
    m, x = _small(), load("digits-binary").train[:128]
    fit(m, x, None, steps=30, batch_size=32)
    assert int(m.clock.progress) == 30 and m.alphas() == [1.0, 1.0, 1.0]
    m2 = registry.create("pro-vae", **m.config())
    assert m2.alphas() == [0.0, 0.0, 1.0]
    m2.load_state_dict(m.state_dict())
    assert m2.alphas() == [1.0, 1.0, 1.0]
    assert m2.active_units(x) == sum(m2.active_units_per_level(x).values())
    assert m2.encode(x).shape == (128, 6)


def test_bad_arguments_are_named():
    for kwargs, name in (
        ({"latent_levels": 0}, "latent_levels"),
        ({"grow_every": -1}, "grow_every"),
        ({"fade_steps": 1.5}, "fade_steps"),
        ({"likelihood": "gaussian"}, "bernoulli"),
        ({"kl_warmup": -1}, "kl_warmup"),
    ):
        with pytest.raises(ValueError, match=name):
            ProVAE(**kwargs)
    with pytest.raises(ValueError, match="bernoulli decoder models binary data|ProVAE models binary data"):
        registry.from_dataset("pro-vae", load("digits"))
