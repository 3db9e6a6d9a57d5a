"""Tutorial 2 — autoregressive models: exact likelihoods, samples, inpainting, text and outlier scores.

Run it as a script (``python tutorials/02_autoregressive.py``); with
``PYROGEN_FAST=1`` it trains for a few steps only (the test suite runs it that
way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers
of the full run are in docs/ (the family's page), measured by ``benchmarks/autoregressive.py``.
"""

# %% [markdown]
# ## 1. Every model on the binarized digits, one table
# Each model is a Pyro distribution over the whole image, with an exact
# ``log_prob``; ``fit`` trains it by maximum likelihood with early stopping on
# the validation part. PixelCNN reads the earlier pixels through masked
# convolutions (one pass, a blind spot above-right); PixelRNN through
# two-dimensional LSTMs: the Diagonal BiLSTM sweeps the image's diagonals in
# both directions and sees every earlier pixel, at the cost of a sequential
# pass over the diagonals.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

import pyrogen
import pyrogen.figures
from pyrogen.inference import fit
from pyrogen.metrics import evaluate_nll
from pyrogen.models import MADE, NADE, CharRNN, GatedPixelCNN, PixelCNN, PixelRNN, Transformer, registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)
pyro.set_rng_seed(0)
digits = pyrogen.data.load("digits-binary")
STEPS = 4 if FAST else 2000

models = {
    "fvsbn": pyrogen.models.FVSBN(),
    "nade": NADE(hidden=128),
    "made": MADE(hidden=(256, 256), num_masks=4),
    "pixelcnn": PixelCNN(features=32, layers=3),
    "gated-pixelcnn": GatedPixelCNN(features=32, layers=5),
    "pixelrnn": PixelRNN(),  # Diagonal BiLSTM; PixelRNN(cell="row-lstm") for the Row LSTM
    "transformer": Transformer(dim=64, layers=2),
}
table = {}
for name, m in models.items():
    fit(m, digits, steps=STEPS, val_every=2 if FAST else 50)  # its recipe's settings, these two changed
    m.eval()
    table[name] = evaluate_nll(m, digits.test)
    print(f"{name:<16} test NLL {table[name].nll_nats:6.2f} ± {table[name].nll_stderr:.2f} nats")
print("factorized Bernoulli floor 25.30 (independent pixels; tests/test_data.py)")

# %% [markdown]
# ## 2. Samples, and the bottom half of test digits given the top half
# Sampling is ancestral, one pixel at a time. Completion uses the model's own
# ordering: the top rows come first in raster order, so every model here can
# condition on them exactly.

# %%
best = min(table, key=lambda k: table[k].nll_nats)
model = models[best]
samples = model.sample(16)
observed = torch.zeros(1, 8, 8, dtype=torch.bool)
observed[:, :4] = True
test = digits.test[:8]
filled = model.complete(test, observed)
assert torch.equal(filled[:, :, :4], test[:, :, :4])
fig, axes = plt.subplots(3, 8, figsize=(8, 3.2))
for i in range(8):
    for row, img in enumerate((samples[i], test[i], filled[i])):
        axes[row, i].imshow(img[0].numpy(), cmap="gray_r", vmin=0, vmax=1)
        axes[row, i].axis("off")
axes[0, 0].set_title(f"{best}: samples", loc="left", fontsize=8)
axes[1, 0].set_title("test digits", loc="left", fontsize=8)
axes[2, 0].set_title("bottom half completed from the top half", loc="left", fontsize=8)
fig.savefig(OUT / "autoregressive_samples.png", dpi=100)
plt.close(fig)
print("best model:", best, "- figure", OUT / "autoregressive_samples.png")

# %% [markdown]
# MADE trained over several orderings can condition on *any* subset: here the
# left half given the right half, which raster-order models cannot do exactly.

# %%
made = models["made"]
right = torch.zeros(1, 8, 8, dtype=torch.bool)
right[..., 4:] = True
left_filled = made.complete(test, right)
print("MADE completed the left halves; right halves kept:", torch.equal(left_filled[..., 4:], test[..., 4:]))

# %% [markdown]
# ## 3. Colour: R -> G -> B within a pixel
# ``digits-rgb`` draws every binarized digit in one of seven colours. A
# PixelCNN's colour masks order the three channels of a pixel, so the green
# bit of a pixel is predicted from its red bit and the blue bit from both:
# once the first stroke pixel has picked a colour, the rest of the digit
# follows it. A model that learned this pays log 7 = 1.95 nats for the colour
# on top of the binary digit.

# %%
rgb = pyrogen.data.load("digits-rgb")
colour = registry.from_dataset(PixelCNN, rgb, features=48, layers=4)
fit(colour, rgb, steps=STEPS, val_every=2 if FAST else 50)
colour.eval()
print(f"colour digits: PixelCNN {evaluate_nll(colour, rgb.test).nll_nats:.2f} nats")
with torch.no_grad():
    coloured = colour.sample(16)
pyrogen.figures.image_grid(coloured, OUT / "autoregressive_colour_samples.png", "PixelCNN on digits-rgb")

# %% [markdown]
# ## 4. Outlier scores
# :math:`-\log p(x)` ranks digits below uniform noise with the same pixel mean.

# %%
noise = torch.bernoulli(torch.full((len(digits.test), 1, 8, 8), float(digits.train.mean())))
with torch.no_grad():
    score_digits, score_noise = -model.log_prob(digits.test), -model.log_prob(noise)
auc = (score_noise[:, None] > score_digits[None, :]).double().mean()
print(f"outlier score AUC, noise vs test digits: {float(auc):.3f}")

# %% [markdown]
# ## 5. Characters: a char-RNN and a transformer on Python source, against n-grams
# The bundled corpus is CPython's standard library; 128 characters per example.

# %%
text = pyrogen.data.load("text")
char_models = {
    "char-rnn": registry.from_dataset(CharRNN, text, hidden=128),
    "transformer": registry.from_dataset(Transformer, text, dim=64, layers=2),
}
for name, m in char_models.items():
    fit(m, text.train, text.val, batch_size=32, lr=3e-3, steps=3 if FAST else 600, val_every=50, grad_clip=1.0)
    m.eval()
    res = evaluate_nll(m, text.test[: 16 if FAST else None])
    print(f"{name:<12} {res.nll_nats / (128 * 0.6931471805599453):.3f} bits per character")
sample = char_models["char-rnn"].sample(1, temperature=0.8)[0]
print("char-rnn sample at temperature 0.8:")
print("".join(text.vocab[i] for i in sample.tolist()))
