"""What a model can do, as runtime-checkable typing protocols.

:mod:`pyrogen.inference`, :mod:`pyrogen.metrics`, :mod:`pyrogen.runs` and the registry know models only through
these protocols; they never import a model family, and never probe for a member a protocol does not declare.
A model's *density kind* is the strongest protocol it implements (:func:`density_kind`): an exact ``log_prob``,
a bound (``elbo`` and ``iwae``), an estimated log-probability with its method and error, an unnormalized
``energy``, or none (an implicit model).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import torch

from pyrogen.inference.objectives import objective_for

__all__ = [
    "DENSITY_KINDS",
    "BoundedDensity",
    "Classifier",
    "Conditional",
    "Configured",
    "DeclaresDensity",
    "Density",
    "EstimatedDensity",
    "ExactDensity",
    "GenerativeModelProtocol",
    "OwnMetrics",
    "ReportsBound",
    "AmortizedGaussian",
    "ChainStart",
    "EnergyFunction",
    "Generates",
    "HasDistribution",
    "Sampler",
    "TrainsOnDatasets",
    "Validates",
    "Reconstructor",
    "Translator",
    "UnnormalizedDensity",
    "capabilities",
    "dataset_part",
    "density_kind",
    "training_data",
]

Density = Literal["exact", "lower_bound", "estimated", "unnormalized", "none"]
#: What ``log_prob`` means for a model: exact, a lower bound estimated by ``elbo``/``iwae``, an estimate with its
#: method and error, an unnormalized ``energy``, or no density (implicit models).
DENSITY_KINDS: tuple[str, ...] = ("exact", "lower_bound", "estimated", "unnormalized", "none")


@runtime_checkable
class ExactDensity(Protocol):
    """An exact normalized log-density, per example."""

    def log_prob(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...


@runtime_checkable
class BoundedDensity(Protocol):
    """A lower bound on the log-likelihood (``elbo``) and its importance-weighted tightening (``iwae``)."""

    def elbo(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...
    def iwae(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor: ...


@runtime_checkable
class EstimatedDensity(Protocol):
    """A log-probability whose normalizer is estimated: ``log_prob_estimate(x)`` returns the per-example estimate
    and the standard error of its shared normalizer; ``estimate_method`` names how (e.g. ``"ais"``)."""

    @property
    def estimate_method(self) -> str: ...
    def log_prob_estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, float]: ...


@runtime_checkable
class UnnormalizedDensity(Protocol):
    """An energy :math:`E(x) = -\\log \tilde p(x)`, the normalizer unknown."""

    def energy(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class DeclaresDensity(Protocol):
    """A model whose density kind depends on its configuration (a Boltzmann machine: exact while its
    normalizer is enumerable, estimated above) says which it is."""

    @property
    def density(self) -> str: ...


@runtime_checkable
class Sampler(Protocol):
    def sample(self, n: int, *args: Any, **kwargs: Any) -> torch.Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """A model that maps examples of one domain to another (CycleGAN) instead of sampling."""

    def translate(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Reconstructor(Protocol):
    """A model that encodes and reconstructs examples (an autoencoder) instead of sampling: its reconstruction
    error per example is its outlier score."""

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Conditional(Protocol):
    """A model conditioned on class labels (``classes`` of them; 0: unconditional)."""

    @property
    def classes(self) -> int: ...


@runtime_checkable
class Classifier(Protocol):
    """A model that predicts labels of examples (naive Bayes, the semi-supervised VAE)."""

    def predict(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class OwnMetrics(Protocol):
    """A model that reports metrics of its own in ``pyrogen evaluate`` (a Boltzmann machine's pseudo-likelihood,
    an EBM's score-matching loss)."""

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, float]: ...


@runtime_checkable
class Configured(Protocol):
    """A module rebuilt from its configuration: ``type(m)(**m.config())``."""

    def config(self) -> dict[str, Any]: ...


@runtime_checkable
class Validates(Protocol):
    """A model that checks (and casts) its data: ``validate(x, name)``."""

    def validate(self, x: object, name: str = "x") -> torch.Tensor: ...


@runtime_checkable
class HasDistribution(Protocol):
    """A model that is a Pyro distribution: ``as_distribution()``."""

    def as_distribution(self) -> Any: ...


@runtime_checkable
class Generates(Protocol):
    """A latent-variable model with a generator ``generate(z)`` from codes of ``latent_dim``."""

    latent_dim: int

    def generate(self, z: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class EnergyFunction(Protocol):
    """An energy-based model: the network ``f(x)`` (minus the energy) and ``unnormalized_log_prob``."""

    def f(self, x: torch.Tensor) -> torch.Tensor: ...
    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ChainStart(Protocol):
    """A model whose chains start uniform in :math:`[-s, s]^D`, ``s = init_scale``."""

    init_scale: float


@runtime_checkable
class AmortizedGaussian(Protocol):
    """A VAE that says whether its posterior is one Gaussian layer (``gaussian_posterior``)."""

    @property
    def gaussian_posterior(self) -> bool: ...


@runtime_checkable
class TrainsOnDatasets(Protocol):
    """A model that says what it trains on from a dataset's part (``(examples, labels)`` for a labelled one)."""

    def training_data(self, data: Any, split: str) -> Any: ...


def training_data(model: Any, data: Any, split: str) -> Any:
    """What :func:`~pyrogen.inference.fit` and the evaluation take from ``split`` of ``data`` for ``model``.

    The examples; ``(examples, labels)`` for a :attr:`~pyrogen.models.base.GenerativeModel.labelled` model; what
    the model says where it is :class:`TrainsOnDatasets` (captions in place of labels, a part of the labels kept).

    Raises:
        ValueError: a labelled model on a dataset without labels, or an unknown split.
    """
    if isinstance(model, TrainsOnDatasets):
        return model.training_data(data, split)
    return dataset_part(model, data, split)


def dataset_part(model: Any, data: Any, split: str) -> Any:
    """``split`` of ``data`` as a model without a say of its own trains on it: the examples, with the labels for a
    labelled model (see :func:`training_data`).

    Raises:
        ValueError: a labelled model on a dataset without labels, or an unknown split.
    """
    x = data.split(split)
    if not isinstance(model, GenerativeModelProtocol) or not model.labelled:
        return x
    if split not in data.labels:
        raise ValueError(f"{type(model).__name__} needs labelled data; dataset {data.name!r} has no labels")
    return x, data.labels[split]


@runtime_checkable
class ReportsBound(Protocol):
    """A bounded density that reports its bound as it is (``bound_only``: no importance-weighted estimate; DDPM's
    bound over whole chains of ``T`` steps is out of reach of importance sampling)."""

    @property
    def bound_only(self) -> bool: ...


_KINDS: tuple[tuple[str, type], ...] = (
    ("exact", ExactDensity),
    ("lower_bound", BoundedDensity),
    ("estimated", EstimatedDensity),
    ("unnormalized", UnnormalizedDensity),
)


def density_kind(model: Any) -> str:
    """The density kind of ``model`` (an instance, or a class for the kind of its default configuration): the
    first of :data:`DENSITY_KINDS` whose protocol it implements.

    Example:
        >>> class Gaussian:
        ...     def log_prob(self, x): ...
        >>> density_kind(Gaussian()), density_kind(object())
        ('exact', 'none')
    """
    if not isinstance(model, type) and isinstance(model, DeclaresDensity):
        return model.density
    for kind, proto in _KINDS:
        if kind == "estimated" and isinstance(model, type):
            continue  # a protocol with a property: instances only
        if issubclass(model, proto) if isinstance(model, type) else isinstance(model, proto):
            return kind
    return "none"


def capabilities(model: Any) -> frozenset[str]:
    """What ``model`` is, in the test harness's words: its density kind (unless none), ``"sampler"`` (it samples
    and is no translator), ``"several_groups"`` (its default objective trains more than one parameter group) and
    ``"labelled"`` (it trains on ``(examples, labels)``)."""
    caps = set()
    kind = density_kind(model)
    if kind != "none":
        caps.add(kind)
    if isinstance(model, Sampler) and not isinstance(model, (Translator, Reconstructor)):
        caps.add("sampler")
    if len(objective_for(model).groups(model)) > 1:
        caps.add("several_groups")
    if model.labelled:
        caps.add("labelled")
    return frozenset(caps)


@runtime_checkable
class GenerativeModelProtocol(Protocol):
    """What every model is: a Pyro program over examples of ``event_shape`` that samples (the narrow contract)."""

    @property
    def event_shape(self) -> torch.Size: ...
    @property
    def labelled(self) -> bool: ...
    @property
    def training(self) -> bool: ...

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any: ...
    def guide(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any: ...
    def sample(self, n: int) -> torch.Tensor: ...
    def config(self) -> dict[str, Any]: ...
    def eval(self) -> Any: ...
    def train(self, mode: bool = True) -> Any: ...
