"""Implicit distributions: they sample (differentiably) and have no density."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch
from torch.distributions import constraints

__all__ = ["ImplicitDistribution"]

_HINT = (
    "it is an implicit distribution (a generator): it samples but has no density. Score its samples with "
    "pyrogen.quality (fid, kid, precision_recall, mmd_test, c2st), or condition through its latent z "
    "(pyrogen.latent.generator_posterior)"
)


def draw(
    sampler: Callable[[int], torch.Tensor],
    sample_shape: Sequence[int],
    batch_shape: torch.Size,
    event_shape: torch.Size,
) -> torch.Tensor:
    """``sampler(n)`` for the ``n`` draws that ``sample_shape + batch_shape`` holds, checked and reshaped."""
    shape = torch.Size(sample_shape) + batch_shape
    n = math.prod(shape)
    if n == 0:
        raise ValueError(f"sample_shape {tuple(sample_shape)} and batch_shape {tuple(batch_shape)} hold no draw")
    x = sampler(n)
    if x.shape != (n, *event_shape):
        raise ValueError(f"the sampler returned shape {tuple(x.shape)}; expected {(n, *event_shape)}")
    return x.reshape(*shape, *event_shape)


class ImplicitDistribution(dist.TorchDistribution):
    r"""The distribution of :math:`G(z)`, :math:`z \sim p(z)`, for a generator :math:`G` (a GAN's).

    ``rsample`` is reparameterized — gradients flow through :math:`G` to whatever it depends on — so the
    distribution can stand in a Pyro program (``pyro.sample("x", d)``) and in an SVI objective that only
    needs samples. ``log_prob`` raises :class:`NotImplementedError` naming what to use instead: a
    sample-quality metric, or a Pyro model over :math:`z` with :math:`x = G(z)` observed through a
    likelihood.

    Args:
        sampler: ``n -> (n,) + event_shape``, drawing ``n`` independent samples.
        event_shape: the shape of one sample.
        batch_shape: independent copies (``sample`` draws ``prod(batch_shape)`` per sample).
        support: the constraint the samples satisfy (``constraints.real`` by default).

    Example:
        >>> d = ImplicitDistribution(lambda n: torch.randn(n, 2) * 3, event_shape=(2,))
        >>> d.sample((4,)).shape, d.expand((5,)).sample().shape
        (torch.Size([4, 2]), torch.Size([5, 2]))
    """

    arg_constraints: dict = {}
    has_rsample = True

    def __init__(
        self,
        sampler: Callable[[int], torch.Tensor],
        event_shape: Sequence[int],
        batch_shape: Sequence[int] = (),
        support: constraints.Constraint = constraints.real,
        validate_args: bool | None = None,
    ) -> None:
        self._sampler = sampler
        self._support = support
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self._support, len(self.event_shape))

    def expand(self, batch_shape: Sequence[int], _instance: ImplicitDistribution | None = None) -> ImplicitDistribution:
        return ImplicitDistribution(self._sampler, self.event_shape, batch_shape, self._support)

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return draw(self._sampler, sample_shape, self.batch_shape, self.event_shape)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"log_prob is not defined: {_HINT}")
