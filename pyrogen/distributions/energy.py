r"""Unnormalized (energy) distributions: :math:`p(x) \propto e^{f(x)}`, sampled by MCMC."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from pyrogen.distributions.implicit import draw

__all__ = ["EnergyDistribution", "NumericalDensity"]


class EnergyDistribution(dist.TorchDistribution):
    r"""The distribution :math:`p(x) = e^{f(x)} / Z` of an energy-based model, :math:`Z` unknown.

    ``log_prob(x)`` returns :math:`f(x)`, the log density **up to the unknown constant**
    :math:`-\log Z`: right wherever only differences or gradients in :math:`x` matter -- as a prior over
    ``x`` in a Pyro model (``pyro.factor("prior", d.log_prob(x))``, or ``pyro.sample("x", d)`` with
    ``x`` a latent site sampled by HMC/NUTS, whose potential ignores constants), in a
    Metropolis-Hastings ratio -- and wrong as a likelihood to compare models by. ``sample`` runs MCMC
    (``sampler(n)``, e.g. Langevin chains from noise); it is not reparameterized.

    Args:
        log_density: ``x -> f(x)``, ``(n, *event_shape) -> (n,)``.
        sampler: ``n -> (n, *event_shape)`` draws (by MCMC).
        event_shape: the shape of one draw.
        batch_shape: independent copies.
        support: the constraint the draws satisfy (``constraints.real`` by default).

    Example:
        >>> d = EnergyDistribution(lambda x: -0.5 * (x**2).sum(-1), lambda n: torch.randn(n, 2), (2,))
        >>> d.log_prob(torch.ones(3, 2)), d.sample((4,)).shape
        (tensor([-1., -1., -1.]), torch.Size([4, 2]))
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(
        self,
        log_density: Callable[[torch.Tensor], torch.Tensor],
        sampler: Callable[[int], torch.Tensor],
        event_shape: Sequence[int],
        batch_shape: Sequence[int] = (),
        support: constraints.Constraint = constraints.real,
        validate_args: bool | None = None,
    ) -> None:
        self._log_density = log_density
        self._sampler = sampler
        self._support = support
        super().__init__(torch.Size(batch_shape), torch.Size(event_shape), validate_args=validate_args)

    @constraints.dependent_property
    def support(self) -> constraints.Constraint:
        return constraints.independent(self._support, len(self.event_shape))

    def expand(self, batch_shape: Sequence[int], _instance: EnergyDistribution | None = None) -> EnergyDistribution:
        return EnergyDistribution(self._log_density, self._sampler, self.event_shape, batch_shape, self._support)

    def sample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        return draw(self._sampler, sample_shape, self.batch_shape, self.event_shape).detach()

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`f(x)`: the log density up to the unknown :math:`-\\log Z` (see the class docstring)."""
        if self._validate_args:
            self._validate_sample(value)
        k = len(self.event_shape)
        lead = value.shape[: value.dim() - k]
        if value.shape[value.dim() - k :] != self.event_shape:
            raise ValueError(f"value must end in the event shape {tuple(self.event_shape)}; got {tuple(value.shape)}")
        flat = value.reshape(-1, *self.event_shape)
        f = self._log_density(flat).reshape(lead)
        return f.expand(torch.broadcast_shapes(lead, self.batch_shape))


class NumericalDensity(EnergyDistribution):
    r"""A distribution whose ``log_prob`` is a *normalized* log density computed numerically -- the
    probability-flow ODE's of a score SDE (:class:`~pyrogen.models.ScoreSDE`) -- and whose ``sample`` calls a
    sampler. The interface of :class:`EnergyDistribution`, without its missing constant.

    Example:
        >>> log_n = lambda x: -0.5 * (x**2).sum(-1) - 1.8378770664093453
        >>> d = NumericalDensity(log_n, lambda n: torch.randn(n, 2), (2,))
        >>> round(float(d.log_prob(torch.zeros(1, 2))), 4)
        -1.8379
    """

    def __init__(
        self,
        log_density: Callable[[torch.Tensor], torch.Tensor],
        sampler: Callable[[int], torch.Tensor],
        event_shape: Sequence[int],
        batch_shape: Sequence[int] = (),
        support: constraints.Constraint = constraints.real,
        validate_args: bool | None = None,
        reparameterized: bool = False,
    ) -> None:
        super().__init__(log_density, sampler, event_shape, batch_shape, support, validate_args)
        #: ``sampler`` draws keep their graph to the parameters (a continuous flow's ODE from noise): ``rsample``
        self.has_rsample = bool(reparameterized)

    def expand(self, batch_shape: Sequence[int], _instance: EnergyDistribution | None = None) -> NumericalDensity:
        return NumericalDensity(
            self._log_density,
            self._sampler,
            self.event_shape,
            batch_shape,
            self._support,
            reparameterized=self.has_rsample,
        )

    def rsample(self, sample_shape: Sequence[int] = torch.Size()) -> torch.Tensor:
        """Draws with their graph (only when made with ``reparameterized=True``)."""
        if not self.has_rsample:
            raise NotImplementedError("this density's sampler is not reparameterized (use sample)")
        return draw(self._sampler, sample_shape, self.batch_shape, self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """The log density (normalized)."""
        return super().log_prob(value)
