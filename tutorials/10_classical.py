"""Tutorial 10 — the models generative modelling grew from: a Bayesian network queried by enumeration, naive Bayes
against logistic regression with features missing, a Gaussian mixture by EM, SVI and NUTS, and an RBM's samples
and filters, and a deep Boltzmann machine pre-trained layer by layer.

Run it as a script (``python tutorials/10_classical.py``); with ``PYROGEN_FAST=1`` it runs for a few steps only
(the test suite runs it that way). Figures go to ``tutorial-output/`` (or ``$PYROGEN_OUT``). The numbers of the
full run are in docs/ (the family's page), measured by ``benchmarks/classical.py``.
"""

# %% [markdown]
# ## 1. The student network, queried by Pyro's enumeration
# A DAG and its tables make a Pyro program whose sites are the nodes; exact marginals come from
# ``TraceEnum_ELBO.compute_marginals`` and the most probable explanation from ``infer_discrete``.

# %%
import os
from pathlib import Path

import arviz as az
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch
from pyro.infer import SVI, TraceEnum_ELBO
from sklearn.linear_model import LogisticRegression

from pyrogen.data import load
from pyrogen.inference import TrainConfig, fit
from pyrogen.models import DBM, RBM, BayesNet, GaussianMixture, NaiveBayes, registry

FAST = os.environ.get("PYROGEN_FAST") == "1"
OUT = Path(os.environ.get("PYROGEN_OUT", "tutorial-output"))
OUT.mkdir(parents=True, exist_ok=True)

net = BayesNet()  # the student network of Koller and Friedman
print("P(intelligent)                      ", round(float(net.query("intelligence")[1]), 3))
print("P(intelligent | grade C)            ", round(float(net.query("intelligence", {"grade": 2})[1]), 3))
print(
    "P(intelligent | grade C, hard exam) ", round(float(net.query("intelligence", {"grade": 2, "difficulty": 1})[1]), 3)
)
print("most probable explanation of a weak letter:", net.map_assignment({"letter": 0}))

# its tables learned back from 2000 rows, and with a third of the grades missing (summed out)
student = load("student")
learned = registry.from_dataset(BayesNet, student).fit_counts(student.train)
print(
    "largest table error from counts:",
    round(max(float((a - b).abs().max()) for a, b in zip(learned.tables(), net.tables(), strict=True)), 3),
)

# %% [markdown]
# ## 2. Naive Bayes against logistic regression, and features that are missing
# The same log-linear classifier, fit generatively (counts) or discriminatively. Naive Bayes sums a missing
# pixel out; logistic regression has to be given a value for it.

# %%
digits = load("digits-binary")
xtr, ytr, xte, yte = digits.train.flatten(1), digits.labels["train"], digits.test.flatten(1), digits.labels["test"]
nb = NaiveBayes((64,), classes=10).fit_counts(xtr, ytr)
lr = LogisticRegression(max_iter=2000).fit(xtr.numpy(), ytr.numpy())
g = torch.Generator().manual_seed(0)
for frac in (0.0, 0.5, 0.8):
    observed = torch.rand(xte.shape, generator=g) >= frac
    nb_acc = float((nb.predict(xte, observed) == yte).float().mean())
    lr_acc = lr.score(torch.where(observed, xte, xtr.mean(0)).numpy(), yte.numpy())
    print(f"{frac:.0%} of pixels missing: naive Bayes {nb_acc:.3f}, logistic regression (mean-imputed) {lr_acc:.3f}")

# %% [markdown]
# ## 3. A Gaussian mixture three ways
# EM's log-likelihood never decreases; SVI on ``TraceEnum_ELBO`` (the assignment enumerated) maximizes the same
# likelihood by gradient; NUTS samples a Bayesian mixture with the assignment summed out, and ArviZ
# diagnoses it after the components are relabelled by their means.

# %%
toy = load("8gaussians")
torch.manual_seed(0)
em = registry.from_dataset(GaussianMixture, toy, components=8)
history = em.fit_em(toy.train, iters=5 if FAST else 200)
print(f"EM: {len(history)} iterations, log-likelihood {history[0]:.3f} -> {history[-1]:.3f}")
torch.manual_seed(0)
svi_model = registry.from_dataset(GaussianMixture, toy, components=8)
svi = SVI(svi_model.model, svi_model.guide, pyro.optim.Adam({"lr": 0.01}), TraceEnum_ELBO(max_plate_nesting=1))
for _ in range(5 if FAST else 1000):
    svi.step(toy.train[:2048])
with torch.no_grad():
    svi_ll, em_ll = float(svi_model.log_prob(toy.test).mean()), float(em.log_prob(toy.test).mean())
print(f"SVI: test log-likelihood {svi_ll:.3f} (EM {em_ll:.3f})")
bayes = registry.from_dataset(GaussianMixture, toy, components=8, covariance="diag")
n = 5 if FAST else 100
idata = bayes.nuts(toy.train[: 40 if FAST else 300], num_samples=n, warmup_steps=n)
print(az.summary(idata, var_names=["weights"]).loc[:, ["mean", "sd", "r_hat"]].head(3))

# %% [markdown]
# ## 4. An RBM: samples by block Gibbs and its filters
# With 16 hidden units log Z is exact by enumeration; the Gibbs chain is diagnosed like any other.

# %%
pyro.set_rng_seed(0)
rbm = registry.from_dataset(RBM, digits, hidden=16)
fit(rbm, digits.train, digits.val, steps=30 if FAST else 6000, batch_size=64, lr=0.01, val_every=500, progress=False)
print(f"RBM test NLL {-rbm.log_prob(digits.test).mean().item():.2f} nats (exact log Z)")
chains = rbm.gibbs_chains(16, steps=20 if FAST else 1000, record_every=10 if FAST else 100)
print("free energy along the chains:", chains.stats["energy"].mean(0)[-3:].tolist())
fig, axes = plt.subplots(2, 8, figsize=(8, 2))
for i in range(8):
    axes[0, i].imshow(chains.samples[i, -1].reshape(8, 8).numpy(), cmap="gray")
    axes[1, i].imshow(rbm.W.detach()[:, i].reshape(8, 8).numpy(), cmap="RdBu")
    axes[0, i].axis("off")
    axes[1, i].axis("off")
fig.savefig(OUT / "10_rbm.png", dpi=120)
plt.close(fig)

# %% [markdown]
# ## 5. A deep Boltzmann machine: layer-wise pre-training, then mean field and persistent chains
# ``dbm`` trains in three phases (parameter groups ``layer1``, ``layer2``, ``dbm``). Given the first hidden layer the
# visible units and the second layer are independent, so log Z sums both out; with 16 units in the first layer it
# is enumerated exactly here (the registered 64-16 machine uses AIS). The mean-field bound sits below the exact
# log p(v) by the KL from the factorized posterior to the true one.

# %%

pyro.set_rng_seed(0)
dbm = registry.from_dataset(DBM, digits, hidden=(16, 8), pretrain_steps=10 if FAST else 2000)
cfg = TrainConfig(steps=30 if FAST else 8000, batch_size=64, lr=0.005, val_every=10 if FAST else 500)
result = fit(dbm, digits.train, digits.val, cfg, progress=False)
print(
    f"DBM test NLL {-dbm.log_prob(digits.test).mean().item():.2f} nats (log Z exact), best at step {result.best_step}"
)
with torch.no_grad():
    gap = dbm.unnormalized_log_prob(digits.test.flatten(1)) - dbm.mean_field_bound(digits.test)
print(f"mean-field gap (the KL to the exact posterior): {gap.mean().item():.3f} nats per digit")
fig, axes = plt.subplots(1, 8, figsize=(8, 1))
for ax, x in zip(axes, dbm.sample(8, steps=20 if FAST else 1000), strict=True):
    ax.imshow(x.reshape(8, 8).numpy(), cmap="gray")
    ax.axis("off")
fig.savefig(OUT / "10_dbm.png", dpi=120)
plt.close(fig)

# %% [markdown]
# ## 6. Kernel density estimation: fine in two dimensions, poor in 64
# ``kde`` puts a Gaussian on every training point. Its bandwidth starts at Scott's rule and ``fit`` trains it by the
# leave-one-out likelihood of the training points, keeping the value best on the validation part. On a 2-D toy
# the estimate is close to the best possible NLL (the density's entropy); on the 64-pixel digits every point is
# far from its neighbours and the estimate is worse than a 10-component mixture. The outlier scores are minus
# the log-density, as for every model with one (``pyrogen.metrics.outlier_scores``).

# %%
from pyrogen.data.toys import TOY_ENTROPY  # noqa: E402
from pyrogen.metrics import auroc, evaluate_nll, outlier_scores  # noqa: E402
from pyrogen.models import HiddenMarkovModel, KernelDensity  # noqa: E402

rings = load("rings")
kde = registry.from_dataset(KernelDensity, rings)
scott = kde.bandwidth().item()
fit(kde, rings, steps=5 if FAST else 100)
with torch.no_grad():
    nll = -kde.log_prob(rings.test[: 500 if FAST else None]).mean().item()
print(f"KDE on rings: bandwidth {scott:.3f} (Scott) -> {kde.bandwidth().item():.3f} (cross-validated)")
print(f"test NLL {nll:.3f} nats; the best possible is {TOY_ENTROPY['rings']:.3f}")
far = rings.test[:500] * 1.6  # the rings stretched: points off the data's circles
print(f"outliers told from inliers, AUROC {auroc(outlier_scores(kde, rings.test[:500]), outlier_scores(kde, far)):.3f}")
grey = load("digits")
kde64 = registry.from_dataset(KernelDensity, grey)
fit(kde64, grey, steps=5 if FAST else 100)
bpd = evaluate_nll(kde64, grey.test, levels=17).bits_per_dim
print(f"KDE on the 64-pixel digits: {bpd:.3f} bits/dim (with the log2 17 correction)")

# %% [markdown]
# ## 7. A hidden Markov model of characters
# ``hmm`` sums its hidden chain out by the forward algorithm; the same model is a Pyro program with every state
# enumerated (``TraceEnum_ELBO`` is exactly minus its log-likelihood) and Pyro's ``DiscreteHMM``. Baum-Welch
# trains it; Viterbi decodes the most probable states, here of the first characters of a test line.

# %%
text = load("text")
pyro.set_rng_seed(0)
chars = registry.from_dataset(HiddenMarkovModel, text, states=16)
with torch.no_grad():
    chars.trans_logits.normal_()  # random transitions: EM cannot leave a symmetric start
history = chars.fit_em(text.train[: 200 if FAST else None], iters=3 if FAST else 60)
with torch.no_grad():
    bits = -chars.log_prob(text.test).mean().item() / (128 * 0.6931)
print(f"character HMM, 16 states: {bits:.3f} bits per character after {len(history) - 1} EM iterations")
print("most probable states of a test line:", chars.viterbi(text.test[:1])[0, :24].tolist())
