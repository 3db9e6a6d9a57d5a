r"""Autoregressive models: :math:`p(x) = \prod_i p(x_i \mid x_{<i})`, exact and normalized.

Every model here computes the parameters of all conditionals in one network
pass over ``x`` (teacher forcing), so ``log_prob`` is parallel, and samples
ancestrally, one position at a time in the model's ordering. Each is a Pyro
distribution (:meth:`~AutoregressiveModel.as_distribution`) usable as a
likelihood or prior in any Pyro program, and a registered model trained by
maximum likelihood through :func:`pyrogen.inference.fit`.

The conditionals are Bernoulli (binary data), categorical (``levels``
values: the 17-level digits, characters) or a mixture of Gaussians (real
data), see :mod:`pyrogen.distributions.autoregressive`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, cast

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.data import Dataset
from pyrogen.distributions.autoregressive import AutoregressiveDistribution, make_conditionals
from pyrogen.inference.hooks import StepClock
from pyrogen.inference.objectives import MaximumLikelihood, log_mean_exp, use_objective
from pyrogen.inference.program import data_plate
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_dropout,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
)
from pyrogen.models.registry import Recipe, register
from pyrogen.nn import CausalTransformer, GatedPixelCNNNet, MADENet, PixelCNNNet, PixelRNNNet
from pyrogen.nn.pixelrnn import PIXELRNN_CELLS

__all__ = [
    "FVSBN",
    "MADE",
    "NADE",
    "RNADE",
    "AutoregressiveModel",
    "CharRNN",
    "GatedPixelCNN",
    "PixelCNN",
    "PixelRNN",
    "Transformer",
]

_LIKELIHOOD_OF_SUPPORT = {
    "binary": "bernoulli",
    "integer": "categorical",
    "real": "gaussian-mixture",
    "unit_interval": "gaussian-mixture",
}
_SUPPORT_OF_LIKELIHOOD = {"bernoulli": "binary", "categorical": "integer", "gaussian-mixture": "real"}

_DIGITS_DEFAULTS: dict[str, Any] = {
    "batch_size": 128,
    "lr": 2e-3,
    "steps": 3000,
    "val_every": 50,
    "patience": 10,
}


def _autoregressive_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Build the model for ``data``, choosing the conditionals from its support.

    Raises:
        ValueError: no conditional of this model fits the data.
    """
    likelihood = kwargs.pop("likelihood", None) or _LIKELIHOOD_OF_SUPPORT[data.support]
    offered = cast("type[AutoregressiveModel]", recipe.cls).likelihoods
    if likelihood not in offered:
        raise ValueError(
            f"{recipe.name} offers {', '.join(offered)} conditionals; "
            f"dataset {data.name!r} is {data.support} (needs {likelihood})"
        )
    if likelihood == "categorical":
        kwargs.setdefault("levels", data.levels)
    kwargs["likelihood"] = likelihood
    return kwargs


#: What the family's recipes share.
_RECIPE: dict[str, Any] = {
    "family": "autoregressive",
    "data": "digits-binary",
    "train": _DIGITS_DEFAULTS,
    "choices": _autoregressive_choices,
}
_PIXEL_DEFAULTS = {**_DIGITS_DEFAULTS, "lr": 1e-3, "patience": 20}


def _pixel_train(data: Dataset) -> dict[str, Any]:
    """The pixel models' settings: at 28 x 28 a step of 128 images takes 1.5 s on one core, so batches of 32,
    more steps, and validation every 200 steps (500 validation images cost 1.4 s)."""
    if math.prod(data.event_shape) <= 256:
        return dict(_PIXEL_DEFAULTS)
    return {**_PIXEL_DEFAULTS, "batch_size": 32, "steps": 4000, "val_every": 200, "patience": 5}


class AutoregressiveModel(GenerativeModel):
    """Base class of the autoregressive family.

    A subclass sets ``likelihoods`` (the conditionals it offers) and implements
    :meth:`_params`: ``x`` of shape ``(n,) + event_shape`` to the parameters of
    every conditional, ``(n, D, P)``, position ``i`` in ``x.reshape(n, D)``
    order, depending only on the positions before ``i`` in :meth:`ordering`.

    Args:
        event_shape: shape of one example.
        likelihood: ``"bernoulli"``, ``"categorical"`` or ``"gaussian-mixture"``.
        levels: number of values of a categorical variable.
        components: mixture components of a Gaussian-mixture conditional.
    """

    support = "binary"
    likelihoods: ClassVar[tuple[str, ...]] = ("bernoulli",)

    def __init__(
        self,
        event_shape: Sequence[int],
        likelihood: str | None = None,
        levels: int | None = None,
        components: int = 1,
    ) -> None:
        super().__init__(event_shape)
        likelihood = likelihood or self.likelihoods[0]
        if likelihood not in self.likelihoods:
            raise ValueError(f"{type(self).__name__} offers likelihood {self.likelihoods}; got {likelihood!r}")
        if likelihood == "bernoulli":
            levels = 2
        elif likelihood == "categorical" and (not isinstance(levels, int) or levels < 2):
            raise ValueError(f"levels must be an integer >= 2 for likelihood='categorical'; got {levels!r}")
        self.likelihood = likelihood
        self.num_levels = levels if likelihood != "gaussian-mixture" else None
        self.components = check_positive_int("components", components)
        self.conditionals = make_conditionals(likelihood, levels, components)
        self.support = _SUPPORT_OF_LIKELIHOOD[likelihood]
        self.num_vars = math.prod(self.event_shape)

    @property
    def levels(self) -> int | None:
        """The number of values each coordinate of the data takes (2 for binary), ``None`` for real data."""
        return self.num_levels if self.likelihood == "categorical" else None

    _levels = levels  # what validate() checks integer data against

    # -- the autoregressive structure ----------------------------------------
    def _params(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def ordering(self) -> torch.Tensor:
        """The order in which positions of ``x.reshape(n, D)`` are generated."""
        return torch.arange(self.num_vars)

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        params = self._params(x)
        flat = x.reshape(len(x), self.num_vars)
        return self.conditionals.log_prob(params, flat.to(params.dtype) if flat.is_floating_point() else flat).sum(-1)

    def _empty(self, n: int) -> torch.Tensor:
        ref = next(self.parameters())
        dtype = self.conditionals.dtype or ref.dtype
        return torch.zeros(n, self.num_vars, dtype=dtype, device=ref.device)

    def _fill(
        self, x: torch.Tensor, order: torch.Tensor, skip: torch.Tensor | None, temperature: float
    ) -> torch.Tensor:
        """Ancestral sampling into ``x`` (``(n, D)``) along ``order``, keeping positions where ``skip``."""
        n = len(x)
        for pos in order.tolist():
            if skip is not None and bool(skip[pos]):
                continue
            params = self._params(x.view(n, *self.event_shape))[:, pos]
            x[:, pos] = self.conditionals.sample(params, temperature).to(x.dtype)
        return x

    def _sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        return self._fill(self._empty(n), self.ordering(), None, temperature).view(n, *self.event_shape)

    # -- the public surface ----------------------------------------------------
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        pyro.module(self._param_store_name(), self)
        n = len(x) if x is not None else (num_samples or 1)
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(), obs=x)

    @frozen_unless_trainable
    def as_distribution(self, temperature: float = 1.0) -> AutoregressiveDistribution:
        """The model as a Pyro distribution with event shape ``event_shape`` (``temperature`` only affects sampling)."""
        return AutoregressiveDistribution(self, _check_temperature(temperature))

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""Exact :math:`\log p(x)` in nats, shape ``(n,)``.

        Raises:
            ValueError, TypeError: ``x`` has the wrong shape, dtype or values outside the support.
        """
        return self._log_prob(self.validate(x))

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` ancestral samples, shape ``(n,) + event_shape``; ``temperature`` scales the logits."""
        check_positive_int("n", n)
        return self._sample(n, _check_temperature(temperature))

    @torch.no_grad()
    def complete(self, x: torch.Tensor, observed: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
        r"""Impute: sample the missing part of ``x`` from :math:`p(x_{\text{mis}} \mid x_{\text{obs}})`.

        Args:
            x: ``(n,) + event_shape``; only the observed entries are read.
            observed: boolean mask of shape ``event_shape``, ``True`` where ``x`` is given.
            temperature: sampling temperature.

        Returns:
            ``x`` with the missing entries sampled, same shape.

        Raises:
            TypeError: ``observed`` is not a boolean tensor.
            ValueError: a mask of the wrong shape, bad observed values, a non-positive
                temperature, or observed entries the model cannot condition on exactly.
        """
        if not isinstance(observed, torch.Tensor) or observed.dtype != torch.bool:
            raise TypeError(f"observed must be a boolean tensor; got {type(observed).__name__}")
        if observed.shape != self.event_shape:
            raise ValueError(f"observed must have shape {tuple(self.event_shape)}; got {tuple(observed.shape)}")
        _check_temperature(temperature)
        x = torch.where(observed.to(x.device), x, torch.zeros((), dtype=x.dtype, device=x.device))
        self.validate(x)
        out = x.reshape(len(x), self.num_vars).clone()
        return self._complete(out, observed.reshape(-1).to(x.device), temperature).view_as(x)

    def _complete(self, x: torch.Tensor, observed: torch.Tensor, temperature: float) -> torch.Tensor:
        order = self.ordering().to(observed.device)
        if not _observed_first(observed, order):
            raise ValueError(
                f"{type(self).__name__} generates in a fixed order and the observed positions must all come "
                "before the missing ones in it (e.g. the top rows of an image); MADE with num_masks > 1 "
                "can condition on any subset"
            )
        return self._fill(x, order, observed, temperature)


use_objective(AutoregressiveModel, lambda model: MaximumLikelihood())


def _check_temperature(temperature: float) -> float:
    if not isinstance(temperature, (int, float)) or not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number; got {temperature!r}")
    return float(temperature)


def _observed_first(observed: torch.Tensor, order: torch.Tensor) -> bool:
    """Whether every observed position comes before every missing one in ``order``."""
    o = observed[order]
    return not bool((o[1:] & ~o[:-1]).any())


# --------------------------------------------------------------------------------------
@register("fvsbn", **_RECIPE)
class FVSBN(AutoregressiveModel):
    r"""Fully visible sigmoid belief network: logistic regression on all previous variables.

    .. math:: p(x_i = 1 \mid x_{<i}) = \sigma\Big(b_i + \sum_{j<i} W_{ij} x_j\Big)

    with exactly :math:`D(D+1)/2` parameters (the strictly lower triangle of
    :math:`W`, stored packed, and :math:`b`).

    Args:
        event_shape: shape of one binary example.

    References: Frey, 1998; Gan et al., 2015 (AISTATS).

    Example:
        >>> m = FVSBN(event_shape=(4,))
        >>> sum(p.numel() for p in m.parameters())
        10
    """

    def __init__(self, event_shape: Sequence[int] = (1, 8, 8), likelihood: str | None = None) -> None:
        super().__init__(event_shape, likelihood)
        d = self.num_vars
        self.weight = nn.Parameter(torch.zeros(d * (d - 1) // 2))
        self.bias = nn.Parameter(torch.zeros(d))
        self.register_buffer("tril", torch.tril_indices(d, d, offset=-1))

    def matrix(self) -> torch.Tensor:
        """The strictly lower-triangular :math:`W`, ``(D, D)``."""
        w = self.weight.new_zeros(self.num_vars, self.num_vars)
        return w.index_put((self.tril[0], self.tril[1]), self.weight)

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1).to(self.weight.dtype)
        return F.linear(flat, self.matrix(), self.bias).unsqueeze(-1)

    def _fill(
        self, x: torch.Tensor, order: torch.Tensor, skip: torch.Tensor | None, temperature: float
    ) -> torch.Tensor:
        """Ancestral sampling reading one row of :math:`W` per position: :math:`O(D^2)` per example in all."""
        w = self.matrix()
        for pos in order.tolist():
            if skip is None or not bool(skip[pos]):
                logit = x[:, :pos].to(w.dtype) @ w[pos, :pos] + self.bias[pos]
                x[:, pos] = self.conditionals.sample(logit.unsqueeze(-1), temperature).to(x.dtype)
        return x


# --------------------------------------------------------------------------------------
class _NADEBase(AutoregressiveModel):
    r"""NADE's shared hidden layer, computed for all positions at once with a running sum.

    :math:`a_i = c + \sum_{j<i} W_{\cdot j}(x_j)` is an exclusive cumulative sum
    over positions, so all :math:`D` hidden states cost :math:`O(DH)`.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        hidden: int,
        likelihood: str | None,
        levels: int | None,
        components: int,
    ) -> None:
        super().__init__(event_shape, likelihood, levels, components)
        self.hidden = check_positive_int("hidden", hidden)
        d, h, p = self.num_vars, self.hidden, self.conditionals.num_params
        in_shape: tuple[int, ...] = (d, self.num_levels or 2, h) if self.likelihood == "categorical" else (d, h)
        self.W = nn.Parameter(torch.randn(in_shape) * (1.0 / math.sqrt(d)))
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.randn(d, h, p) * (1.0 / math.sqrt(h)))
        self.b = nn.Parameter(torch.zeros(d, p))

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Each position's contribution :math:`W_{\\cdot j}(x_j)`, ``(n, D, H)``."""
        flat = x.reshape(len(x), self.num_vars)
        if self.likelihood == "categorical":
            return self.W[torch.arange(self.num_vars, device=flat.device), flat.long()]
        return flat.to(self.W.dtype).unsqueeze(-1) * self.W

    def _activation(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(a)

    def _pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`a_i = c + \sum_{j<i} W_{\cdot j}(x_j)` for every position, ``(n, D, H)``.

        Scalar inputs go by blocks of about :math:`\sqrt D` positions: inside a block a strictly lower-triangular
        matrix product, across blocks a running sum of the block totals. That reads the ``(n, D, H)`` tensor
        fewer times than one running sum over all positions (a strided scan, the bottleneck at 784 pixels). One-hot
        (categorical) inputs keep the running sum. Either way ``x_i`` never enters ``a_i``, not even by rounding.
        """
        n, d, h = len(x), self.num_vars, self.hidden
        if self.likelihood == "categorical":
            contrib = self._inputs(x)
            return self.c + F.pad(contrib[:, :-1].cumsum(1), (0, 0, 1, 0))
        b = max(1, math.isqrt(d))
        nb = -(-d // b)
        flat = F.pad(x.reshape(n, d).to(self.W.dtype), (0, nb * b - d)).view(n, nb, b)
        w = F.pad(self.W, (0, 0, 0, nb * b - d)).view(nb, b, h)
        tri = torch.ones(b, b, dtype=w.dtype, device=w.device).tril(-1)
        masked = (tri * flat.unsqueeze(-2)).transpose(0, 1).reshape(nb, n * b, b)  # block k, (example, i), j < i
        within = masked.bmm(w).view(nb, n, b, h).transpose(0, 1)
        totals = torch.einsum("nkj,kjh->nkh", flat, w)
        before = F.pad(totals[:, :-1].cumsum(1), (0, 0, 1, 0))
        return self.c + (within + before.unsqueeze(2)).reshape(n, nb * b, h)[:, :d]

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        h = self._activation(self._pre_activations(x))
        return torch.einsum("ndh,dhp->ndp", h, self.V) + self.b

    def _fill(
        self, x: torch.Tensor, order: torch.Tensor, skip: torch.Tensor | None, temperature: float
    ) -> torch.Tensor:
        """Ancestral sampling with the running sum carried along: :math:`O(DH)` per example, not one full pass per
        position as the generic route takes."""
        if not torch.equal(order.cpu(), torch.arange(self.num_vars)):
            return super()._fill(x, order, skip, temperature)
        n = len(x)
        a = self.c.expand(n, self.hidden)
        for pos in range(self.num_vars):
            if skip is None or not bool(skip[pos]):
                params = self._activation_at(a, pos) @ self.V[pos] + self.b[pos]
                x[:, pos] = self.conditionals.sample(params, temperature).to(x.dtype)
            if self.likelihood == "categorical":
                a = a + self.W[pos][x[:, pos].long()]
            else:
                a = a + x[:, pos, None].to(self.W.dtype) * self.W[pos]
        return x

    def _log_prob_naive(self, x: torch.Tensor) -> torch.Tensor:
        """The d-pass reference: conditional ``i``'s hidden layer computed from scratch, one pass per position."""
        flat = x.reshape(len(x), self.num_vars)
        out = torch.zeros(len(x), dtype=self.W.dtype, device=self.W.device)
        for i in range(self.num_vars):
            if self.likelihood == "categorical":
                a = self.c + self.W[torch.arange(i, device=flat.device), flat[:, :i].long()].sum(1)
                xi = flat[:, i]
            else:
                a = torch.addmm(self.c, flat[:, :i].to(self.W.dtype), self.W[:i])
                xi = flat[:, i].to(self.W.dtype)
            h = self._activation_at(a, i)
            out = out + self.conditionals.log_prob(h @ self.V[i] + self.b[i], xi)
        return out

    def _activation_at(self, a: torch.Tensor, i: int) -> torch.Tensor:
        return torch.sigmoid(a)


@register("nade", **_RECIPE)
class NADE(_NADEBase):
    r"""Neural autoregressive density estimator with tied input weights.

    .. math::
        h_i = \sigma\Big(c + \sum_{j<i} W_{\cdot j} x_j\Big),\qquad
        p(x_i \mid x_{<i}) = \mathrm{Bernoulli}\big(\sigma(b_i + V_i^\top h_i)\big)

    :math:`W` and :math:`c` are shared by all conditionals, so the parameter
    count is linear in :math:`D` and ``log_prob`` takes one pass with running
    sums, :math:`O(DH)`. With ``likelihood="categorical"`` each value
    :math:`l` of :math:`x_j` has its own column :math:`W_{\cdot j}(l)` and the
    conditional is a softmax over ``levels`` values.

    Args:
        event_shape: shape of one example.
        hidden: :math:`H`.
        likelihood: ``"bernoulli"`` or ``"categorical"``.
        levels: values of a categorical variable.

    References: Larochelle and Murray, 2011 (AISTATS); Uria et al., 2016, arXiv:1605.02226.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = NADE(event_shape=(5,), hidden=8)
        >>> x = m.sample(3)
        >>> torch.allclose(m.log_prob(x), m._log_prob_naive(x))
        True
    """

    likelihoods = ("bernoulli", "categorical")

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        hidden: int = 128,
        likelihood: str | None = None,
        levels: int | None = None,
    ) -> None:
        super().__init__(event_shape, hidden, likelihood, levels, 1)


@register("rnade", **{**_RECIPE, "data": "digits", "train": {**_DIGITS_DEFAULTS, "lr": 1e-3}})
class RNADE(_NADEBase):
    r"""Real-valued NADE: the NADE hidden layer with mixture-of-Gaussian conditionals.

    .. math::
        h_i = \sigma\big(\rho_i\, a_i\big),\ a_i = c + \sum_{j<i} W_{\cdot j} x_j,\qquad
        p(x_i \mid x_{<i}) = \sum_{k=1}^K \pi_{ik}\,\mathcal N(x_i; \mu_{ik}, \sigma_{ik}^2)

    with the mixture logits, means and log-scales linear in :math:`h_i` and a
    learned per-position rescaling :math:`\rho_i` (Uria et al., 2013).

    Args:
        event_shape: shape of one real-valued example.
        hidden: :math:`H`.
        components: :math:`K`.

    References: Uria, Murray and Larochelle, 2013, arXiv:1306.0186.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = RNADE(event_shape=(2,), hidden=8, components=3)
        >>> m.log_prob(torch.zeros(4, 2)).shape
        torch.Size([4])
    """

    support = "real"
    likelihoods = ("gaussian-mixture",)

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        hidden: int = 128,
        components: int = 5,
        likelihood: str | None = None,
    ) -> None:
        super().__init__(event_shape, hidden, likelihood, None, components)
        self.rho = nn.Parameter(torch.ones(self.num_vars, 1))

    def _activation(self, a: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.rho * a)

    def _activation_at(self, a: torch.Tensor, i: int) -> torch.Tensor:
        return torch.sigmoid(self.rho[i] * a)


# --------------------------------------------------------------------------------------
@register("made", **{**_RECIPE, "train": {**_DIGITS_DEFAULTS, "lr": 1e-3, "steps": 6000}})
class MADE(AutoregressiveModel):
    r"""Masked autoencoder for distribution estimation: one masked MLP gives every conditional.

    Masks built from degrees (Germain et al., 2015) make output :math:`i` depend
    only on inputs earlier in the ordering; a masked direct input-to-output
    connection is included. With ``num_masks > 1`` the model trains on
    ``num_masks`` orderings and connectivities in turn (set 0 follows the
    natural ordering, the others are random), evaluates ``log_prob`` as the
    ensemble :math:`\log \frac1M \sum_m p_m(x)` (itself a normalized density)
    and can :meth:`complete` any observed subset by building masks for an
    ordering that puts the observed positions first. As with dropout, a model in
    training mode scores with the current ordering only (the order-agnostic
    objective); call ``.eval()`` for the ensemble density, which ``log_prob``,
    ``as_distribution`` and validation then use.

    Args:
        event_shape: shape of one example.
        hidden: hidden layer sizes.
        likelihood: ``"bernoulli"``, ``"categorical"`` (one-hot inputs) or
            ``"gaussian-mixture"``.
        levels: values of a categorical variable.
        components: Gaussians per conditional.
        num_masks: orderings/connectivities trained and ensembled.
        mask_seed: seed of the random orderings and degrees.

    References: Germain, Gregor, Murray and Larochelle, 2015, arXiv:1502.03509.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = MADE(event_shape=(6,), hidden=(16,), num_masks=2)
        >>> x = m.sample(3)
        >>> m.log_prob(x).shape
        torch.Size([3])
    """

    likelihoods = ("bernoulli", "categorical", "gaussian-mixture")

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        hidden: Sequence[int] = (256, 256),
        likelihood: str | None = None,
        levels: int | None = None,
        components: int = 1,
        num_masks: int = 1,
        mask_seed: int = 0,
    ) -> None:
        super().__init__(event_shape, likelihood, levels, components)
        self.hidden = check_hidden(hidden)
        self.num_masks = check_positive_int("num_masks", num_masks)
        self.mask_seed = int(mask_seed)
        self.in_mult = self.num_levels if self.likelihood == "categorical" else 1
        self.net = MADENet(
            self.num_vars,
            self.hidden,
            self.conditionals.num_params,
            in_mult=self.in_mult or 1,
            num_masks=self.num_masks,
            mask_seed=self.mask_seed,
        )
        self._masks: list[torch.Tensor] | None = None
        self.clock = StepClock(self._at_step)

    def _at_step(self, step: int) -> None:
        self.net.index = step % self.num_masks  # the order-agnostic objective: one ordering per step, in turn

    def ordering(self) -> torch.Tensor:
        return self.net.orders[self.net.index]

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), self.num_vars)
        if self.likelihood == "categorical":
            return F.one_hot(flat.long(), self.num_levels or 2).reshape(len(x), -1).to(self.net.dtype)
        return flat.to(self.net.dtype)

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        inp = self._encode(x)
        return self.net(inp, self._masks)

    @contextlib.contextmanager
    def _using(self, index: int | None = None, masks: list[torch.Tensor] | None = None) -> Iterator[None]:
        """Temporarily score and sample with mask set ``index``, or with explicit ``masks``."""
        old = self.net.index
        self.net.index = old if index is None else index
        self._masks = masks
        try:
            yield
        finally:
            self.net.index, self._masks = old, None

    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        # Like dropout: in training mode the density of the current ordering
        # (the order-agnostic objective, so the Pyro program and loss agree);
        # in evaluation mode the ensemble over all orderings.
        if self.num_masks == 1 or self.training:
            return super()._log_prob(x)
        return self._ensemble_log_prob(x)

    def _ensemble_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lps = []
        for k in range(self.num_masks):
            with self._using(k):
                lps.append(super()._log_prob(x))
        return log_mean_exp(torch.stack(lps), dim=0)

    def _sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        """Samples of the ensemble: each draw picks one of the orderings uniformly."""
        x = self._empty(n)
        which = torch.randint(self.num_masks, (n,), device=x.device)
        for k in range(self.num_masks):
            rows = (which == k).nonzero().squeeze(-1)
            if len(rows):
                with self._using(k):
                    x[rows] = self._fill(x[rows], self.ordering(), None, temperature)
        return x.view(n, *self.event_shape)

    def _complete(self, x: torch.Tensor, observed: torch.Tensor, temperature: float) -> torch.Tensor:
        for k in range(self.num_masks):  # a trained ordering that already puts the observed part first
            order = self.net.orders[k].to(observed.device)
            if _observed_first(observed, order):
                with self._using(k):
                    return self._fill(x, order, observed, temperature)
        if self.num_masks == 1:
            return super()._complete(x, observed, temperature)  # raises
        base = self.net.orders[0].to(observed.device)
        order = torch.cat([base[observed[base]], base[~observed[base]]])
        with self._using(masks=self.net.masks_for(order, seed=self.mask_seed)):
            return self._fill(x, order, observed, temperature)


# --------------------------------------------------------------------------------------
class _PixelModel(AutoregressiveModel):
    likelihoods = ("bernoulli", "categorical")
    network: ClassVar[type[nn.Module]]

    def __init__(
        self,
        event_shape: Sequence[int],
        features: int,
        layers: int,
        kernel_size: int,
        dropout: float,
        likelihood: str | None,
        levels: int | None,
        **net_kwargs: Any,
    ) -> None:
        super().__init__(event_shape, likelihood, levels)
        if len(self.event_shape) != 3:
            raise ValueError(f"{type(self).__name__} models images: event_shape=(C, H, W); got {tuple(event_shape)}")
        self.features = check_positive_int("features", features)
        self.layers = check_positive_int("layers", layers)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        self.dropout = check_dropout(dropout)
        self.net = self.network(
            self.event_shape[0],
            self.conditionals.num_params,
            features,
            layers,
            kernel_size,
            self.dropout,
            tuple(self.event_shape[1:]),
            **net_kwargs,
        )

    def _params(self, x: torch.Tensor, top: int = 0) -> torch.Tensor:
        """The conditionals' parameters of ``x``'s pixels (pixels scaled to [-1, 1]); with ``top``, ``x`` holds the
        rows from ``top`` down (a row-causal network's cut, see :meth:`_fill`)."""
        highest = 1 if self.likelihood == "bernoulli" else self.num_levels - 1  # type: ignore[operator]
        scaled = x.to(next(self.net.parameters()).dtype) * (2.0 / highest) - 1.0
        return self.net(scaled, top=top) if top else self.net(scaled)

    def ordering(self) -> torch.Tensor:
        """Raster order over pixels and, within a pixel, channel 0 -> 1 -> 2 (R -> G -> B)."""
        c, h, w = self.event_shape
        return torch.arange(c * h * w).view(c, h * w).t().reshape(-1)

    #: The network's output for row i reads no input below row i and none more than ``net.rows_above`` rows above
    #: it, so sampling row i may run it on those rows only (the convolutional nets; a test compares the cut-off
    #: pass with the whole one).
    rows_causal: ClassVar[bool] = False

    def _fill(
        self, x: torch.Tensor, order: torch.Tensor, skip: torch.Tensor | None, temperature: float
    ) -> torch.Tensor:
        """Ancestral sampling into ``x`` (``(n, D)``) along ``order``; a row-causal network runs, for a pixel of
        row i, on the rows its output reads only (rows i - ``rows_above`` to i: the same conditionals as the whole
        image's, for a fraction of the work)."""
        if not self.rows_causal:
            return super()._fill(x, order, skip, temperature)
        n = len(x)
        c, h, w = self.event_shape
        images = x.view(n, c, h, w)
        above = int(cast(Any, self.net).rows_above)
        for pos in order.tolist():
            if skip is not None and bool(skip[pos]):
                continue
            ch, row, col = pos // (h * w), (pos // w) % h, pos % w
            top = max(0, row - above)
            rows = row + 1 - top
            params = self._params(images[:, :, top : row + 1], top)  # (n, C * rows * W, P)
            x[:, pos] = self.conditionals.sample(params[:, (ch * rows + row - top) * w + col], temperature).to(x.dtype)
        return x


@register("pixelcnn", **{**_RECIPE, "train": _pixel_train})
class PixelCNN(_PixelModel):
    r"""PixelCNN: masked convolutions, mask A then mask B, colour channels ordered R -> G -> B.

    Conditionals :math:`p(x_{c,i,j} \mid x_{<(i,j)}, x_{<c,(i,j)})`, all from one
    pass of :class:`~pyrogen.nn.PixelCNNNet`. Stacked masked convolutions have a
    blind spot above-right of the current pixel; :class:`GatedPixelCNN` has none.

    Args:
        event_shape: ``(C, H, W)``.
        features: hidden channels (a multiple of ``C``).
        layers: residual mask-B layers.
        kernel_size: of the first (mask-A) layer.
        dropout: on each residual branch while training.
        likelihood: ``"bernoulli"`` or ``"categorical"``.
        levels: values of a categorical pixel.

    References: van den Oord, Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = PixelCNN(event_shape=(1, 4, 4), features=8, layers=1, kernel_size=3)
        >>> m.sample(2).shape
        torch.Size([2, 1, 4, 4])
    """

    network = PixelCNNNet
    rows_causal = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        features: int = 64,
        layers: int = 4,
        kernel_size: int = 7,
        dropout: float = 0.5,
        likelihood: str | None = None,
        levels: int | None = None,
    ) -> None:
        super().__init__(event_shape, features, layers, kernel_size, dropout, likelihood, levels)


@register("gated-pixelcnn", **{**_RECIPE, "train": _pixel_train})
class GatedPixelCNN(_PixelModel):
    r"""Gated PixelCNN: vertical and horizontal stacks with gated activations, no blind spot.

    Args:
        event_shape: ``(C, H, W)``.
        features: hidden channels (a multiple of ``C``).
        layers: gated layers.
        kernel_size: odd kernel width.
        dropout: on each horizontal-stack update while training.
        likelihood: ``"bernoulli"`` or ``"categorical"``.
        levels: values of a categorical pixel.

    References: van den Oord et al., 2016, arXiv:1606.05328.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = GatedPixelCNN(event_shape=(1, 4, 4), features=8, layers=2)
        >>> m.log_prob(torch.zeros(2, 1, 4, 4)).shape
        torch.Size([2])
    """

    network = GatedPixelCNNNet
    rows_causal = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        features: int = 64,
        layers: int = 6,
        kernel_size: int = 3,
        dropout: float = 0.5,
        likelihood: str | None = None,
        levels: int | None = None,
    ) -> None:
        super().__init__(event_shape, features, layers, kernel_size, dropout, likelihood, levels)


@register("pixelrnn", **{**_RECIPE, "train": _PIXEL_DEFAULTS})
class PixelRNN(_PixelModel):
    r"""PixelRNN: two-dimensional LSTMs over the image, a Diagonal BiLSTM or a Row LSTM.

    The LSTMs sit between PixelCNN's mask-A convolution and its 1x1 outputs (:class:`~pyrogen.nn.PixelRNNNet`).

    The Diagonal BiLSTM (the default) runs an LSTM along the image's diagonals in both directions, so every
    conditional :math:`p(x_{c,i,j} \mid x_{<(i,j)})` sees every earlier pixel from the first layer (no blind spot);
    the Row LSTM processes the image a row at a time, each row's state from the row above through a width-3
    convolution, a triangular context above the pixel. Both are sequential in the image's height or diagonals
    where PixelCNN is one convolution, and cost more per step for it.

    Args:
        event_shape: ``(C, H, W)``.
        features: the LSTMs' state size and the hidden channels (a multiple of ``C``).
        layers: recurrent layers (residual).
        kernel_size: of the first (mask-A) convolution.
        dropout: on each residual branch while training.
        likelihood: ``"bernoulli"`` or ``"categorical"``.
        levels: values of a categorical pixel.
        cell: ``"diagonal-bilstm"`` or ``"row-lstm"``.

    Raises:
        ValueError: a bad argument, named with its value.

    References: van den Oord, Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = PixelRNN(event_shape=(1, 4, 4), features=8, layers=1, cell="row-lstm")
        >>> m.log_prob(m.sample(2)).shape
        torch.Size([2])
    """

    network = PixelRNNNet

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        features: int = 32,
        layers: int = 2,
        kernel_size: int = 7,
        dropout: float = 0.5,
        likelihood: str | None = None,
        levels: int | None = None,
        cell: str = "diagonal-bilstm",
    ) -> None:
        if cell not in PIXELRNN_CELLS:
            raise ValueError(f"cell must be one of {', '.join(PIXELRNN_CELLS)}; got {cell!r}")
        super().__init__(event_shape, features, layers, kernel_size, dropout, likelihood, levels, cell=cell)
        self.cell = cell


# --------------------------------------------------------------------------------------
class _SequenceModel(AutoregressiveModel):
    """Reads the sequence shifted right by one, after a start token (id ``levels``)."""

    likelihoods = ("categorical", "bernoulli")

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), self.num_vars).long()
        start = torch.full_like(flat[:, :1], self.num_levels)  # type: ignore[arg-type]
        return torch.cat([start, flat[:, :-1]], dim=1)


@register(
    "char-rnn",
    **{
        **_RECIPE,
        "data": "text",
        "train": {"batch_size": 64, "lr": 3e-3, "steps": 3000, "val_every": 100, "patience": 8, "grad_clip": 1.0},
    },
)
class CharRNN(_SequenceModel):
    r"""Character-level recurrent network: an LSTM (or GRU) over one-hot characters.

    .. math:: p(x_t \mid x_{<t}) = \mathrm{softmax}(W h_t + b),\quad h_t = \mathrm{LSTM}(h_{t-1}, e(x_{t-1}))

    :meth:`sample` runs the recurrence one character at a time with a
    temperature; bits per character are ``nll / (T ln 2)``
    (:func:`pyrogen.metrics.bits_per_dim`).

    Args:
        event_shape: ``(T,)``, characters per example.
        levels: vocabulary size.
        embed: embedding width.
        hidden: recurrent state size.
        layers: stacked recurrent layers.
        cell: ``"lstm"`` or ``"gru"``.
        dropout: between recurrent layers and before the output.
        likelihood: ``"categorical"`` (or ``"bernoulli"`` for binary sequences).

    References: Graves, 2013, arXiv:1308.0850; Karpathy, 2015 (char-rnn).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = CharRNN(event_shape=(12,), levels=5, hidden=16)
        >>> m.sample(2, temperature=0.8).shape
        torch.Size([2, 12])
    """

    support = "integer"

    def __init__(
        self,
        event_shape: Sequence[int] = (128,),
        levels: int | None = None,
        embed: int = 64,
        hidden: int = 256,
        layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
        likelihood: str | None = None,
    ) -> None:
        super().__init__(event_shape, likelihood, levels)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru'; got {cell!r}")
        self.embed, self.hidden_size = check_positive_int("embed", embed), check_positive_int("hidden", hidden)
        self.num_layers, self.cell, self.dropout = check_positive_int("layers", layers), cell, check_dropout(dropout)
        self.embedding = nn.Embedding(self.num_levels + 1, embed)  # type: ignore[operator]
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(embed, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, self.conditionals.num_params)

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.embedding(self._tokens(x)))
        return self.out(self.drop(h))

    def _sample(self, n: int, temperature: float = 1.0) -> torch.Tensor:
        x = self._empty(n)
        tok = torch.full((n, 1), self.num_levels, dtype=torch.long, device=x.device)  # type: ignore[arg-type]
        state = None
        for t in range(self.num_vars):
            h, state = self.rnn(self.embedding(tok), state)
            xt = self.conditionals.sample(self.out(h[:, -1]), temperature)
            x[:, t] = xt.to(x.dtype)
            tok = xt.long().view(n, 1)
        return x.view(n, *self.event_shape)


@register("transformer", **{**_RECIPE, "train": {**_DIGITS_DEFAULTS, "lr": 1e-3, "grad_clip": 1.0}})
class Transformer(_SequenceModel):
    r"""A small causal transformer (GPT-style) over pixels or characters.

    The example is flattened to a sequence (images in raster order),
    shifted right after a start token, and every position's conditional is
    read from a causal self-attention stack with learned positions
    (:class:`~pyrogen.nn.CausalTransformer`).

    Args:
        event_shape: shape of one example (flattened to :math:`T` positions).
        likelihood: ``"bernoulli"`` or ``"categorical"``.
        levels: values of a categorical position.
        dim, heads, layers: width, attention heads and blocks.
        dropout: dropout in the blocks.

    References: Vaswani et al., 2017, arXiv:1706.03762; Radford et al., 2018; Chen et al., 2020 (Image GPT).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = Transformer(event_shape=(1, 4, 4), likelihood="bernoulli", dim=16, heads=2, layers=1)
        >>> m.sample(2).shape
        torch.Size([2, 1, 4, 4])
    """

    support = "binary"
    likelihoods = ("bernoulli", "categorical")

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        likelihood: str | None = None,
        levels: int | None = None,
        dim: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(event_shape, likelihood, levels)
        self.dim, self.heads = check_positive_int("dim", dim), check_positive_int("heads", heads)
        self.num_layers, self.dropout = check_positive_int("layers", layers), check_dropout(dropout)
        self.net = CausalTransformer(
            self.num_levels + 1,  # type: ignore[operator]
            self.num_vars,
            self.conditionals.num_params,
            dim,
            heads,
            layers,
            dropout,
        )

    def _params(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._tokens(x))
