"""Objectives: how :func:`~pyrogen.inference.fit` trains a model, kept apart from the model.

Pyro separates a model from the loss that trains it (``SVI(model, guide, optim, loss=Trace_ELBO())``);
pyrogen does the same for every family. An :class:`Objective` declares the parameter groups it trains, which
groups update at each step (a critic schedule, a curriculum of :class:`Phases`), each group's loss and what
validation watches. The families' objectives are shared: :class:`MaximumLikelihood` trains every exact density,
:class:`ELBO` every latent-variable model; the adversarial, energy-based, Boltzmann and diffusion objectives
sit beside their estimators in :mod:`pyrogen.inference`.

A registered class names its default objective (the ``objective`` field of its recipe);
:func:`objective_for` builds it for a model, and ``fit(model, data, loss=...)`` trains under another.

Example:
    >>> from pyrogen.models import RealNVP
    >>> flow = RealNVP(event_shape=(2,), num_layers=2, hidden=(8,))
    >>> objective = objective_for(flow)
    >>> type(objective).__name__, objective.schedule(flow, 0)
    ('MaximumLikelihood', ('model',))
    >>> x = torch.randn(5, 2)
    >>> torch.allclose(objective(flow, x), -flow.log_prob(x).mean())
    True
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample
from torch import nn

from pyrogen.data.batch import Batch, as_batch

__all__ = [
    "CrossEntropy",
    "ELBO",
    "ImplicitELBO",
    "JointLikelihood",
    "JumpyELBO",
    "LayerReconstruction",
    "LeaveOneOutLikelihood",
    "MaximumLikelihood",
    "Objective",
    "Part",
    "Phases",
    "Reconstruction",
    "SemiSupervisedELBO",
    "checked",
    "dequantize",
    "entropy_gradient_surrogate",
    "eval_mode",
    "gaussian_kl",
    "iwae_bound",
    "log_mean_exp",
    "objective_for",
    "trusted",
    "use_objective",
]

_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("pyrogen_trusted_data", default=False)


@contextlib.contextmanager
def trusted() -> Iterator[None]:
    """Inside, a model's ``validate`` passes data through unchecked: the trainer checked (and cast) its data
    once on entry, so the objectives it calls need not check every batch again (a check costs a device sync).

    Example:
        >>> from pyrogen.models import RealNVP
        >>> flow = RealNVP(event_shape=(2,), num_layers=1, hidden=(4,))
        >>> with trusted():
        ...     flow.validate(torch.tensor([[float("nan"), 0.0]])).shape
        torch.Size([1, 2])
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def is_trusted() -> bool:
    """Whether data is passed through unchecked here (see :func:`trusted`)."""
    return _TRUSTED.get()


def _args(batch: Any) -> tuple[Any, ...]:
    """The positional arguments of a model's Pyro program for ``batch``: ``(x,)`` or ``(x, context)``."""
    x, context = as_batch(batch)
    return (x,) if context is None else (x, context)


def checked(model: Any, batch: Any) -> Any:
    """``batch`` checked by ``model.validate``: the examples, or the examples of an ``(examples, context)`` pair
    (floating data cast to the model's dtype)."""
    b = as_batch(batch)
    x = model.validate(b.x, name="batch")
    if b.context is None:
        return x
    return Batch(x, b.context)


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in evaluation mode inside the block, its mode restored after."""
    was = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was)


class Objective:
    """How :func:`~pyrogen.inference.fit` trains a model: its parameter groups, the groups updated at each step,
    each group's loss, and what validation watches.

    One training step at step ``s`` runs, for each ``group`` in :meth:`schedule`, ``loss(model, batch,
    group).backward()`` and steps that group's optimizer (the other groups' parameters collect no gradient); a
    group updated twice in one step sees a fresh batch the second time. Subclasses implement :meth:`loss`; one
    with several groups also :meth:`groups` and :meth:`schedule`.

    Calling the objective, ``objective(model, batch)``, checks the batch and returns the loss of the first group
    of the schedule at step 0 (what a user evaluates by hand).
    """

    #: What validation (early stopping, ``restore_best``) watches: ``"loss"`` (:meth:`validation`), the name of
    #: another monitor it computes (e.g. ``"mmd"``), or ``None``: nothing meaningful to watch, no validation.
    monitor: str | None = "loss"
    #: Whether :meth:`validation` needs gradients (a score-matching monitor differentiates in ``x``).
    validation_needs_grad: bool = False

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """The parameter groups, each with its own optimizer: one group ``"model"`` unless overridden."""
        return {"model": [p for p in model.parameters() if p.requires_grad]}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        """The groups updated at ``step``, in order."""
        return ("model",)

    def settings(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        """Per-group optimizer settings (``lr``, ``betas``, ``weight_decay``, ``grad_clip``); groups and keys
        left out take the :class:`~pyrogen.inference.TrainConfig` values, which ``TrainConfig.groups`` overrides
        (see :func:`pyrogen.inference.trainer.group_settings`)."""
        return {}

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        """The mean loss of ``group`` on a trusted ``batch`` (what its optimizer minimizes)."""
        raise NotImplementedError

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        """The same loss computed by Pyro's inference on ``model.model`` and ``model.guide`` (``TrainConfig(
        objective="pyro")``).

        Raises:
            ValueError: the objective is not an ELBO of the model's Pyro program.
        """
        raise ValueError(
            f"{type(self).__name__} trains {type(model).__name__} by its own estimator (objective='loss'); it is "
            "no ELBO of the model's Pyro program, so objective='pyro' does not apply"
        )

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The mean score early stopping watches (lower is better); the loss of the first group by default."""
        return self.loss(model, batch, self.schedule(model, 0)[0])

    def setup(self, model: nn.Module, train: Any) -> None:
        """Called by :func:`~pyrogen.inference.fit` once, before the optimizers are built, with the whole
        (checked) training data: what a model takes from the data set as a whole rather than by batches (a
        kernel density's points). Nothing by default."""

    def check_group(self, model: nn.Module, group: str) -> None:
        """Raise ``ValueError`` naming the groups where ``group`` is not one."""
        names = list(self.groups(model))
        if group not in names:
            raise ValueError(
                f"{type(self).__name__} trains {type(model).__name__} in the parameter groups "
                f"{', '.join(map(repr, names))}; got {group!r}"
            )

    def __call__(self, model: nn.Module, batch: Any, group: str | None = None) -> torch.Tensor:
        group = self.schedule(model, 0)[0] if group is None else group
        self.check_group(model, group)
        return self.loss(model, checked(model, batch), group)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


def dequantize(x: torch.Tensor, levels: int) -> torch.Tensor:
    r"""A fresh uniform dequantization of data on a grid of ``1 / levels``: :math:`(\lfloor x L \rfloor + u) / L`,
    :math:`u \sim U[0, 1)`, each value kept in its level's bin (Theis, van den Oord and Bethge, 2016).

    Example:
        >>> y = dequantize(torch.tensor([0.0, 0.5, 1.0]), 4)
        >>> torch.floor(y * 4).tolist()
        [0.0, 2.0, 3.0]

    Raises:
        ValueError: ``levels`` is not an integer of at least 2.
    """
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2; got {levels!r}")
    return (torch.floor(x * levels).clamp(0, levels - 1) + torch.rand_like(x)) / levels


class MaximumLikelihood(Objective):
    r"""Minus the mean exact log-likelihood, :math:`-\frac1n \sum_i \log p(x_i)`, of any
    :class:`~pyrogen.inference.protocol.ExactDensity`: the model's ``log_prob`` of the batch (an ``(examples,
    context)`` pair for a conditional model).

    Validation watches the same, in evaluation mode (a MADE's ensemble over its orderings). With
    ``objective="pyro"`` the loss is Pyro's ``Trace_ELBO`` of ``model.model`` (an empty guide: exactly
    :math:`-\log p(x)`), or the ELBO given as ``pyro_elbo`` (``TraceEnum_ELBO`` for a mixture whose component is
    enumerated).

    Args:
        dequantize: ``levels`` of data on a grid of ``1 / levels`` (``None``: continuous data): each training
            batch is dequantized afresh, :math:`(\lfloor x \cdot L \rfloor + u) / L` with
            :math:`u \sim U[0, 1)`, so the model fits the dequantized density itself rather than one draw
            (Theis, van den Oord and Bethge, 2016).
        pyro_elbo: the Pyro ELBO of ``objective="pyro"`` (default ``Trace_ELBO()``).
        options: keywords of the model's ``log_prob`` (a score SDE's ``{"differentiable": True}``: maximum
            likelihood through the probability-flow ODE, as FFJORD trains).
    """

    def __init__(
        self, dequantize: int | None = None, pyro_elbo: Any = None, options: Mapping[str, Any] | None = None
    ) -> None:
        if dequantize is not None and (isinstance(dequantize, bool) or not isinstance(dequantize, int)):
            raise ValueError(f"dequantize must be a number of levels or None; got {dequantize!r}")
        self.dequantize = dequantize
        self.pyro_elbo = pyro_elbo
        self.options = dict(options or {})

    def _examples(self, model: nn.Module, batch: Any) -> Any:
        if not (model.training and self.dequantize):
            return batch
        x, context = as_batch(batch)
        x = dequantize(x, self.dequantize)
        return x if context is None else Batch(x, context)

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return -model.log_prob(self._examples(model, batch), **self.options).mean()  # type: ignore[operator]

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        args = _args(batch)
        elbo = self.pyro_elbo if self.pyro_elbo is not None else Trace_ELBO()
        return elbo.differentiable_loss(model.model, model.guide, *args) / len(args[0])


class LeaveOneOutLikelihood(Objective):
    r"""Likelihood cross-validation of a nonparametric density over its training points (Duin, 1976; Habbema et
    al., 1974): minus the mean leave-one-out log-likelihood,
    :math:`-\frac1n \sum_i \log p_{-i}(x_i)`, where :math:`p_{-i}` leaves out the points equal to :math:`x_i`
    (maximum likelihood itself would shrink a kernel density's bandwidth to zero).

    :meth:`setup` gives the model the whole training data as its points (``set_points``); validation watches
    minus the ordinary mean log-likelihood of the validation part, so early stopping keeps the bandwidth best on
    held-out data.
    """

    def setup(self, model: nn.Module, train: Any) -> None:
        model.set_points(train)  # type: ignore[operator]

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return -model.leave_one_out_log_prob(batch).mean()  # type: ignore[operator]

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return -model.log_prob(batch).mean()  # type: ignore[operator]


class JointLikelihood(Objective):
    r"""Minus the mean joint log-likelihood of labelled data, :math:`-\frac1n \sum_i \log p(x_i, y_i)`: a
    generative classifier (naive Bayes) trained on ``(examples, labels)`` by the model's ``joint_log_prob``.

    With ``objective="pyro"``: Pyro's ``Trace_ELBO`` of ``model.model(x, y)`` with both sites observed.
    """

    @staticmethod
    def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = as_batch(batch)
        if y is None:
            raise ValueError("JointLikelihood trains on (examples, labels) pairs")
        return x, y

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = self._pair(batch)
        return -model.joint_log_prob(x, y).mean()  # type: ignore[operator]

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = self._pair(batch)
        return Trace_ELBO().differentiable_loss(model.model, model.guide, x, y) / len(x)


class ELBO(Objective):
    r"""The negative evidence lower bound of a latent-variable model, per example, as its configuration says:
    the ELBO (``k = 1``, the KL in closed form where there is one) or the :math:`k`-sample importance-weighted
    bound (Burda et al., 2016), with the KL weight :math:`\beta_t` (Higgins et al., 2017's :math:`\beta` times
    Bowman et al., 2016's warm-up) on :math:`\log p(z) - \log q(z \mid x)`.

    .. math::
        \mathcal L = -\log \frac1k \sum_{i=1}^k \exp\big(\log p(x \mid z_i)
            + \beta_t [\log p(z_i) - \log q(z_i \mid x)]\big), \quad z_i \sim q(z \mid x)

    The model gives the two terms (``elbo_terms``), its ``k`` and its ``kl_weight``, which also scales the
    latent sites of its Pyro programs (``poutine.scale``), so the fused loss and Pyro's agree. With
    ``objective="pyro"``: ``pyro_elbo`` on ``model.model`` and ``model.guide`` (``TraceMeanField_ELBO``: each
    KL in closed form, as the fused loss), or :func:`iwae_bound` of their traces when ``k > 1``. Validation
    watches minus the unweighted training bound.

    Args:
        pyro_elbo: the Pyro ELBO class of the ``k = 1`` Pyro path (``Trace_ELBO`` where the model is not
            mean-field).
    """

    def __init__(self, pyro_elbo: Any = None) -> None:
        from pyro.infer import TraceMeanField_ELBO

        self.pyro_elbo = pyro_elbo if pyro_elbo is not None else TraceMeanField_ELBO

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = model.unpack(batch)  # type: ignore[operator]
        w, k = model.kl_weight, model.k
        if k == 1:
            rec, log_r = model.elbo_terms(x, y, None, analytic=True)  # type: ignore[operator]
            return -(rec + w * log_r).mean()
        rec, log_r = model.elbo_terms(x, y, k, analytic=False)  # type: ignore[operator]
        return -log_mean_exp(rec + w * log_r, dim=0).mean()

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = model.unpack(batch)  # type: ignore[operator]
        if model.k == 1:
            return self.pyro_elbo().differentiable_loss(model.model, model.guide, x, y) / len(x)
        return -iwae_bound(model.model, model.guide, model.k, x, y).mean()  # type: ignore[arg-type]

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        k = model.k
        bound = model.elbo(batch) if k == 1 else model.iwae(batch, k=k, chunk=k)  # type: ignore[operator]
        return -bound.mean()


class SemiSupervisedELBO(Objective):
    r"""The semi-supervised objective of Kingma et al. (2014, M2), per example of a batch whose missing labels
    are ``-1``: the labelled examples' ELBO of :math:`p(x, y)` plus :math:`\alpha \log q(y \mid x)`, the
    unlabelled examples' ELBO of :math:`p(x)` with the label summed out under :math:`q(y \mid x)`.

    With ``objective="pyro"``: ``TraceEnum_ELBO`` on the model's programs (the missing labels enumerated in
    parallel). Validation watches minus the ELBO of :math:`p(x)` with the label summed out: early stopping uses
    no validation labels (the classification term overfits the few labels long before the classifier stops
    improving).
    """

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = model.unpack(batch)  # type: ignore[operator]
        (x_l, y_l), x_u, _ = model.split_labelled(x, y)  # type: ignore[operator]
        w = model.kl_weight
        total = x.new_zeros(())
        if len(x_l):
            log_q = model.class_log_probs(x_l).gather(-1, y_l[:, None]).squeeze(-1)  # type: ignore[operator]
            total = total + (model.labelled_elbo(x_l, y_l, w) + model.alpha * log_q).sum()  # type: ignore[operator]
        if len(x_u):
            total = total + model.unlabelled_elbo(x_u, w).sum()  # type: ignore[operator]
        return -total / len(x)

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        from pyro.infer import TraceEnum_ELBO

        x, y = model.unpack(batch)  # type: ignore[operator]
        return TraceEnum_ELBO(max_plate_nesting=1).differentiable_loss(model.model, model.guide, x, y) / len(x)

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        x, _ = model.unpack(batch)  # type: ignore[operator]
        return -model.unlabelled_elbo(x, 1.0).mean()  # type: ignore[operator]


class CrossEntropy(Objective):
    """The mean cross-entropy of a classifier on ``(inputs, labels)`` batches: ``model(inputs)`` are the logits
    (a feature network, a probe)."""

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the network sees of the inputs (the inputs; a subclass augments them)."""
        return x

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        x, y = as_batch(batch)
        if y is None:
            raise ValueError("CrossEntropy trains on (inputs, labels) pairs")
        return nn.functional.cross_entropy(model(self.inputs(x)), y)


class Phases(Objective):
    """A curriculum: each phase's objective for its number of steps, then the next (the last for good).

    The groups are the union of the phases' (a name in two phases must name the same parameters); validation
    watches the last phase's monitor unless ``monitor`` says otherwise (``None``: no validation, where the
    phases' losses are no one comparable score).

    Args:
        phases: ``(steps, objective)`` pairs; the last one's steps may be ``None`` (until the end).
        monitor: ``"last"`` (the last phase's), or ``None``.

    Example:
        >>> a, b = MaximumLikelihood(), MaximumLikelihood()
        >>> Phases((100, a), (None, b)).phase(150)[1] is b
        True
    """

    def __init__(self, *phases: tuple[int | None, Objective], monitor: str | None = "last") -> None:
        if not phases:
            raise ValueError("Phases needs at least one (steps, objective) pair")
        for i, (steps, obj) in enumerate(phases):
            if not isinstance(obj, Objective):
                raise TypeError(f"phase {i} must be a (steps, Objective) pair; got {type(obj).__name__}")
            last = i == len(phases) - 1
            if not (last and steps is None) and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 0):
                raise ValueError(f"phase {i} steps must be a non-negative integer; got {steps!r}")
        if monitor not in ("last", None):
            raise ValueError(f"monitor must be 'last' or None; got {monitor!r}")
        self.phases = tuple(phases)
        self.monitor = phases[-1][1].monitor if monitor == "last" else None
        self.validation_needs_grad = phases[-1][1].validation_needs_grad

    def phase(self, step: int) -> tuple[int, Objective]:
        """The phase at ``step``: the step it started at and its objective."""
        start = 0
        for steps, obj in self.phases[:-1]:
            assert steps is not None
            if step < start + steps:
                return start, obj
            start += steps
        return start, self.phases[-1][1]

    def _owner(self, model: nn.Module, group: str) -> Objective:
        for _, obj in self.phases:
            if group in obj.groups(model):
                return obj
        self.check_group(model, group)  # raises
        raise AssertionError

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        out: dict[str, list[nn.Parameter]] = {}
        for _, obj in self.phases:
            for name, params in obj.groups(model).items():
                if name in out and [id(p) for p in out[name]] != [id(p) for p in params]:
                    raise ValueError(f"two phases name parameter group {name!r} with different parameters")
                out[name] = params
        return out

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        start, obj = self.phase(step)
        return obj.schedule(model, step - start)

    def settings(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for _, obj in self.phases:
            out.update(obj.settings(model))
        return out

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return self._owner(model, group).loss(model, batch, group)

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return self._owner(model, group).pyro_loss(model, batch, group)

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return self.phases[-1][1].validation(model, batch)


def entropy_gradient_surrogate(z: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    r"""Per example :math:`-s^\top z` with the score :math:`s \approx \nabla_z \log q(z \mid x)` held fixed: its
    gradient through the reparameterized :math:`z = f_\phi(x, \epsilon)` is the estimate of
    :math:`\nabla_\phi H(q(z \mid x))` above (its value means nothing)."""
    if z.shape != score.shape:
        raise ValueError(f"z and score must have the same shape; got {tuple(z.shape)}, {tuple(score.shape)}")
    return -(score.detach() * z).flatten(1).sum(-1)


class ImplicitELBO(Objective):
    r"""The ELBO of a VAE whose posterior :math:`z = f_\phi(x, \epsilon)` has no density, in two groups:
    ``"model"`` (encoder and decoder: :math:`-\log p(x, z)` plus :func:`entropy_gradient_surrogate`, whose
    gradient is the ELBO's) and ``"score"`` (the score network :math:`s_\psi(z, x) \approx \nabla_z \log q(z
    \mid x)` by score matching on :math:`q`'s own samples: sliced and variance reduced, Song et al., 2019, or
    denoising at noise ``sigma``), ``score_steps`` score updates per model update. The model term's *value* is
    not the negative ELBO (the entropy is unknown); its gradient is.

    With ``objective="pyro"`` the model term is Pyro's ``Trace_ELBO`` of ``model.model`` and ``model.guide``
    (the guide's ``Delta`` carries the surrogate as its log density). Validation watches minus the IWAE-16
    bound under the model's fitted proposal (fixed random numbers).
    """

    def __init__(self, method: str = "sliced-vr", sigma: float = 0.05, score_steps: int = 5) -> None:
        if method not in ("sliced-vr", "denoising"):
            raise ValueError(f"method must be 'sliced-vr' or 'denoising'; got {method!r}")
        self.method, self.sigma, self.score_steps = method, sigma, score_steps

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {"model": [*m.encoder.parameters(), *m.decoder.parameters()], "score": list(m.score_net.parameters())}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return ("score",) * self.score_steps + ("model",)

    def _score_loss(self, m: Any, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = m.encode(x)
        if self.method == "denoising":
            noise = torch.randn_like(z)
            s = m.score(z + self.sigma * noise, x)
            return 0.5 * (self.sigma * s + noise).pow(2).sum(-1)
        # sliced score matching, variance reduced (Song et al., 2019): v'(ds/dz)v + |s|^2 / 2, no noise scale
        with torch.enable_grad():
            z = z.requires_grad_(True)
            s = m.score(z, x)
            v = torch.randn_like(z)
            (jv,) = torch.autograd.grad((s * v).sum(), z, create_graph=True)
        return (jv * v).sum(-1) + 0.5 * s.pow(2).sum(-1)

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model
        if group == "score":
            return self._score_loss(m, batch).mean()
        z = m.encode(batch)
        return (-m.log_joint(batch, z) - entropy_gradient_surrogate(z, m.score(z, batch))).mean()

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        if group == "score":
            return self._score_loss(model, batch).mean()
        return Trace_ELBO().differentiable_loss(model.model, model.guide, batch) / len(batch)

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        with torch.random.fork_rng(devices=[batch.device] if batch.device.type == "cuda" else []):
            torch.manual_seed(0)
            return -model.iwae(batch, k=16).mean().detach()  # type: ignore[operator]


class Part(Objective):
    """``objective`` training a part of the model as one parameter group ``group``: its loss on ``part(model)``
    (the model itself unless given), the parameters ``params(model)`` (``part(model)``'s unless given), on
    ``inputs(batch)`` (the batch itself unless given: a text-to-image model's VAE takes the images of
    ``(images, captions)``). A composed model's phases are parts: latent diffusion's VAE, then its diffusion
    over the codes.

    Example:
        >>> from pyrogen.models import RealNVP
        >>> flow = RealNVP(event_shape=(2,), num_layers=1, hidden=(4,))
        >>> part = Part("flow", MaximumLikelihood())
        >>> list(part.groups(flow)), part.schedule(flow, 0)
        (['flow'], ('flow',))
    """

    def __init__(
        self,
        group: str,
        objective: Objective,
        part: Callable[[Any], nn.Module] | None = None,
        params: Callable[[Any], Sequence[nn.Parameter]] | None = None,
        inputs: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(group, str) or not group:
            raise ValueError(f"group must be a non-empty string; got {group!r}")
        if not isinstance(objective, Objective):
            raise TypeError(f"objective must be an Objective; got {type(objective).__name__}")
        self.group, self.objective = group, objective
        self._part, self._params, self._inputs = part, params, inputs
        self.monitor = objective.monitor
        self.validation_needs_grad = objective.validation_needs_grad

    def _of(self, model: nn.Module) -> nn.Module:
        return self._part(model) if self._part is not None else model

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        params = self._params(model) if self._params is not None else self._of(model).parameters()
        return {self.group: list(params)}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return (self.group,)

    def _inner_group(self, model: nn.Module) -> str:
        return self.objective.schedule(self._of(model), 0)[0]

    def _batch(self, batch: Any) -> Any:
        return self._inputs(batch) if self._inputs is not None else batch

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        part = self._of(model)
        return self.objective.loss(part, self._batch(batch), self._inner_group(model))

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        part = self._of(model)
        return self.objective.pyro_loss(part, self._batch(batch), self._inner_group(model))

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        return self.objective.validation(self._of(model), self._batch(batch))


class Reconstruction(Objective):
    r"""An autoencoder's loss: the mean reconstruction error of the (corrupted, for a denoising one) examples,
    plus its sparsity and contractive penalties at their weights. Validation watches the reconstruction error
    of the clean examples."""

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model  # an autoencoder (pyrogen.models.Autoencoder)
        x = as_batch(batch).x
        h = m._layers(m.corrupt(x) if m.training else x)
        total = m.error(x, m.decoder_output(h)).mean()
        if m.sparsity:
            total = total + m.sparsity * m.sparsity_penalty(h)
        if m.contractive:
            total = total + m.contractive * m.jacobian_norm(x).mean()
        return total

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        m: Any = model  # an autoencoder (pyrogen.models.Autoencoder)
        return m.reconstruction_error(as_batch(batch).x).mean()


class LayerReconstruction(Objective):
    """Greedy layer-wise pre-training of a stacked autoencoder's layer ``k`` (0-based): a one-layer autoencoder of
    the codes of the layers below it (fixed), its decoder the mirror layer of the model's decoder; the squared
    error of those codes (ReLU units) or, for ``k = 0``, the model's own error on ``x``."""

    def __init__(self, k: int) -> None:
        self.k = k

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model  # an autoencoder (pyrogen.models.Autoencoder)
        x = as_batch(batch).x
        with torch.no_grad():
            below = m._layers(m.corrupt(x) if m.training else x, layers=self.k)
        h = m._layers(below, layers=self.k + 1, start=self.k)
        out = m.decoder[len(m.decoder) - 1 - self.k](h)
        if self.k == 0:
            return m.error(x, out.reshape(x.shape)).mean()
        return (out - below).pow(2).sum(-1).mean()  # the ReLU codes below, by squared error


class JumpyELBO(Objective):
    r"""TD-VAE's objective: minus the bound of one jump per sequence, :math:`s_1` uniform in :math:`0..T-1` and
    :math:`\delta` uniform in :math:`1..\min(\text{max\_jump}, T - s_1)`, averaged over the batch. With
    ``objective="pyro"``: ``Trace_ELBO`` on :meth:`~pyrogen.models.TDVAE.model` and
    :meth:`~pyrogen.models.TDVAE.guide` for the same pairs (the pairs are drawn first, from the same random state,
    so the two agree on a seed). Validation: the bound averaged over every pair, one sample each."""

    @staticmethod
    def draw(model: Any, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs ``(s1, delta)``."""
        frames = model.frames
        s1 = torch.randint(0, frames, (n,), device=device)
        longest = (frames - s1).clamp(max=model.max_jump)
        delta = 1 + (torch.rand(n, device=device) * longest).long().clamp(max=longest - 1)
        return s1, delta

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model  # a TD-VAE (pyrogen.models.TDVAE)
        x = as_batch(batch).x
        s1, delta = self.draw(m, len(x), x.device)
        return -m.jump_bound(x, s1, delta).mean()

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        m: Any = model  # a TD-VAE (pyrogen.models.TDVAE)
        x = as_batch(batch).x
        s1, delta = self.draw(m, len(x), x.device)
        return Trace_ELBO().differentiable_loss(m.model, m.guide, x, s1, delta) / len(x)

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        m: Any = model  # a TD-VAE (pyrogen.models.TDVAE)
        x = as_batch(batch).x
        n = len(x)
        pairs = [(s, d) for s in range(m.frames) for d in range(1, m.max_jump + 1) if s + d <= m.frames]
        s1 = torch.tensor([s for s, _ in pairs], device=x.device).repeat_interleave(n)
        delta = torch.tensor([d for _, d in pairs], device=x.device).repeat_interleave(n)
        return -m.jump_bound(x.repeat(len(pairs), *([1] * (x.dim() - 1))), s1, delta).mean()


#: Each registered class's default objective, ``model -> Objective`` (set by the registry from recipes).
_DEFAULTS: dict[type, Callable[[Any], Objective]] = {}


def use_objective(cls: type, make: Callable[[Any], Objective]) -> None:
    """Make ``make(model)`` the default objective of ``cls`` and its subclasses (the registry calls this with a
    recipe's ``objective``)."""
    _DEFAULTS[cls] = make


def objective_for(model: nn.Module) -> Objective:
    """The objective ``model`` trains under unless told: its class's (or nearest registered base class's).

    Raises:
        TypeError: no class of the model names one (pass ``fit(..., loss=...)``).
    """
    for cls in type(model).__mro__:
        make = _DEFAULTS.get(cls)
        if make is not None:
            return make(model)
    raise TypeError(
        f"{type(model).__name__} names no default objective: register it with one (recipe field objective=) or "
        "pass fit(..., loss=an Objective)"
    )


def gaussian_kl(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2) \,\|\, \mathcal N(0, 1))`, summed over the last dim.

    .. math::
        \mathrm{KL} = \tfrac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - 1\right) - \log \sigma_j

    Args:
        loc: :math:`\mu`, shape ``(..., d)``.
        scale: :math:`\sigma > 0`, shape ``(..., d)``.

    Returns:
        A tensor of shape ``(...)``.

    References: Kingma and Welling, 2014, arXiv:1312.6114, appendix B.

    Example:
        >>> gaussian_kl(torch.zeros(3), torch.ones(3))
        tensor(0.)
    """
    return (0.5 * (loc.pow(2) + scale.pow(2) - 1) - scale.log()).sum(-1)


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    r""":math:`\log \frac1K \sum_k e^{x_k}` along ``dim``, computed stably.

    Example:
        >>> log_mean_exp(torch.tensor([0.0, 0.0]))
        tensor(0.)
    """
    return torch.logsumexp(x, dim) - math.log(x.shape[dim])


def iwae_bound(
    model: Callable[..., Any], guide: Callable[..., Any], k: int, *args: Any, max_plate_nesting: int = 1, **kwargs: Any
) -> torch.Tensor:
    r"""The :math:`k`-sample importance-weighted bound per example, from Pyro traces, differentiable.

    .. math::
        \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k \frac{p(x, z_i)}{q(z_i \mid x)},\quad z_i \sim q(z \mid x)

    The guide runs once under a particle plate of size ``k`` left of the
    model's plates, the model is replayed on its samples, and every site's log
    density (times its ``poutine.scale``) is summed per example. Pyro's
    ``RenyiELBO(alpha=0)`` computes the same value (summed over the batch) but
    has no ``differentiable_loss``; this one can be backpropagated. Every
    latent site must lie inside the data plate (dimension ``-1``).

    Args:
        model, guide: the Pyro program pair.
        k: importance samples.
        args, kwargs: passed to both.
        max_plate_nesting: plates the model nests (the particle plate sits left of them).

    Returns:
        A tensor of shape ``(n,)`` (the data plate's size).

    References: Burda et al., 2016, arXiv:1509.00519.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")

    def particles(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*a: Any, **kw: Any) -> Any:
            with pyro.plate("iwae_particles", k, dim=-(max_plate_nesting + 1)):
                return fn(*a, **kw)

        return wrapped

    guide_trace = poutine.trace(particles(guide)).get_trace(*args, **kwargs)
    model_trace = poutine.trace(poutine.replay(particles(model), trace=guide_trace)).get_trace(*args, **kwargs)
    log_w: torch.Tensor | float = 0.0
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for name, site in trace.nodes.items():
            if site["type"] == "sample" and not site_is_subsample(site):
                if not any(f.name != "iwae_particles" and f.vectorized for f in site["cond_indep_stack"]):
                    raise ValueError(
                        f"site {name!r} is outside every data plate: the IWAE bound is per example only when "
                        "every site lies inside the data plate"
                    )
                fn: Any = site["fn"]
                log_w = log_w + sign * site["scale"] * fn.log_prob(site["value"])
    assert isinstance(log_w, torch.Tensor)
    return log_mean_exp(log_w.reshape(k, -1), dim=0)
