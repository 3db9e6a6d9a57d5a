"""Sample-quality metrics: how every family is judged from its samples alone, offline, on the bundled data.

A model that samples is scored against held-out data whatever its density
kind, so an implicit model (a GAN) and an exact-likelihood flow are compared in
the same units:

- vectors (the 2-D toys): unbiased :func:`mmd2` with a Gaussian kernel
  (median-heuristic bandwidth, or several) and its permutation-test p-value
  (:func:`mmd_test`); the classifier two-sample test :func:`c2st` (k-fold
  accuracy of telling samples from data; 0.5 is perfect); on ``8gaussians``
  the :func:`mode_coverage` (modes covered of 8, rate of high-quality samples);
- images (the 8x8 digits): the features of a small CNN classifier that pyrogen
  trains on the training digits and ships (:class:`DigitFeatures`), and on them
  :func:`fid`, :func:`kid`, :func:`inception_score` and the improved
  :func:`precision_recall` of Kynkäänniemi et al. (2019).

Every metric comes as ``{"value": v, "ci": [lo, hi]}`` with a 95% bootstrap
interval (KID also ``"sd"`` over its subsets). :func:`sample_quality` computes
the metrics that apply to a model and a dataset; ``pyrogen evaluate`` reports
them. This module knows models only through ``sample(n)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np
import torch
from torch import nn

from pyrogen.inference.objectives import CrossEntropy

__all__ = [
    "DigitFeatures",
    "bootstrap_ci",
    "c2st",
    "compare",
    "digit_features",
    "eight_gaussian_modes",
    "fid",
    "frechet_distance",
    "frechet_distance_of_features",
    "image_features",
    "inception_score",
    "kid",
    "live_feature_units",
    "median_bandwidth",
    "mmd2",
    "mmd_test",
    "mode_coverage",
    "precision_recall",
    "sample_quality",
    "to_unit_grey",
    "train_digit_features",
    "train_mnist_features",
    "MnistFeatures",
    "mnist_features",
    "feature_network",
]

log = logging.getLogger("pyrogen")

#: Where the shipped feature network lives (trained by ``benchmarks/feature_net.py``).
FEATURES_FILE = "digit_features.safetensors"


def _as_2d(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.dim() < 2 or len(x) < 2:
        raise ValueError(f"{name} must hold at least two examples of shape (n, ...); got {tuple(x.shape)}")
    x = x.detach().flatten(1).double().cpu()
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; found {x[~torch.isfinite(x)][0].item()}")
    return x


def _interval(values: Sequence[float] | np.ndarray) -> list[float]:
    v = np.asarray(values, dtype=float)
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def bootstrap_ci(
    stat: Callable[..., float],
    *samples: torch.Tensor,
    n_boot: int = 200,
    seed: int = 0,
) -> list[float]:
    """A 95% percentile bootstrap interval of ``stat(*samples)``, each sample resampled with replacement.

    Example:
        >>> lo, hi = bootstrap_ci(lambda v: float(v.mean()), torch.arange(100.0))
        >>> lo < 49.5 < hi
        True
    """
    return _interval(_bootstrap(stat, *samples, n_boot=n_boot, seed=seed))


def _bootstrap(stat: Callable[..., float], *samples: torch.Tensor, n_boot: int, seed: int) -> np.ndarray:
    """``stat`` on ``n_boot`` resamples (each sample resampled with replacement)."""
    g = torch.Generator().manual_seed(seed)
    draws = [stat(*[s[torch.randint(0, len(s), (len(s),), generator=g)] for s in samples]) for _ in range(n_boot)]
    return np.asarray(draws, dtype=float)


def _proportion(indicator: torch.Tensor, seed: int, n_boot: int = 1000) -> dict[str, Any]:
    ind = indicator.double()
    return {"value": float(ind.mean()), "ci": bootstrap_ci(lambda v: float(v.mean()), ind, n_boot=n_boot, seed=seed)}


# -- vectors: MMD, C2ST, modes ---------------------------------------------------------


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)


def median_bandwidth(x: torch.Tensor, y: torch.Tensor, max_points: int = 1000) -> float:
    """The median heuristic: the median pairwise distance of the pooled samples (at most ``max_points`` of each)."""
    z = torch.cat([x[:max_points], y[:max_points]])
    d = _sq_dists(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool)]
    return float(off.median().sqrt().clamp_min(1e-12))


def _bandwidths(x: torch.Tensor, y: torch.Tensor, bandwidths: str | Sequence[float]) -> list[float]:
    if bandwidths == "median":
        return [median_bandwidth(x, y)]
    if bandwidths == "multi":  # the median times 2^-2 .. 2^2: characteristic at every scale near the data's
        m = median_bandwidth(x, y)
        return [m * 2.0**k for k in (-2, -1, 0, 1, 2)]
    bws = [float(b) for b in bandwidths]
    if not bws or not all(b > 0 and math.isfinite(b) for b in bws):
        raise ValueError(f"bandwidths must be 'median', 'multi' or positive numbers; got {bandwidths!r}")
    return bws


def _kernel(z: torch.Tensor, bws: Sequence[float]) -> torch.Tensor:
    d = _sq_dists(z, z)
    return sum(torch.exp(-d / (2 * b * b)) for b in bws)  # type: ignore[return-value]


def _mmd2_from_kernel(k: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> float:
    """Unbiased MMD² from the pooled kernel matrix; pairs of one point with itself (the diagonal, and the
    repeats of a bootstrap resample) are left out, so that a resample is not biased upwards."""
    kxx, kyy, kxy = k[ix][:, ix], k[iy][:, iy], k[ix][:, iy]
    mx, my = ix[:, None] != ix[None, :], iy[:, None] != iy[None, :]
    sxx = (kxx * mx).sum() / mx.sum()
    syy = (kyy * my).sum() / my.sum()
    return float(sxx + syy - 2 * kxy.mean())


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths: str | Sequence[float] = "median") -> float:
    r"""The unbiased estimate of the squared maximum mean discrepancy (Gretton et al., 2012, JMLR 13).

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{m(m-1)}\sum_{i \ne j} k(x_i, x_j)
        + \frac{1}{n(n-1)}\sum_{i \ne j} k(y_i, y_j) - \frac{2}{mn}\sum_{i,j} k(x_i, y_j)

    with the Gaussian kernel :math:`k(a, b) = \sum_\ell \exp(-\lVert a - b\rVert^2 / 2\ell^2)`.

    Args:
        x: samples ``(m, ...)``; y: samples ``(n, ...)`` (flattened to vectors).
        bandwidths: ``"median"`` (the median heuristic), ``"multi"`` (the median
            times 1/4, 1/2, 1, 2, 4, summed) or a sequence of bandwidths.

    Raises:
        ValueError: fewer than two examples, non-finite values, bad bandwidths.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
        >>> abs(mmd2(a, b)) < 0.01 < mmd2(a, b + 1.0)
        True
    """
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    k = _kernel(torch.cat([x, y]), _bandwidths(x, y, bandwidths))
    ix, iy = torch.arange(len(x)), torch.arange(len(x), len(x) + len(y))
    return _mmd2_from_kernel(k, ix, iy)


def mmd_test(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: str | Sequence[float] = "median",
    permutations: int = 200,
    n_boot: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`mmd2` with a bootstrap interval and the permutation-test p-value of ``x`` and ``y`` being equal in law.

    Returns:
        ``{"value", "ci", "p_value", "bandwidths"}``; the p-value is
        ``(1 + #{permuted >= observed}) / (1 + permutations)``.
    """
    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    bws = _bandwidths(x, y, bandwidths)
    k = _kernel(torch.cat([x, y]), bws)
    m, n = len(x), len(y)
    ix, iy = torch.arange(m), torch.arange(m, m + n)
    value = _mmd2_from_kernel(k, ix, iy)
    g = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(m + n, generator=g) for _ in range(permutations)]
    draws = [
        (ix[torch.randint(0, m, (m,), generator=g)], iy[torch.randint(0, n, (n,), generator=g)]) for _ in range(n_boot)
    ]
    perm_stats = _mmd2_batched(k, [p[:m] for p in perms], [p[m:] for p in perms])
    boots = _mmd2_batched(k, [a for a, _ in draws], [b for _, b in draws])
    p_value = (1 + sum(s >= value for s in perm_stats)) / (1 + permutations)
    return {"value": value, "ci": _interval(boots), "p_value": p_value, "bandwidths": bws}


def _mmd2_batched(k: torch.Tensor, xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> list[float]:
    r""":func:`_mmd2_from_kernel` for many index sets at once, through their count vectors :math:`c`:
    :math:`\sum_{a \ne b,\, i_a \ne i_b} K_{i_a i_b} = c^\top K c - \sum_i c_i^2 K_{ii}` over
    :math:`\lVert c\rVert_1^2 - \lVert c\rVert_2^2` pairs (a permutation's counts are 0/1, a bootstrap's any)."""
    if not xs:
        return []
    size = len(k)

    def counts(sets: Sequence[torch.Tensor]) -> torch.Tensor:
        c = torch.zeros(len(sets), size, dtype=k.dtype)
        for row, idx in zip(c, sets, strict=True):
            row.index_add_(0, idx, torch.ones(len(idx), dtype=k.dtype))
        return c

    cx, cy = counts(xs), counts(ys)
    diag = k.diagonal()

    def within(c: torch.Tensor) -> torch.Tensor:
        return (((c @ k) * c).sum(1) - (c * c) @ diag) / (c.sum(1) ** 2 - (c * c).sum(1))

    cross = ((cx @ k) * cy).sum(1) / (cx.sum(1) * cy.sum(1))
    return (within(cx) + within(cy) - 2 * cross).tolist()


def c2st(x: torch.Tensor, y: torch.Tensor, folds: int = 5, neighbours: int | None = None, seed: int = 0) -> dict:
    r"""Classifier two-sample test (Lopez-Paz and Oquab, 2017, arXiv:1610.06545): held-out accuracy of telling
    ``x`` from ``y``.

    A k-nearest-neighbour classifier (:math:`k = \lfloor\sqrt{n}\rfloor` by default, consistent as
    :math:`n` grows) on standardised, class-balanced data, scored by stratified ``folds``-fold
    cross-validation; 0.5 means the samples cannot be told from the data, 1.0 that they always can.

    Returns:
        ``{"value", "ci"}``: the accuracy and a bootstrap interval over the held-out predictions.
    """
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier

    x, y = _as_2d(x, "x"), _as_2d(y, "y")
    n = min(len(x), len(y))
    if n < 2 * folds:
        raise ValueError(f"c2st needs at least {2 * folds} examples per sample for {folds} folds; got {n}")
    z = torch.cat([x[:n], y[:n]]).numpy()
    z = (z - z.mean(0)) / (z.std(0) + 1e-12)
    labels = np.r_[np.zeros(n), np.ones(n)]
    k = neighbours or max(1, int(math.isqrt(n)))
    correct = np.zeros(2 * n)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(z, labels):
        clf = KNeighborsClassifier(n_neighbors=k).fit(z[train], labels[train])
        correct[test] = clf.predict(z[test]) == labels[test]
    return _proportion(torch.as_tensor(correct), seed)


def eight_gaussian_modes() -> tuple[torch.Tensor, float]:
    """The centres and standard deviation of ``8gaussians`` (FFJORD's toy data): radius 4 on the 8 compass
    directions, std 0.5, all divided by 1.414."""
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    return 4.0 * torch.stack([angles.cos(), angles.sin()], 1) / 1.414, 0.5 / 1.414


def mode_coverage(
    samples: torch.Tensor,
    centres: torch.Tensor,
    std: float,
    within: float = 3.0,
    min_share: float = 0.01,
    seed: int = 0,
) -> dict[str, Any]:
    """Modes covered and the rate of high-quality samples (the protocol of VEEGAN, Srivastava et al., 2017).

    A sample is *high quality* when it lies within ``within`` standard deviations of its nearest mode; a
    mode is *covered* when at least ``min_share`` of the samples are high-quality samples of it.

    Returns:
        ``{"modes": {"value", "ci", "of"}, "high_quality": {"value", "ci"}}``.
    """
    x = _as_2d(samples, "samples")
    c = centres.double()
    d = _sq_dists(x, c).sqrt()
    dist, nearest = d.min(1)
    good = dist <= within * std

    def covered(idx: torch.Tensor) -> float:
        counts = torch.bincount(nearest[idx][good[idx]], minlength=len(c))
        return float((counts >= max(1.0, min_share * len(idx))).sum())

    ar = torch.arange(len(x))
    modes = {"value": covered(ar), "ci": bootstrap_ci(covered, ar, seed=seed), "of": len(c)}
    return {"modes": modes, "high_quality": _proportion(good, seed)}


# -- images: features, FID, KID, IS, precision and recall ---------------------------------------


def _cov(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mu = f.mean(0)
    c = f - mu
    return mu, c.T @ c / (len(f) - 1)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    r"""The Fréchet (2-Wasserstein) distance between two Gaussians (Heusel et al., 2017, arXiv:1706.08500).

    .. math::
        d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{tr}\Sigma_1 + \operatorname{tr}\Sigma_2
        - 2\operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2}

    The trace term is computed from the eigenvalues of the symmetric
    :math:`\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}` (clamped at zero), which is stable where
    ``scipy.linalg.sqrtm`` of the non-symmetric :math:`\Sigma_1\Sigma_2` returns complex noise. On a
    singular covariance the square roots of rounding-level eigenvalues leave it 1e-9 to 1e-7 off; from
    the feature sets themselves, :func:`frechet_distance_of_features` is exact.

    Example:
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> round(frechet_distance(torch.zeros(2), eye, torch.ones(2), 4 * eye), 6)  # 2 + 2 (1 - 2)^2
        4.0
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    e1, v1 = torch.linalg.eigh((cov1 + cov1.T) / 2)
    s1 = (v1 * e1.clamp_min(0).sqrt()) @ v1.T
    m = s1 @ cov2 @ s1
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt)


def frechet_distance_of_features(a: torch.Tensor, b: torch.Tensor) -> float:
    r"""The Fréchet distance between Gaussians fitted to two feature sets ``(n, d)``, exact when a covariance
    is singular.

    With centred features :math:`A = (a - \bar a) / \sqrt{n_a - 1}` and :math:`B` alike,
    :math:`\Sigma_1 = A^\top A` and :math:`\Sigma_2 = B^\top B`, and the nonzero eigenvalues of
    :math:`\Sigma_1\Sigma_2` are the squared singular values of :math:`A B^\top`, so

    .. math::
        \operatorname{tr}\big(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2}\big)^{1/2} = \lVert R_A R_B^\top\rVert_*

    (the nuclear norm; :math:`A = Q_A R_A` and :math:`B = Q_B R_B` are thin QR factorizations). No square
    root of a rounding-level eigenvalue is taken: :func:`frechet_distance` on the covariances takes one
    for every null direction (features that are constant, or fewer samples than features), which leaves
    it 1e-9 to 1e-7 off; this route is within rounding (1e-13 on the digits' features).

    Example:
        >>> f = torch.randn(50, 3, dtype=torch.float64)
        >>> abs(frechet_distance_of_features(f, f)) < 1e-12
        True
    """
    a, b = _as_2d(a, "a").double(), _as_2d(b, "b").double()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same number of features, got {a.shape[1]} and {b.shape[1]}")
    mu1, mu2 = a.mean(0), b.mean(0)
    fa, fb = (a - mu1) / math.sqrt(len(a) - 1), (b - mu2) / math.sqrt(len(b) - 1)
    ra, rb = torch.linalg.qr(fa, mode="r")[1], torch.linalg.qr(fb, mode="r")[1]
    tr_sqrt = torch.linalg.svdvals(ra @ rb.T).sum()
    return float((mu1 - mu2).pow(2).sum() + fa.pow(2).sum() + fb.pow(2).sum() - 2 * tr_sqrt)


def fid(real: torch.Tensor, fake: torch.Tensor, n_boot: int = 100, seed: int = 0) -> dict[str, Any]:
    """Fréchet distance between Gaussians fitted to two feature sets, with a bias-corrected bootstrap interval.

    Computed by :func:`frechet_distance_of_features` (exact on singular covariances). FID is biased
    upwards at small sample sizes (Chong and Forsyth, 2020), and more so on a bootstrap resample with its
    repeated points; the interval is the bootstrap distribution shifted by its mean's excess over the
    estimate. Compare FIDs only at the same sample sizes.
    """
    real, fake = _as_2d(real, "real"), _as_2d(fake, "fake")
    stat = frechet_distance_of_features

    value = stat(real, fake)
    boots = _bootstrap(stat, real, fake, n_boot=n_boot, seed=seed)
    # resampling with replacement shrinks the covariances and inflates FID: shift the interval by that bias
    lo, hi = _interval(boots - (boots.mean() - value))
    return {"value": value, "ci": [lo, hi]}


def kid(
    real: torch.Tensor, fake: torch.Tensor, subset_size: int = 100, subsets: int = 100, seed: int = 0
) -> dict[str, Any]:
    r"""Kernel Inception Distance (Bińkowski et al., 2018, arXiv:1801.01401): unbiased MMD² with the cubic
    polynomial kernel :math:`k(a, b) = (a^\top b / d + 1)^3`, averaged over random subsets.

    ``subset_size`` 100 suits the 360 test digits (the paper's 1000 needs more data than there is).

    Returns:
        ``{"value", "sd", "ci"}``: mean, standard deviation and 2.5/97.5 percentiles over the subsets.
    """
    real, fake = _as_2d(real, "real"), _as_2d(fake, "fake")
    m = min(subset_size, len(real), len(fake))
    d = real.shape[1]
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(subsets):
        a = real[torch.randperm(len(real), generator=g)[:m]]
        b = fake[torch.randperm(len(fake), generator=g)[:m]]
        kaa, kbb, kab = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
        off = (kaa.sum() - kaa.diagonal().sum() + kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
        vals.append(float(off - 2 * kab.mean()))
    v = np.asarray(vals)
    return {"value": float(v.mean()), "sd": float(v.std(ddof=1)), "ci": _interval(v)}


def inception_score(probs: torch.Tensor, n_boot: int = 200, seed: int = 0) -> dict[str, Any]:
    r"""The Inception-style score :math:`\exp\,\mathbb{E}_x \mathrm{KL}(p(y|x)\,\Vert\,p(y))` of class
    probabilities (Salimans et al., 2016), from pyrogen's digit classifier: 1 (every sample alike or
    ambiguous) to the number of classes (confident and balanced).

    Raises:
        ValueError: ``probs`` are not rows of probabilities.
    """
    p = _as_2d(probs, "probs")
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-6):
        raise ValueError("probs must be rows of class probabilities summing to 1")

    def stat(q: torch.Tensor) -> float:
        marginal = q.mean(0, keepdim=True)
        kl = (q * (q.clamp_min(1e-30).log() - marginal.clamp_min(1e-30).log())).sum(1)
        return float(kl.mean().exp())

    return {"value": stat(p), "ci": bootstrap_ci(stat, p, n_boot=n_boot, seed=seed)}


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, seed: int = 0) -> dict[str, Any]:
    """Improved precision and recall (Kynkäänniemi et al., 2019, arXiv:1904.06991).

    Each set's manifold is the union of balls around its points reaching their ``k``-th nearest
    neighbour; precision is the share of ``fake`` inside the real manifold, recall the share of ``real``
    inside the fake one. The intervals bootstrap the evaluated points with the manifolds held fixed.

    Returns:
        ``{"precision": {"value", "ci"}, "recall": {"value", "ci"}}``.
    """
    real, fake = _as_2d(real, "real"), _as_2d(fake, "fake")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision_recall needs more than k={k} examples in each set")

    def radii(f: torch.Tensor) -> torch.Tensor:
        d = _sq_dists(f, f).sqrt()
        return d.kthvalue(k + 1, dim=1).values  # the 0-th neighbour is the point itself

    r_real, r_fake = radii(real), radii(fake)
    inside_real = (_sq_dists(fake, real).sqrt() <= r_real[None, :]).any(1)
    inside_fake = (_sq_dists(real, fake).sqrt() <= r_fake[None, :]).any(1)
    return {"precision": _proportion(inside_real, seed), "recall": _proportion(inside_fake, seed + 1)}


class DigitFeatures(nn.Module):
    """The small CNN classifier of 8x8 digits whose penultimate features the image metrics use.

    Input: grey images ``(n, 1, 8, 8)`` in ``[0, 1]`` (see :func:`to_unit_grey`). Three 3x3
    convolutions (16, 32, 32 channels, one 2x2 max-pool), a 64-unit feature layer, 10 logits.
    :func:`digit_features` loads the trained weights shipped with pyrogen.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 16, 64),
            nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64 penultimate features, ``(n, 64)``."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(n, 10)``."""
        return self.head(self.conv(x))


class MnistFeatures(nn.Module):
    """The small CNN classifier of 28x28 MNIST digits whose penultimate features the image metrics use there.

    Input: grey images ``(n, 1, 28, 28)`` in ``[0, 1]``. Three 3x3 convolutions (16, 32, 32 channels), each
    followed by a 2x2 max-pool (28 -> 14 -> 7 -> 3), a 64-unit feature layer and 10 logits. The feature layer is
    a ``tanh``, not a ReLU: no unit can be zero on every input, so every one of the 64 features counts in FID
    (the 8x8 network's ReLU layer has 27 dead units). :func:`mnist_features` loads the shipped weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 3 * 3, 64),
            nn.Tanh(),
        )
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 64 penultimate features, ``(n, 64)``."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, ``(n, 10)``."""
        return self.head(self.conv(x))


#: Where the shipped MNIST feature network lives (trained by ``benchmarks/feature_net.py --mnist``).
MNIST_FEATURES_FILE = "mnist_features.safetensors"
_SHIPPED: dict[str, nn.Module] = {}


def _shipped(cls: type[nn.Module], file: str) -> Any:
    """The trained ``cls`` whose weights ship in ``pyrogen/data/file`` (loaded once, in eval mode, on the CPU)."""
    if file not in _SHIPPED:
        from safetensors.torch import load as st_load

        blob = resources.files("pyrogen.data").joinpath(file).read_bytes()
        net = cls()
        net.load_state_dict(st_load(blob))
        _SHIPPED[file] = net.eval().requires_grad_(False)
    return _SHIPPED[file]


def mnist_features() -> MnistFeatures:
    """The trained :class:`MnistFeatures` shipped in the package (loaded once, in eval mode, on the CPU).

    Raises:
        FileNotFoundError: the weights file is missing from the installation.
    """
    return _shipped(MnistFeatures, MNIST_FEATURES_FILE)


def machine_fingerprint() -> str:
    """What training the feature network bit for bit depends on: the CPU model, torch's version and its
    CPU kernels' capability (``ATEN_CPU_CAPABILITY``). Training is repeatable on one fingerprint; torch
    promises nothing across them, where a retrained network agrees in accuracy and FID instead."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} | torch {torch.__version__} | {torch.backends.cpu.get_cpu_capability()}"


def digit_features_fingerprint() -> str | None:
    """The :func:`machine_fingerprint` the shipped weights were trained on (``None`` if not recorded)."""
    from safetensors import safe_open

    path = resources.files("pyrogen.data").joinpath(FEATURES_FILE)
    with resources.as_file(path) as file, safe_open(str(file), "pt") as f:
        return (f.metadata() or {}).get("made_on")


def digit_features() -> DigitFeatures:
    """The trained :class:`DigitFeatures` shipped in the package (loaded once, in eval mode, on the CPU).

    Raises:
        FileNotFoundError: the weights file is missing from the installation.
    """
    return _shipped(DigitFeatures, FEATURES_FILE)


def live_feature_units(net: DigitFeatures | None = None) -> torch.Tensor:
    """The indices of the penultimate units that are nonzero on at least one training digit, in any of
    the three forms (integers / 16, binarized, dequantized with a fixed seed).

    Of the shipped network's 64 ReLU units, 37 are live; the other 27 are zero on every training and test
    digit and on uniform noise, so they add exactly nothing to FID, KID's inner products, the k-NN
    distances of precision and recall, or the class probabilities. The metrics keep all 64 columns (their
    covariances are then singular, which :func:`frechet_distance_of_features` handles exactly).
    """
    from pyrogen.data import load

    net = digit_features() if net is None else net
    x = load("digits-int").train.float()
    g = torch.Generator().manual_seed(0)
    forms = (x / 16.0, (x >= 8).float(), (x + torch.rand(x.shape, generator=g)) / 17.0)
    with torch.no_grad():
        peak = torch.stack([net.features(f).amax(0) for f in forms]).amax(0)
    return torch.nonzero(peak > 0).flatten()


class _FeatureTraining(CrossEntropy):
    """A feature network's objective: cross-entropy on ``(integer grey levels 0..top, labels)``.

    Each example is shown in one of the three forms models produce — levels / ``top``, binarized
    (>= ``threshold``), dequantized ((k + u) / (``top`` + 1)) — chosen at random, so that the features suit
    samples of every support.
    """

    def __init__(self, top: int, threshold: int) -> None:
        self.top, self.threshold = float(top), threshold

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        kind = torch.randint(0, 3, (len(x), 1, 1, 1))
        deq = (x + torch.rand_like(x)) / (self.top + 1.0)
        return torch.where(kind == 0, x / self.top, torch.where(kind == 1, (x >= self.threshold).float(), deq))


def _train_features(net: Any, data: str, top: int, threshold: int, seed: int, steps: int) -> dict[str, float]:
    """Train ``net`` with :func:`pyrogen.inference.fit` on the integer digits ``data`` (``"digits"`` or
    ``"mnist"``), early stopping on the validation part (patience 10 of 100-step validations, best parameters
    restored); its test accuracy on the integer, binarized and dequantized forms."""
    from pyrogen.data import load
    from pyrogen.inference.trainer import fit

    ints = load(f"{data}-int")
    fit(
        net,
        (ints.train, ints.labels["train"]),
        (ints.val, ints.labels["val"]),
        steps=steps,
        batch_size=128,
        lr=1e-3,
        val_every=100,
        patience=10,
        seed=seed,
        loss=_FeatureTraining(top, threshold),
    )
    net.eval()
    acc = {}
    with torch.no_grad():
        for name in (f"{data}-int", f"{data}-binary", data):
            d = load(name)
            pred = net(to_unit_grey(d.test, d.support).float()).argmax(-1)
            acc[name] = float((pred == d.labels["test"]).float().mean())
    return acc


def train_digit_features(seed: int = 0, steps: int = 2000) -> tuple[DigitFeatures, dict[str, float]]:
    """Train :class:`DigitFeatures` on the training digits, from ``seed`` (:func:`_train_features`).

    Returns the network (eval mode) and its test accuracy on the integer, binarized and dequantized digits.
    ``benchmarks/feature_net.py`` runs this and writes the shipped weights.
    """
    torch.manual_seed(seed)
    net = DigitFeatures()
    return net, _train_features(net, "digits", 16, 8, seed, steps)


def train_mnist_features(seed: int = 0, steps: int = 3000) -> tuple[MnistFeatures, dict[str, float]]:
    """Train :class:`MnistFeatures` on the 4,000 training digits of ``mnist``, from ``seed``
    (``benchmarks/feature_net.py --mnist``); the network and its test accuracies."""
    torch.manual_seed(seed)
    net = MnistFeatures()
    return net, _train_features(net, "mnist", 255, 128, seed, steps)


def to_unit_grey(x: torch.Tensor, support: str) -> torch.Tensor:
    """Images of any bundled digit support as grey ``(n, 1, H, W)`` in ``[0, 1]``.

    Binary pixels stay 0/1, integers are divided by their top level (16 for the 8x8 digits, 255 for 28x28
    MNIST), dequantized values in ``[0, 1)`` are kept, and colour channels are reduced by their maximum
    (``digits-rgb``).
    """
    x = x.detach().double().cpu()
    if support == "integer":
        x = x / (255.0 if tuple(x.shape[-2:]) == (28, 28) else 16.0)
    if x.dim() == 4 and x.shape[1] > 1:
        x = x.amax(1, keepdim=True)
    return x.clamp(0, 1)


_SCALES: dict[str, float] = {}

#: The image sizes the feature networks read, each with the network and the integer dataset it was trained on.
FEATURE_SIZES: dict[tuple[int, int], tuple[Callable[[], nn.Module], str]] = {
    (8, 8): (lambda: digit_features(), "digits-int"),
    (28, 28): (lambda: mnist_features(), "mnist-int"),
}


def _feature_scale(net: nn.Module, data: str) -> float:
    """The root-mean-square feature of the training digits of ``data``: features are divided by it, so that
    KID's polynomial kernel sees values of order one."""
    if data not in _SCALES:
        from pyrogen.data import load

        with torch.no_grad():
            f = net.features(to_unit_grey(load(data).train, "integer").float()).double()  # type: ignore[operator]
        _SCALES[data] = float(f.pow(2).mean().sqrt())
    return _SCALES[data]


def feature_network(x: torch.Tensor) -> tuple[nn.Module, str]:
    """The feature network for images of ``x``'s size and the dataset it was trained on.

    Raises:
        ValueError: no feature network reads that size (8x8 and 28x28 grey or colour digits).
    """
    size = tuple(x.shape[-2:])
    if x.dim() != 4 or size not in FEATURE_SIZES:
        raise ValueError(
            f"the image metrics read digits of size 8x8 or 28x28, shape (n, C, H, W); got {tuple(x.shape)}"
        )
    make, data = FEATURE_SIZES[size]
    return make(), data


def image_features(x: torch.Tensor, support: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The scaled penultimate features ``(n, 64)`` and class probabilities ``(n, 10)`` of digit images (8x8 or
    28x28: :func:`feature_network`)."""
    net, data = feature_network(x)
    with torch.no_grad():
        f = net.features(to_unit_grey(x, support).float())  # type: ignore[operator]
        return f.double() / _feature_scale(net, data), torch.softmax(net.head(f).double(), -1)  # type: ignore[operator]


def _image_metrics(real: torch.Tensor, fake: torch.Tensor, support: str, seed: int) -> dict[str, Any]:
    f_real, _ = image_features(real, support)
    f_fake, probs = image_features(fake, support)
    pr = precision_recall(f_real, f_fake, seed=seed)
    return {
        "fid": fid(f_real, f_fake, seed=seed),
        "kid": kid(f_real, f_fake, seed=seed),
        "precision": pr["precision"],
        "recall": pr["recall"],
        "inception_score": inception_score(probs, seed=seed),
    }


#: the fewest examples per sample :func:`c2st` takes (five folds); the vector metrics leave it out below
C2ST_MIN = 10


def _vector_metrics(real: torch.Tensor, fake: torch.Tensor, data_name: str, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"mmd": mmd_test(real, fake, seed=seed)}
    if min(len(real), len(fake)) >= C2ST_MIN:  # five folds of at least two examples of each sample
        out["c2st"] = c2st(real, fake, seed=seed)
    if data_name == "8gaussians":
        centres, std = eight_gaussian_modes()
        out.update(mode_coverage(fake, centres, std, seed=seed))
    return out


def compare(real: torch.Tensor, fake: torch.Tensor, kind: str, support: str, data_name: str, seed: int = 0) -> dict:
    """The sample-quality metrics of ``fake`` against ``real`` for ``kind`` ``"toy2d"``, ``"vector"`` or ``"image"``.

    Raises:
        ValueError: a kind without sample-quality metrics.
    """
    if kind == "image":
        return _image_metrics(real, fake, support, seed)
    if kind in ("toy2d", "vector"):
        return _vector_metrics(real, fake, data_name, seed)
    raise ValueError(f"no sample-quality metric for {kind!r} data")


def sample_quality(model: Any, data: Any, split: str = "test", n: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The sample-quality metrics of ``model``'s samples against ``split`` of ``data`` (a :class:`Dataset`).

    ``n`` samples are drawn (default: as many as the split holds, at most 1000 for vectors and 2000 for
    images). Returns ``{}`` for text, and for a model that cannot sample.
    """
    if data.kind not in ("image", "toy2d", "vector"):
        return {}
    if data.kind == "image" and tuple(data.event_shape[-2:]) not in FEATURE_SIZES:
        return {}  # the feature networks read 8x8 and 28x28 digits
    real = data.split(split)
    vectors = data.kind != "image"
    n = n or min(len(real), 1000 if vectors else 2000)
    real = real[:n] if vectors else real
    try:
        with torch.no_grad():
            fake = model.sample(n)
    except NotImplementedError:
        return {}
    if isinstance(fake, tuple):
        fake = fake[0]
    out = compare(real, fake, data.kind, data.support, data.name, seed)
    out["samples"] = n
    return out
