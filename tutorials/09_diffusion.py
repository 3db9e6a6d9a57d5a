"""Tutorial 9 — diffusion and score models: the forward chain, DDPM as a Pyro model/guide pair, DDIM with few
steps, NCSN, the probability-flow likelihood of a score SDE, classifier-free guidance, inpainting and latent
diffusion over a VAE's codes.

Run it as a script (``python tutorials/09_diffusion.py``); with ``PYROGEN_FAST=1`` it trains for a few steps only
(the test suite runs it that way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of the
full run are in docs/ (the family's page), measured by ``benchmarks/diffusion.py``.
"""

# %% [markdown]
# ## 1. The forward chain on a digit
# q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) in closed form: no parameters, a schedule of tensors.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch
from pyro.infer import TraceMeanField_ELBO

from pyrogen import quality
from pyrogen.data import load
from pyrogen.inference import diffusion as D
from pyrogen.inference import fit, training_data
from pyrogen.inference.diffusion import DiffusionELBO
from pyrogen.inference.schedules import NoiseSchedule
from pyrogen.metrics import evaluate_nll
from pyrogen.models import registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
digits, toy = load("digits"), load("moons")

schedule = NoiseSchedule.make("linear", 1000)
x0 = 2 * digits.test[:1] - 1  # the diffusion's space: [-1, 1]
fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
for ax, t in zip(axes, (0, 50, 150, 300, 600, 1000), strict=True):
    xt = schedule.q_sample(x0, torch.tensor([t])) if t else x0
    ax.imshow(xt[0, 0].numpy(), cmap="gray")
    ax.set_title(f"t = {t}, SNR {float(schedule.snr[t]):.2g}" if t else "x_0", fontsize=7)
    ax.axis("off")
fig.savefig(OUT / "09_forward_chain.png", dpi=120)
plt.close(fig)


def train(name, data, steps, **options):
    pyro.set_rng_seed(0)
    m = registry.get(name).from_dataset(data, **options)
    settings = registry.get(name).train_defaults_for(data)
    fit(
        m,
        training_data(m, data, "train"),
        None,
        steps=steps,
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        progress=False,
    )
    return m.eval()


# %% [markdown]
# ## 2. DDPM is a Pyro model/guide pair
# The guide is the fixed forward chain, the model the learned reverse chain with a decoder; Pyro's
# ``TraceMeanField_ELBO`` (each KL in closed form) on the pair is the variational bound, and the fast path
# computes the same number on the same seed.

# %%
ddpm = train("ddpm", toy, 40 if FAST else 10000, timesteps=20 if FAST else 1000)
batch = toy.test[:256]
pyro.set_rng_seed(0)
by_pyro = TraceMeanField_ELBO().loss(ddpm.model, ddpm.guide, batch) / len(batch)
pyro.set_rng_seed(0)
fused = DiffusionELBO()(ddpm, batch).item()  # the bound on one chain, in plain tensors
print(f"negative bound from Pyro {by_pyro:.4f} nats, from the fused path {fused:.4f}")
print(f"test NLL bound {evaluate_nll(ddpm, toy.test[:1000]).nll_nats:.3f} nats (best possible 2.391)")

# %% [markdown]
# ## 3. Ancestral sampling, DDIM with few steps, NCSN
# DDIM runs the same network on a subsequence of the steps; NCSN's score network is sampled by annealed
# Langevin dynamics. Sample quality: MMD² and a classifier two-sample test (0.5 is indistinguishable).

# %%
ncsn = train("ncsn", toy, 40 if FAST else 10000)
pyro.set_rng_seed(0)
draws = {
    "ancestral": ddpm.sample(1000),
    "ddim 10 steps": ddpm.sample(1000, sampler="ddim", steps=10),
    "ddim 50 steps": ddpm.sample(1000, sampler="ddim", steps=min(50, ddpm.timesteps)),
    "ncsn": ncsn.sample(1000, steps=5 if FAST else None),
}
fig, axes = plt.subplots(1, len(draws), figsize=(3 * len(draws), 3))
for ax, (label, x) in zip(axes, draws.items(), strict=True):
    q = quality.compare(toy.test[:1000], x, "toy2d", "real", "moons")
    ax.scatter(x[:, 0], x[:, 1], s=2)
    ax.set_title(f"{label}\nMMD² {q['mmd']['value']:.3f}, C2ST {q['c2st']['value']:.2f}", fontsize=8)
    ax.axis("off")
fig.savefig(OUT / "09_samplers.png", dpi=120)
plt.close(fig)

# %% [markdown]
# The reverse chain is a chain like any other: ArviZ reads its per-step statistics.

# %%
chains = ddpm.reverse_chain(8, record_every=max(ddpm.timesteps // 10, 1))
idata = chains.to_inference_data()
print(idata.sample_stats[["t", "noise_std", "grad_norm"]].mean("chain").to_dataframe().tail(3))

# %% [markdown]
# Every step-wise sampler is a scheduler in the manner of diffusers': a list of `timesteps` and a
# `step(output, i, x) -> (x_prev, x0_hat)`; `run_scheduler` is the one loop that calls the network. Driving a
# scheduler by hand (DDIM, 10 steps, deterministic) lands where `ddim` does from the same start.

# %%
scheduler = D.DDIMScheduler(ddpm.schedule, steps=10)
start = torch.randn(4, 2)
ddpm.eval()
with torch.no_grad():
    x = start
    for i in range(len(scheduler.timesteps)):
        eps = ddpm.eps(x, scheduler.network_time(i, x))  # the EMA weights
        x, x0_hat = scheduler.step(eps, i, x)
    same = D.ddim(lambda z, t: ddpm.eps(z, t), ddpm.schedule, start, steps=10).samples[:, -1]
print("by hand:", x[0].numpy().round(3), " ddim():", same[0].numpy().round(3), " equal:", torch.equal(x, same))

# %% [markdown]
# ## 4. A score SDE and its exact likelihood
# The probability-flow ODE turns the VP SDE's score model into a density: log p(x) by the instantaneous
# change of variables, with the exact divergence in 2-D (Hutchinson's estimator in high dimension).

# %%
sde = train("score-sde", toy, 40 if FAST else 10000, ode_tol=1e-3 if FAST else 1e-5)
print(f"VP-SDE test NLL through the probability flow: {float(-sde.log_prob(toy.test[:200]).mean()):.3f} nats")

# %% [markdown]
# ## 5. Digits: samples, classifier-free guidance, inpainting, latent diffusion
# A class-conditional DDPM (labels dropped 10% of the time) steers its samples toward a label with
# guidance w; RePaint completes the bottom half of a digit; latent diffusion runs a DDPM over a VAE's codes.

# %%
steps = 20 if FAST else 8000
T = 20 if FAST else 1000
cond = train("ddpm", digits, steps, classes=10, timesteps=T)
pyro.set_rng_seed(0)
for w in (0.0, 3.0):
    s = torch.cat([cond.sample(4, y=y, sampler="ddim", steps=min(50, T), guidance=w) for y in range(10)])
    _, probs = quality.image_features(s, "unit_interval")
    asked = torch.arange(10).repeat_interleave(4)
    agree = float((probs.argmax(-1) == asked).float().mean())
    print(f"guidance {w}: the classifier reads the asked-for label on {agree:.2f}")
# the same network unconditionally (the "no label" token), by the ancestral chain and by DDIM, and NCSN's
# annealed Langevin samples of the digits
ncsn_digits = train("ncsn", digits, steps)
pyro.set_rng_seed(0)
grids = {
    "ddpm ancestral": cond.sample(16),
    "ddim 10 steps": cond.sample(16, sampler="ddim", steps=10),
    "ncsn": ncsn_digits.sample(16, steps=5 if FAST else None),
}
fig, axes = plt.subplots(len(grids), 16, figsize=(12, 2.6))
for row, (label, imgs) in enumerate(grids.items()):
    for i in range(16):
        axes[row, i].imshow(imgs[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, i].axis("off")
    axes[row, 0].set_title(label, fontsize=7, loc="left")
fig.savefig(OUT / "09_digit_samples.png", dpi=120)
plt.close(fig)

known = torch.zeros(1, 8, 8, dtype=torch.bool)
known[:, :4] = True
filled = cond.inpaint(digits.test[:8], known, method="repaint", resample=2 if FAST else 5, y=digits.labels["test"][:8])
fig, axes = plt.subplots(2, 8, figsize=(8, 2))
for i in range(8):
    axes[0, i].imshow(digits.test[i, 0].numpy(), cmap="gray")
    axes[1, i].imshow(filled[i, 0].numpy(), cmap="gray")
    axes[0, i].axis("off")
    axes[1, i].axis("off")
fig.savefig(OUT / "09_inpainting.png", dpi=120)
plt.close(fig)

latent = train("latent-diffusion", digits, 40 if FAST else 8000, vae_steps=20 if FAST else 3000, timesteps=T)
pyro.set_rng_seed(0)
q = quality.compare(digits.test, latent.sample(len(digits.test)), "image", "unit_interval", "digits")
print(f"latent diffusion samples: FID {q['fid']['value']:.2f}")

# %% [markdown]
# ## 6. Text to image: captions, cross-attention, guidance
# ``text-diffusion`` is latent diffusion with a caption: each training digit is captioned from its label and
# its measured thickness, size and slant ("a thick small seven leaning right", ``pyrogen.data.captions``); a
# small transformer reads the caption, and the U-Net over the VAE's 2 x 4 x 4 codes cross-attends to its tokens.
# Dropping 10% of the captions teaches the same network the empty caption, which classifier-free guidance
# steers away from. A word the captions never use is refused by name.

# %%
from pyrogen.data import captions  # noqa: E402

print(captions.captions(digits.test[:4], digits.labels["test"][:4]))
t2i = train("text-diffusion", digits, 60 if FAST else 12000, vae_steps=20 if FAST else 3000, timesteps=T)
prompts = ["a thick three", "a thin three", "a large seven", "a small seven"]
prompts += ["a four leaning left", "a four leaning right"]
fig, axes = plt.subplots(len(prompts), 8, figsize=(8, len(prompts) * 1.1))
for row, prompt in enumerate(prompts):
    pyro.set_rng_seed(0)
    images = t2i.sample(8, prompt=prompt, sampler="ddim", steps=10 if FAST else 50, guidance=3.0)
    print(f"{prompt!r}: on the asked side of the digit's median {captions.matches(images, prompt)}")
    for i in range(8):
        axes[row, i].imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axes[row, i].axis("off")
    axes[row, 0].set_title(prompt, fontsize=7, loc="left")
fig.savefig(OUT / "09_text_to_image.png", dpi=120)
plt.close(fig)
try:
    t2i.sample(1, prompt="a purple seven")
except ValueError as e:
    print(e)
