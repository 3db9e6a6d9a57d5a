"""Tutorial 1 — the whole path: data, a flow and a VAE as Pyro citizens, metrics, NUTS and ArviZ.

Run it as a script (``python tutorials/01_whole_path.py``); with the
environment variable ``PYROGEN_FAST=1`` it takes a few steps only (the test
suite runs it that way). Every step prints what it shows.
"""

# %% [markdown]
# ## 1. Bundled data
# Nothing is downloaded: toys are generated from a seed, the digits come with
# scikit-learn, and every dataset has fixed train / validation / test parts.

# %%
import os

import pyro
import pyro.distributions as dist
import torch

import pyrogen
from pyrogen.inference import fit, nuts, run_chains
from pyrogen.metrics import evaluate_nll
from pyrogen.models import VAE, RealNVP

FAST = os.environ.get("PYROGEN_FAST") == "1"
pyro.set_rng_seed(0)
moons = pyrogen.data.load("moons")
digits = pyrogen.data.load("digits-binary")
print("moons", tuple(moons.train.shape), "digits", tuple(digits.train.shape), digits.support)

# %% [markdown]
# ## 2. A normalizing flow, trained by maximum likelihood
# ``fit`` is the one trainer of every family: Adam, a cosine learning rate,
# validation and the best validation point restored at the end.

# %%
flow = RealNVP(event_shape=(2,), num_layers=8, hidden=(64, 64))
result = fit(
    flow,
    moons.train,
    moons.val,
    steps=50 if FAST else 2000,
    batch_size=512,
    lr=3e-3,
    schedule="cosine",
    val_every=25 if FAST else 250,
)
res = evaluate_nll(flow, moons.test)
print(
    f"RealNVP test NLL {res.nll_nats:.3f} ± {res.nll_stderr:.3f} nats; "
    f"best possible {pyrogen.data.TOY_ENTROPY['moons']:.3f}"
)

# %% [markdown]
# ## 3. The flow inside your own Pyro program
# ``as_distribution()`` is a Pyro distribution: here it is the likelihood of
# data seen through an unknown shift, and NUTS infers the shift.

# %%
shifted = moons.test[:200] + torch.tensor([0.7, 0.0])
frozen = flow.as_distribution()


def shift_model(x):
    shift = pyro.sample("shift", dist.Normal(torch.zeros(2), 2.0).to_event(1))
    with pyro.plate("data", len(x)):
        pyro.sample("x", frozen, obs=x - shift)


for p in flow.parameters():
    p.requires_grad_(False)
n = 30 if FAST else 300
runs = run_chains(lambda: nuts(shift_model), num_chains=2, num_samples=n, warmup_steps=n, model_args=(shifted,))
from pyrogen import diagnostics  # noqa: E402  (ArviZ is imported only when needed)
from pyrogen.inference.objectives import objective_for  # noqa: E402

print(diagnostics.summary(runs, var_names=["shift"]).to_string())

# %% [markdown]
# ## 4. A VAE: the Pyro model/guide pair and its fused loss agree
# The trainer minimises the VAE's objective, ``objective_for(vae)`` (an ``ELBO``: fused, fast);
# its ``pyro_loss`` is Pyro's ``TraceMeanField_ELBO`` on ``vae.model`` and ``vae.guide``: same seed, same number.

# %%
vae = VAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256), kl_warmup=1000)
x = digits.train[:64]
pyro.set_rng_seed(1)
elbo = objective_for(vae)  # the ELBO objective the VAE trains under
fused = elbo(vae, x)
pyro.set_rng_seed(1)
print(f"fused loss {fused.item():.4f} == Pyro ELBO loss {elbo.pyro_loss(vae, x).item():.4f}")
fit(
    vae,
    digits.train,
    digits.val,
    steps=50 if FAST else 4000,
    batch_size=128,
    val_every=25 if FAST else 100,
    patience=10,
)
res = evaluate_nll(vae, digits.test, k=100 if FAST else 1000)
print(
    f"VAE test ELBO {res.elbo_nats:.2f}, IWAE (k={res.k}) NLL {res.nll_nats:.2f} ± {res.nll_stderr:.2f} nats; "
    f"active units {vae.active_units(digits.test)}"
)

# %% [markdown]
# ## 5. The same VAE with Pyro's own SVI
# Nothing stops a Pyro user from training the model/guide pair the usual way.

# %%
svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-4}), pyro.infer.TraceMeanField_ELBO())
vae.train()
losses = [svi.step(digits.train[:128]) / 128 for _ in range(5 if FAST else 50)]
vae.eval()
print(f"SVI loss per example: {losses[0]:.2f} -> {losses[-1]:.2f}")
