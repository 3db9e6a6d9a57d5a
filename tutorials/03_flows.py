"""Tutorial 3 — normalizing flows: toy densities, digits, a flow guide against NUTS, distillation.

Run it as a script (``python tutorials/03_flows.py``); with ``PYROGEN_FAST=1``
it trains for a few steps only (the test suite runs it that way). Figures go
to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of the full run
are in docs/ (the family's page), measured by ``benchmarks/flows.py``.
"""

# %% [markdown]
# ## 1. Eight toy densities, three flows
# A flow pushes a standard normal through invertible layers; its density is
# exact by the change of variables. ``fit`` maximises the likelihood; the
# best possible test NLL of each toy is its entropy.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO

import pyrogen
import pyrogen.figures
from pyrogen.data import TOY_ENTROPY, TOYS
from pyrogen.inference import distill, fit, flow_guide, nuts, run_chains
from pyrogen.metrics import evaluate_nll
from pyrogen.models import IAF, MAF, RealNVP, registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)
STEPS = 5 if FAST else 1500
FLOWS = {"realnvp": {"num_layers": 8}, "maf": {"num_layers": 5, "hidden": (64, 64)}, "gaussianization": {}}

grid = torch.linspace(-4.5, 4.5, 120)
pts = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
fig, axes = plt.subplots(len(FLOWS) + 1, len(TOYS), figsize=(2 * len(TOYS), 2 * (len(FLOWS) + 1)))
for j, toy in enumerate(TOYS):
    data = pyrogen.data.load(toy)
    axes[0, j].hist2d(*data.test.T.numpy(), bins=120, range=[[-4.5, 4.5]] * 2, cmap="viridis")
    axes[0, j].set_title(toy, fontsize=9)
    for i, (name, kw) in enumerate(FLOWS.items(), start=1):
        m = registry.get(name).from_dataset(data, **kw)
        fit(
            m,
            data.train[: 2048 if FAST else None],
            data.val,
            **{**registry.get(name).train_defaults_for(data), "steps": STEPS},
        )
        with torch.no_grad():
            dens = m.log_prob(pts).exp().reshape(len(grid), len(grid))
            nll = evaluate_nll(m, data.test[: 500 if FAST else None]).nll_nats
        axes[i, j].imshow(dens.numpy(), origin="lower", extent=[-4.5, 4.5, -4.5, 4.5], cmap="viridis")
        axes[i, j].set_title(f"{name}: {nll:.2f} ({TOY_ENTROPY[toy]:.2f})", fontsize=8)
        print(f"{toy:<12} {name:<16} test NLL {nll:6.3f}   best possible {TOY_ENTROPY[toy]:.3f}")
for ax in axes.flat:
    ax.axis("off")
fig.savefig(OUT / "flows_toys.png", dpi=80, bbox_inches="tight")
plt.close(fig)

# %% [markdown]
# ## 2. Digits: a MAF on the dequantized digits, and a class-conditional one
# The digits are integers 0..16 plus uniform noise, scaled to [0, 1). The
# flow works on their logits (``preprocess="logit"``, the log-determinant of
# that map is part of the likelihood), re-draws the dequantization noise of
# every batch, and reports bits/dim with the ``log2 17`` correction.

# %%
digits = pyrogen.data.load("digits")
maf = registry.from_dataset(MAF, digits, num_layers=5, hidden=(128,))
fit(maf, digits, steps=4 if FAST else 3000)
res = evaluate_nll(maf, digits.test, levels=17)
print(f"MAF on digits: {res.bits_per_dim:.3f} bits/dim ({res.dequantization})")
pyrogen.figures.image_grid(maf.sample(36).clamp(0, 1), OUT / "flows_digit_samples.png", "MAF samples")

cond = registry.from_dataset(MAF, digits, conditional=True, num_layers=5, hidden=(128,))
fit(cond, digits, steps=4 if FAST else 3000)  # a labelled model: (digits, labels) pairs
rows = torch.cat([cond.sample(6, y=k) for k in range(10)])
pyrogen.figures.image_grid(
    rows.clamp(0, 1), OUT / "flows_conditional_samples.png", "class-conditional MAF, 6 per digit"
)

# %% [markdown]
# ## 3. A flow as a guide, against NUTS
# A banana-shaped posterior: :math:`z_1` is seen through a Gaussian, and
# :math:`z_2 - z_1^2` through another. ``flow_guide`` builds Pyro's
# ``AutoNormalizingFlow`` with pyrogen's layers; SVI fits it, NUTS samples
# the exact posterior.


# %%
def banana():
    z = pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
    pyro.sample("a", dist.Normal(z[..., 0], 1.0), obs=torch.tensor(1.0))
    pyro.sample("b", dist.Normal(z[..., 1] - z[..., 0] ** 2, 0.5), obs=torch.tensor(0.5))


runs = run_chains(
    lambda: nuts(banana), num_chains=2, num_samples=50 if FAST else 1000, warmup_steps=50 if FAST else 300
)
z_nuts = torch.cat([r.get_samples()["z"] for r in runs])
pyro.clear_param_store()
guide = flow_guide(banana, kind="realnvp", num_layers=6)
svi = SVI(banana, guide, pyro.optim.ClippedAdam({"lr": 1e-2, "lrd": 0.998}), Trace_ELBO(num_particles=8))
for _ in range(10 if FAST else 1500):
    svi.step()
with torch.no_grad():
    z_flow = guide.get_posterior().sample((20000,))
print("posterior means  NUTS", z_nuts.mean(0).numpy().round(3), " flow guide", z_flow.mean(0).numpy().round(3))
print("posterior sds    NUTS", z_nuts.std(0).numpy().round(3), " flow guide", z_flow.std(0).numpy().round(3))
fig, ax = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
ax[0].scatter(*z_nuts.T.numpy(), s=2, alpha=0.3)
ax[0].set_title("NUTS")
ax[1].scatter(*z_flow[:2000].T.numpy(), s=2, alpha=0.3)
ax[1].set_title("RealNVP guide (SVI)")
fig.savefig(OUT / "flows_guide_vs_nuts.png", dpi=80)
plt.close(fig)

# %% [markdown]
# ## 4. Distillation: a fast-sampling IAF student from a MAF teacher
# MAF scores data in one pass but samples in D; IAF the reverse. The student
# minimizes KL(student || teacher) on its own samples (Parallel WaveNet).

# %%
moons = pyrogen.data.load("moons")
teacher = registry.from_dataset(MAF, moons, num_layers=5, hidden=(64, 64))
fit(teacher, moons, steps=STEPS)
student = registry.from_dataset(IAF, moons, num_layers=5, hidden=(64, 64))
result = distill(teacher, student, steps=5 if FAST else 2000, batch_size=256, timing_n=256)
print(
    f"KL(student || teacher) = {result.kl:.3f} ± {result.kl_stderr:.3f} nats; "
    f"sampling {result.speedup:.1f}x faster than the teacher (D = 2: two passes against one)"
)
assert isinstance(student, IAF) and isinstance(teacher, MAF) and isinstance(RealNVP(), RealNVP)

# %% [markdown]
# ## 5. Neural spline flows, flow matching and FFJORD
# ``nsf`` replaces the affine maps by monotonic rational-quadratic splines (Durkan et al., 2019): far more
# flexible per layer, with linear tails outside ``[-B, B]``. ``flow-matching`` is a continuous-time flow whose
# velocity field is regressed on straight paths from noise to data (Lipman et al., 2023) — no ODE solver in
# training — and whose exact likelihood comes from the ODE at evaluation, like the score SDE's. ``ffjord``
# (Grathwohl et al., 2019) is the same kind of field trained the older way, by maximum likelihood through the
# solver (Hutchinson's trace in training, the exact one in two dimensions at evaluation): each step solves the
# ODE, so it costs far more per step than flow matching.

# %%
from pyrogen.data import TOY_ENTROPY  # noqa: E402
from pyrogen.metrics import evaluate_nll  # noqa: E402
from pyrogen.models import FFJORD, NSF, FlowMatching  # noqa: E402

rings = pyrogen.data.load("rings")
for cls, steps in ((NSF, 3000), (FFJORD, 1000), (FlowMatching, 3000)):
    m = registry.from_dataset(cls, rings)
    fit(m, rings, steps=5 if FAST else steps)
    m.eval()
    test = rings.test[: 32 if FAST else 2000]
    print(
        f"{cls.__name__:<13} rings test NLL {evaluate_nll(m, test).nll_nats:.3f} (best possible {TOY_ENTROPY['rings']})"
    )
fm_samples = m.sample(2000, steps=4 if FAST else 20)  # 20 midpoint steps: 40 network evaluations
fig, ax = plt.subplots(figsize=(3, 3))
ax.scatter(*fm_samples.T.numpy(), s=1)
ax.set_title("flow matching, 40 evaluations")
fig.savefig(OUT / "flows_flow_matching_rings.png", dpi=80)
plt.close(fig)
