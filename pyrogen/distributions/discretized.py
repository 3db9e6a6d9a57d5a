r"""A Gaussian discretized to the bins of dequantized data: the decoder of DDPM on images (Ho et al., 2020)."""

from __future__ import annotations

import math
from typing import Any

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = ["DiscretizedNormal"]


class DiscretizedNormal(TorchDistribution):
    r"""A normal :math:`N(\mu, \sigma^2)` per dimension, discretized to ``levels`` bins of :math:`[0, 1)`, bin
    :math:`k = \lfloor L x \rfloor` covering :math:`[k/L, (k+1)/L)` and the first and last bins extended to
    :math:`\mp\infty` -- as a density on :math:`[0, 1)`: constant on each bin,

    .. math:: p(x) = L \cdot P(k) = L\,\big(\Phi(\tfrac{(k+1)/L - \mu}{\sigma}) - \Phi(\tfrac{k/L - \mu}{\sigma})\big),

    so that for uniformly dequantized data the bound on :math:`\log p(x)` is one on :math:`\log P(k) + \log L`
    and bits/dim come out as for every other family (``pyrogen.metrics.bits_per_dim`` adds the
    :math:`\log_2 L`). Independent over the last ``event_dim`` dimensions of ``loc``.

    Args:
        loc, scale: in data units (the bins are :math:`[k/L, (k+1)/L)`).
        levels: :math:`L`.
        event_dim: how many rightmost dimensions form one event.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.interval(0.0, 1.0)
    has_rsample = False

    def __init__(
        self, loc: torch.Tensor, scale: torch.Tensor, levels: int, event_dim: int = 0, validate_args: Any = None
    ) -> None:
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2; got {levels!r}")
        self.loc, self.scale = torch.broadcast_tensors(loc, torch.as_tensor(scale, dtype=loc.dtype, device=loc.device))
        self.levels = levels
        shape = self.loc.shape
        super().__init__(shape[: len(shape) - event_dim], shape[len(shape) - event_dim :], validate_args=validate_args)

    def expand(self, batch_shape: Any, _instance: Any = None) -> DiscretizedNormal:
        shape = torch.Size(batch_shape) + self.event_shape
        return DiscretizedNormal(
            self.loc.expand(shape), self.scale.expand(shape), self.levels, len(self.event_shape), validate_args=False
        )

    def bin_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log P(k)` per dimension (not summed over the event)."""
        L = self.levels
        k = (x * L).floor().clamp(0, L - 1)
        lo = (k / L - self.loc) / self.scale
        hi = ((k + 1) / L - self.loc) / self.scale
        log_cdf_hi = torch.special.log_ndtr(hi)
        log_sf_lo = torch.special.log_ndtr(-lo)
        # P(k) = Phi(hi) - Phi(lo), computed where it is accurate: the lower tail, the upper tail, or the middle
        mid = torch.log((torch.special.ndtr(hi) - torch.special.ndtr(lo)).clamp_min(1e-30))
        upper_tail = torch.log((-torch.expm1(torch.special.log_ndtr(-hi) - log_sf_lo)).clamp_min(1e-30)) + log_sf_lo
        lower_tail = torch.log((-torch.expm1(torch.special.log_ndtr(lo) - log_cdf_hi)).clamp_min(1e-30)) + log_cdf_hi
        inner = torch.where(lo > 0, upper_tail, torch.where(hi < 0, lower_tail, mid))
        first, last = k == 0, k == L - 1
        out = torch.where(first, log_cdf_hi, torch.where(last, log_sf_lo, inner))
        return torch.where(first & last, torch.zeros_like(out), out)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.bin_log_prob(value) + math.log(self.levels)
        return lp.sum(tuple(range(-len(self.event_shape), 0))) if self.event_shape else lp

    def sample(self, sample_shape: Any = ()) -> torch.Tensor:
        """A draw of the bins' centres :math:`(k + 1/2)/L`."""
        with torch.no_grad():
            shape = self._extended_shape(torch.Size(sample_shape))
            x = self.loc.expand(shape) + self.scale.expand(shape) * torch.randn(
                shape, dtype=self.loc.dtype, device=self.loc.device
            )
            k = (x * self.levels).floor().clamp(0, self.levels - 1)
            return (k + 0.5) / self.levels
