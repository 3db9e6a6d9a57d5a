r"""Autoregressive densities :math:`p(x) = \prod_i p(x_i \mid x_{<i})` as Pyro distributions.

A *conditionals* object turns the per-position parameters a network computes
(in one pass, from the whole of ``x``) into per-position log-probabilities and
draws: Bernoulli logits, categorical logits or a mixture of Gaussians.
:class:`AutoregressiveDistribution` wraps any object with
``event_shape``, ``_log_prob(x)`` and ``_sample(n)`` (every model of
:mod:`pyrogen.models.autoregressive`) as a ``TorchDistribution``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = [
    "AutoregressiveDistribution",
    "BernoulliConditionals",
    "CategoricalConditionals",
    "Conditionals",
    "GaussianMixtureConditionals",
    "make_conditionals",
]


class Conditionals(Protocol):
    """The per-position output distribution of an autoregressive model.

    ``params`` has shape ``(..., num_params)``; ``x`` the matching ``(...)``.
    """

    num_params: int
    support: constraints.Constraint
    #: dtype of a drawn value (``None``: the floating default).
    dtype: torch.dtype | None

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...

    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor: ...


class BernoulliConditionals:
    r""":math:`p(x_i = 1 \mid x_{<i}) = \sigma(\ell_i)` from one logit per position.

    Example:
        >>> c = BernoulliConditionals()
        >>> c.log_prob(torch.zeros(2, 1), torch.tensor([0.0, 1.0])).exp()
        tensor([0.5000, 0.5000])
    """

    num_params = 1
    support: constraints.Constraint = constraints.boolean
    dtype: torch.dtype | None = None

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(params[..., 0], x, reduction="none")

    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        return torch.bernoulli(torch.sigmoid(params[..., 0] / temperature))


class CategoricalConditionals:
    r""":math:`p(x_i = l \mid x_{<i}) = \mathrm{softmax}(\ell_i)_l` over ``levels`` values."""

    dtype: torch.dtype | None = torch.long

    def __init__(self, levels: int) -> None:
        if not isinstance(levels, int) or levels < 2:
            raise ValueError(f"levels must be an integer >= 2; got {levels!r}")
        self.num_params = self.levels = levels
        self.support: constraints.Constraint = constraints.integer_interval(0, levels - 1)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return params.log_softmax(-1).gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        probs = (params / temperature).softmax(-1)
        return torch.multinomial(probs.reshape(-1, self.levels), 1).view(params.shape[:-1])


class GaussianMixtureConditionals:
    r"""A mixture of :math:`K` Gaussians per position (RNADE, Uria et al., 2013).

    .. math:: p(x_i \mid x_{<i}) = \sum_k \pi_{ik}\, \mathcal N(x_i; \mu_{ik}, \sigma_{ik}^2),

    parameters ordered ``(logits, means, log-scales)``; log-scales are clamped to
    ``[min_log_scale, 5]`` for stability.
    """

    support: constraints.Constraint = constraints.real
    dtype: torch.dtype | None = None

    def __init__(self, components: int, min_log_scale: float = -7.0) -> None:
        if not isinstance(components, int) or components < 1:
            raise ValueError(f"components must be a positive integer; got {components!r}")
        self.components = components
        self.num_params = 3 * components
        self.min_log_scale = min_log_scale

    def split(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, loc, log_scale = params.chunk(3, dim=-1)
        return logits.log_softmax(-1), loc, log_scale.clamp(self.min_log_scale, 5.0)

    def log_prob(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        logw, loc, log_scale = self.split(params)
        z = (x.unsqueeze(-1) - loc) * torch.exp(-log_scale)
        comp = -0.5 * z.pow(2) - log_scale - 0.5 * math.log(2 * math.pi)
        return torch.logsumexp(logw + comp, dim=-1)

    def sample(self, params: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        logw, loc, log_scale = self.split(params)
        k = torch.multinomial((logw / temperature).softmax(-1).reshape(-1, self.components), 1)
        k = k.view(*params.shape[:-1], 1)
        eps = torch.randn_like(loc[..., :1]) * math.sqrt(temperature)
        return (loc.gather(-1, k) + log_scale.gather(-1, k).exp() * eps).squeeze(-1)


def make_conditionals(likelihood: str, levels: int | None = None, components: int = 1) -> Conditionals:
    """Build the conditionals called ``likelihood``: ``"bernoulli"``, ``"categorical"`` or ``"gaussian-mixture"``.

    Raises:
        ValueError: an unknown ``likelihood``, or ``"categorical"`` without ``levels``.
    """
    if likelihood == "bernoulli":
        return BernoulliConditionals()
    if likelihood == "categorical":
        if levels is None:
            raise ValueError("likelihood='categorical' needs levels (the number of values)")
        return CategoricalConditionals(levels)
    if likelihood == "gaussian-mixture":
        return GaussianMixtureConditionals(components)
    raise ValueError(f"likelihood must be 'bernoulli', 'categorical' or 'gaussian-mixture'; got {likelihood!r}")


class AutoregressiveDistribution(TorchDistribution):
    r"""An autoregressive model as a Pyro distribution: exact ``log_prob``, ancestral ``sample``.

    Args:
        model: an autoregressive model (``event_shape``, ``conditionals``,
            ``_log_prob(x)`` over a batch, ``_sample(n)``).
        temperature: sampling temperature (1: the model itself; ``log_prob``
            always scores the model at temperature 1).

    Example:
        >>> import pyro, pyrogen
        >>> m = pyrogen.models.FVSBN(event_shape=(3,))
        >>> d = m.as_distribution()
        >>> x = d.sample((4,))
        >>> x.shape, d.log_prob(x).shape, d.event_shape
        (torch.Size([4, 3]), torch.Size([4]), torch.Size([3]))
    """

    arg_constraints: dict[str, constraints.Constraint] = {}
    has_rsample = False

    def __init__(
        self,
        model: Any,
        temperature: float = 1.0,
        batch_shape: Sequence[int] = (),
        validate_args: bool | None = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        super().__init__(torch.Size(batch_shape), model.event_shape, validate_args=validate_args)

    @property
    def support(self) -> constraints.Constraint:
        return self.model.conditionals.support

    def expand(self, batch_shape: Any, _instance: Any = None) -> AutoregressiveDistribution:
        return AutoregressiveDistribution(self.model, self.temperature, torch.Size(batch_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        k = len(self.event_shape)
        lead = value.shape[: value.dim() - k]
        flat = value.reshape((-1, *self.event_shape))
        lp = self.model._log_prob(flat).view(lead)
        # the torch.distributions contract: the result has the broadcast of the value's and the batch shape
        return lp.expand(torch.broadcast_shapes(lead, self.batch_shape))

    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        n = math.prod(shape)
        if n == 0:
            return torch.zeros(shape + self.event_shape)
        with torch.no_grad():
            x = self.model._sample(n, temperature=self.temperature)
        return x.view(shape + self.event_shape)
