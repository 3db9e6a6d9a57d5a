"""Tutorial 5 — semi-supervised learning with the M2 VAE: one label in ten.

Run it as a script (``python tutorials/05_semi_supervised.py``); with
``PYROGEN_FAST=1`` it trains for a few steps only (the test suite runs it that
way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of
the full run are in docs/ (the family's page), measured by ``benchmarks/latent.py``.
"""

# %% [markdown]
# ## 1. The label as a latent variable
# Kingma et al.'s M2 model draws a class ``y`` and a style ``z`` and then the
# digit ``x``. Where the label is known it is observed; where it is missing
# the guide's classifier q(y | x) proposes it and Pyro's ``TraceEnum_ELBO``
# sums over all ten values exactly. Missing labels are written as ``-1``.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pyro
import torch
from pyro.infer import SVI, TraceEnum_ELBO
from pyro.optim import Adam

import pyrogen.figures
from pyrogen.data import load
from pyrogen.inference import fit, objective_for, training_data
from pyrogen.models import SSVAE, registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)
STEPS = 20 if FAST else 4000
digits = load("digits-binary")

m = SSVAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256))
x, y = training_data(m, digits, "train")
print(f"{int((y >= 0).sum())} labelled and {int((y < 0).sum())} unlabelled training digits")

# Pyro's own SVI runs the model and guide as they are (the labelled and unlabelled parts in their own plates).
svi = SVI(m.model, m.guide, Adam({"lr": 1e-3}), TraceEnum_ELBO(max_plate_nesting=1))
batch = (x[:128], y[:128])
for _ in range(3):
    loss = svi.step(*batch)
print(f"TraceEnum_ELBO on a batch of 128: {loss / 128:.2f} nats per digit")
pyro.set_rng_seed(1)
objective = objective_for(m)  # the semi-supervised ELBO (Kingma et al., 2014)
fused = objective(m, batch).item()
pyro.set_rng_seed(1)
by_pyro = objective.pyro_loss(m, batch).item()
print(f"fused loss {fused:.4f} = Pyro's TraceEnum_ELBO {by_pyro:.4f} on the same seed")

# %% [markdown]
# ## 2. Train and classify; compare with a classifier that sees the labels only

# %%
pyro.set_rng_seed(0)
m = SSVAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256))
fit(m, (x, y), training_data(m, digits, "val"), **{**registry.recipe_of(m).train_defaults_for(digits), "steps": STEPS})
m.eval()
accuracy = float((m.predict(digits.test) == digits.labels["test"]).float().mean())

from sklearn.linear_model import LogisticRegression  # noqa: E402

seen = y >= 0
alone = LogisticRegression(max_iter=5000).fit(x[seen].flatten(1).numpy(), y[seen].numpy())
baseline = alone.score(digits.test.flatten(1).numpy(), digits.labels["test"].numpy())
print(f"test accuracy: SSVAE {accuracy:.3f}; logistic regression on the {int(seen.sum())} labels alone {baseline:.3f}")

# %% [markdown]
# ## 3. Style and content apart
# Fix the style ``z`` of a row and change the class ``y`` along it: the
# decoder draws every digit in that one style.

# %%
with torch.no_grad():
    z = m.sample_latent(6).repeat_interleave(10, 0)
    labels = torch.arange(10).repeat(6)
    grid = m.decode(z, labels)
pyrogen.figures.image_grid(grid, OUT / "ssvae_style_by_class.png", title="one style z per row, y = 0..9", cols=10)
print(f"figures in {OUT}")
