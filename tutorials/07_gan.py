"""Tutorial 7 — GANs as implicit Pyro distributions: losses, divergences, DCGAN digits, cGAN, BiGAN, CycleGAN,
and a digit completed by NUTS through the generator.

Run it as a script (``python tutorials/07_gan.py``); with ``PYROGEN_FAST=1`` it trains for a few steps only
(the test suite runs it that way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of
the full run are in docs/ (the family's page), measured by ``benchmarks/gan.py``.
"""

# %% [markdown]
# ## 1. The 8gaussians modes under three losses
# The same MLP generator and critic, trained by pyrogen's common trainer through two parameter groups
# (``critic``, ``generator``): the minimax loss, the non-saturating loss, and WGAN-GP (five critic updates
# per generator update, a gradient penalty). ``quality.sample_quality`` counts the modes covered and the
# share of samples within three standard deviations of a mode.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

from pyrogen import diagnostics, quality
from pyrogen.data import load
from pyrogen.inference import fit
from pyrogen.latent import generator_posterior
from pyrogen.models import registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
N = 200 if FAST else 1000  # samples scored on the toys


def train(name, data, steps, **options):
    pyro.set_rng_seed(0)
    model = registry.get(name).from_dataset(data, **options)
    fit(model, data, steps=20 if FAST else steps)
    return model.eval()


toy = load("8gaussians")
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, name in zip(axes, ("gan", "ns-gan", "wgan-gp"), strict=True):
    gan = train(name, toy, 3000)
    q = quality.sample_quality(gan, toy, n=N)
    x = gan.sample(1000).numpy()
    ax.scatter(x[:, 0], x[:, 1], s=2)
    modes, hq = q["modes"]["value"], q["high_quality"]["value"]
    ax.set_title(f"{name}: {modes:.0f} modes, {hq:.0%} hq")
    print(f"{name:8} modes {modes:.0f}/8, high quality {hq:.3f}, MMD² {q['mmd']['value']:.4f}")
fig.savefig(OUT / "gan_8gaussians.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 2. f-GAN with three divergences
# The critic's output goes through the divergence's activation into the domain of the conjugate
# :math:`f^*`; its negated loss is the variational lower bound on :math:`D_f(p \,\|\, q)`.

# %%
for divergence in ("kl", "reverse-kl", "hellinger"):
    fg = train("fgan", toy, 3000, divergence=divergence)
    q = quality.sample_quality(fg, toy, n=N)
    print(f"fgan {divergence:11} modes {q['modes']['value']:.0f}/8, high quality {q['high_quality']['value']:.3f}")

# %% [markdown]
# ## 3. DCGAN digits and their quality
# Transposed convolutions with batch norm generate; strided convolutions with LeakyReLU criticize. The
# samples come from an exponential moving average of the generator. FID, KID, precision and recall are
# measured on the shipped digit feature network, like every family's samples.

# %%
digits = load("digits")
dcgan = train("ns-gan", digits, 8000)
q = quality.sample_quality(dcgan, digits)
print({k: round(v["value"], 3) for k, v in q.items() if isinstance(v, dict)})
grid = dcgan.sample(64).reshape(8, 8, 8, 8).permute(0, 2, 1, 3).reshape(64, 64)
plt.figure(figsize=(4, 4))
plt.imshow(grid.numpy(), cmap="gray")
plt.axis("off")
plt.savefig(OUT / "gan_digits.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 4. A GAN inside a Pyro program
# ``as_distribution()`` is an implicit distribution: ``rsample`` is reparameterized, ``log_prob`` raises and
# says what to use instead.

# %%


def program():
    with pyro.plate("images", 4):
        return pyro.sample("x", dcgan.as_distribution())


print("a Pyro program's draw:", tuple(program().shape))
try:
    dcgan.as_distribution().log_prob(digits.test[:1])
except NotImplementedError as err:
    print("log_prob:", str(err)[:80], "...")

# %% [markdown]
# ## 5. cGAN rows per label
# A projection discriminator (Miyato and Koyama, 2018) with the hinge loss; one row of samples per label,
# and the feature network's classifier says whether each carries its label.

# %%
cgan = train("cgan", digits, 8000)
rows = torch.cat([cgan.sample(8, y=y) for y in range(10)])
_, probs = quality.image_features(rows, "unit_interval")
agree = (probs.argmax(-1) == torch.arange(10).repeat_interleave(8)).float().mean()
print(f"cgan: the classifier reads the requested label on {float(agree):.0%} of the samples")
plt.figure(figsize=(4, 5))
plt.imshow(rows.reshape(10, 8, 8, 8).permute(0, 2, 1, 3).reshape(80, 64).numpy(), cmap="gray")
plt.axis("off")
plt.savefig(OUT / "cgan_rows.png", dpi=80, bbox_inches="tight")

# %% [markdown]
# ## 6. The BiGAN encoder as a representation
# The discriminator sees pairs (x, E(x)) and (G(z), z); the encoder it trains is probed linearly.

# %%
from pyrogen.metrics import linear_probe  # noqa: E402

bigan = train("bigan", digits, 8000)
acc = linear_probe(bigan.encode(digits.train), digits.labels["train"], bigan.encode(digits.test), digits.labels["test"])
print(f"bigan codes, linear probe test accuracy {acc:.3f}")

# %% [markdown]
# ## 7. CycleGAN: digits to their negatives, never paired
# Fully convolutional translators change how a digit looks and keep which digit it is: a classifier of
# negatives reads the source label on the translations. (A geometric change, `domain_b="transpose"`, is
# beyond a local map; the GAN page's uses table (docs/gan.md) has both.)

# %%
from sklearn.linear_model import LogisticRegression  # noqa: E402

cycle = train("cyclegan", digits, 8000)
x = digits.test[:8]
panel = torch.cat([x, cycle.translate(x), cycle.translate_back(cycle.translate(x))])
plt.figure(figsize=(6, 2.5))
plt.imshow(panel.reshape(3, 8, 8, 8).permute(0, 2, 1, 3).reshape(24, 64).numpy(), cmap="gray")
plt.axis("off")
plt.savefig(OUT / "cyclegan.png", dpi=80, bbox_inches="tight")
print(f"cyclegan cycle error |F(G(x)) - x| = {float((panel[16:] - x).abs().mean()):.3f} per pixel")
negatives = LogisticRegression(max_iter=2000).fit(
    cycle.to_domain_b(digits.train).flatten(1).numpy(), digits.labels["train"]
)
kept = (negatives.predict(cycle.translate(digits.test).flatten(1).numpy()) == digits.labels["test"].numpy()).mean()
print(f"cyclegan: a classifier of negatives reads the source label on {kept:.3f} of the translations")

# %% [markdown]
# ## 8. A digit completed through the generator by NUTS
# The Pyro model z ~ N(0, I), top-half pixels ~ Bernoulli(G(z)); NUTS samples z (two chains, so ArviZ
# gives R-hat), the bottom half is the posterior mean of G(z).

# %%
binary = load("digits-binary")
top = torch.zeros(1, 8, 8, dtype=torch.bool)
top[:, :4] = True
post = generator_posterior(
    dcgan,
    binary.test[:4],
    top,
    "nuts",
    num_samples=10 if FAST else 200,
    warmup_steps=10 if FAST else 200,
    max_tree_depth=4 if FAST else 10,
)
table = diagnostics.summary(post.idata)
bottom_acc = ((post.mean[:, :, 4:] > 0.5).float() == binary.test[:4, :, 4:]).float().mean()
print(f"NUTS completion: max R-hat {table['r_hat'].max():.2f}, bottom-half pixel accuracy {float(bottom_acc):.3f}")
print(f"figures in {OUT}")
