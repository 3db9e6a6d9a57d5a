r"""Uses of a learned latent space: interpolation, latent arithmetic, class means, imputation.

These work with any model that has ``encode(x) -> (loc, scale)`` and
``decode(z) -> mean image`` (every :class:`~pyrogen.models.VAE`). Latent
codes are the posterior means :math:`\mu_\phi(x)`.

Example:
    >>> import torch
    >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    >>> slerp(a, b, torch.tensor([0.0, 0.5, 1.0]))
    tensor([[1.0000, 0.0000],
            [0.7071, 0.7071],
            [0.0000, 1.0000]])
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["INTERPOLATIONS", "class_means", "impute", "interpolate", "latent_arithmetic", "lerp", "slerp"]

#: The paths :func:`interpolate` draws between two codes.
INTERPOLATIONS = ("linear", "spherical")


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points :math:`(1 - t) a + t b`, one row per value of ``t``."""
    t = t.reshape(-1, *([1] * a.dim()))
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    r"""Spherical interpolation (White, 2016, arXiv:1609.04468), one row per value of ``t``.

    .. math::
        \mathrm{slerp}(a, b; t) = \frac{\sin((1 - t)\Omega)}{\sin \Omega} a + \frac{\sin(t\Omega)}{\sin \Omega} b,
        \quad \cos \Omega = \frac{a \cdot b}{\|a\| \|b\|}

    It keeps the norm near that of typical draws from a Gaussian prior, where the straight line passes close to
    the origin; for (anti)parallel ``a`` and ``b`` it falls back to :func:`lerp`.
    """
    cos = (a * b).sum() / (a.norm() * b.norm()).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1 + eps, 1 - eps))
    if float(omega.sin()) < 1e-4:
        return lerp(a, b, t)
    t = t.reshape(-1, *([1] * a.dim()))
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / omega.sin()


def _code(model: Any, x: torch.Tensor) -> torch.Tensor:
    loc, _ = model.encode(x)
    return loc


@torch.no_grad()
def interpolate(model: Any, x1: torch.Tensor, x2: torch.Tensor, steps: int = 8, method: str = "linear") -> torch.Tensor:
    """Decoded images along the path between the codes of two examples.

    Args:
        model: a model with ``encode`` and ``decode``.
        x1, x2: one example each, shape ``event_shape`` (or ``(1,) + event_shape``).
        steps: points on the path, both ends included (at least 2).
        method: ``"linear"`` or ``"spherical"``.

    Returns:
        ``(steps,) + event_shape`` mean images.

    Raises:
        ValueError: an unknown ``method``, ``steps < 2``, or ``x1``/``x2`` not one example.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"method must be one of {INTERPOLATIONS}; got {method!r}")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2; got {steps!r}")
    shape = tuple(model.event_shape)
    for name, v in (("x1", x1), ("x2", x2)):
        if not isinstance(v, torch.Tensor) or v.shape not in (torch.Size(shape), torch.Size((1, *shape))):
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"{name} must be one example of shape {shape}; got {got}")
    pair = torch.stack([x1.reshape(shape), x2.reshape(shape)])
    a, b = _code(model, pair)
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)
    return model.decode(lerp(a, b, t) if method == "linear" else slerp(a, b, t))


@torch.no_grad()
def class_means(model: Any, x: torch.Tensor, labels: torch.Tensor, classes: int | None = None) -> torch.Tensor:
    """The mean latent code of each class, shape ``(classes, L)``.

    Raises:
        ValueError: a class without examples, or labels of the wrong length.
    """
    if labels.dim() != 1 or labels.dtype.is_floating_point or len(labels) != len(x):
        raise ValueError(
            f"labels must be a 1-D integer tensor with one entry per example ({len(x)}); "
            f"got shape {tuple(labels.shape)} {labels.dtype}"
        )
    codes = _code(model, x)
    k = classes or int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=k)
    if (counts == 0).any():
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no examples")
    sums = torch.zeros(k, codes.shape[-1], dtype=codes.dtype, device=codes.device).index_add_(0, labels, codes)
    return sums / counts[:, None].to(codes.dtype)


@torch.no_grad()
def latent_arithmetic(
    model: Any, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor, strength: float = 1.0
) -> torch.Tensor:
    r"""Decode :math:`\mu_\phi(x) + s\,(\bar z_{\text{target}} - \bar z_{\text{source}})`.

    With ``source`` and ``target`` two class means (:func:`class_means`) this moves examples of one class towards
    another: the "add the difference of two class means" of the latent-arithmetic literature.

    Returns:
        Mean images, shape ``x.shape``.
    """
    return model.decode(_code(model, x) + strength * (target - source))


@torch.no_grad()
def impute(
    model: Any, x: torch.Tensor, observed: torch.Tensor, steps: int = 200, burn_in: int = 50
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Fill in the unobserved entries of ``x`` by pseudo-Gibbs sampling through the encoder and decoder.

    Repeats :math:`z \sim q(z \mid \hat x)`, :math:`\hat x_{\text{miss}} \sim p(x_{\text{miss}} \mid z)`
    with the observed entries held fixed (Rezende, Mohamed and Wierstra, 2014, appendix F). When :math:`q` is the
    exact posterior this is a Gibbs sampler of :math:`p(z, x_{\text{miss}} \mid x_{\text{obs}})`; with an
    amortized :math:`q` it is the usual approximation.

    Args:
        model: an unconditional model with ``encode`` and ``likelihood`` (a :class:`~pyrogen.models.VAE`).
        x: examples, ``(n,) + event_shape``; the values at unobserved entries are ignored.
        observed: boolean mask broadcastable to ``x``, ``True`` where the entry is known.
        steps: sweeps of the chain; burn_in: sweeps left out of the running mean.

    Returns:
        ``(draw, mean)``: the chain's last state (a completed example, observed entries unchanged) and the average
        of :math:`\mathbb E[x \mid z]` over the sweeps after ``burn_in`` (observed entries unchanged), an estimate
        of :math:`\mathbb E[x_{\text{miss}} \mid x_{\text{obs}}]`.

    Raises:
        ValueError: ``observed`` not boolean or not broadcastable, or ``burn_in >= steps``.
    """
    if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool:
        raise ValueError(f"observed must be a boolean tensor; got {getattr(observed, 'dtype', type(observed))}")
    try:
        observed = observed.to(x.device).expand_as(x)
    except RuntimeError:
        raise ValueError(
            f"observed of shape {tuple(observed.shape)} does not broadcast to x {tuple(x.shape)}"
        ) from None
    for name, v in (("steps", steps), ("burn_in", burn_in)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer; got {v!r}")
    if burn_in >= steps:
        raise ValueError(f"burn_in ({burn_in}) must be smaller than steps ({steps})")
    x = model.validate(x)
    start = model.likelihood(model.sample_latent(len(x))).sample()  # unobserved entries start at a draw of p(x)
    current = torch.where(observed, x, start.to(x.dtype))
    total = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
    for t in range(steps):
        loc, scale = model.encode(current)
        z = loc + torch.randn_like(loc) * scale
        d = model.likelihood(z)
        current = torch.where(observed, x, d.sample().to(x.dtype))
        if t >= burn_in:
            total += model.decode(z).double()
    mean = torch.where(observed, x.double(), total / (steps - burn_in)).to(
        x.dtype if x.is_floating_point() else torch.float64
    )
    return current, mean
