r"""Flow layers Pyro lacks, written in Pyro's transform style.

Each layer is a :class:`~pyro.distributions.torch_transform.TransformModule`
(the learnable version) mapping the base side :math:`x` to the data side
:math:`y` in ``_call`` and back in ``_inverse``, with
``log_abs_det_jacobian(x, y)`` :math:`= \log|\det \partial y / \partial x|`
summed over the event dimensions. A lower-case builder function constructs
the usual configuration, as :func:`pyro.distributions.transforms.affine_coupling`
does.

Layers that Pyro already has are used from Pyro: planar, radial, affine
coupling, affine autoregressive, permutation, batch norm, Householder and
generalized channel permute (the LU-parametrised 1x1 convolution of Glow,
which :class:`InvertibleConv1x1` only speeds up).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pyro.distributions.conditional import ConditionalTransformModule
from pyro.distributions.torch_transform import TransformModule
from pyro.distributions.transforms import GeneralizedChannelPermute
from pyro.distributions.transforms import Planar as _PyroPlanar
from torch import nn
from torch.distributions import Transform, constraints

__all__ = [
    "ActNorm",
    "ConditionalMaskedAutoregressive",
    "MaskedAutoregressive",
    "AdditiveCoupling",
    "ConditionalAdditiveCoupling",
    "DiagonalScale",
    "InvertibleConv1x1",
    "LogitTransform",
    "MintNetLayer",
    "MixtureCDFGaussianization",
    "Partial",
    "Planar",
    "Squeeze",
    "Unsqueeze",
    "actnorm",
    "additive_coupling",
    "conditional_masked_autoregressive",
    "masked_autoregressive",
    "mixture_cdf_gaussianization",
    "planar",
]


def _real(event_dim: int) -> constraints.Constraint:
    return constraints.independent(constraints.real, event_dim)


class _RealEvents:
    """Domain and codomain: real tensors with ``self._ndim`` event dimensions (1 for vectors, 3 for images)."""

    _ndim: int

    @constraints.dependent_property(is_discrete=False)
    def domain(self) -> constraints.Constraint:
        return _real(self._ndim)

    @constraints.dependent_property(is_discrete=False)
    def codomain(self) -> constraints.Constraint:
        return _real(self._ndim)


class _Uncached:
    """Layers built without a cache (every call recomputes: no stale results after a training step, no "backward
    through the graph a second time" when one tensor is scored twice). ``with_cache(1)`` -- what
    ``ComposeTransform(..., cache_size=1)`` and ``UnitJacobianReparam`` ask for -- returns a twin that shares
    the layer's parameters and buffers and keeps torch's one-slot cache, so ``t.with_cache(1).inv(y) is x`` for
    ``y = t.with_cache(1)(x)``, as Pyro's own layers do."""

    _cache_size: int

    def with_cache(self, cache_size: int = 1) -> Any:
        if cache_size not in (0, 1):
            raise ValueError(f"cache_size must be 0 or 1; got {cache_size!r}")
        if cache_size == self._cache_size:
            return self
        twin = copy.copy(self)  # a shallow copy: the same Parameter and buffer objects
        twin._cache_size = cache_size
        twin._cached_x_y = (None, None)  # type: ignore[attr-defined]
        twin._inv = None  # type: ignore[attr-defined]
        return twin


def _batch_zeros(x: torch.Tensor, event_dim: int) -> torch.Tensor:
    return x.new_zeros(x.shape[: x.dim() - event_dim])


class AdditiveCoupling(_Uncached, _RealEvents, TransformModule):
    r"""NICE's additive coupling layer: volume preserving, :math:`\log|\det J| = 0` exactly.

    .. math:: y_{1:d} = x_{1:d},\qquad y_{d+1:D} = x_{d+1:D} + m(x_{1:d})

    Args:
        split_dim: :math:`d`, the coordinates (or channels, for ``dim=-3``)
            passed through unchanged and fed to :math:`m`.
        hypernet: :math:`m`, mapping ``(..., d)`` to ``(..., D - d)`` (vectors),
            or ``(..., d, H, W)`` to ``(..., C - d, H, W)`` (images, ``dim=-3``).
        dim: ``-1`` for vectors, ``-3`` for ``(C, H, W)`` images.

    References: Dinh, Krueger and Bengio, 2015, arXiv:1410.8516.

    Example:
        >>> t = additive_coupling(4, hidden_dims=[8])
        >>> x = torch.randn(3, 4)
        >>> torch.allclose(t.inv(t(x)), x, atol=1e-6), t.log_abs_det_jacobian(x, t(x))
        (True, tensor([0., 0., 0.]))
    """

    bijective = True

    def __init__(self, split_dim: int, hypernet: nn.Module, dim: int = -1) -> None:
        super().__init__(cache_size=0)
        if dim not in (-1, -3):
            raise ValueError(f"dim must be -1 (vectors) or -3 (images); got {dim!r}")
        if not isinstance(split_dim, int) or split_dim < 1:
            raise ValueError(f"split_dim must be a positive integer; got {split_dim!r}")
        self.split_dim, self.nn, self.dim = split_dim, hypernet, dim
        self._ndim = -dim

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x.split([self.split_dim, x.size(self.dim) - self.split_dim], dim=self.dim)
        return x1, x2

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self._split(x)
        return torch.cat([x1, x2 + self.nn(x1)], dim=self.dim)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = self._split(y)
        return torch.cat([y1, y2 - self.nn(y1)], dim=self.dim)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _batch_zeros(x, self._ndim)


class ConditionalAdditiveCoupling(ConditionalTransformModule):
    r"""NICE's additive coupling whose shift network also reads a context :math:`c`.

    .. math:: y_{1:d} = x_{1:d},\qquad y_{d+1:D} = x_{d+1:D} + m(x_{1:d}, c)

    ``condition(c)`` returns the :class:`AdditiveCoupling` for that context (still volume preserving).

    Args:
        split_dim: :math:`d`.
        hypernet: :math:`m`, called as ``hypernet(x1, context=c)`` (e.g. :class:`~pyrogen.nn.MLP` built with
            ``context > 0``).

    Example:
        >>> from pyrogen.nn import MLP
        >>> t = ConditionalAdditiveCoupling(2, MLP(2, [8], 2, context=3))
        >>> c = torch.eye(3)[[0, 2]]
        >>> x = torch.randn(2, 4)
        >>> layer = t.condition(c)
        >>> torch.allclose(layer.inv(layer(x)), x, atol=1e-6)
        True
    """

    def __init__(self, split_dim: int, hypernet: nn.Module) -> None:
        super().__init__()
        if not isinstance(split_dim, int) or split_dim < 1:
            raise ValueError(f"split_dim must be a positive integer; got {split_dim!r}")
        self.split_dim, self.nn = split_dim, hypernet

    def condition(self, context: torch.Tensor) -> AdditiveCoupling:
        return AdditiveCoupling(self.split_dim, _WithContext(self.nn, context))


class _WithContext(nn.Module):
    """A network with its context argument bound (the parameters stay those of ``net``)."""

    def __init__(self, net: nn.Module, context: torch.Tensor) -> None:
        super().__init__()
        self.net, self.context = net, context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, context=self.context)


def additive_coupling(
    input_dim: int, hidden_dims: Sequence[int] | None = None, split_dim: int | None = None
) -> AdditiveCoupling:
    """An :class:`AdditiveCoupling` for vectors with an MLP :math:`m` (ReLU, ``hidden_dims`` default ``[10 D]``)."""
    from pyrogen.nn import MLP

    split = split_dim if split_dim is not None else input_dim // 2
    if not 0 < split < input_dim:
        raise ValueError(f"split_dim must be in [1, {input_dim - 1}]; got {split}")
    hidden = list(hidden_dims) if hidden_dims is not None else [10 * input_dim]
    return AdditiveCoupling(split, MLP(split, hidden, input_dim - split))


class DiagonalScale(_Uncached, _RealEvents, TransformModule):
    r"""An elementwise learnable scaling :math:`y = x \odot e^{s}`, NICE's last layer.

    :math:`\log|\det J| = \sum_j s_j` (times the positions sharing a scale).

    Args:
        shape: the event shape, ``(D,)``; or ``(C, H, W)`` with one scale per channel.

    Example:
        >>> t = DiagonalScale((3,))
        >>> with torch.no_grad():
        ...     _ = t.log_scale.fill_(0.5)
        ...     t.log_abs_det_jacobian(torch.zeros(2, 3), torch.zeros(2, 3))
        tensor([1.5000, 1.5000])
    """

    bijective = True

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(cache_size=0)
        shape = tuple(shape)
        if len(shape) not in (1, 3):
            raise ValueError(f"shape must be (D,) or (C, H, W); got {shape}")
        self._ndim = len(shape)
        self.log_scale = nn.Parameter(torch.zeros((shape[0],) + (1,) * (len(shape) - 1)))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_scale.exp()

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale)

    def _positions(self, x: torch.Tensor) -> int:
        return math.prod(x.shape[-2:]) if self._ndim == 3 else 1

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _batch_zeros(x, self._ndim) + self.log_scale.sum() * self._positions(x)


class ActNorm(DiagonalScale):
    r"""Glow's activation normalization: :math:`y = x \odot e^{s} + b`, initialised from data.

    The first time data are mapped to the base side (``_inverse``, as in
    ``log_prob``) while the module is in training mode and not yet
    initialised, :math:`b` and :math:`s` are set to the per-channel mean and
    log standard deviation of that batch, so that the base-side values have
    zero mean and unit variance. The ``initialized`` flag is a buffer: a
    loaded checkpoint is never re-initialised.

    Args:
        shape: ``(D,)`` (one pair per coordinate) or ``(C, H, W)`` (one pair per channel).

    References: Kingma and Dhariwal, 2018, arXiv:1807.03039.

    Example:
        >>> t = ActNorm((2,))
        >>> y = torch.randn(500, 2) * 3 + 5
        >>> x = t.inv(y)
        >>> bool(x.mean(0).abs().max() < 1e-5), bool((x.std(0) - 1).abs().max() < 1e-2)
        (True, True)
    """

    initialized: torch.Tensor

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__(shape)
        self.loc = nn.Parameter(torch.zeros_like(self.log_scale))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def initialize(self, y: torch.Tensor) -> None:
        """Set :math:`b, s` so that the base-side image of ``y`` is standardized per channel."""
        dims = [d for d in range(y.dim()) if d != y.dim() - self._ndim]
        self.loc.copy_(y.mean(dims).view_as(self.loc))
        self.log_scale.copy_(y.std(dims).clamp_min(1e-6).log().view_as(self.log_scale))
        self.initialized.fill_(True)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_scale.exp() + self.loc

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.training and not bool(self.initialized) and y.numel() > y.shape[-self._ndim]:
            self.initialize(y)
        return (y - self.loc) * torch.exp(-self.log_scale)


class InvertibleConv1x1(GeneralizedChannelPermute):
    r"""Glow's invertible 1x1 convolution with the LU parametrisation :math:`W = PLU`.

    Pyro's :class:`~pyro.distributions.transforms.GeneralizedChannelPermute`
    with the channel mixing done by one matrix product instead of a
    broadcast-and-sum over a ``(C, C, H, W)`` tensor (same numbers, tested).
    :math:`\log|\det J| = HW \sum_i \log|U_{ii}|`, no determinant computed.

    Args:
        channels: :math:`C`.

    References: Kingma and Dhariwal, 2018, arXiv:1807.03039.
    """

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        w = self.permutation @ self.L @ self.U
        return torch.einsum("ij,...jhw->...ihw", w, x)


class Squeeze(Transform):
    r"""Space-to-depth: ``(C, H, W)`` to ``(4C, H/2, W/2)``, each 2x2 block becoming four channels.

    A permutation of the coordinates, so :math:`\log|\det J| = 0`.

    Example:
        >>> Squeeze()(torch.arange(16.0).view(1, 1, 4, 4))[0, :, 0, 0]
        tensor([0., 1., 4., 5.])
    """

    domain = _real(3)
    codomain = _real(3)
    bijective = True

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        *batch, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width; got {(c, h, w)}")
        x = x.reshape(*batch, c, h // 2, 2, w // 2, 2)
        n = len(batch)
        x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
        return x.reshape(*batch, 4 * c, h // 2, w // 2)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        *batch, c4, h, w = y.shape
        if c4 % 4:
            raise ValueError(f"the squeezed tensor needs a multiple of 4 channels; got {c4}")
        n = len(batch)
        y = y.reshape(*batch, c4 // 4, 2, 2, h, w).permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
        return y.reshape(*batch, c4 // 4, 2 * h, 2 * w)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _batch_zeros(x, 3)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        *batch, c, h, w = shape
        return torch.Size((*batch, 4 * c, h // 2, w // 2))

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        *batch, c, h, w = shape
        return torch.Size((*batch, c // 4, 2 * h, 2 * w))


class Unsqueeze(Squeeze):
    """Depth-to-space, the inverse of :class:`Squeeze`."""

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return super()._inverse(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return super()._call(y)

    def forward_shape(self, shape: torch.Size) -> torch.Size:
        return super().inverse_shape(shape)

    def inverse_shape(self, shape: torch.Size) -> torch.Size:
        return super().forward_shape(shape)


class Partial(_Uncached, _RealEvents, TransformModule):
    r"""Apply ``transforms`` to the first ``size`` coordinates (or channels) and pass the rest through.

    This is the multi-scale split of RealNVP and Glow: after a level, half the
    channels are *factored out* (they are already Gaussian on the base side)
    and the deeper levels act on the other half only. Composing the levels as
    ``Partial`` layers keeps the whole flow a single
    :class:`~pyrogen.distributions.FlowDistribution` over a standard normal of
    the data's shape. :math:`\log|\det J|` is that of the inner transforms.

    Args:
        transforms: the inner layers, applied in order on the base-to-data path
            (their shapes may change inside, as long as they return the shape
            they were given).
        size: the coordinates (``dim=-1``) or channels (``dim=-3``) they act on.
        dim: ``-1`` for vectors, ``-3`` for images.

    References: Dinh, Sohl-Dickstein and Bengio, 2017, arXiv:1605.08803 (section 3.6).
    """

    bijective = True

    def __init__(self, transforms: Sequence[Transform], size: int, dim: int = -3) -> None:
        super().__init__(cache_size=0)
        if dim not in (-1, -3):
            raise ValueError(f"dim must be -1 (vectors) or -3 (images); got {dim!r}")
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer; got {size!r}")
        self.parts = nn.ModuleList(t for t in transforms if isinstance(t, nn.Module))
        self.transforms = list(transforms)
        self.size, self.dim, self._ndim = size, dim, -dim

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = x.split([self.size, x.size(self.dim) - self.size], dim=self.dim)
        return a, b

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from pyrogen.distributions.flow import forward_and_log_det

        a, b = self._split(x)
        log_det = _batch_zeros(x, self._ndim)
        for t in self.transforms:
            a, ld = forward_and_log_det(t, a)
            log_det = log_det + ld
        return torch.cat([a, b], dim=self.dim), log_det

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from pyrogen.distributions.flow import inverse_and_log_det

        a, b = self._split(y)
        log_det = _batch_zeros(y, self._ndim)
        for t in reversed(self.transforms):
            a, ld = inverse_and_log_det(t, a)
            log_det = log_det + ld
        return torch.cat([a, b], dim=self.dim), log_det

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_and_log_det(x)[0]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._inverse_and_log_det(y)[0]

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._forward_and_log_det(x)[1]


class MixtureCDFGaussianization(_Uncached, TransformModule):
    r"""A learnable per-dimension Gaussianization: a mixture CDF followed by the inverse normal CDF.

    On the data-to-base path (``_inverse``, the density direction)

    .. math:: x_j = \Phi^{-1}\Big(\sum_k \pi_{jk}\, \Phi\big((y_j - \mu_{jk}) / \sigma_{jk}\big)\Big),

    a monotone map whose log-derivative is
    :math:`\log \sum_k \pi_{jk} \mathcal N(y_j; \mu_{jk}, \sigma_{jk}) - \log \mathcal N(x_j; 0, 1)`.
    The base-to-data path (``_call``, sampling) inverts the mixture CDF by
    bisection to float precision, with one Newton step through autograd so
    that samples are differentiable (implicit-function gradients). Stacked with learnable rotations
    (:class:`~pyro.distributions.transforms.Householder`) it is the
    Gaussianization flow of Meng et al. (2020).

    Args:
        dim: :math:`D`.
        components: :math:`K` mixture components per dimension.

    References: Meng, Song, Song and Ermon, 2020, arXiv:2003.01941.
    """

    domain = _real(1)
    codomain = _real(1)
    bijective = True
    #: bisection iterations on the base-to-data path (interval width 2^-60 of the start)
    bisection_steps = 60

    def __init__(self, dim: int, components: int = 8) -> None:
        super().__init__(cache_size=0)
        self.loc = nn.Parameter(torch.linspace(-2, 2, components).repeat(dim, 1) + 0.01 * torch.randn(dim, components))
        self.log_scale = nn.Parameter(torch.full((dim, components), math.log(1.0)))
        self.logits = nn.Parameter(torch.zeros(dim, components))

    def _gaussianize(self, y: torch.Tensor) -> torch.Tensor:
        r""":math:`\Phi^{-1}(F(y))` computed on the nearer tail in float64 from ``log_ndtr``: one-to-one out to
        about 37 standard deviations of the base (where float64 ends), not clamped near 4.75."""
        z = ((y.unsqueeze(-1) - self.loc) * torch.exp(-self.log_scale)).double()
        log_w = torch.log_softmax(self.logits.double(), -1)
        tiny = torch.finfo(torch.float64).tiny
        # log F(y) and log(1 - F(y)) from log_ndtr: torch's ndtr itself underflows to 0 below -8.3
        lower = torch.logsumexp(log_w + torch.special.log_ndtr(z), -1)
        upper = torch.logsumexp(log_w + torch.special.log_ndtr(-z), -1)
        low_side = lower <= upper
        half = torch.full_like(lower, -math.log(2))  # the branch not taken sees 1/2: no infinite gradient to mask
        x = torch.where(
            low_side,
            torch.special.ndtri(torch.where(low_side, lower, half).exp().clamp_min(tiny)),
            -torch.special.ndtri(torch.where(low_side, half, upper).exp().clamp_min(tiny)),
        )
        return x.to(y.dtype)

    def _log_pdf(self, y: torch.Tensor) -> torch.Tensor:
        z = (y.unsqueeze(-1) - self.loc) * torch.exp(-self.log_scale)
        logn = -0.5 * z.pow(2) - self.log_scale - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + logn, -1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._gaussianize(y)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            spread = (self.loc.abs() + 40 * self.log_scale.exp()).amax(-1).expand_as(x)
        y = _bisect(lambda v: self._gaussianize(v) - x.detach(), -spread, spread, self.bisection_steps)
        # one Newton step through autograd: the value stays, the gradient is the implicit one
        g = self._gaussianize(y)
        slope = torch.exp(self._log_pdf(y) + 0.5 * g.pow(2) + 0.5 * math.log(2 * math.pi)).detach()
        return y + (x - g) / slope

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self._inverse(y)  # the value the density path uses
        log_normal = -0.5 * x.pow(2) - 0.5 * math.log(2 * math.pi)
        return (log_normal - self._log_pdf(y)).sum(-1)


def _bisect(f, lo: torch.Tensor, hi: torch.Tensor, steps: int = 60) -> torch.Tensor:
    """The root of an increasing ``f`` in ``[lo, hi]`` by bisection (no gradient)."""
    with torch.no_grad():
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            below = f(mid) < 0
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return 0.5 * (lo + hi)


class Planar(_Uncached, _PyroPlanar):
    r"""Pyro's planar flow :math:`y = x + \hat u \tanh(w^\top x + b)`, made invertible on any input.

    Pyro's :class:`~pyro.distributions.transforms.Planar` can only "invert"
    values it produced itself (from its cache) and computes its log-determinant
    only on the forward pass. Here the inverse solves the scalar equation
    :math:`a + (w^\top \hat u) \tanh(a) = w^\top y + b` for
    :math:`a = w^\top x + b` (increasing in :math:`a` because
    :math:`w^\top \hat u > -1`, which Pyro's :math:`\hat u` parametrisation
    enforces; the root lies within :math:`|w^\top \hat u|` of the right-hand
    side) by bisection, with one Newton step through autograd for the
    gradient, so a planar flow can score external data. The log-determinant
    comes from the matrix determinant lemma,
    :math:`\log|1 + \hat u^\top (1 - \tanh^2(w^\top x + b))\, w|`.

    Args:
        input_dim: :math:`D`.

    References: Rezende and Mohamed, 2015, arXiv:1505.05770.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> t = Planar(2)
        >>> y = torch.randn(4, 2)
        >>> torch.allclose(t(t.inv(y)), y, atol=1e-5)
        True
    """

    def __init__(self, input_dim: int) -> None:
        super().__init__(input_dim)
        self._cache_size = 0  # no stale cache: every call recomputes

    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bias, u, w = super()._params()
        return bias.reshape(()), u, w  # a scalar bias: an unbatched input keeps its shape

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        bias, u, w = self._params()
        return x + self.u_hat(u, w) * torch.tanh(x @ w + bias).unsqueeze(-1)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        bias, u, w = self._params()
        u_hat = self.u_hat(u, w)
        wu = (w * u_hat).sum(-1)
        c = y @ w + bias

        def f(a: torch.Tensor) -> torch.Tensor:
            return a + wu * torch.tanh(a) - c

        a = _bisect(f, c - wu.abs() - 1e-3, c + wu.abs() + 1e-3)
        a = a - f(a) / (1 + wu * (1 - torch.tanh(a).pow(2))).detach()
        return y - u_hat * torch.tanh(a).unsqueeze(-1)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        bias, u, w = self._params()
        u_hat = self.u_hat(u, w)
        act = torch.tanh(x @ w + bias)
        return torch.log(torch.abs(1 + (1 - act.pow(2)) * (w * u_hat).sum(-1)))


def planar(input_dim: int) -> Planar:
    """A :class:`Planar` layer (the builder, as :func:`pyro.distributions.transforms.planar`)."""
    return Planar(input_dim)


class ConditionedMaskedAutoregressive(Transform):
    r"""The affine autoregressive map of MAF and IAF, with a fixed context (see :class:`MaskedAutoregressive`)."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True
    autoregressive = True
    #: the inverse keeps every coordinate within this bound (see ``_inverse_and_log_det``)
    bound = 1e6

    def __init__(
        self,
        net: nn.Module,
        context: torch.Tensor | None = None,
        log_scale_min_clip: float = -5.0,
        log_scale_max_clip: float = 3.0,
    ) -> None:
        super().__init__(cache_size=1)  # Pyro's TransformedDistribution scores its own samples from the cache
        self.net, self.context = net, context
        self.log_scale_min_clip, self.log_scale_max_clip = log_scale_min_clip, log_scale_max_clip

    def _shift_log_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x, context=self.context) if self.context is not None else self.net(x)
        shift, log_scale = out.unbind(-1)
        return shift, log_scale.clamp(self.log_scale_min_clip, self.log_scale_max_clip)

    def _forward_and_log_det(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, log_scale = self._shift_log_scale(x)
        return x * log_scale.exp() + shift, log_scale.sum(-1)

    def _inverse_and_log_det(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` and the forward log-determinant at ``x``, from :math:`D` network passes."""
        # Fixed-point iteration x <- (y - m(x)) exp(-s(x)): the network is autoregressive, so after
        # pass k the first k variables in its ordering are exact, and after D passes all are (and so
        # is s(x), which reads only earlier variables). One network pass per variable, nothing else.
        x = torch.zeros_like(y)
        log_scale = y
        for _ in range(y.shape[-1]):
            shift, log_scale = self._shift_log_scale(x)
            # bounded so that a far-tail sample (exp(5) growth per layer) stays finite instead of
            # becoming inf - inf = NaN in the next pass; exact for every |x| below the bound
            x = ((y - shift) * torch.exp(-log_scale)).clamp(-self.bound, self.bound)
        return x, log_scale.sum(-1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward_and_log_det(x)[0]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._inverse_and_log_det(y)[0]

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._shift_log_scale(x)[1].sum(-1)


class MaskedAutoregressive(ConditionedMaskedAutoregressive, TransformModule):
    r"""The affine autoregressive layer of MAF and IAF, both directions honest.

    .. math:: y_i = x_i\, e^{s_i(x_{<i})} + m_i(x_{<i}),\qquad \log|\det J| = \sum_i s_i(x_{<i})

    with :math:`m, s` from one pass of a MADE network
    (:class:`~pyrogen.nn.MADENet` with ``out_mult=2``). The forward map costs
    one network pass; the inverse, :math:`x_i = (y_i - m_i(x_{<i}))
    e^{-s_i(x_{<i})}`, is sequential, computed as a fixed-point iteration of
    :math:`D` network passes and nothing else (Pyro's
    :class:`~pyro.distributions.transforms.AffineAutoregressive` re-stacks a
    list of columns on every pass). Used forward in a flow it is **IAF**
    (sampling one pass, density of external data :math:`D` passes); used as
    ``.inv`` it is **MAF** (density one pass, sampling :math:`D` passes), with
    the same network computing the same numbers.

    Args:
        net: an autoregressive network mapping ``(..., D)`` to ``(..., D, 2)``
            (shift, log-scale).
        log_scale_min_clip, log_scale_max_clip: clamp of :math:`s`.

    References: Kingma et al., 2016, arXiv:1606.04934 (IAF); Papamakarios,
    Pavlakou and Murray, 2017, arXiv:1705.07057 (MAF); Germain et al., 2015,
    arXiv:1502.03509 (MADE).

    Example:
        >>> from pyrogen.nn import MADENet
        >>> _ = torch.manual_seed(0)
        >>> t = MaskedAutoregressive(MADENet(3, [16], out_mult=2))
        >>> y = torch.randn(4, 3)
        >>> torch.allclose(t(t.inv(y)), y, atol=1e-5)
        True
    """

    def __init__(self, net: nn.Module, log_scale_min_clip: float = -5.0, log_scale_max_clip: float = 3.0) -> None:
        super().__init__(net, None, log_scale_min_clip, log_scale_max_clip)


class ConditionalMaskedAutoregressive(ConditionalTransformModule):
    r"""A :class:`MaskedAutoregressive` layer whose network also reads a context :math:`c`.

    ``condition(c)`` returns the layer for that context, so
    :class:`~pyro.distributions.ConditionalTransformedDistribution` gives
    :math:`p(x \mid c)` (class-conditional MAF).

    Args:
        net: a :class:`~pyrogen.nn.MADENet` built with ``context > 0``.
    """

    def __init__(self, net: nn.Module, log_scale_min_clip: float = -5.0, log_scale_max_clip: float = 3.0) -> None:
        super().__init__()
        self.net = net
        self.log_scale_min_clip, self.log_scale_max_clip = log_scale_min_clip, log_scale_max_clip

    def condition(self, context: torch.Tensor) -> ConditionedMaskedAutoregressive:
        return ConditionedMaskedAutoregressive(self.net, context, self.log_scale_min_clip, self.log_scale_max_clip)


class LogitTransform(_Uncached, Transform):
    r"""Logit pre-processing: the base side is :math:`\mathbb R^D`, the data side the unit interval.

    .. math:: y = \frac{\sigma(x) - \alpha}{1 - 2\alpha},\qquad x = \operatorname{logit}(\alpha + (1 - 2\alpha) y)

    The squeeze by :math:`\alpha` keeps the logit of dequantized pixels at 0
    or just below 1 finite (RealNVP, section 4.1). Its log-determinant is part
    of every reported likelihood. The map is defined on
    :math:`[-\\alpha / (1 - 2\\alpha), (1 - \\alpha)/(1 - 2\\alpha)]`, a little wider
    than the data's :math:`[0, 1]` (samples may land in the margin); values
    outside it raise a :class:`ValueError` instead of returning NaN.

    Args:
        alpha: the squeeze, in ``[0, 0.5)``.
        event_dim: the event dimensions summed in the log-determinant.

    References: Dinh, Sohl-Dickstein and Bengio, 2017, arXiv:1605.08803.

    Example:
        >>> t = LogitTransform(alpha=0.05)
        >>> t.inv(torch.tensor([[0.5, 0.0]]))
        tensor([[ 0.0000, -2.9444]])
    """

    bijective = True

    def __init__(self, alpha: float = 1e-6, event_dim: int = 1) -> None:
        super().__init__(cache_size=0)
        if not 0 <= alpha < 0.5:
            raise ValueError(f"alpha must be in [0, 0.5); got {alpha!r}")
        if isinstance(event_dim, bool) or not isinstance(event_dim, int) or event_dim < 0:
            raise ValueError(f"event_dim must be a non-negative integer; got {event_dim!r}")
        self.alpha, self._ndim = float(alpha), event_dim

    @property
    def sign(self) -> int:
        """+1: the map is increasing in every coordinate (``TransformedDistribution.cdf`` uses it)."""
        return 1

    @property
    def domain(self) -> constraints.Constraint:  # type: ignore[override]
        return _real(self._ndim)

    @property
    def codomain(self) -> constraints.Constraint:  # type: ignore[override]
        lo, hi = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
        return constraints.independent(constraints.interval(lo, hi), self._ndim)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LogitTransform) and (other.alpha, other._ndim) == (self.alpha, self._ndim)

    def __hash__(self) -> int:
        return hash((LogitTransform, self.alpha, self._ndim))

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
        return ((torch.sigmoid(x) - self.alpha) / (1 - 2 * self.alpha)).clamp(lo, hi)  # no rounding past the ends

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        u = self.alpha + (1 - 2 * self.alpha) * y
        if not torch.compiler.is_compiling():
            bad = ~((u >= 0) & (u <= 1))
            if bool(bad.any()):
                lo, hi = -self.alpha / (1 - 2 * self.alpha), (1 - self.alpha) / (1 - 2 * self.alpha)
                raise ValueError(
                    f"logit pre-processing takes data in [0, 1] (defined on [{lo:.4g}, {hi:.4g}] with "
                    f"alpha={self.alpha}); got a value {float(y[bad][0])!r} outside it"
                )
        fi = torch.finfo(u.dtype)
        u = u.clamp(fi.tiny, 1 - fi.eps)  # the two ends themselves (saturated samples) stay finite
        return torch.log(u) - torch.log1p(-u)

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ld = -F.softplus(-x) - F.softplus(x) - math.log(1 - 2 * self.alpha)
        return ld.flatten(ld.dim() - self._ndim).sum(-1) if self._ndim else ld


class MintNetLayer(_Uncached, TransformModule):
    r"""A masked-convolution invertible layer in the manner of MintNet: triangular Jacobian, fixed-point inverse.

    .. math:: y = e^{s} \odot x + g(x)

    on ``(C, H, W)`` images, where :math:`g` is two masked convolutions (mask
    A, then mask B, with the R -> G -> B channel groups of PixelCNN) and so
    depends on each coordinate only through the coordinates before it in
    raster-and-channel order. The Jacobian is therefore triangular with the
    positive diagonal :math:`e^{s_c}`: :math:`\log|\det J| = HW \sum_c s_c`
    exactly, and no determinant is ever computed. The inverse is the
    fixed-point iteration

    .. math:: x^{(k+1)} = e^{-s} \odot (y - g(x^{(k)})),

    which is exact after at most :math:`CHW` iterations (the error can only
    travel one step along the ordering per iteration) and in practice stops
    much earlier, when the update falls below ``tol``; ``last_iterations``
    records how many it took.

    Args:
        channels: :math:`C`.
        hidden: channels of :math:`g`'s hidden layer (a multiple of ``C``).
        kernel_size: odd kernel size of both convolutions.
        tol: stop the inverse iteration when no coordinate moves more than this.

    References: Song, Meng and Ermon, 2019, arXiv:1907.07945 (MintNet).
    """

    domain = _real(3)
    codomain = _real(3)
    bijective = True

    def __init__(self, channels: int, hidden: int = 24, kernel_size: int = 3, tol: float = 1e-6) -> None:
        from pyrogen.nn import MaskedConv2d

        super().__init__(cache_size=0)
        if hidden % channels:
            raise ValueError(f"hidden must be a multiple of channels={channels}; got {hidden}")
        g_in = torch.arange(channels)
        g_hidden = torch.arange(hidden) * channels // hidden
        self.first = MaskedConv2d(channels, hidden, kernel_size, "A", g_in, g_hidden)
        self.second = MaskedConv2d(hidden, channels, kernel_size, "B", g_hidden, g_in)
        with torch.no_grad():
            self.second.weight.mul_(0.1)
        self.log_scale = nn.Parameter(torch.zeros(channels, 1, 1))
        self.tol = tol
        self.last_iterations = 0

    def _g(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[:-3]
        flat = x.reshape(-1, *x.shape[-3:])
        return self.second(torch.tanh(self.first(flat))).reshape(*batch, *x.shape[-3:])

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.log_scale.exp() + self._g(x)

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        inv_scale = torch.exp(-self.log_scale)
        x = y * inv_scale
        for k in range(1, math.prod(y.shape[-3:]) + 2):  # exact by CHW + 1 iterations at the latest
            x_new = (y - self._g(x)) * inv_scale
            moved = float((x_new - x).abs().max().detach())
            x = x_new
            self.last_iterations = k
            if moved <= self.tol:
                break
        return x

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _batch_zeros(x, 3) + self.log_scale.sum() * math.prod(x.shape[-2:])


# --------------------------------------------------------------------------------------
# builders, as pyro.distributions.transforms has for its layers


def actnorm(shape: Sequence[int]) -> ActNorm:
    """An :class:`ActNorm` layer for events of ``shape`` (``(D,)`` or ``(C, H, W)``)."""
    return ActNorm(shape)


def masked_autoregressive(
    input_dim: int, hidden_dims: Sequence[int] | None = None, order: Sequence[int] | None = None
) -> MaskedAutoregressive:
    """A :class:`MaskedAutoregressive` layer on a MADE network (``hidden_dims`` default ``[3 D]``) near the identity."""
    from pyrogen.nn import MADENet

    hidden = list(hidden_dims) if hidden_dims is not None else [3 * input_dim]
    return MaskedAutoregressive(MADENet(input_dim, hidden, out_mult=2, order=order).shrink_output_())


def conditional_masked_autoregressive(
    input_dim: int, context_dim: int, hidden_dims: Sequence[int] | None = None
) -> ConditionalMaskedAutoregressive:
    """A :class:`ConditionalMaskedAutoregressive` layer whose MADE network also reads a context of ``context_dim``."""
    from pyrogen.nn import MADENet

    hidden = list(hidden_dims) if hidden_dims is not None else [3 * input_dim]
    return ConditionalMaskedAutoregressive(MADENet(input_dim, hidden, out_mult=2, context=context_dim).shrink_output_())


def mixture_cdf_gaussianization(input_dim: int, components: int = 8) -> MixtureCDFGaussianization:
    """A :class:`MixtureCDFGaussianization` layer."""
    return MixtureCDFGaussianization(input_dim, components)
