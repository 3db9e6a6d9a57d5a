r"""Kernel density estimation ``kde``: a Gaussian kernel on every training point, its bandwidth by a rule or by
cross-validated likelihood.

.. math::
    p(x) = \frac1N \sum_{i=1}^N \mathcal N(x; x_i, H), \qquad H = L L^\top, \quad L = \mathrm{diag}(h) \, C

over flattened examples, where :math:`h` is the bandwidth (one number, or one per dimension) and :math:`C` the
kernel's shape: the identity (``metric="identity"``: :math:`h` in the data's units, as scikit-learn's
``KernelDensity``), or the Cholesky factor of the points' covariance (``metric="covariance"``: :math:`h` is
scipy's ``gaussian_kde`` factor). The bandwidth starts at Scott's or Silverman's rule (or a number) and
:func:`~pyrogen.inference.fit` trains :math:`\log h` by the leave-one-out likelihood of the training points
(likelihood cross-validation, Duin, 1976; Habbema et al., 1974), keeping the value best on the validation part;
:meth:`KernelDensity.select_bandwidth` searches a grid of multiples of :math:`h` on held-out data instead.

The estimate is consistent but its error falls as :math:`n^{-4/(d+4)}` (Silverman, 1986, section 4.3.1): fine
in two dimensions, poor in 64 (the digits), where every point's nearest neighbour is far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import torch
from torch import nn

from pyrogen.data import Dataset
from pyrogen.distributions.kernel import (
    KernelDensityDistribution,
    kernel_log_density,
    scott_factor,
    silverman_factor,
)
from pyrogen.inference.objectives import LeaveOneOutLikelihood
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_positive_int, frozen_unless_trainable
from pyrogen.models.registry import Recipe, continuous_support, register

__all__ = ["BANDWIDTH_RULES", "KERNEL_METRICS", "KernelDensity"]

#: The bandwidth rules a :class:`KernelDensity` starts from.
BANDWIDTH_RULES = {"scott": scott_factor, "silverman": silverman_factor}
#: The kernel shapes :math:`C`.
KERNEL_METRICS = ("identity", "covariance")


def _kde_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    return continuous_support(recipe, data, kwargs, hint="a kernel density is a density on continuous data")


def _kde_prepare(model: KernelDensity, data: Dataset) -> None:
    model.set_points(data.train)


def _kde_train(data: Dataset) -> dict[str, Any]:
    """100 steps of batch 256 at lr 0.03 on the log-bandwidth (one or a few numbers, started at a rule, so a
    short run), validation every 10 steps, patience 3."""
    return {"lr": 0.03, "batch_size": 256, "steps": 100, "val_every": 10, "patience": 3}


@register(
    "kde",
    family="nonparametric",
    data="moons",
    choices=_kde_choices,
    prepare=_kde_prepare,
    train=_kde_train,
    objective=lambda model: LeaveOneOutLikelihood(),
)
class KernelDensity(GenerativeModel):
    r"""A Gaussian kernel density estimate over the training points (see the module docstring).

    The points are a buffer set by :meth:`set_points` (``fit`` sets them from its training data; a checkpoint
    holds them), the log-bandwidth :math:`\log h` the one parameter.

    Args:
        event_shape: the shape of one example (flattened to :math:`D`).
        bandwidth: ``"scott"``, ``"silverman"`` (the rule's factor times the points' standard deviation with
            ``metric="identity"``: per dimension, or their root mean square for one bandwidth; the factor itself
            with ``metric="covariance"``) or a positive number :math:`h`.
        metric: ``"identity"`` or ``"covariance"`` (see the module docstring).
        per_dimension: one bandwidth per dimension (trained separately) instead of one.
        support: ``"real"`` or ``"unit_interval"`` (dequantized images: a density on :math:`[0, 1)^D` only up to
            the kernels' mass outside).

    Raises:
        ValueError: a bad argument, named with its value.

    References: Rosenblatt, 1956; Parzen, 1962; Scott, 1992; Silverman, 1986.

    Example:
        >>> import pyrogen
        >>> moons = pyrogen.data.load("moons")
        >>> kde = KernelDensity(event_shape=(2,), bandwidth="scott")
        >>> kde.set_points(moons.train)
        >>> round(kde.bandwidth().item(), 3), kde.log_prob(moons.test[:4]).shape
        (0.255, torch.Size([4]))
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        bandwidth: str | float = "scott",
        metric: str = "identity",
        per_dimension: bool = False,
        support: str = "real",
    ) -> None:
        super().__init__(event_shape)
        if isinstance(bandwidth, str):
            if bandwidth not in BANDWIDTH_RULES:
                raise ValueError(
                    f"bandwidth must be one of {', '.join(BANDWIDTH_RULES)} or a number; got {bandwidth!r}"
                )
        elif isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)) or not 0 < bandwidth < math.inf:
            raise ValueError(f"bandwidth must be a positive number or a rule name; got {bandwidth!r}")
        if metric not in KERNEL_METRICS:
            raise ValueError(f"metric must be one of {', '.join(KERNEL_METRICS)}; got {metric!r}")
        if not isinstance(per_dimension, bool):
            raise ValueError(f"per_dimension must be True or False; got {per_dimension!r}")
        if support not in ("real", "unit_interval"):
            raise ValueError(f"support must be 'real' or 'unit_interval'; got {support!r}")
        self.rule, self.metric, self.per_dimension, self.support = bandwidth, metric, per_dimension, support
        d = self.dim = math.prod(self.event_shape)
        start = 1.0 if isinstance(bandwidth, str) else float(bandwidth)
        self.log_bandwidth = nn.Parameter(torch.full((d if per_dimension else 1,), math.log(start)))
        self.points: torch.Tensor
        self.shape_tril: torch.Tensor
        self.register_buffer("points", torch.zeros(0, d))
        self.register_buffer("shape_tril", torch.eye(d))

    # -- the points ------------------------------------------------------------------------------------------------
    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "points")
        if isinstance(saved, torch.Tensor) and saved.shape != self.points.shape:  # as many points as were saved
            self.points = torch.empty_like(saved, dtype=self.points.dtype, device=self.points.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def set_points(self, x: torch.Tensor) -> None:
        """Keep ``x`` (``(N,) + event_shape``) as the kernels' centres, the kernel shape :math:`C` from them
        (``metric="covariance"``) and the bandwidth at the rule (or the number) the model was built with.

        Raises:
            ValueError: bad data (see :meth:`validate`), or fewer than two points for a rule or a covariance.
        """
        v = self.validate(x, name="x").reshape(len(x), -1).to(self.log_bandwidth.dtype)
        n, d = v.shape
        if n < 2 and (isinstance(self.rule, str) or self.metric == "covariance"):
            raise ValueError(f"a bandwidth rule or a covariance kernel needs at least two points; got {n}")
        self.points = v.clone()
        eye = torch.eye(d, dtype=v.dtype, device=v.device)
        self.shape_tril = torch.linalg.cholesky(torch.cov(v.T).reshape(d, d)) if self.metric == "covariance" else eye
        if not isinstance(self.rule, str):
            self.log_bandwidth.fill_(math.log(float(self.rule)))
            return
        factor = BANDWIDTH_RULES[self.rule](n, d)
        if self.metric == "covariance":
            self.log_bandwidth.fill_(math.log(factor))
            return
        std = v.std(0).clamp_min(torch.finfo(v.dtype).eps)
        h = factor * (std if self.per_dimension else std.square().mean().sqrt().reshape(1))
        self.log_bandwidth.copy_(h.log())

    def _points(self) -> torch.Tensor:
        if len(self.points) == 0:
            raise ValueError(
                "KernelDensity holds no points yet: call set_points(x), train it with fit, or build it with "
                "registry.from_dataset('kde', data)"
            )
        return self.points

    # -- the kernel ------------------------------------------------------------------------------------------------
    def bandwidth(self) -> torch.Tensor:
        """:math:`h`, shape ``(1,)`` or ``(D,)``."""
        return self.log_bandwidth.exp()

    def scale_tril(self) -> torch.Tensor:
        """The kernel's factor :math:`L = \\mathrm{diag}(h) C`, ``(D, D)``."""
        h = self.bandwidth().expand(self.dim)
        return h[:, None] * self.shape_tril

    @frozen_unless_trainable
    def as_distribution(self) -> KernelDensityDistribution:
        """The estimate as Pyro's ``MixtureSameFamily`` over the points, event shape ``(D,)`` (flattened)."""
        return KernelDensityDistribution.from_points(self._points(), self.scale_tril())

    # -- densities and samples -------------------------------------------------------------------------------------
    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        v = self.validate(x).reshape(len(x), -1)
        return kernel_log_density(v, self._points(), self.scale_tril())

    def leave_one_out_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_{-x}(x)`: the estimate without the points equal to ``x`` (the likelihood
        cross-validation criterion when ``x`` are the training points), shape ``(n,)``."""
        v = self.validate(x).reshape(len(x), -1)
        return kernel_log_density(v, self._points(), self.scale_tril(), leave_one_out=True)

    def sample(self, n: int) -> torch.Tensor:
        check_positive_int("n", n)
        return self.as_distribution().sample((n,)).reshape(n, *self.event_shape)

    @torch.no_grad()
    def select_bandwidth(self, x: torch.Tensor, factors: Sequence[float] | None = None) -> dict[str, float]:
        """Multiply the bandwidth by the factor of ``factors`` (default 61 log-spaced from 1/10 to 10) that gives
        held-out data ``x`` the highest mean log-likelihood; returns ``{"factor", "log_likelihood"}``.

        Raises:
            ValueError: bad data, or a factor that is not positive.
        """
        grid = torch.logspace(-1, 1, 61).tolist() if factors is None else [float(f) for f in factors]
        if not grid or any(not f > 0 for f in grid):
            raise ValueError(f"factors must be positive numbers; got {factors!r}")
        v = self.validate(x).reshape(len(x), -1)
        start = self.log_bandwidth.clone()
        best = (-math.inf, 1.0)
        for f in grid:
            self.log_bandwidth.copy_(start + math.log(f))
            ll = float(kernel_log_density(v, self._points(), self.scale_tril()).mean())
            if ll > best[0]:
                best = (ll, f)
        self.log_bandwidth.copy_(start + math.log(best[1]))
        return {"factor": best[1], "log_likelihood": best[0]}

    # -- the Pyro program ------------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """``x ~ KDE`` over flattened examples, the rows in the caller's plate."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(), obs=None if x is None else x.reshape(n, -1))

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}, points={len(self.points)}, metric={self.metric!r}"
