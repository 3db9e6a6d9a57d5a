r"""Gaussian kernel density estimates as Pyro distributions.

.. math::
    p(x) = \frac1N \sum_{i=1}^N \mathcal N(x; x_i, H), \qquad H = L L^\top

A :class:`KernelDensityDistribution` is Pyro's ``MixtureSameFamily`` of ``N`` equally weighted Gaussians centred
on the points, with its ``log_prob`` computed in chunks (``N`` x ``chunk`` distances at a time, each chunk
recomputed in the backward pass when gradients are on), so 30,000 points and 5,000 queries need tens of MB, and
its ``sample`` picks a point and adds kernel noise (the generic mixture sampler draws from every component).
:func:`kernel_log_density` is the computation, with ``leave_one_out`` for the likelihood cross-validation of the
bandwidth (Duin, 1976).

References: Rosenblatt, 1956; Parzen, 1962; Silverman, *Density Estimation for Statistics and Data Analysis*,
1986; Scott, *Multivariate Density Estimation*, 1992.
"""

from __future__ import annotations

import math
from typing import Any

import pyro.distributions as dist
import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["KernelDensityDistribution", "kernel_log_density", "scott_factor", "silverman_factor"]

#: The number of query-point distances one chunk of :func:`kernel_log_density` holds.
CHUNK_ELEMENTS = 2**22


def scott_factor(n: int, d: int) -> float:
    r"""Scott's rule, :math:`n^{-1/(d+4)}`: the bandwidth in units of the data's standard deviation (Scott, 1992;
    scipy's ``gaussian_kde(bw_method="scott")``)."""
    return float(n) ** (-1.0 / (d + 4))


def silverman_factor(n: int, d: int) -> float:
    r"""Silverman's rule, :math:`(n (d + 2) / 4)^{-1/(d+4)}` (Silverman, 1986; scipy's ``bw_method="silverman"``)."""
    return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))


def _chunk_log_density(
    u: torch.Tensor, centres: torch.Tensor, half_sq: torch.Tensor, leave_one_out: bool
) -> torch.Tensor:
    # -|u - c|^2 / 2 = u.c - |c|^2 / 2 - |u|^2 / 2: one matrix product, the last term outside the sum
    log_k = u @ centres.T - half_sq
    if leave_one_out:
        same = torch.cdist(u.detach(), centres.detach(), p=0) == 0  # equal in every coordinate
        log_k = log_k.masked_fill(same, -math.inf)
        count = (~same).sum(-1).to(u.dtype)
        return torch.logsumexp(log_k, -1) - count.log() - 0.5 * u.square().sum(-1)
    return torch.logsumexp(log_k, -1) - math.log(centres.shape[0]) - 0.5 * u.square().sum(-1)


def kernel_log_density(
    x: torch.Tensor, points: torch.Tensor, scale_tril: torch.Tensor, leave_one_out: bool = False
) -> torch.Tensor:
    r"""The Gaussian kernel density estimate :math:`\log \frac1N \sum_i \mathcal N(x; x_i, L L^\top)`.

    Args:
        x: queries, shape ``(M, D)``.
        points: the kernels' centres :math:`x_i`, shape ``(N, D)``.
        scale_tril: the kernel's lower-triangular :math:`L`, shape ``(D, D)``, positive diagonal.
        leave_one_out: leave out, for each query, the points equal to it (the leave-one-out estimate
            :math:`\log \frac{1}{N - c} \sum_{x_i \ne x} \mathcal N(x; x_i, H)` where ``c`` points equal ``x``;
            ``-inf`` if every point does).

    Returns:
        Shape ``(M,)``.

    Example:
        >>> pts = torch.tensor([[0.0], [2.0]])
        >>> kernel_log_density(torch.tensor([[1.0]]), pts, torch.eye(1)).exp()  # two N(1; ., 1) halves
        tensor([0.2420])
    """
    n, d = points.shape
    solve = torch.linalg.solve_triangular
    # whitened coordinates: the kernel is a standard normal in L^{-1} x
    # centred at the points' mean, so the norms in the matrix-product form stay small
    mean = points.detach().mean(0)
    u = solve(scale_tril, (x - mean).T, upper=False).T
    centres = solve(scale_tril, (points - mean).T, upper=False).T
    half_sq = 0.5 * centres.square().sum(-1)
    log_norm = torch.log(torch.diagonal(scale_tril)).sum() + 0.5 * d * math.log(2 * math.pi)
    rows = max(1, CHUNK_ELEMENTS // max(n, 1))
    grad = torch.is_grad_enabled() and (u.requires_grad or centres.requires_grad)
    out = []
    for chunk in u.split(rows):
        if grad:
            out.append(checkpoint(_chunk_log_density, chunk, centres, half_sq, leave_one_out, use_reentrant=False))
        else:
            out.append(_chunk_log_density(chunk, centres, half_sq, leave_one_out))
    if not out:
        return x.new_zeros(0)
    return torch.cat(out) - log_norm


class KernelDensityDistribution(dist.MixtureSameFamily):
    r"""A Gaussian kernel density estimate: the mixture of :math:`\mathcal N(x_i, L L^\top)` with weights
    :math:`1/N`, event shape ``(D,)``.

    Build it with :meth:`from_points`; ``log_prob`` and ``sample`` are those of the mixture, computed without the
    generic mixture's ``N`` x ``D`` x ``D`` intermediate tensors.

    Example:
        >>> kde = KernelDensityDistribution.from_points(torch.randn(100, 2), 0.3 * torch.eye(2))
        >>> kde.sample((5,)).shape, kde.log_prob(torch.zeros(3, 2)).shape
        (torch.Size([5, 2]), torch.Size([3]))
    """

    @classmethod
    def from_points(
        cls, points: torch.Tensor, scale_tril: torch.Tensor, validate_args: bool | None = None
    ) -> KernelDensityDistribution:
        """The kernel density estimate over ``points`` ``(N, D)`` with kernel factor ``scale_tril`` ``(D, D)``.

        Raises:
            ValueError: no points, or shapes that do not match.
        """
        if points.dim() != 2 or len(points) == 0:
            raise ValueError(f"points must have shape (N, D) with N >= 1; got {tuple(points.shape)}")
        d = points.shape[-1]
        if scale_tril.shape != (d, d):
            raise ValueError(f"scale_tril must have shape ({d}, {d}); got {tuple(scale_tril.shape)}")
        weights = dist.Categorical(logits=points.new_zeros(len(points)))
        kernels = dist.MultivariateNormal(points, scale_tril=scale_tril)
        return cls(weights, kernels, validate_args=validate_args)

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        comp = self.component_distribution
        return comp.loc, comp._unbroadcasted_scale_tril

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        loc, tril = self._parts()
        if loc.dim() != 2 or tril.dim() != 2:  # an expanded copy: the generic mixture's computation
            return super().log_prob(value)
        flat = value.reshape(-1, loc.shape[-1])
        return kernel_log_density(flat, loc, tril).reshape(value.shape[:-1])

    def sample(self, sample_shape: Any = ()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape: Any = ()) -> torch.Tensor:
        """A point chosen uniformly plus :math:`L \\epsilon`: differentiable in the points and :math:`L` given the
        choice (the choice itself is discrete)."""
        loc, tril = self._parts()
        shape = torch.Size(sample_shape) + self.batch_shape
        if loc.dim() != 2 or tril.dim() != 2:
            return super().sample(sample_shape)
        idx = torch.randint(0, loc.shape[0], shape, device=loc.device)
        eps = torch.randn(shape + loc.shape[-1:], dtype=loc.dtype, device=loc.device)
        return loc[idx] + eps @ tril.T
