"""Tutorial 4 — variational autoencoders: samples, reconstructions, interpolation, imputation, a 2-D latent map,
rate-distortion.

Run it as a script (``python tutorials/04_vae.py``); with ``PYROGEN_FAST=1``
it trains for a few steps only (the test suite runs it that way). Figures go
to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of the full run
are in docs/ (the family's page), measured by ``benchmarks/latent.py``.
"""

# %% [markdown]
# ## 1. A VAE is a Pyro model and guide
# ``VAE.model`` draws ``z`` from the prior and ``x`` from the decoder;
# ``VAE.guide`` draws ``z`` from the encoder. Pyro's ``SVI`` trains the pair
# as it is; pyrogen's ``fit`` trains on the fused loss, which a test shows
# equal to Pyro's ELBO on the same seed. Here both, for a few steps each.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

import pyrogen.figures
from pyrogen.data import load
from pyrogen.inference import fit
from pyrogen.latent import class_means, impute, interpolate, latent_arithmetic
from pyrogen.metrics import evaluate_nll
from pyrogen.models import VAE

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)
STEPS = 20 if FAST else 4000
K = 50 if FAST else 1000
digits = load("digits-binary")

vae = VAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256), kl_warmup=1000)
svi = SVI(vae.model, vae.guide, Adam({"lr": 1e-3}), TraceMeanField_ELBO())
for _ in range(5):
    loss = svi.step(digits.train[:128])
print(f"Pyro SVI, 5 steps: loss {loss / 128:.2f} nats per digit")

# %% [markdown]
# ## 2. Train with KL warm-up and early stopping; count the active units
# Without the warm-up a VAE on 1,437 digits collapses: the KL term pushes
# every latent unit to the prior (0 active units) and the NLL is the
# factorized floor of 25.30 nats.

# %%
pyro.set_rng_seed(0)
vae = VAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256), kl_warmup=1000)
result = fit(vae, digits, steps=STEPS)
vae.eval()
nll = evaluate_nll(vae, digits.test[: 100 if FAST else None], k=K)
print(
    f"VAE: test NLL {nll.nll_nats:.2f} ± {nll.nll_stderr:.2f} nats (IWAE-{K}), ELBO {nll.elbo_nats:.2f}; "
    f"active units {vae.active_units(digits.test)} of 16; best step {result.best_step}"
)

# %% [markdown]
# ## 3. Samples and reconstructions

# %%
with torch.no_grad():
    samples = vae.sample(32, mean=True)
    x = digits.test[:16]
    recon = vae.decode(vae.encode(x)[0])
pyrogen.figures.image_grid(samples, OUT / "vae_samples.png", title="VAE samples (pixel probabilities)")
pyrogen.figures.image_grid(
    torch.cat([x, recon]), OUT / "vae_reconstructions.png", title="test digits, reconstructions", cols=16
)

# %% [markdown]
# ## 4. Interpolation, linear and spherical, and latent arithmetic
# Codes are the encoder means. The spherical path keeps the norm of the code
# near that of typical prior draws; latent arithmetic adds the difference of
# two class means (here "0" to "6") to every test "0".

# %%
a, b = digits.test[0], digits.test[1]
rows = [interpolate(vae, a, b, steps=10, method=m) for m in ("linear", "spherical")]
pyrogen.figures.image_grid(
    torch.cat(rows), OUT / "vae_interpolation.png", title="linear (top), spherical (bottom)", cols=10
)
means = class_means(vae, digits.train, digits.labels["train"], classes=10)
zeros = digits.test[digits.labels["test"] == 0][:8]
moved = latent_arithmetic(vae, zeros, means[0], means[6])
pyrogen.figures.image_grid(torch.cat([zeros, moved]), OUT / "vae_arithmetic.png", title="0 + (mean 6 - mean 0)", cols=8)

# %% [markdown]
# ## 5. Imputation: the bottom half from the top half
# Pseudo-Gibbs sampling alternates z ~ q(z | x) and the missing pixels ~ p(x | z),
# holding the known pixels fixed; the running mean of E[x | z] estimates the
# missing half.

# %%
top = torch.zeros(1, 8, 8, dtype=torch.bool)
top[:, :4] = True
x = digits.test[:10]
draw, mean = impute(vae, x, top, steps=20 if FAST else 200, burn_in=5 if FAST else 50)
shown = torch.where(top, x, torch.full_like(x, 0.5))
pyrogen.figures.image_grid(
    torch.cat([x, shown, mean]), OUT / "vae_imputation.png", title="digits, top halves, imputed", cols=10
)
accuracy = float(((mean[:, :, 4:] > 0.5).float() == x[:, :, 4:]).float().mean())
print(f"imputed bottom halves of 10 test digits: pixel accuracy {accuracy:.3f}")

# %% [markdown]
# ## 6. A 2-D latent space as a map
# With two latent units the codes of the test digits can be drawn directly,
# and a grid of decoded points shows what each region means.

# %%
pyro.set_rng_seed(0)
vae2 = VAE(event_shape=(1, 8, 8), latent_dim=2, hidden=(256, 256), kl_warmup=1000)
fit(vae2, digits, steps=STEPS)
vae2.eval()
with torch.no_grad():
    codes = vae2.encode(digits.test)[0]
    g = torch.linspace(-2.5, 2.5, 12)
    grid = torch.stack(torch.meshgrid(g, g.flip(0), indexing="xy"), -1).reshape(-1, 2)
    tiles = torch.nn.functional.pad(vae2.decode(grid).reshape(144, 8, 8), (0, 1, 0, 1), value=0.5)  # grey seams
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 5))
sc = ax1.scatter(*codes.T.numpy(), c=digits.labels["test"].numpy(), cmap="tab10", s=8)
fig.colorbar(sc, ax=ax1, label="digit")
ax1.set_title("test digits in a 2-D latent space")
ax2.imshow(tiles.reshape(12, 12, 9, 9).permute(0, 2, 1, 3).reshape(108, 108).numpy(), cmap="gray")
ax2.set_title("decoded grid over [-2.5, 2.5]^2")
ax2.axis("off")
fig.savefig(OUT / "vae_latent_map.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 7. Rate and distortion as beta moves
# The beta-VAE weights the KL (the rate, in nats) against the reconstruction
# NLL (the distortion); beta is applied by ``poutine.scale`` on ``z`` in the
# model and the guide. Larger beta: less rate, more distortion.

# %%
rates, distortions = [], []
for beta in (0.25, 0.5, 1.0, 2.0, 4.0):
    pyro.set_rng_seed(0)
    m = VAE(event_shape=(1, 8, 8), latent_dim=16, hidden=(256, 256), kl_warmup=1000, beta=beta)
    fit(m, digits, steps=STEPS)
    m.eval()
    with torch.no_grad():
        rec, neg_kl = m.elbo_terms(digits.test, None, 20, analytic=True)
    rates.append(float(-neg_kl.mean()))
    distortions.append(float(-rec.mean()))
    print(f"beta {beta:<5} rate {rates[-1]:6.2f}  distortion {distortions[-1]:6.2f} nats")
fig, ax = plt.subplots(figsize=(4, 4))
ax.plot(rates, distortions, "o-")
for beta, r, d in zip((0.25, 0.5, 1.0, 2.0, 4.0), rates, distortions, strict=True):
    ax.annotate(f"β={beta}", (r, d))
ax.set_xlabel("rate: KL(q || p), nats")
ax.set_ylabel("distortion: -E log p(x | z), nats")
fig.savefig(OUT / "vae_rate_distortion.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 8. Autoencoders: a representation without a density
# A deterministic autoencoder has no prior over its codes: it does not sample and has no likelihood
# (``density = "none"``), but its codes are a representation and its reconstruction error an outlier score.
# The five recipes share one class: ``autoencoder``, ``denoising-ae`` (inputs zeroed at random, the clean
# digit reconstructed), ``sparse-ae`` (a KL penalty holds each code unit's mean activation near 0.05),
# ``contractive-ae`` (the code's Jacobian penalized, exactly) and ``stacked-ae`` (greedy layer-wise
# pre-training in parameter groups, then fine-tuning).

# %%
from pyrogen.metrics import auroc, knn_accuracy, linear_probe  # noqa: E402
from pyrogen.models import registry  # noqa: E402

grey = load("digits")
for name in ("autoencoder", "denoising-ae", "sparse-ae"):
    torch.manual_seed(0)
    ae = registry.from_dataset(name, grey)
    fit(ae, grey, steps=STEPS)
    ae.eval()
    with torch.no_grad():
        codes_train, codes_test = ae.encode(grey.train), ae.encode(grey.test)
        inlier, outlier = ae.reconstruction_error(grey.test), ae.reconstruction_error(grey.test.flip(-2))
    probe = linear_probe(codes_train, grey.labels["train"], codes_test, grey.labels["test"])
    knn = knn_accuracy(codes_train, grey.labels["train"], codes_test, grey.labels["test"])
    print(
        f"{name:<13} probe {probe:.3f}  5-NN {knn:.3f}  mean code {float(codes_test.mean()):.3f}  "
        f"AUROC upside-down digits {auroc(inlier, outlier):.3f}"
    )
try:
    ae.sample(4)
except NotImplementedError as e:
    print(e)

# %% [markdown]
# ## 8a. Two stochastic levels: the hierarchical and the ladder VAE
# ``hvae`` infers bottom-up, q(z1 | x) q(z2 | z1); ``ladder-vae`` (Sønderby et al., 2016) infers top-down
# through the generative path: q(z2 | x), then q(z1 | z2, x), the precision-weighted product of a bottom-up
# Gaussian and the prior p(z1 | z2). Its KL terms are in closed form, so its ELBO is Pyro's
# ``TraceMeanField_ELBO`` on the pair, on the same seed. The registered recipe trains it with free bits
# (Kingma et al., 2016: a unit's KL counts at least 0.25 nats in z1 and 0.5 in z2 while training), which
# keeps its top level from being switched off; ``active_units_per_level`` counts the units each level uses.

# %%
from pyrogen.models import registry  # noqa: E402

x = digits.test[:64]
for name in ("hvae", "ladder-vae"):
    torch.manual_seed(0)
    two = registry.create(name)
    result = fit(two, digits, steps=STEPS)
    two.eval()
    nll = evaluate_nll(two, digits.test[: 100 if FAST else None], k=K)
    print(
        f"{name}: test NLL {nll.nll_nats:.2f} ± {nll.nll_stderr:.2f} nats (IWAE-{K}); active units per level "
        f"{two.active_units_per_level(digits.test)}; best step {result.best_step}"
    )
pyro.set_rng_seed(1)
fused = -two.elbo(x).mean()
pyro.set_rng_seed(1)
by_pyro = TraceMeanField_ELBO().differentiable_loss(two.model, two.guide, x) / len(x)
print(f"ladder: fused negative ELBO {fused.item():.4f} == Pyro's TraceMeanField_ELBO {by_pyro.item():.4f}")

# %% [markdown]
# ## 8b. A progressive ladder: levels grown top first
# ``pro-vae`` injects three levels of latents at three depths of one decoder and trains the deepest first,
# fading each lower level in later (pro-VLAE, Li et al., 2020). ``alphas()`` is each level's fade-in weight;
# ``active_units_per_level`` counts the units each level uses.

# %%
from pyrogen.models import ProVAE  # noqa: E402

torch.manual_seed(0)
pro = ProVAE(grow_every=STEPS // 4, fade_steps=STEPS // 8)
fit(pro, digits, steps=STEPS)
pro.eval()
print("pro-vae fade-in weights, bottom to top:", pro.alphas())
print("active units per level:", pro.active_units_per_level(digits.test))

# %% [markdown]
# ## 9. TD-VAE: a state that predicts jumps ahead, on moving digits
# ``moving-digits`` are the binarized digits moving one pixel a frame in a 16 x 16 frame, bouncing off the
# walls (16 frames; ``positions`` holds where each digit is). TD-VAE (Gregor et al., 2019) keeps a belief
# (an LSTM over the frames seen) and learns a state whose transition jumps 1 to ``max_jump`` frames ahead;
# its objective is the ELBO of a small Pyro program per jump (``TDVAE.model`` and ``TDVAE.guide``). A
# rollout observes the first frames, draws the state from the belief, and jumps.

# %%
from pyrogen.models import TDVAE  # noqa: E402

movies = load("moving-digits")
torch.manual_seed(0)
td = TDVAE()
fit(td, movies, steps=STEPS)
td.eval()
predicted = td.rollout(movies.test[:4, :4], steps=6)  # frames 4..9 from frames 0..3
fig, axes = plt.subplots(8, 10, figsize=(8, 6.4))
for i in range(4):
    for t in range(10):
        axes[2 * i, t].imshow(movies.test[i, t, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        if t >= 4:
            axes[2 * i + 1, t].imshow(predicted[i, t - 4, 0].numpy(), cmap="gray_r", vmin=0, vmax=1)
for a in axes.flat:
    a.axis("off")
fig.savefig(OUT / "tdvae_rollouts.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print("TD-VAE rollouts (true rows above, predicted below):", OUT / "tdvae_rollouts.png")

# %% [markdown]
# ## 10. A VRNN on spoken digits
# ``spoken-digits`` are log-mel frames (40 frames of 20 bands) of the words zero to nine, synthesized offline by
# eSpeak NG, the parts by speaker. The VRNN (Chung et al., 2015) has a latent variable at every step with a
# prior from the LSTM's state; its Pyro program runs over ``pyro.markov`` steps, and its ELBO and IWAE bounds
# score held-out voices.

# %%
from pyrogen.models import VRNN  # noqa: E402

speech = load("spoken-digits")
torch.manual_seed(0)
vrnn = VRNN()
fit(vrnn, speech, steps=STEPS)
vrnn.eval()
with torch.no_grad():
    per_frame = -float(vrnn.iwae(speech.test, k=10).mean()) / speech.event_shape[0]
print(f"VRNN test bound (IWAE, k = 10): {per_frame:.3f} nats per frame of 20 standardized bands")
fig, axes = plt.subplots(2, 4, figsize=(8, 3.4))
for i, x in enumerate((*speech.test[:4], *vrnn.sample(4))):
    axes.flat[i].imshow(x.T.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-2.5, vmax=2.5)
    axes.flat[i].axis("off")
fig.savefig(OUT / "vrnn_spectrograms.png", dpi=80, bbox_inches="tight")
plt.close(fig)
print(f"figures in {OUT}")
