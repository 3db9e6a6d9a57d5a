"""A transformed distribution whose density needs no transform cache."""

from __future__ import annotations

from collections.abc import Sequence

import pyro.distributions as dist
import torch
from pyro.distributions.transforms import AffineCoupling, Permute
from pyro.distributions.transforms.utils import clamp_preserve_gradients
from pyro.distributions.util import sum_rightmost
from torch.distributions import Transform
from torch.distributions.transforms import _InverseTransform

__all__ = ["FlowDistribution", "forward_and_log_det", "inverse_and_log_det"]


def _coupling_inverse(t: AffineCoupling, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = t.dim
    y1, y2 = y.split([t.split_dim, y.size(d) - t.split_dim], dim=d)
    if d == -1:  # vectors: the conditioner's outputs already have y2's shape
        mean, log_scale = t.nn(y1)
    else:
        mean, log_scale = t.nn(y1.reshape(y1.shape[:d] + (-1,)))
        mean = mean.reshape(mean.shape[:-1] + y2.shape[d:])
        log_scale = log_scale.reshape(log_scale.shape[:-1] + y2.shape[d:])
    log_scale = clamp_preserve_gradients(log_scale, t.log_scale_min_clip, t.log_scale_max_clip)
    x2 = (y2 - mean) * torch.exp(-log_scale)
    log_det = log_scale.sum(-1) if d == -1 else sum_rightmost(log_scale, t.event_dim)
    return torch.cat([y1, x2], dim=d), log_det


def inverse_and_log_det(t: Transform, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return :math:`x = t^{-1}(y)` and :math:`\log|\det \partial t(x)/\partial x|` in one pass.

    Pyro's :class:`~pyro.distributions.transforms.AffineCoupling` evaluates its
    conditioner twice when ``log_abs_det_jacobian`` is called on data that did
    not come from its cache; here it runs once. Other transforms fall back to
    ``t.inv(y)`` and ``t.log_abs_det_jacobian``.

    Args:
        t: a bijective transform.
        y: a tensor in ``t``'s codomain, shape ``batch_shape + event_shape``.

    Returns:
        ``(x, log_det)`` with ``log_det`` of shape ``batch_shape``, summed over
        ``t.codomain.event_dim`` dimensions.
    """
    if type(t) is AffineCoupling:
        return _coupling_inverse(t, y)
    if hasattr(t, "_inverse_and_log_det"):  # pyrogen layers that get both from one computation
        return t._inverse_and_log_det(y)
    inner = getattr(t, "_inv", None)
    if isinstance(t, _InverseTransform) and hasattr(inner, "_forward_and_log_det"):
        x, log_det = inner._forward_and_log_det(y)  # type: ignore[union-attr]
        return x, -log_det
    if type(t) is Permute:
        return y.index_select(t.dim, t.inv_permutation), y.new_zeros(y.shape[: y.dim() - t.event_dim])
    _forget(t)
    x = t.inv(y)
    return x, t.log_abs_det_jacobian(x, y)


def _forget(t: Transform) -> None:
    """Drop a transform's one-entry cache: scoring the same tensor twice must not reuse a freed graph."""
    for obj in (t, getattr(t, "_inv", None)):
        if obj is not None and getattr(obj, "_cache_size", 0) == 1:
            obj._cached_x_y = None, None


def forward_and_log_det(t: Transform, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Return :math:`y = t(x)` and :math:`\log|\det \partial t(x)/\partial x|`, each layer computed once.

    The mirror of :func:`inverse_and_log_det`, for the sampling direction
    (reparametrized samples with their density, as in distillation and flow
    guides).
    """
    if hasattr(t, "_forward_and_log_det"):
        return t._forward_and_log_det(x)
    inner = getattr(t, "_inv", None)
    if isinstance(t, _InverseTransform) and hasattr(inner, "_inverse_and_log_det"):
        y, log_det = inner._inverse_and_log_det(x)  # type: ignore[union-attr]
        return y, -log_det
    _forget(t)
    y = t(x)
    return y, t.log_abs_det_jacobian(x, y)


class FlowDistribution(dist.TransformedDistribution):
    r"""A normalizing flow :math:`x = f_K \circ \dots \circ f_1(u)`, :math:`u \sim p_0`.

    .. math::
        \log p(x) = \log p_0(f^{-1}(x)) - \sum_k \log\left|\det
        \frac{\partial f_k}{\partial u_{k-1}}\right|

    Identical to :class:`pyro.distributions.TransformedDistribution` except that
    :meth:`log_prob` inverts the transforms directly (see
    :func:`inverse_and_log_det`) instead of relying on the transform cache, so
    scoring fresh data never evaluates a conditioner twice and never fails with
    "backward through the graph a second time" when a tensor is scored twice.

    Args:
        base_distribution: :math:`p_0`.
        transforms: :math:`f_1, \dots, f_K`, bijective.

    References: Rezende and Mohamed, 2015, arXiv:1505.05770; Dinh et al., 2017,
    arXiv:1605.08803.

    Example:
        >>> import pyro.distributions as dist
        >>> from pyro.distributions.transforms import affine_coupling
        >>> _ = torch.manual_seed(0)
        >>> base = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
        >>> flow = FlowDistribution(base, [affine_coupling(2, hidden_dims=[8])])
        >>> x = torch.randn(4, 2)
        >>> ref = dist.TransformedDistribution(base, flow.transforms).log_prob(x)
        >>> torch.allclose(flow.log_prob(x), ref)
        True
    """

    def __init__(
        self,
        base_distribution: dist.Distribution,
        transforms: Transform | Sequence[Transform],
        validate_args: bool | None = None,
    ) -> None:
        super().__init__(base_distribution, transforms, validate_args=validate_args)
        for t in self.transforms:
            if not t.bijective:
                raise ValueError(f"transforms must be bijective; {type(t).__name__} is not")

    def expand(self, batch_shape: torch.Size, _instance: FlowDistribution | None = None) -> FlowDistribution:
        new = self._get_checked_instance(FlowDistribution, _instance)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        event_dim = len(self.event_shape)
        lp: torch.Tensor | float = 0.0
        y = value
        for t in reversed(self.transforms):
            x, log_det = inverse_and_log_det(t, y)
            # as torch's TransformedDistribution: track the event dims through shape-changing transforms
            event_dim += t.domain.event_dim - t.codomain.event_dim
            lp = lp - sum_rightmost(log_det, event_dim - t.domain.event_dim)
            y = x
        base_lp = self.base_dist.log_prob(y)
        return lp + sum_rightmost(base_lp, event_dim - len(self.base_dist.event_shape))
