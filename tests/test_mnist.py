"""The families at 28 x 28: each registered model of the real-images table builds from its recipe on MNIST, takes
a few training steps and scores or samples MNIST-shaped data."""

from __future__ import annotations

import pytest
import torch

from pyrogen.data import load
from pyrogen.inference import fit, objective_for, training_data
from pyrogen.inference.protocol import BoundedDensity, ExactDensity
from pyrogen.models import registry

#: (model, dataset, whether scoring and sampling are cheap enough for the suite: an autoregressive model samples in
#: 784 passes, DDPM's bound takes 1000)
MODELS = [
    ("vae", "mnist-binary", True),
    ("iwae", "mnist-binary", True),
    ("gated-pixelcnn", "mnist-binary", False),
    ("realnvp", "mnist", True),
    ("glow", "mnist", True),
    ("nsf", "mnist", True),
    ("wgan-gp", "mnist", True),
    ("ns-gan", "mnist", True),
    ("ddpm", "mnist", False),
    ("score-sde", "mnist", False),
    ("flow-matching", "mnist", False),
    ("ebm", "mnist", True),
    ("rbm", "mnist-binary", True),
]


@pytest.mark.parametrize(("name", "data_name", "sample"), MODELS)
def test_the_recipe_trains_and_scores_or_samples_at_28x28(name, data_name, sample):
    torch.manual_seed(0)
    data = load(data_name)
    model = registry.get(name).from_dataset(data)
    x = data.test[:4]
    fit(model, training_data(model, data, "train"), None, steps=2, batch_size=16, progress=False)
    assert torch.isfinite(objective_for(model).validation(model, x))  # the objective on MNIST-shaped data
    model.eval()
    if not sample:
        return
    if isinstance(model, ExactDensity) and name != "score-sde":
        assert torch.isfinite(model.log_prob(x)).all()
    elif isinstance(model, BoundedDensity):
        assert torch.isfinite(model.elbo(x)).all()
    if sample:
        with torch.no_grad():
            s = model.sample(2)
        assert s.shape == (2, 1, 28, 28) and torch.isfinite(s).all()


def test_the_convolutional_vae_halves_twice_at_28x28_and_once_at_8x8():
    # 28 x 28 goes down to 7 x 7 before the fully connected layer (as DCGAN-style networks do); 8 x 8 to 4 x 4
    from pyrogen.nn import ConvDecoder, ConvEncoder

    for shape, side in (((1, 28, 28), 7), ((1, 8, 8), 4)):
        enc, dec = ConvEncoder(shape, 6, width=8, hidden=16), ConvDecoder(3, shape, out_mult=2, width=8, hidden=16)
        assert enc.head[0].in_features == 16 * side * side
        assert dec(torch.zeros(5, 3)).shape == (5, 2, *shape)
        assert enc(torch.zeros(2, 5, *shape)).shape == (2, 5, 6)
    torch.manual_seed(0)
    data = load("mnist-binary")
    model = registry.get("vae").from_dataset(data, arch="conv")
    fit(model, training_data(model, data, "train"), None, steps=2, batch_size=16, progress=False)
    model.eval()
    assert torch.isfinite(model.elbo(data.test[:4])).all()
    assert model.sample(2).shape == (2, 1, 28, 28)


def test_the_ebm_at_28x28_takes_the_short_run_settings_and_the_8x8_recipe_keeps_its_own():
    from pyrogen.models.ebm import SHORT_RUN

    ebm = registry.get("ebm")
    big, small = ebm.from_dataset(load("mnist")), ebm.from_dataset(load("digits"))
    for key, value in SHORT_RUN.items():
        got = big.buffer.reinit if key == "reinit" else getattr(big, key)
        assert got == value, key
    assert (small.chain_steps, small.sample_steps, small.buffer.reinit, small.langevin_noise) == (40, 500, 0.05, None)
    assert ebm.train_defaults_for(load("mnist"))["groups"] == {"model": {"betas": [0.0, 0.999]}}
    assert "groups" not in ebm.train_defaults_for(load("digits"))
    assert registry.get("ebm").from_dataset(load("mnist"), chain_steps=7).chain_steps == 7  # the user's word wins
    assert registry.get("ebm-sm").from_dataset(load("mnist")).langevin_noise is None  # the other EBMs keep theirs
