"""Tutorial 8 — energy-based models: five ways to train p(x) ∝ exp(f(x)), batched MCMC kernels with ArviZ,
and an EBM as the prior of a Pyro program.

Run it as a script (``python tutorials/08_ebm.py``); with ``PYROGEN_FAST=1`` it trains for a few steps only
(the test suite runs it that way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of
the full run are in docs/ (the family's page), measured by ``benchmarks/ebm.py``.
"""

# %% [markdown]
# ## 1. Each training method on 8gaussians, with its learned density
# Contrastive divergence (short-run Langevin from a replay buffer), score matching, NCE with a learned
# log Z, flow contrastive estimation and adversarial training against a flow: one energy network,
# five objectives. On 2-D data log Z comes by quadrature, so each gets a test NLL in nats (the best
# possible on 8gaussians is 2.838, minus the entropy).

# %%
import os
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

from pyrogen import quality
from pyrogen.data import load
from pyrogen.inference import fit
from pyrogen.inference.samplers import HMC, MALA, sample_chains
from pyrogen.latent import energy_posterior
from pyrogen.models import registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
toy = load("8gaussians")


def train(name, steps, **options):
    pyro.set_rng_seed(0)
    m = registry.get(name).from_dataset(toy, **options)
    fit(m, toy.train, toy.val, steps=steps, batch_size=256, lr=1e-3, val_every=max(steps // 4, 1), progress=False)
    return m.eval()


steps = 20 if FAST else 3000
models = {name: train(name, steps) for name in ("ebm", "ebm-sm", "ebm-nce", "ebm-fce", "ebm-adv")}
axis = torch.linspace(-6, 6, 121)
grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
fig, axes = plt.subplots(1, len(models), figsize=(3 * len(models), 3))
for ax, (name, m) in zip(axes, models.items(), strict=True):
    with torch.no_grad():
        density = (m.f(grid) - m.log_normalizer()).exp().reshape(121, 121)
    ax.imshow(density.T.numpy(), origin="lower", extent=(-6, 6, -6, 6), cmap="viridis")
    ax.set_title(name)
    ax.axis("off")
    nll = m.evaluation_metrics(toy.test)["nll_nats"]
    pyro.set_rng_seed(0)
    q = quality.sample_quality(m, toy, n=200 if FAST else 1000)
    print(f"{name:8s} test NLL {nll:.3f} nats, modes {q['modes']['value']:.0f}/8, C2ST {q['c2st']['value']:.3f}")
plt.savefig(OUT / "ebm_densities.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 2. MALA and HMC chains in ArviZ
# The batched kernels advance many chains held in one tensor; warm-up adapts each chain's step size by
# dual averaging. ``Chains.to_inference_data`` carries ``energy``, so ArviZ's energy plot and BFMI work.

# %%
f = models["ebm-sm"].f
x0 = torch.randn(4, 2)
for kernel in (MALA(f, 0.05), HMC(f, 0.1, num_steps=10)):
    ch = sample_chains(kernel, x0, 100 if FAST else 1000, warmup_steps=50 if FAST else 500)
    idata = ch.to_inference_data()
    name = type(kernel).__name__
    print(f"{name}: acceptance {float(ch.acceptance_rate.mean()):.2f}, BFMI {az.bfmi(idata).round(2)}")
    print(az.summary(idata, kind="diagnostics"))
    energy = idata.sample_stats["energy"].values  # ArviZ's energy plot, drawn directly: marginal vs transitions
    plt.figure(figsize=(4, 3))
    plt.hist((energy - energy.mean()).ravel(), bins=40, alpha=0.6, density=True, label="marginal energy")
    plt.hist(torch.tensor(energy).diff(dim=1).numpy().ravel(), bins=40, alpha=0.6, density=True, label="transition")
    plt.legend()
    plt.savefig(OUT / f"ebm_{name.lower()}_energy.png", dpi=80, bbox_inches="tight")
    plt.close("all")

# %% [markdown]
# ## 3. An EBM as the prior of a Pyro program: completing a point
# x ~ p(x) ∝ exp(f(x)), the first coordinate read with noise 0.1, the second missing: the posterior over x
# by pyrogen's MALA inside Pyro's MCMC, and by NUTS.

# %%
y, observed = torch.tensor([[2.0, 0.0]]), torch.tensor([[True, False]])
for method in ("mala", "nuts"):
    n = 30 if FAST else 300
    depth = 4 if FAST else 10
    post = energy_posterior(
        models["ebm-sm"], y, observed, method, 0.1, num_samples=n, warmup_steps=n, max_tree_depth=depth
    )
    rhat = float(az.rhat(post.idata)["x"].max())
    print(f"{method}: E|x1| = {float(post.x[:, 0, 1].abs().mean()):.2f}, R-hat {rhat:.3f}")
