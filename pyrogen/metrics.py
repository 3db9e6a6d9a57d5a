"""Likelihood metrics over a dataset, in the same units for every family.

Log-likelihoods are in nats per example. For images, bits per dimension are
``nll / (D ln 2)``; for data dequantized from ``L`` levels to ``[0, 1)`` (the
``digits`` dataset, ``L = 17``) the density on ``[0, 1)^D`` is turned into one on
the original scale ``[0, L)^D`` by adding ``D ln L`` nats, i.e. ``log2(L)``
bits/dim: the uniform density then scores exactly ``log2(17) = 4.087``
bits/dim, and the result bounds the discrete model's bits/dim from above.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from pyrogen.inference.protocol import GenerativeModelProtocol, Reconstructor, ReportsBound, density_kind

__all__ = [
    "NLLResult",
    "auroc",
    "bits_per_dim",
    "evaluate_nll",
    "knn_accuracy",
    "linear_probe",
    "log_likelihood",
    "log_likelihoods",
    "outlier_scores",
]


@dataclass
class NLLResult:
    """Test negative log-likelihood with its standard error.

    Attributes:
        nll_nats: mean negative log-likelihood per example (nats).
        nll_stderr: its standard error, ``std / sqrt(n)``.
        n: number of examples.
        bits_per_dim: for images, the bits/dim (with the dequantization
            correction where it applies), else ``None``.
        dequantization: what correction ``bits_per_dim`` includes.
        k: the number of importance samples of an IWAE estimate, else ``None``.
        elbo_nats: the mean ELBO per example for latent-variable models.
    """

    nll_nats: float
    nll_stderr: float
    n: int
    bits_per_dim: float | None = None
    dequantization: str | None = None
    k: int | None = None
    elbo_nats: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def bits_per_dim(nll_nats: float, num_dims: int, levels: int | None = None) -> float:
    r"""Bits per dimension of a negative log-likelihood in nats.

    .. math::
        \text{bpd} = \frac{\text{NLL}}{D \ln 2} + \log_2 L

    where the :math:`\log_2 L` term applies only to data dequantized from
    :math:`L` levels to :math:`[0, 1)` (``levels``; ``None`` for data already on
    their natural scale).

    Example:
        >>> round(bits_per_dim(0.0, 64, levels=17), 3)  # uniform on [0, 1)^64
        4.087
    """
    if not isinstance(num_dims, int) or num_dims < 1:
        raise ValueError(f"num_dims must be a positive integer; got {num_dims!r}")
    bpd = nll_nats / (num_dims * math.log(2))
    if levels is not None:
        if levels < 2:
            raise ValueError(f"levels must be at least 2; got {levels!r}")
        bpd += math.log2(levels)
    return bpd


def _batches(data: torch.Tensor | Iterable[Any], batch_size: int, labelled: bool = False) -> Iterable[Any]:
    """Batches of examples; ``(examples, labels)`` pairs stay pairs for a labelled model (labels dropped otherwise)."""
    if isinstance(data, torch.Tensor):
        yield from data.split(batch_size)
        return
    if isinstance(data, tuple) and all(isinstance(t, torch.Tensor) for t in data):
        parts = [t.split(batch_size) for t in data]
        yield from (tuple(p) if labelled else p[0] for p in zip(*parts, strict=True))
        return
    for b in data:
        yield (tuple(b) if labelled else b[0]) if isinstance(b, (tuple, list)) else b


@torch.no_grad()
def log_likelihoods(
    model: GenerativeModelProtocol,
    data: torch.Tensor | Iterable[Any],
    k: int | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Per-example log-likelihood (nats) over a tensor or a DataLoader.

    Exact for ``density == "exact"``; the IWAE-``k`` estimate for latent models.

    Raises:
        ValueError: the data are empty.
    """
    was_training = model.training
    model.eval()
    try:
        out = [
            log_likelihood(model, b, k=k).detach().double().cpu() for b in _batches(data, batch_size, model.labelled)
        ]
    finally:
        if was_training:
            model.train()
    if not out:
        raise ValueError("data are empty: no example to evaluate")
    return torch.cat(out)


def log_likelihood(model: GenerativeModelProtocol, x: Any, k: int | None = None) -> torch.Tensor:
    """Per-example log-likelihood in nats of one batch: ``log_prob`` of an exact (or estimated) density; of a
    bound, IWAE-``k`` (1000 unless told), or the bound itself where the model reports only its bound (DDPM's).

    Raises:
        NotImplementedError: the model has no likelihood to evaluate, naming what to use.
    """
    kind = density_kind(model)
    if kind in ("exact", "estimated"):
        return model.log_prob(x)  # type: ignore[attr-defined]
    if kind == "lower_bound":
        if isinstance(model, ReportsBound) and model.bound_only:
            return model.elbo(x)  # type: ignore[attr-defined]
        return model.iwae(x, k=k or 1000)  # type: ignore[attr-defined]
    hint = "use energy(x); the normalizer is unknown" if kind == "unnormalized" else "use a sample-quality metric"
    raise NotImplementedError(f"a model with density {kind!r} has no likelihood to evaluate: {hint}")


def _mean_stderr(v: torch.Tensor) -> tuple[float, float]:
    n = len(v)
    return float(v.mean()), float(v.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")


def evaluate_nll(
    model: GenerativeModelProtocol,
    data: torch.Tensor | Iterable[Any],
    *,
    k: int = 1000,
    levels: int | None = None,
    image: bool | None = None,
    batch_size: int = 256,
) -> NLLResult:
    """Test NLL in nats with its standard error, and bits/dim for images.

    Args:
        model: any model with ``density`` ``"exact"`` or ``"lower_bound"``.
        data: a tensor of examples or a DataLoader yielding them.
        k: importance samples for the IWAE estimate of latent models.
        levels: the ``L`` of data dequantized to ``[0, 1)`` (adds ``log2 L``
            bits/dim), ``None`` otherwise.
        image: report bits/dim; defaults to ``len(event_shape) == 3``.

    Raises:
        NotImplementedError: the model has no (estimable) likelihood.
        ValueError: empty data.
    """
    kind = density_kind(model)
    if kind not in ("exact", "estimated", "lower_bound"):
        raise NotImplementedError(f"a model with density {kind!r} has no likelihood to evaluate")
    latent = kind == "lower_bound"
    bound_only = latent and isinstance(model, ReportsBound) and model.bound_only  # a bound reported as it is
    ll = log_likelihoods(model, data, k=k if latent and not bound_only else None, batch_size=batch_size)
    nll, se = _mean_stderr(-ll)
    res = NLLResult(nll_nats=nll, nll_stderr=se, n=len(ll))
    if bound_only:
        res.elbo_nats = -nll
    elif latent:
        res.k = k
        with torch.no_grad():
            batches = _batches(data, batch_size, model.labelled)
            elbos = torch.cat([model.elbo(b).double().cpu() for b in batches])  # type: ignore[attr-defined]
        res.elbo_nats = float(elbos.mean())
    shape = tuple(model.event_shape)
    if image if image is not None else len(shape) == 3:
        res.bits_per_dim = bits_per_dim(nll, math.prod(shape), levels)
        res.dequantization = (
            f"uniform dequantization of {levels} levels to [0, 1): +log2({levels}) bits/dim included"
            if levels is not None
            else "none (discrete data)"
        )
    return res


def outlier_scores(model: GenerativeModelProtocol, x: Any, k: int = 1000, batch_size: int = 256) -> torch.Tensor:
    r"""Negative log-likelihood per example (IWAE-``k`` for latent models; the energy :math:`-f(x)` for an EBM,
    the NLL up to the constant :math:`\log Z`, which does not change a ranking; an autoencoder's reconstruction
    error): higher means more atypical.

    Raises:
        NotImplementedError: the model has no (estimable) likelihood.
    """
    if isinstance(model, Reconstructor):  # an autoencoder: the reconstruction error
        with torch.no_grad():
            return torch.cat([model.reconstruction_error(b) for b in torch.as_tensor(x).split(batch_size)])
    kind = density_kind(model)
    if kind == "unnormalized":
        energy = model.energy  # type: ignore[attr-defined]
        with torch.no_grad():
            return torch.cat([energy(b) for b in torch.as_tensor(x).split(batch_size)])
    if kind not in ("exact", "estimated", "lower_bound"):
        raise NotImplementedError(f"a model with density {kind!r} has no likelihood to score outliers with")
    return -log_likelihoods(model, x, k=k if kind == "lower_bound" else None, batch_size=batch_size)


def auroc(inlier_scores: torch.Tensor, outlier_scores: torch.Tensor) -> float:
    """Area under the ROC curve of telling outliers (high score) from inliers, ties counting one half.

    It is the probability that a random outlier scores above a random inlier (the Mann-Whitney statistic):
    1 separates perfectly, 0.5 is chance.

    Raises:
        ValueError: either set is empty or holds non-finite scores.

    Example:
        >>> auroc(torch.tensor([0.0, 1.0]), torch.tensor([2.0, 1.0]))
        0.875
    """
    a, b = torch.as_tensor(inlier_scores).double().flatten(), torch.as_tensor(outlier_scores).double().flatten()
    for name, v in (("inlier_scores", a), ("outlier_scores", b)):
        if len(v) == 0 or not torch.isfinite(v).all():
            raise ValueError(f"{name} must be a non-empty set of finite scores")
    greater = (b[:, None] > a[None, :]).double().mean()
    ties = (b[:, None] == a[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    k: int = 5,
) -> float:
    """Test accuracy of a ``k``-nearest-neighbour classifier (scikit-learn, Euclidean, on standardized features):
    how well a representation's neighbourhoods keep the classes apart, with no classifier trained.

    Raises:
        ValueError: features and labels differ in length, or ``k`` is not a positive integer.
    """
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    for f, y, name in ((train_features, train_labels, "train"), (test_features, test_labels, "test")):
        if len(f) != len(y):
            raise ValueError(f"{name} features ({len(f)}) and labels ({len(y)}) differ in length")
    clf = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k))
    clf.fit(train_features.detach().flatten(1).cpu().double().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_features.detach().flatten(1).cpu().double().numpy(), test_labels.cpu().numpy()))


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    c: float = 1.0,
) -> float:
    """Test accuracy of a multinomial logistic regression (scikit-learn, standardised features) on frozen features.

    The usual measure of a representation: the same linear classifier on latent codes and on raw pixels.

    Raises:
        ValueError: features and labels differ in length.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for f, y, name in ((train_features, train_labels, "train"), (test_features, test_labels, "test")):
        if len(f) != len(y):
            raise ValueError(f"{name} features ({len(f)}) and labels ({len(y)}) differ in length")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    clf.fit(train_features.detach().flatten(1).cpu().double().numpy(), train_labels.cpu().numpy())
    return float(clf.score(test_features.detach().flatten(1).cpu().double().numpy(), test_labels.cpu().numpy()))
