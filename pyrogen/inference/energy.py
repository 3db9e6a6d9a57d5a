r"""Objectives for energy-based models :math:`p_\theta(x) = e^{f_\theta(x)} / Z_\theta`.

Functions of a log-density network ``log_p`` (``x -> (n,)``, the unnormalized :math:`f_\theta`) and of
tensors, not methods of one model class, so that the EBMs, the implicit-posterior VAE and the score
models share them. Each returns one value per example, the mean of which is the loss to minimize.

- :func:`contrastive_divergence` -- maximum likelihood with the model's samples standing in for the
  intractable :math:`\nabla_\theta \log Z` (Hinton, 2002), with Du and Mordatch's (2019) penalty on the
  squared log densities;
- :func:`score_matching` -- Hyvärinen's (2005) objective
  :math:`\mathbb{E}[\operatorname{tr} \nabla_x^2 f + \tfrac12 \lVert \nabla_x f\rVert^2]`, exactly (the
  Hessian trace by autograd, one backward pass per dimension: small D), sliced (Song et al., 2019,
  random projections, with the variance-reduced form) or denoising (Vincent, 2011);
- :func:`noise_contrastive` -- NCE (Gutmann and Hyvärinen, 2010): logistic regression of data against
  noise of known density, whose optimum is the data density *normalized*, so that a learned
  :math:`\log Z` comes out right.

The objectives that train the energy-based families with them (:class:`ContrastiveDivergence`,
:class:`ScoreMatching`, :class:`NoiseContrastive`, :class:`FlowContrastive`, :class:`AdversarialEnergy`) and the
Boltzmann machines (:class:`GibbsContrastiveDivergence`, the deep machine's :class:`DBMPretraining` and
:class:`MeanFieldPCD`) follow.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.inference.objectives import MaximumLikelihood, Objective

__all__ = [
    "EXACT_MAX_DIM",
    "SCORE_MATCHING",
    "AdversarialEnergy",
    "ContrastiveDivergence",
    "DBMPretraining",
    "EnergyObjective",
    "FlowContrastive",
    "GibbsContrastiveDivergence",
    "MeanFieldPCD",
    "NoiseContrastive",
    "ScoreMatching",
    "contrastive_divergence",
    "noise_contrastive",
    "score",
    "score_matching",
]

LogDensity = Callable[[torch.Tensor], torch.Tensor]

#: the score-matching estimators :func:`score_matching` implements
SCORE_MATCHING = ("exact", "sliced", "sliced-vr", "denoising")


def score(log_p: LogDensity, x: torch.Tensor, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(f(x), grad_x f(x))`` for a batch ``x``; ``create_graph`` keeps the graph (to differentiate again)."""
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        f = log_p(x)
        (g,) = torch.autograd.grad(f.sum(), x, create_graph=create_graph)
    return f, g


def contrastive_divergence(f_data: torch.Tensor, f_model: torch.Tensor, reg: float = 0.0) -> torch.Tensor:
    r"""Per-example :math:`f(x^-) - f(x^+) + \alpha (f(x^+)^2 + f(x^-)^2)`.

    Its gradient in :math:`\theta` is :math:`-(\nabla_\theta f(x^+) - \nabla_\theta f(x^-))`, an estimate of
    minus the log-likelihood gradient :math:`\nabla_\theta f(x^+) - \mathbb{E}_{p_\theta}[\nabla_\theta f]` when
    :math:`x^-` are (detached) samples of the model. ``reg`` (:math:`\alpha`) keeps the log densities near
    zero, which the objective alone leaves free (it is invariant to adding a constant to :math:`f`).

    Args:
        f_data: :math:`f(x^+)` on data, ``(n,)``.
        f_model: :math:`f(x^-)` on model samples, ``(n,)`` (the same ``n``).
        reg: :math:`\alpha \ge 0`.
    """
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
        raise ValueError(f"reg must be a non-negative number; got {reg!r}")
    if f_data.shape != f_model.shape:
        raise ValueError(
            f"f_data and f_model must have the same shape; got {tuple(f_data.shape)}, {tuple(f_model.shape)}"
        )
    return f_model - f_data + reg * (f_data**2 + f_model**2)


def score_matching(
    log_p: LogDensity,
    x: torch.Tensor,
    method: str = "sliced-vr",
    *,
    sigma: float = 0.1,
    projections: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Per-example score-matching objective of the unnormalized log density ``log_p`` at data ``x``.

    - ``"exact"``: :math:`\operatorname{tr} \nabla_x^2 f(x) + \tfrac12 \lVert \nabla_x f(x)\rVert^2`, the
      trace by one backward pass per dimension. Equals the Fisher divergence
      :math:`\tfrac12 \mathbb{E}\lVert \nabla f - \nabla \log p_{data}\rVert^2` up to a constant.
    - ``"sliced"``: :math:`v^\top \nabla_x^2 f\, v + \tfrac12 (v^\top \nabla_x f)^2`, :math:`v \sim N(0, I)`
      (``projections`` of them averaged): unbiased for the exact objective, one Hessian-vector product each.
    - ``"sliced-vr"``: :math:`v^\top \nabla_x^2 f\, v + \tfrac12 \lVert \nabla_x f\rVert^2` (the second term in
      closed form: lower variance).
    - ``"denoising"``: :math:`\tfrac12 \lVert \sigma \nabla_x f(\tilde x) + z\rVert^2` with
      :math:`\tilde x = x + \sigma z`, the regression of the score on :math:`-z/\sigma`, scaled by
      :math:`\sigma^2` (the usual weighting); it matches the score of the data blurred by
      :math:`N(0, \sigma^2 I)`.

    Args:
        log_p: ``x -> (n,)``, differentiable twice in ``x`` (avoid ReLU for the Hessian-based methods).
        x: ``(n, *event_shape)``.
        method: one of :data:`SCORE_MATCHING`.
        sigma: the noise of ``"denoising"``.
        projections: random directions per example for the sliced methods.
        generator: the random numbers of the projections / noise (a fixed one makes a monitor repeatable).
    """
    if method not in SCORE_MATCHING:
        raise ValueError(f"method must be one of {', '.join(SCORE_MATCHING)}; got {method!r}")
    if method == "denoising":
        if not sigma > 0:
            raise ValueError(f"sigma must be positive; got {sigma!r}")
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        _, g = score(log_p, x + sigma * z, create_graph=True)
        return 0.5 * (sigma * g + z).flatten(1).pow(2).sum(-1)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = log_p(x)
        (g,) = torch.autograd.grad(f.sum(), x, create_graph=True)
        flat = g.flatten(1)
        if method == "exact":
            trace = torch.zeros_like(f)
            for i in range(flat.shape[1]):
                (h,) = torch.autograd.grad(flat[:, i].sum(), x, create_graph=True)
                trace = trace + h.flatten(1)[:, i]
            return trace + 0.5 * flat.pow(2).sum(-1)
        if isinstance(projections, bool) or not isinstance(projections, int) or projections < 1:
            raise ValueError(f"projections must be a positive integer; got {projections!r}")
        total = torch.zeros_like(f)
        for _ in range(projections):
            v = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            gv = (g * v).flatten(1).sum(-1)
            (hv,) = torch.autograd.grad(gv.sum(), x, create_graph=True)
            vhv = (hv * v).flatten(1).sum(-1)
            second = 0.5 * gv**2 if method == "sliced" else 0.5 * flat.pow(2).sum(-1)
            total = total + vhv + second
        return total / projections


def noise_contrastive(
    log_model_data: torch.Tensor,
    log_noise_data: torch.Tensor,
    log_model_noise: torch.Tensor,
    log_noise_noise: torch.Tensor,
    nu: float = 1.0,
) -> torch.Tensor:
    r"""NCE's per-data-example loss with ``nu`` noise draws per data point (Gutmann and Hyvärinen, 2010):

    .. math:: -\log \sigma(G(x)) - \nu\, \mathbb{E}_{y \sim q}[\log(1 - \sigma(G(y)))],\qquad
              G(u) = \log p_\theta(u) - \log \nu q(u),

    where :math:`\log p_\theta = f_\theta - \log Z` includes a *learned* :math:`\log Z`: the optimum is
    :math:`p_\theta = p_{data}`, normalized, when the noise covers the data.

    Args:
        log_model_data, log_noise_data: :math:`\log p_\theta(x)`, :math:`\log q(x)` on ``n`` data points.
        log_model_noise, log_noise_noise: the same on ``nu * n`` noise draws (``(nu * n,)``).
        nu: noise draws per data point.
    """
    if not nu > 0:
        raise ValueError(f"nu must be positive; got {nu!r}")
    log_nu = torch.log(torch.as_tensor(nu, dtype=log_model_data.dtype))
    g_data = log_model_data - log_noise_data - log_nu
    g_noise = log_model_noise - log_noise_noise - log_nu
    n = len(g_data)
    if g_noise.numel() % n:
        raise ValueError(f"the noise terms ({g_noise.numel()}) must be a whole multiple of the data ({n})")
    return F.softplus(-g_data) + F.softplus(g_noise).reshape(-1, n).sum(0)


# -- the objectives ---------------------------------------------------------------------------------------------
#: Up to this many dimensions the score-matching monitor is exact (one backward pass per dimension); sliced above.
EXACT_MAX_DIM = 16


def _flat(model: Any, batch: torch.Tensor) -> torch.Tensor:
    return batch.reshape(len(batch), -1).to(model.b.dtype)


class EnergyObjective(Objective):
    """What the EBMs' objectives share: validation watches the mean score-matching objective of the model's
    ``f`` on the batch, exact up to :data:`EXACT_MAX_DIM` dimensions, sliced (variance reduced, fixed
    projections, so repeatable) above. Lower is better; it needs no normalizer."""

    monitor: str | None = "score-matching"
    validation_needs_grad: bool = True

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        m: Any = model
        x = m.validate(batch)
        dim = math.prod(m.event_shape)
        method = "exact" if dim <= EXACT_MAX_DIM else "sliced-vr"
        g = torch.Generator(device=x.device).manual_seed(0)
        return score_matching(m.f, x, method, generator=g).mean().detach()


class ContrastiveDivergence(EnergyObjective):
    r""":func:`contrastive_divergence` between the batch and as many of the model's negatives,
    ``model.negatives(n)`` (an EBM's short-run Langevin chains from its replay buffer, Du and Mordatch, 2019),
    with the penalty ``reg`` on the squared log densities."""

    def __init__(self, reg: float = 0.0) -> None:
        self.reg = reg

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model
        neg = m.negatives(len(batch))
        return contrastive_divergence(m.f(batch), m.f(neg), self.reg).mean()


class ScoreMatching(EnergyObjective):
    """The mean :func:`score_matching` objective of ``method`` (noise ``sigma`` for ``"denoising"``) of the
    model's ``f`` on the batch."""

    def __init__(self, method: str = "sliced-vr", sigma: float = 0.1) -> None:
        if method not in SCORE_MATCHING:
            raise ValueError(f"method must be one of {', '.join(SCORE_MATCHING)}; got {method!r}")
        self.method, self.sigma = method, sigma

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return score_matching(model.f, batch, self.method, sigma=self.sigma).mean()  # type: ignore[arg-type]


class NoiseContrastive(EnergyObjective):
    r"""NCE's logistic loss (:func:`noise_contrastive`) per data example, ``nu`` draws per example of the model's
    noise (``model.noise(n)``: draws and their log density; ``model.noise_log_prob(x)``), with the model's
    learned :math:`\log Z` (``model.log_z``)."""

    def __init__(self, nu: int = 1) -> None:
        self.nu = nu

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model
        y, log_q_y = m.noise(self.nu * len(batch))
        return noise_contrastive(
            m.f(batch) - m.log_z, m.noise_log_prob(batch), m.f(y) - m.log_z, log_q_y, self.nu
        ).mean()


class _FlowPaired(EnergyObjective):
    """An EBM trained jointly with a flow ``model.flow``, in two groups: ``"energy"`` (the model's
    ``energy_parameters()``) and ``"flow"``, ``flow_steps`` flow updates per energy update."""

    def __init__(self, flow_steps: int = 1) -> None:
        self.flow_steps = flow_steps

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {"energy": m.energy_parameters(), "flow": list(m.flow.parameters())}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return ("energy",) + ("flow",) * self.flow_steps


class FlowContrastive(_FlowPaired):
    r"""Flow contrastive estimation (Gao et al., 2020): NCE with the flow :math:`q_\alpha` as the noise, on the
    value :math:`V = \mathbb E_{p_{data}}[\log D(x)] + \mathbb E_{q_\alpha}[\log(1 - D(y))]`,
    :math:`D = p_\theta / (p_\theta + q_\alpha)`: the EBM (with its learned :math:`\log Z`) maximizes it, the
    flow minimizes it (reparameterized samples)."""

    def loss(self, model: nn.Module, batch: Any, group: str = "energy") -> torch.Tensor:
        # the trainer freezes the other group while one trains: nothing needs detaching here
        m: Any = model
        y, log_q_y = m.flow.rsample(len(batch))
        log_q_x = m.flow.log_prob(batch)
        nce = noise_contrastive(m.f(batch) - m.log_z, log_q_x, m.f(y) - m.log_z, log_q_y)
        return nce.mean() if group == "energy" else -nce.mean()


class AdversarialEnergy(_FlowPaired):
    r"""An EBM against a sampler of exact entropy (Kim and Bengio, 2016; Grathwohl et al., 2021): the flow
    maximizes :math:`\mathbb E_q[f_\theta] + H(q)` (a bound on :math:`\log Z_\theta`); the EBM minimizes
    :math:`\mathbb E_q[f_\theta] - \mathbb E_{p_{data}}[f_\theta]` (+ ``reg`` times the squared log densities,
    + ``gp`` times :math:`\lVert \nabla_x f_\theta\rVert^2` on the data): contrastive divergence with the flow's
    samples as negatives, no MCMC in training."""

    def __init__(self, reg: float = 0.1, flow_steps: int = 1, gp: float = 0.0) -> None:
        super().__init__(flow_steps)
        self.reg, self.gp = reg, gp

    def loss(self, model: nn.Module, batch: Any, group: str = "energy") -> torch.Tensor:
        m: Any = model
        x = batch
        y, log_q_y = m.flow.rsample(len(x))
        if group == "energy":
            if not self.gp:
                return contrastive_divergence(m.f(x), m.f(y), self.reg).mean()
            f_x, g_x = score(m.f, x, create_graph=True)
            penalty = self.gp * g_x.flatten(1).pow(2).sum(-1)
            return (contrastive_divergence(f_x, m.f(y), self.reg) + penalty).mean()
        return -(m.f(y) - log_q_y).mean()  # -(E_q f + H(q))


class _BoltzmannObjective(Objective):
    """What the Boltzmann machines' objectives share: validation watches the exact negative log-likelihood while
    :math:`\\log Z` is enumerated, the negative pseudo-log-likelihood above; with ``objective="pyro"`` every
    group trains by maximum likelihood through the Pyro program (the gradient the CD estimates follow)."""

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        m: Any = model
        with torch.no_grad():
            if m.density == "exact":
                return -m.log_prob(batch).mean()
            return -m.pseudo_log_likelihood(batch).mean()

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return MaximumLikelihood().pyro_loss(model, batch)


class GibbsContrastiveDivergence(_BoltzmannObjective):
    r"""CD-k or PCD-k (Hinton, 2002; Tieleman, 2008) for a Boltzmann machine with a block or site Gibbs sweep:
    :math:`F(v^+) - F(v^-)` averaged, whose gradient is the CD / PCD estimate of the log-likelihood's
    (:math:`v^-` after the model's ``k`` Gibbs sweeps from the data, or from its persistent chains
    ``model.persistent``, which keep the chains' ends across steps and in the checkpoint)."""

    def __init__(self, persistent: bool = False) -> None:
        self.persistent = bool(persistent)

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model
        v = _flat(m, batch)
        chains = m.persistent
        start = (chains[: len(v)] if len(v) <= len(chains) else chains) if self.persistent else v
        neg = m.gibbs(start, m.k)
        if self.persistent:
            with torch.no_grad():
                chains[: len(neg)] = neg
        return m.free_energy(v).mean() - m.free_energy(neg).mean()


class _DBMObjective(_BoltzmannObjective):
    """A deep Boltzmann machine's phases all watch its negative log-likelihood (as its ``log_prob``)."""

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        with torch.no_grad():
            return -model.log_prob(batch).mean()  # type: ignore[operator]


class DBMPretraining(_DBMObjective):
    r"""Greedy layer-wise pre-training of a two-layer deep Boltzmann machine (Salakhutdinov and Hinton, 2009):
    CD-``k`` on the bottom RBM with the visible layer doubled (``layer="layer1"``: two copies tied to
    :math:`W_1`), or on the top RBM over :math:`h^1 \sim \sigma(c_1 + 2 v^\top W_1)` with the hidden layer
    doubled (``"layer2"``): its free energy at the data minus at the ``k``-step reconstruction."""

    def __init__(self, layer: str) -> None:
        if layer not in ("layer1", "layer2"):
            raise ValueError(f"layer must be 'layer1' or 'layer2'; got {layer!r}")
        self.layer = layer

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {"layer1": [m.W1, m.b, m.c1]} if self.layer == "layer1" else {"layer2": [m.W2, m.c2]}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return (self.layer,)

    def loss(self, model: nn.Module, batch: Any, group: str = "layer1") -> torch.Tensor:
        m: Any = model
        v = _flat(m, batch)
        if self.layer == "layer1":

            def free1(a: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
                return -(a + a2) @ m.b - F.softplus(m.c1 + (a + a2) @ m.W1).sum(-1)

            with torch.no_grad():
                a, a2 = v, v
                for _ in range(m.k):
                    h = torch.bernoulli(torch.sigmoid(m.c1 + (a + a2) @ m.W1))
                    p = torch.sigmoid(m.b + h @ m.W1.T)
                    a, a2 = torch.bernoulli(p), torch.bernoulli(p)
            return free1(v, v).mean() - free1(a, a2).mean()

        def free2(h1: torch.Tensor) -> torch.Tensor:
            return -(h1 @ m.c1) - 2 * F.softplus(m.c2 + h1 @ m.W2).sum(-1)

        with torch.no_grad():
            data = torch.bernoulli(torch.sigmoid(m.c1 + 2 * (v @ m.W1)))
            h1 = data
            for _ in range(m.k):
                p = torch.sigmoid(m.c2 + h1 @ m.W2)
                h2, h2b = torch.bernoulli(p), torch.bernoulli(p)
                h1 = torch.bernoulli(torch.sigmoid(m.c1 + (h2 + h2b) @ m.W2.T))
        return free2(data).mean() - free2(h1).mean()


class MeanFieldPCD(_DBMObjective):
    r"""The joint training of a deep Boltzmann machine (Salakhutdinov and Hinton, 2009), group ``"dbm"``:
    :math:`\mathbb E_q[E(v, h)]` at the data (the model's mean field, held fixed) minus the mean energy of its
    persistent chains after ``k`` sweeps; its gradient is the mean-field / PCD estimate of the negative
    log-likelihood's (the variational bound's). The chains start at the data the first time.

    Args:
        lr: the phase's learning rate (``None``: the run's).
    """

    def __init__(self, lr: float | None = None) -> None:
        self.lr = lr

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {"dbm": [m.W1, m.W2, m.b, m.c1, m.c2]}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return ("dbm",)

    def settings(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        return {"dbm": {"lr": self.lr}} if self.lr is not None else {}

    def loss(self, model: nn.Module, batch: Any, group: str = "dbm") -> torch.Tensor:
        m: Any = model
        v = _flat(m, batch)
        with torch.no_grad():
            mu1, mu2 = m.mean_field(v)
            if not bool(m.chains_started):  # the joint phase starts its chains at the data, not at noise
                rows = torch.arange(len(m.persistent), device=v.device) % len(v)
                start = torch.cat([v[rows], torch.bernoulli(mu1[rows]), torch.bernoulli(mu2[rows])], 1)
                m.persistent.copy_(start)
                m.chains_started.fill_(True)
            neg = m.gibbs(m.persistent, m.k)
            m.persistent.copy_(neg)
        nv, nh1, nh2 = m.split_state(neg)
        return m.energy(v, mu1, mu2).mean() - m.energy(nv, nh1, nh2).mean()
