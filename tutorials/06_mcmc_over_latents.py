"""Tutorial 6 — MCMC over the latents of a trained VAE, diagnosed with ArviZ; the amortization gap.

Run it as a script (``python tutorials/06_mcmc_over_latents.py``); with
``PYROGEN_FAST=1`` it runs short chains (the test suite runs it that way).
Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of the
full run are in docs/ (the family's page), measured by ``benchmarks/latent.py --only gap``.
"""

# %% [markdown]
# ## 1. The exact posterior of a trained decoder
# Once the decoder is trained, p(z | x) is a fixed, if intractable,
# distribution. The VAE's own Pyro ``model`` with ``x`` observed is all NUTS
# needs; the encoder is not used. Two chains from random starts let ArviZ
# compute R-hat.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

from pyrogen import diagnostics
from pyrogen.data import load
from pyrogen.inference import fit, latent_nuts, optimize_local_posterior
from pyrogen.models import VAE

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)
digits = load("digits-binary")
vae = VAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256), kl_warmup=1000)
fit(vae, digits, steps=30 if FAST else 4000)
vae.eval()

x = digits.test[: 3 if FAST else 5]
runs = latent_nuts(vae, x, num_chains=2, num_samples=30 if FAST else 500, warmup_steps=30 if FAST else 500)
idata = diagnostics.from_pyro(runs)
table = diagnostics.summary(idata)
print(table.head(8).to_string())
print(f"max R-hat {table['r_hat'].max():.3f}, min bulk ESS {table['ess_bulk'].min():.0f}")

# %% [markdown]
# ## 2. Three posteriors side by side
# The amortized Gaussian q(z | x) of the encoder, the best Gaussian for each
# digit alone (its ELBO optimized with the decoder fixed), and NUTS. The
# amortization gap is what the shared encoder loses; the approximation gap
# what a diagonal Gaussian loses.

# %%
local = optimize_local_posterior(vae, x, steps=50 if FAST else 1000, eval_samples=200 if FAST else 2000)
with torch.no_grad():
    loc, scale = vae.encode(x)
    log_px = vae.iwae(x, k=200 if FAST else 5000)
z = torch.as_tensor(idata["posterior"]["z"].values).flatten(0, 1)  # (draws, n, L)
for i in range(len(x)):
    print(
        f"digit {i}: log p(x) {float(log_px[i]):7.2f}  ELBO optimized {float(local.elbo[i]):7.2f}  "
        f"amortized {float(local.amortized_elbo[i]):7.2f}"
    )
units = loc[0].abs().argsort(descending=True)[:4]  # the most informative units of the first digit
fig, axes = plt.subplots(1, len(units), figsize=(3 * len(units), 3))
grid = torch.linspace(-4, 4, 200)
for ax, u in zip(axes, units.tolist(), strict=True):
    ax.hist(z[:, 0, u].numpy(), bins=30, density=True, alpha=0.5, label="NUTS")
    for mean, sd, name in ((loc[0, u], scale[0, u], "amortized"), (local.loc[0, u], local.scale[0, u], "optimized")):
        ax.plot(grid, torch.distributions.Normal(mean, sd).log_prob(grid).exp(), label=name)
    ax.set_title(f"z[{u}]")
axes[0].legend(fontsize=7)
fig.savefig(OUT / "latent_posteriors.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 3. ArviZ's plots work on the same object

# %%
import warnings  # noqa: E402

import arviz as az  # noqa: E402

with warnings.catch_warnings():  # ArviZ 0.x calls a matplotlib helper that matplotlib 3.11 deprecates
    warnings.simplefilter("ignore", DeprecationWarning)
    axes = az.plot_trace(idata, var_names=["z"], coords={"z_dim_0": [0], "z_dim_1": units[:2].tolist()})
plt.gcf().savefig(OUT / "latent_trace.png", dpi=70, bbox_inches="tight")
print(f"figures in {OUT}")
