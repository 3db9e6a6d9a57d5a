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
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["SCORE_MATCHING", "contrastive_divergence", "noise_contrastive", "score", "score_matching"]

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
