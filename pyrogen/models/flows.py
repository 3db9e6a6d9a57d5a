r"""Normalizing flows: exact densities as Pyro ``TransformedDistribution`` objects.

Every flow is a :class:`~pyrogen.distributions.FlowDistribution` of a
standard normal base under a list of transforms (base side to data side), so
:math:`\log p(x) = \log p_0(f^{-1}(x)) + \log|\det \partial f^{-1} / \partial x|`
and the flow works wherever Pyro takes a distribution: ``as_distribution()``
as a likelihood or a prior, :meth:`FlowModel.guide_transforms` inside a guide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import (
    AffineCoupling,
    ConditionalAffineCoupling,
    ConditionalSplineAutoregressive,
    Householder,
    Permute,
    SplineAutoregressive,
    SplineCoupling,
)
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN, DenseNN
from torch import nn
from torch.distributions.transforms import AffineTransform, ReshapeTransform

from pyrogen.data import Dataset
from pyrogen.distributions import FlowDistribution, forward_and_log_det, inverse_and_log_det
from pyrogen.distributions.transforms import (
    ActNorm,
    AdditiveCoupling,
    ConditionalAdditiveCoupling,
    ConditionalMaskedAutoregressive,
    DiagonalScale,
    InvertibleConv1x1,
    LogitTransform,
    MaskedAutoregressive,
    MintNetLayer,
    MixtureCDFGaussianization,
    Partial,
    Planar,
    Squeeze,
    Unsqueeze,
)
from pyrogen.inference.objectives import MaximumLikelihood, use_objective
from pyrogen.inference.program import data_plate
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
    takes_context,
)
from pyrogen.models.registry import Recipe, alias, register
from pyrogen.nn import MLP, MADENet

__all__ = [
    "IAF",
    "MAF",
    "NICE",
    "FlowModel",
    "GaussianizationFlow",
    "Glow",
    "MintNet",
    "NSF",
    "PlanarFlow",
    "RealNVP",
    "data_units",
]

_PREPROCESS = (None, "logit")
#: the level beyond which the coupling conditioners read their input logarithmically (:func:`pyrogen.nn.soft_clip`):
#: twenty standard deviations of the base, far beyond every bundled toy
CONDITIONER_CLIP = 20.0


def data_units(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per coordinate of real-valued vectors ``x`` ``(n, D)``, the unit the flows' defaults see them in: the
    scale :math:`10^{\operatorname{round}(\log_{10} s)}` for the robust spread :math:`s = \mathrm{IQR} / 1.349`
    (the standard deviation of a normal), and the location the median rounded to that unit where it lies more
    than three units from zero, else 0.

    The defaults were tuned on data of unit scale (the toys): data in other units -- millimetres, thousands --
    diverged or trained poorly with them (``benchmarks/robustness.py`` measures RealNVP on the moons in other
    units). A power of ten keeps data already at that scale exactly as they are (every bundled toy: ``(0, 1)``)
    and keeps the rescaled units readable; the log-determinant of the rescaling is in every density, so
    likelihoods stay in the data's own units.
    """
    x = x.reshape(len(x), -1).double()
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=x.dtype, device=x.device), dim=0)
    spread = (q[2] - q[0]) / 1.349
    spread = torch.where(spread > 0, spread, x.std(0)).clamp_min(1e-30)
    scale = 10.0 ** torch.round(torch.log10(spread))
    loc = torch.where(q[1].abs() > 3 * scale, torch.round(q[1] / scale) * scale, torch.zeros_like(scale))
    return loc.float(), scale.float()


#: Training settings for the dequantized digits (early stopping matters: 1,437 images).
_DIGITS_DEFAULTS: dict[str, Any] = {"batch_size": 128, "lr": 1e-3, "steps": 5000, "val_every": 50, "patience": 20}


def _flow_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Build the flow for ``data``; data in the unit interval get logit pre-processing, real-valued vectors
    in other units than the defaults were tuned for are rescaled by powers of ten (:func:`data_units`).

    Raises:
        ValueError: discrete data (a flow needs continuous or dequantized values).
    """
    if kwargs.pop("conditional", False):
        if not cast("type[FlowModel]", recipe.cls).conditional_ok:
            raise ValueError(f"{recipe.cls.__name__} has no class-conditional variant (RealNVP and MAF do)")
        if not data.labels:
            raise ValueError(f"dataset {data.name!r} has no labels to condition on")
        kwargs["classes"] = int(data.labels["train"].max()) + 1
    if data.dequantized:
        kwargs.setdefault("dequantize", data.levels)
    if data.support == "unit_interval":
        kwargs.setdefault("preprocess", "logit")
        if data.kind == "image":
            kwargs.setdefault("alpha", 0.05)
    elif data.support != "real":
        raise ValueError(
            f"{recipe.name} models continuous data; dataset {data.name!r} is {data.support} "
            "(use the dequantized 'digits')"
        )
    elif data.kind != "image" and "data_loc" not in kwargs and "data_scale" not in kwargs:
        loc, scale = data_units(data.train)
        if bool((loc != 0).any() or (scale != 1).any()):
            kwargs.update(data_loc=loc.tolist(), data_scale=scale.tolist())
    return kwargs


#: Training settings for the 2-D toys.
_TOY_DEFAULTS: dict[str, Any] = {"batch_size": 512, "lr": 3e-3, "schedule": "cosine", "steps": 3000, "val_every": 250}


def _flow_train(toys: dict[str, Any]) -> Callable[[Dataset], dict[str, Any]]:
    """``toys`` for the toys; on images, small batches and early stopping every 50 steps."""
    return lambda data: dict(_DIGITS_DEFAULTS if data.kind == "image" else toys)


#: What the family's recipes share.
_RECIPE: dict[str, Any] = {
    "family": "flow",
    "data": "moons",
    "train": _flow_train(_TOY_DEFAULTS),
    "choices": _flow_choices,
}
_CLIPPED = {**_RECIPE, "train": _flow_train({**_TOY_DEFAULTS, "grad_clip": 10.0})}
_IMAGES = {**_RECIPE, "data": "digits", "train": _DIGITS_DEFAULTS}


class FlowModel(GenerativeModel):
    r"""Base class of the flow family: a standard normal pushed through :meth:`layers`.

    Subclasses build their learnable transforms in ``__init__`` and list them,
    base side first, in :meth:`layers`. Vectors flows take any event shape
    (images are flattened by a reshape at the data end); ``preprocess="logit"``
    adds :class:`~pyrogen.distributions.transforms.LogitTransform` at the data
    end, for data in ``[0, 1]`` such as the dequantized digits.

    Class-conditional flows (``classes > 0``, offered by
    :class:`RealNVP` and :class:`MAF`) model :math:`p(x \mid y)` for a label
    :math:`y`: every density and sampling method then takes ``y``, and
    :func:`~pyrogen.inference.fit` trains on ``(examples, labels)`` tuples.

    Args:
        event_shape: shape of one example.
        preprocess: ``None`` or ``"logit"``.
        alpha: the logit squeeze.
        classes: number of classes to condition on (0: unconditional).
        dequantize: for data that are ``levels`` discrete values plus uniform
            noise scaled to ``[0, 1)`` (the dequantized digits), re-draw the
            noise of every training batch (``None``: train on the data as
            given; :class:`~pyrogen.inference.objectives.MaximumLikelihood` does it). The recipe sets it for
            dequantized data.
    """

    support = "real"
    #: whether the flow needs ``(C, H, W)`` images (multi-scale flows)
    image_only: ClassVar[bool] = False

    #: whether the flow offers class-conditional densities
    conditional_ok: ClassVar[bool] = False

    def __init__(
        self,
        event_shape: Sequence[int],
        preprocess: str | None = None,
        alpha: float = 0.05,
        classes: int = 0,
        dequantize: int | None = None,
        data_loc: Sequence[float] | None = None,
        data_scale: Sequence[float] | None = None,
    ) -> None:
        super().__init__(event_shape)
        if dequantize is not None and (not isinstance(dequantize, int) or dequantize < 2):
            raise ValueError(f"dequantize must be None or a number of levels >= 2; got {dequantize!r}")
        self.dequantize = dequantize
        if not isinstance(classes, int) or classes < 0:
            raise ValueError(f"classes must be a non-negative integer; got {classes!r}")
        if classes and not self.conditional_ok:
            raise ValueError(f"{type(self).__name__} has no class-conditional variant (RealNVP and MAF do)")
        self.classes = classes
        self.labelled = classes > 0  # trains on (examples, labels)
        if preprocess not in _PREPROCESS:
            raise ValueError(f"preprocess must be None or 'logit'; got {preprocess!r}")
        self.preprocess, self.alpha = preprocess, float(alpha)
        if preprocess == "logit":
            self.support = "unit_interval"
        self.dim = math.prod(self.event_shape)
        if self.image_only and len(self.event_shape) != 3:
            raise ValueError(f"{type(self).__name__} models images: event_shape=(C, H, W); got {tuple(event_shape)}")
        self.register_buffer("base_loc", torch.zeros(self._base_shape()))
        self.register_buffer("base_scale", torch.ones(self._base_shape()))
        self.rescaled = data_loc is not None or data_scale is not None
        if self.rescaled:
            if preprocess is not None:
                raise ValueError("data_loc/data_scale rescale real-valued data; they do not combine with preprocess")
            loc = [0.0] * self.dim if data_loc is None else list(data_loc)
            scale = [1.0] * self.dim if data_scale is None else list(data_scale)
            for name, values in (("data_loc", loc), ("data_scale", scale)):
                ok = len(values) == self.dim and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
                )
                if not ok:
                    raise ValueError(f"{name} must hold {self.dim} finite numbers; got {values!r}")
            if not all(v > 0 for v in scale):
                raise ValueError(f"data_scale must be positive; got {scale!r}")
            self._data_units = ([float(v) for v in loc], [float(v) for v in scale])
            self.register_buffer("data_loc", torch.tensor(loc, dtype=torch.float32))
            self.register_buffer("data_scale", torch.tensor(scale, dtype=torch.float32))

    def _base_shape(self) -> tuple[int, ...]:
        return tuple(self.event_shape) if self.image_only else (self.dim,)

    def _context(self, y: object, n: int | None = None) -> torch.Tensor | None:
        """One-hot labels, ``(n, K)``; checks that a conditional flow got labels and an unconditional one none."""
        if not self.classes:
            if y is not None:
                raise ValueError(f"{type(self).__name__} is unconditional; got labels y")
            return None
        if y is None:
            raise ValueError(
                f"{type(self).__name__} is class-conditional: pass the labels y (fit takes (examples, labels) tuples)"
            )
        labels = torch.as_tensor(y, device=self.base_loc.device)
        if labels.dim() == 0 and n is not None:
            labels = labels.expand(n)
        if labels.dtype.is_floating_point or labels.dim() != 1:
            raise ValueError(f"y must be a 1-D tensor of integer labels; got {tuple(labels.shape)} {labels.dtype}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.classes):
            raise ValueError(f"labels y must be in 0..{self.classes - 1}; got {labels.tolist()[:8]}")
        return torch.nn.functional.one_hot(labels.long(), self.classes).to(self.base_loc.dtype)

    # -- the distribution ------------------------------------------------------
    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        """The learnable transforms, base side first (conditioned on the one-hot ``context``)."""
        raise NotImplementedError

    def transforms(self, context: torch.Tensor | None = None) -> list[Any]:
        """Every transform from the base to the data: :meth:`layers`, reshape, pre-processing."""
        ts = list(self.layers(context) if self.classes else self.layers())
        if not self.image_only and len(self.event_shape) != 1:
            ts.append(ReshapeTransform(torch.Size((self.dim,)), self.event_shape))
        if self.preprocess == "logit":
            ts.append(LogitTransform(self.alpha, event_dim=len(self.event_shape)))
        if self.rescaled:
            loc, scale = self.data_loc.reshape(self.event_shape), self.data_scale.reshape(self.event_shape)
            ts.append(AffineTransform(loc, scale, event_dim=len(self.event_shape)))
        return ts

    def base_distribution(self) -> dist.TorchDistribution:
        return dist.Normal(self.base_loc, self.base_scale).to_event(len(self._base_shape()))

    @frozen_unless_trainable
    @takes_context
    def as_distribution(self, y: object = None) -> FlowDistribution:
        """The flow as a Pyro distribution over ``event_shape`` (given labels ``y``, batch ``(n,)``, if conditional)."""
        context = self._context(y)
        base = self.base_distribution()
        if context is not None:
            base = base.expand(torch.Size((len(context),)))
        return FlowDistribution(base, self.transforms(context))

    @takes_context
    def model(self, x: torch.Tensor | None = None, y: object = None, num_samples: int | None = None) -> torch.Tensor:
        pyro.module(self._param_store_name(), self)
        n = len(x) if x is not None else (len(torch.as_tensor(y)) if y is not None else (num_samples or 1))
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(y), obs=x)

    @takes_context
    @accepts_unbatched(label=0)
    def log_prob(self, x: torch.Tensor, y: object = None) -> torch.Tensor:
        """Exact :math:`\\log p(x)` (or :math:`\\log p(x \\mid y)`) in nats, shape ``(n,)``.

        Raises:
            ValueError: ``x`` has the wrong shape, non-finite values, or values outside the support;
                labels missing, superfluous or out of range.
        """
        if isinstance(x, tuple) and len(x) == 2 and y is None:  # a batch (examples, labels), as fit takes it
            x, y = x
        return self._log_prob(self.validate(x), y)

    def _log_prob(self, x: torch.Tensor, y: object = None) -> torch.Tensor:
        return self.as_distribution(y).log_prob(x)

    @takes_context
    def sample(self, n: int, y: object = None) -> torch.Tensor:
        """``n`` samples (given labels ``y``: one label or ``n`` of them, if conditional; a conditional flow without
        ``y`` draws uniform labels, a draw from the marginal as CVAE and CGAN do)."""
        check_positive_int("n", n)
        if y is None and self.classes:
            y = torch.randint(self.classes, (n,), device=self.base_loc.device)
        context = self._context(y, n)
        with torch.no_grad():
            if context is None:
                return self.as_distribution().sample((n,))
            if len(context) != n:
                raise ValueError(f"y must hold one label or n={n} labels; got {len(context)}")
            return FlowDistribution(
                self.base_distribution().expand(torch.Size((n,))), self.transforms(context)
            ).sample()

    @takes_context
    def rsample(self, n: int, y: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` reparametrized samples and their log-density, in one base-to-data pass (for distillation)."""
        context = self._context(y, n)
        base = self.base_distribution()
        u = base.rsample((n,))
        log_q = base.log_prob(u)
        x = u
        for t in self.transforms(context):
            x, log_det = forward_and_log_det(t, x)
            log_q = log_q - _sum_to_batch(log_det, 1)
        return x, log_q


# maximum likelihood, the data dequantized afresh in every training batch where the flow says they are discrete
use_objective(FlowModel, lambda model: MaximumLikelihood(dequantize=model.dequantize))


def _sum_to_batch(v: torch.Tensor, batch_dims: int) -> torch.Tensor:
    return v.reshape(v.shape[:batch_dims] + (-1,)).sum(-1) if v.dim() > batch_dims else v


def _check_vector_dim(model: FlowModel, minimum: int = 2) -> None:
    if model.dim < minimum:
        raise ValueError(
            f"{type(model).__name__} needs at least {minimum} dimensions; got event_shape {model.event_shape}"
        )


# --------------------------------------------------------------------------------------
class _CouplingFlow(FlowModel):
    """RealNVP and NICE: ``num_layers`` couplings from :meth:`_coupling`, each followed by a reversal."""

    def __init__(self, event_shape: Sequence[int], num_layers: int, hidden: Sequence[int], **kwargs: Any) -> None:
        super().__init__(event_shape, **kwargs)
        _check_vector_dim(self)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.hidden = check_hidden(hidden)
        self.couplings = nn.ModuleList(self._coupling(self.dim // 2) for _ in range(self.num_layers))
        self.register_buffer("reverse", torch.arange(self.dim - 1, -1, -1))

    def _coupling(self, split: int) -> nn.Module:
        raise NotImplementedError

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        flip = Permute(self.reverse)
        cs = [c.condition(context) for c in self.couplings] if context is not None else list(self.couplings)  # type: ignore[operator]
        return [t for c in cs for t in (c, flip)]


@register("realnvp", **_CLIPPED)
class RealNVP(_CouplingFlow):
    r"""RealNVP: affine coupling layers alternating with permutations, over a standard normal.

    Each coupling keeps the first :math:`d = \lfloor D/2 \rfloor` coordinates and maps
    the rest as :math:`y_{d+1:D} = x_{d+1:D} \odot \exp(s(x_{1:d})) + t(x_{1:d})`, so
    :math:`\log|\det J| = \sum_j s_j(x_{1:d})`; a reversing permutation after each
    coupling lets every coordinate be transformed. Built from Pyro's
    :class:`~pyro.distributions.transforms.AffineCoupling` and
    :class:`~pyro.distributions.transforms.Permute`; the density is evaluated by
    :class:`~pyrogen.distributions.FlowDistribution`. Images are flattened
    (the multi-scale image architecture is :class:`Glow`'s with
    ``mixing="permute"``).

    Args:
        event_shape: ``(D,)`` with ``D >= 2`` (or an image shape, flattened).
        num_layers: number of coupling layers.
        hidden: hidden sizes of each coupling's conditioner MLP.
        conditioner_clip: the conditioners read their input through :func:`pyrogen.nn.soft_clip` at this level
            (``None``: unclipped): far-tail inputs then cannot overflow the gradient.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.
        **kwargs: also ``classes``: condition every coupling on a one-hot
            label (Pyro's :class:`~pyro.distributions.transforms.ConditionalAffineCoupling`).

    Raises:
        ValueError: ``D < 2`` or bad sizes.

    References: Dinh, Sohl-Dickstein and Bengio, 2017, arXiv:1605.08803.

    Training defaults clip the global gradient norm at 10: without it the
    learning rate 3e-3 diverged on ``8gaussians`` (the affine scales blow up).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> flow = RealNVP(event_shape=(2,), num_layers=4, hidden=(32,))
        >>> x = flow.sample(5)
        >>> x.shape, flow.log_prob(x).shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 8,
        hidden: Sequence[int] = (64, 64),
        conditioner_clip: float | None = CONDITIONER_CLIP,
        **kwargs: Any,
    ) -> None:
        if conditioner_clip is not None and (
            isinstance(conditioner_clip, bool)
            or not isinstance(conditioner_clip, (int, float))
            or conditioner_clip <= 0
        ):
            raise ValueError(f"conditioner_clip must be a positive number or None; got {conditioner_clip!r}")
        self.conditioner_clip = conditioner_clip
        super().__init__(event_shape, num_layers, hidden, **kwargs)

    conditional_ok = True

    def _coupling(self, split: int) -> nn.Module:
        k = self.classes
        clip = self.conditioner_clip
        net = MLP(split, self.hidden, 2 * (self.dim - split), chunks=2, context=k, input_clip=clip)
        return ConditionalAffineCoupling(split, net) if k else AffineCoupling(split, net)

    def _log_prob(self, x: torch.Tensor, y: object = None) -> torch.Tensor:
        if self.preprocess is not None or len(self.event_shape) != 1 or self.classes:
            return super()._log_prob(x, y)
        # The density of as_distribution(), without building the distribution
        # object on every step (that Python overhead dominates at this size);
        # tests check both give the same numbers.
        z, log_det = x, torch.zeros((), dtype=x.dtype, device=x.device)
        if self.rescaled:
            z, log_det = (x - self.data_loc) / self.data_scale, self.data_scale.log().sum()
        reverse = self.reverse
        for coupling in reversed(self.couplings):
            z = z.index_select(-1, reverse)  # the reversal is its own inverse
            z, ld = inverse_and_log_det(coupling, z)  # type: ignore[arg-type]
            log_det = log_det + ld
        base = -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        return base - log_det


@register("nice", **_RECIPE)
class NICE(_CouplingFlow):
    r"""NICE: additive (volume-preserving) couplings and a final diagonal scaling.

    .. math:: y_{B} = x_{B} + m_k(x_{A}),\qquad \text{then}\quad y = e^{s} \odot h

    with the halves :math:`A, B` swapped between layers. Only the scaling
    changes volume, so :math:`\log|\det J| = \sum_j s_j`.

    Args:
        event_shape: ``(D,)``, ``D >= 2`` (images are flattened).
        num_layers: additive couplings (4 in the paper).
        hidden: hidden sizes of each coupling's MLP.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`;
            ``classes``: every coupling's network also reads a one-hot label
            (:class:`~pyrogen.distributions.transforms.ConditionalAdditiveCoupling`; the scaling stays shared).

    References: Dinh, Krueger and Bengio, 2015, arXiv:1410.8516.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> NICE(event_shape=(2,), num_layers=2, hidden=(8,)).log_prob(torch.zeros(3, 2)).shape
        torch.Size([3])
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 4,
        hidden: Sequence[int] = (64, 64),
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, num_layers, hidden, **kwargs)
        self.scale = DiagonalScale((self.dim,))

    conditional_ok = True

    def _coupling(self, split: int) -> nn.Module:
        k = self.classes
        net = MLP(split, self.hidden, self.dim - split, context=k)
        return ConditionalAdditiveCoupling(split, net) if k else AdditiveCoupling(split, net)

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        return [*super().layers(context), self.scale]


class _AutoregressiveFlow(FlowModel):
    """MAF and IAF: :class:`MaskedAutoregressive` layers over MADE networks with alternating orderings (direct
    input-to-output connections only with ``direct``: see :class:`MAF`)."""

    def __init__(
        self,
        event_shape: Sequence[int],
        num_layers: int,
        hidden: Sequence[int],
        direct: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        classes = self.classes
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.hidden = check_hidden(hidden)
        if not isinstance(direct, bool):
            raise ValueError(f"direct must be True or False; got {direct!r}")
        self.direct = direct
        d = self.dim
        layer = ConditionalMaskedAutoregressive if classes else MaskedAutoregressive
        self.mades = nn.ModuleList(
            layer(
                MADENet(
                    d, self.hidden, out_mult=2, order=_order(d, k), direct=self.direct, context=classes
                ).shrink_output_()
            )
            for k in range(self.num_layers)
        )
        self.register_load_state_dict_pre_hook(self._check_direct)

    def _check_direct(self, module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        """Refuse, by name, a checkpoint whose MADE networks have (or lack) the direct connections this one lacks
        (or has): MAF's and IAF's default changed (``direct=False``); rebuild with the checkpoint's choice."""
        has = any(k.startswith(prefix + "mades.") and k.endswith(".net.direct.weight") for k in state_dict)
        if has != self.direct:
            raise ValueError(
                f"the checkpoint's MADE networks {'have' if has else 'lack'} direct input-to-output connections "
                f"and this {type(self).__name__} was built with direct={self.direct}; build it with direct={has} "
                f"(`--set direct={str(has).lower()}`; MAF's and IAF's default was True before it became False)"
            )


def _order(d: int, k: int) -> list[int]:
    """Layer ``k``'s variable ordering: identity and reversed in turn."""
    return list(range(d)) if k % 2 == 0 else list(range(d - 1, -1, -1))


@register("maf", **_RECIPE)
class MAF(_AutoregressiveFlow):
    r"""Masked autoregressive flow: density in one network pass per layer, sampling in :math:`D`.

    Data to base, per layer: :math:`u_i = (x_i - m_i(x_{<i}))\, e^{-s_i(x_{<i})}`
    from one pass of a MADE network; each layer is the inverse of a
    :class:`~pyrogen.distributions.transforms.MaskedAutoregressive` layer, and
    successive layers reverse the variable ordering.

    Args:
        event_shape: shape of one example (flattened).
        num_layers: autoregressive layers.
        hidden: MADE hidden sizes.
        direct: give the MADE networks direct input-to-output connections. Off by default: a direct
            connection makes each log-scale linear in the raw inputs, so that an input far out in a heavy
            tail (a high-contrast image patch) drives the scales to their clip in every layer and its density
            to minus millions of nats; Pyro's ``AutoRegressiveNN`` and zuko's MADE leave them out as well.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.
        **kwargs: also ``classes``: feed a one-hot label to every MADE
            network (class-conditional MAF).

    References: Papamakarios, Pavlakou and Murray, 2017, arXiv:1705.07057.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> maf = MAF(event_shape=(3,), num_layers=2, hidden=(16,))
        >>> maf.log_prob(maf.sample(4)).shape
        torch.Size([4])
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 5,
        hidden: Sequence[int] = (128,),
        direct: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, num_layers, hidden, direct, **kwargs)

    conditional_ok = True

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        if context is not None:
            return [m.condition(context).inv for m in self.mades]  # type: ignore[operator]
        return [m.inv for m in self.mades]


@register("iaf", **_RECIPE)
class IAF(_AutoregressiveFlow):
    r"""Inverse autoregressive flow: sampling in one network pass per layer, density of data in :math:`D`.

    Base to data, per layer: :math:`x_i = u_i e^{s_i(u_{<i})} + m_i(u_{<i})`.
    Its own samples' density is free (:meth:`rsample`); the density of
    external data inverts each layer by :math:`D` network passes
    (:class:`~pyrogen.distributions.transforms.MaskedAutoregressive`). The
    student of :func:`pyrogen.inference.distill`, and a posterior for VAEs.

    Args:
        event_shape: shape of one example (flattened).
        num_layers: autoregressive layers.
        hidden: MADE hidden sizes.
        direct: give the MADE networks direct input-to-output connections (off: see :class:`MAF`).
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.

    References: Kingma et al., 2016, arXiv:1606.04934.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 5,
        hidden: Sequence[int] = (128,),
        direct: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, num_layers, hidden, direct, **kwargs)

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        return list(self.mades)


#: The layer kinds of :class:`NSF`.
NSF_KINDS = ("autoregressive", "coupling")


def _nsf_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    r"""The flow's choices (:func:`_flow_choices`); coupling layers where the data have more coordinates than the
    autoregressive layers' narrowest hidden layer (MNIST's 784: a masked network needs a hidden layer at least as
    wide as its input); no affine steps for images in the unit interval, which the logit puts inside the splines'
    interval (:math:`\pm 2.94` at ``alpha = 0.05``), so that there is no scale left for an affine step to move and
    its network only adds parameters (on the dequantized digits, 2.096 bits/dim with the steps, 2.073 without:
    ``benchmarks/flows.py --only digits --flows nsf``)."""
    hidden = kwargs.get("hidden", (64, 64))
    if "kind" not in kwargs and math.prod(data.event_shape) > min(hidden):
        kwargs["kind"] = "coupling"
    if data.support == "unit_interval" and data.kind == "image":
        kwargs.setdefault("affine", False)
    return _flow_choices(recipe, data, kwargs)


@register("nsf", **{**_CLIPPED, "choices": _nsf_choices})
class NSF(FlowModel):
    r"""Neural spline flow: monotonic rational-quadratic spline layers (Durkan et al., 2019), autoregressive or
    coupling, over a standard normal.

    Each coordinate goes through a monotonic spline of ``bins`` rational-quadratic segments on
    :math:`[-B, B]` (identity, with matching slopes, outside: linear tails) whose knot widths, heights and
    derivatives come from a network of the other coordinates:

    - ``kind="autoregressive"`` (the default): data to base, coordinate :math:`i` given :math:`x_{<i}` from one
      pass of a MADE-style network (the inverse of Pyro's
      :class:`~pyro.distributions.transforms.SplineAutoregressive`, as :class:`MAF` uses its layers), the
      ordering reversed from layer to layer: density in one pass per layer, sampling in :math:`D`;
    - ``kind="coupling"``: Pyro's :class:`~pyro.distributions.transforms.SplineCoupling` (the second half
      given the first, the first through an unconditioned spline), each followed by a reversal: both
      directions in one pass.

    With ``affine=True`` (the default) each autoregressive layer is an affine autoregressive step (a
    :class:`MAF` layer, its own MADE network) and then the spline, data side first: the affine step moves and
    scales coordinate :math:`i` by amounts that depend on :math:`x_{<i}` without bound, which a spline on a
    fixed interval with identity tails cannot do -- Neal's funnel, whose second coordinate's scale is
    :math:`e^{v/2}`, costs a spline-only flow tens of nats (``benchmarks/flows.py --only fresh``) -- and the
    spline shapes what is left. Durkan et al. interleave splines with linear (LU) layers to the same end. The
    recipe leaves the affine steps out for images in the unit interval, which the logit puts inside
    :math:`[-B, B]`.

    Data are put in their units first (the recipe measures them on the toys, :func:`data_units`), so that
    :math:`B = 4` covers them.

    Args:
        event_shape: ``(D,)`` with ``D >= 2`` (or an image shape, flattened).
        num_layers: spline layers.
        hidden: hidden sizes of each layer's network.
        bins: spline segments per coordinate.
        bound: :math:`B`.
        kind: ``"autoregressive"`` or ``"coupling"``.
        affine: an affine autoregressive step before each spline layer (autoregressive layers only).
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``, ``classes`` (class-conditional: autoregressive
            layers over Pyro's :class:`~pyro.distributions.transforms.ConditionalSplineAutoregressive`): see
            :class:`FlowModel`.

    Raises:
        ValueError: a bad argument, named with its value.

    References: Durkan, Bekasov, Murray and Papamakarios, 2019, arXiv:1906.04032.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> flow = NSF(event_shape=(2,), num_layers=2, hidden=(16,))
        >>> x = flow.sample(5)
        >>> x.shape, flow.log_prob(x).shape
        (torch.Size([5, 2]), torch.Size([5]))
    """

    conditional_ok = True

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 5,
        hidden: Sequence[int] = (64, 64),
        bins: int = 8,
        bound: float = 4.0,
        kind: str = "autoregressive",
        affine: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        _check_vector_dim(self)
        if not isinstance(affine, bool):
            raise ValueError(f"affine must be True or False; got {affine!r}")
        self.affine = affine and kind == "autoregressive"
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.hidden = check_hidden(hidden)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ValueError(f"bins must be an integer >= 2; got {bins!r}")
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound < math.inf:
            raise ValueError(f"bound must be a positive number; got {bound!r}")
        if kind not in NSF_KINDS:
            raise ValueError(f"kind must be one of {', '.join(NSF_KINDS)}; got {kind!r}")
        if kind == "coupling" and self.classes:
            raise ValueError("a class-conditional NSF is autoregressive: kind='autoregressive' (got 'coupling')")
        self.bins, self.bound, self.kind = bins, float(bound), kind
        d, hidden_list = self.dim, list(self.hidden)
        if kind == "autoregressive" and min(hidden_list) < d:
            raise ValueError(
                f"hidden must be at least the data's {d} coordinates wide for autoregressive layers (a masked "
                f"network); got {list(hidden)} (or use kind='coupling')"
            )
        params = [bins, bins, bins - 1]  # knot widths, heights, inner derivatives (rational-quadratic)
        if kind == "coupling":
            split = d // 2
            rest = d - split
            self.splines = nn.ModuleList(
                SplineCoupling(
                    d, split, DenseNN(split, hidden_list, [rest * p for p in params]), bins, self.bound, "quadratic"
                )
                for _ in range(self.num_layers)
            )
            self.register_buffer("reverse", torch.arange(d - 1, -1, -1))
            return
        layers: list[nn.Module] = []
        spline = {"count_bins": bins, "bound": self.bound, "order": "quadratic"}
        for k in range(self.num_layers):
            order = cast(torch.LongTensor, torch.tensor(_order(d, k)))
            if self.classes:
                cnet = ConditionalAutoRegressiveNN(d, self.classes, hidden_list, params, permutation=order)
                layers.append(ConditionalSplineAutoregressive(d, cnet, **spline))
            else:
                net = AutoRegressiveNN(d, hidden_list, params, permutation=order)
                layers.append(SplineAutoregressive(d, net, **spline))
        self.splines = nn.ModuleList(layers)
        if affine:
            layer = ConditionalMaskedAutoregressive if self.classes else MaskedAutoregressive
            self.affines = nn.ModuleList(
                layer(MADENet(d, self.hidden, out_mult=2, order=_order(d, k), context=self.classes).shrink_output_())
                for k in range(self.num_layers)
            )

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        if self.kind == "coupling":
            flip = Permute(self.reverse)
            return [t for c in self.splines for t in (c, flip)]
        if context is not None:
            splines = [m.condition(context).inv for m in self.splines]  # type: ignore[operator]
        else:
            splines = [m.inv for m in self.splines]
        if not self.affine:
            return splines
        affines = [(m.condition(context) if context is not None else m).inv for m in self.affines]  # type: ignore[operator]
        return [t for pair in zip(splines, affines, strict=True) for t in pair]


@register("planar", **_RECIPE)
class PlanarFlow(FlowModel):
    r"""A stack of :math:`K` planar layers :math:`y = x + \hat u \tanh(w^\top x + b)`.

    Invertible on any input (:class:`~pyrogen.distributions.transforms.Planar`
    solves one scalar equation per layer), so the flow scores external data
    as well as its own samples. Weak as a density model (each layer bends
    space along one direction), as a VAE posterior it is the classic choice.

    Args:
        event_shape: ``(D,)`` (images are flattened).
        num_layers: :math:`K`.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.

    References: Rezende and Mohamed, 2015, arXiv:1505.05770.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 32,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.planars = nn.ModuleList(Planar(self.dim) for _ in range(self.num_layers))
        self.loc = nn.Parameter(torch.zeros(self.dim))
        self.log_scale = nn.Parameter(torch.zeros(self.dim))

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        affine = dist.transforms.AffineTransform(self.loc, self.log_scale.exp(), event_dim=1)
        return [affine, *self.planars]


@register("gaussianization", **_CLIPPED)
class GaussianizationFlow(FlowModel):
    r"""Gaussianization flow: learnable per-dimension Gaussianization and rotations, stacked.

    Each layer (data to base) rotates with Householder reflections and maps
    every coordinate through a mixture CDF and the inverse normal CDF
    (:class:`~pyrogen.distributions.transforms.MixtureCDFGaussianization`).

    Args:
        event_shape: ``(D,)`` (images are flattened).
        num_layers: Gaussianization layers.
        components: mixture components per dimension and layer.
        reflections: Householder reflections per rotation.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.

    References: Meng, Song, Song and Ermon, 2020, arXiv:2003.01941.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        num_layers: int = 6,
        components: int = 12,
        reflections: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.components = check_positive_int("components", components)
        self.reflections = check_positive_int("reflections", reflections)
        self.marginals = nn.ModuleList(MixtureCDFGaussianization(self.dim, components) for _ in range(num_layers))
        self.rotations = nn.ModuleList(
            Householder(self.dim, count_transforms=min(reflections, self.dim)) for _ in range(num_layers)
        )

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        return [t for g, r in zip(self.marginals, self.rotations, strict=True) for t in (g, r)]


alias("gaussianization-flow", "gaussianization")  # the paper's name


# --------------------------------------------------------------------------------------
class _ConvNet(nn.Module):
    """Glow's coupling network on flattened inputs (Pyro's ``AffineCoupling`` flattens them): shift and log-scale."""

    def __init__(self, shape_in: tuple[int, int, int], channels_out: int, hidden: int) -> None:
        super().__init__()
        self.shape_in = shape_in
        c = shape_in[0]
        self.net = nn.Sequential(
            nn.Conv2d(c, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * channels_out, 3, padding=1),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.normal_(last.weight, std=1e-3)  # each coupling starts near the identity (Glow zeroes it)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[:-1]
        h = self.net(x.reshape(-1, *self.shape_in))
        shift, log_scale = h.chunk(2, dim=1)
        return shift.reshape(*batch, -1), log_scale.reshape(*batch, -1)


@register("glow", **_IMAGES)
class Glow(FlowModel):
    r"""Glow: multi-scale steps of ActNorm, invertible 1x1 convolution and affine coupling.

    Data to base: squeeze to ``(4C, H/2, W/2)``, ``steps`` flow steps, factor
    out half the channels, and repeat on the other half for every further
    level (:class:`~pyrogen.distributions.transforms.Partial`). The base is a
    standard normal of the data's shape. ``mixing="permute"`` replaces the
    1x1 convolution by a channel reversal and drops ActNorm: RealNVP's
    multi-scale image architecture.

    Args:
        event_shape: ``(C, H, W)`` with ``H, W`` divisible by ``2 ** scales``.
        scales: levels of the multi-scale architecture.
        steps: flow steps per level.
        hidden: channels of the coupling networks.
        mixing: ``"conv1x1"`` (Glow) or ``"permute"`` (RealNVP).
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.

    References: Kingma and Dhariwal, 2018, arXiv:1807.03039; Dinh et al., 2017, arXiv:1605.08803.
    """

    image_only = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        scales: int = 2,
        steps: int = 4,
        hidden: int = 64,
        mixing: str = "conv1x1",
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.scales = check_positive_int("scales", scales)
        self.steps = check_positive_int("steps", steps)
        self.hidden = check_positive_int("hidden", hidden)
        if mixing not in ("conv1x1", "permute"):
            raise ValueError(f"mixing must be 'conv1x1' or 'permute'; got {mixing!r}")
        self.mixing = mixing
        c, h, w = self.event_shape
        if h % 2**scales or w % 2**scales:
            raise ValueError(f"height and width must be divisible by 2**scales = {2**scales}; got {(h, w)}")
        self.blocks = nn.ModuleList()
        shapes = []
        for _ in range(scales):
            c, h, w = 4 * c, h // 2, w // 2
            shapes.append((c, h, w))
            self.blocks.append(nn.ModuleList(self._step((c, h, w)) for _ in range(steps)))
            c = c // 2
        self._shapes = shapes

    def _step(self, shape: tuple[int, int, int]) -> nn.ModuleList:
        c, h, w = shape
        split = c // 2
        coupling = AffineCoupling(split, _ConvNet((split, h, w), c - split, self.hidden), dim=-3)
        if self.mixing == "permute":
            return nn.ModuleList([coupling])
        return nn.ModuleList([coupling, InvertibleConv1x1(c), ActNorm((c, h, w))])

    def _level(self, k: int) -> list[Any]:
        """Level ``k`` base to data: squeeze, the deeper levels on half the channels, the steps, unsqueeze."""
        ts: list[Any] = [Squeeze()]
        if k + 1 < self.scales:
            ts.append(Partial(self._level(k + 1), size=self._shapes[k][0] // 2))
        block = self.blocks[k]
        assert isinstance(block, nn.ModuleList)
        for step in block:
            assert isinstance(step, nn.ModuleList)
            parts: list[Any] = list(step)
            if self.mixing == "permute":
                c = self._shapes[k][0]
                parts.append(Permute(torch.arange(c - 1, -1, -1, device=self.base_loc.device), dim=-3))
            ts.extend(parts)
        ts.append(Unsqueeze())
        return ts

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        return self._level(0)


@register("mintnet", **_IMAGES)
class MintNet(FlowModel):
    r"""A MintNet-style flow: ActNorm and masked-convolution layers with triangular Jacobians, stacked.

    Each layer (data to base) is :class:`~pyrogen.distributions.transforms.MintNetLayer`,
    :math:`y = e^{s} \odot x + g(x)` with :math:`g` two masked convolutions, so scoring data costs one
    pass per layer and an exact log-determinant :math:`HW\sum_c s_c`; sampling inverts every layer by
    its fixed-point iteration. ActNorm (initialised from the first batch) sits between the layers.

    Args:
        event_shape: ``(C, H, W)``.
        num_layers: masked-convolution layers.
        hidden: channels of each layer's hidden convolution (a multiple of ``C``).
        kernel_size: odd kernel size of the convolutions.
        **kwargs: ``preprocess``, ``alpha``, ``dequantize``: see :class:`FlowModel`.

    References: Song, Meng and Ermon, 2019, arXiv:1907.07945.
    """

    image_only = True

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        num_layers: int = 6,
        hidden: int = 32,
        kernel_size: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.hidden = check_positive_int("hidden", hidden)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        c = self.event_shape[0]
        self.mints = nn.ModuleList(MintNetLayer(c, hidden, kernel_size) for _ in range(num_layers))
        self.norms = nn.ModuleList(ActNorm(tuple(self.event_shape)) for _ in range(num_layers))

    def layers(self, context: torch.Tensor | None = None) -> list[Any]:
        # base to data: each masked layer's cheap direction is data to base, so it enters inverted
        return [t for m, a in zip(self.mints, self.norms, strict=True) for t in (a, m.inv)][::-1]
