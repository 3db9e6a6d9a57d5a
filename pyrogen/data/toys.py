"""The eight 2-D toy densities of the FFJORD paper, generated from a seed.

References: Grathwohl et al., 2019, "FFJORD", arXiv:1810.01367 (their
``lib/toy_data.py`` fixes the conventions reproduced here, so that the
entropies listed in :data:`TOY_ENTROPY` hold).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["TOYS", "TOY_ENTROPY", "toy_sample"]

#: Differential entropy in nats of each toy density: minus the best possible
#: expected log-likelihood, for the FFJORD toy conventions (Grathwohl et al., 2019) followed here (checked for
#: the closed-form cases in ``tests/test_data.py``).
TOY_ENTROPY = {
    "checkerboard": 3.466,
    "8gaussians": 2.838,
    "2spirals": 2.644,
    "moons": 2.391,
    "pinwheel": 2.320,
    "rings": 2.616,
    "circles": 3.267,
    "swissroll": 2.667,
}
TOYS = tuple(TOY_ENTROPY)


def _swissroll(n: int, rng: np.random.RandomState) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    x = make_swiss_roll(n_samples=n, noise=1.0, random_state=rng)[0]
    return x[:, [0, 2]] / 5.0


def _circles(n: int, rng: np.random.RandomState) -> np.ndarray:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=rng)[0] * 3.0


def _moons(n: int, rng: np.random.RandomState) -> np.ndarray:
    from sklearn.datasets import make_moons

    x = make_moons(n_samples=n, noise=0.1, random_state=rng)[0]
    return x * 2.0 + np.array([-1.0, -0.2])


def _rings(n: int, rng: np.random.RandomState) -> np.ndarray:
    n4 = n3 = n2 = n // 4
    n1 = n - n4 - n3 - n2
    parts = []
    for m, radius in ((n4, 1.0), (n3, 0.75), (n2, 0.5), (n1, 0.25)):
        t = np.linspace(0, 2 * np.pi, m, endpoint=False)
        parts.append(np.stack([np.cos(t), np.sin(t)], 1) * radius)
    x = np.concatenate(parts) * 3.0
    x = x[rng.permutation(n)]
    return x + rng.normal(scale=0.08, size=x.shape)


def _eight_gaussians(n: int, rng: np.random.RandomState) -> np.ndarray:
    s = 1.0 / math.sqrt(2)
    centers = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)], dtype=np.float64)
    idx = rng.randint(8, size=n)
    x = rng.randn(n, 2) * 0.5 + centers[idx]
    return x / 1.414


def _pinwheel(n: int, rng: np.random.RandomState) -> np.ndarray:
    num_classes, rate = 5, 0.25
    per_class = n // num_classes
    rads = np.linspace(0, 2 * np.pi, num_classes, endpoint=False)
    features = rng.randn(num_classes * per_class, 2) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(num_classes), per_class)
    angles = rads[labels] + rate * np.exp(features[:, 0])
    rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1)
    x = 2 * rng.permutation(np.einsum("ti,tij->tj", features, rot.reshape(-1, 2, 2)))
    if len(x) < n:  # n not divisible by 5: top up from the same density
        x = np.concatenate([x, _pinwheel(5 * num_classes, rng)[: n - len(x)]])
    return x


def _two_spirals(n: int, rng: np.random.RandomState) -> np.ndarray:
    h = n // 2
    t = np.sqrt(rng.rand(h, 1)) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(t) * t + rng.rand(h, 1) * 0.5
    d1y = np.sin(t) * t + rng.rand(h, 1) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    x = x + rng.randn(*x.shape) * 0.1
    if len(x) < n:
        x = np.concatenate([x, _two_spirals(2, rng)[: n - len(x)]])
    return x


def _checkerboard(n: int, rng: np.random.RandomState) -> np.ndarray:
    x1 = rng.rand(n) * 4 - 2
    x2 = rng.rand(n) - rng.randint(0, 2, n) * 2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2


_GENERATORS = {
    "checkerboard": _checkerboard,
    "8gaussians": _eight_gaussians,
    "2spirals": _two_spirals,
    "moons": _moons,
    "pinwheel": _pinwheel,
    "rings": _rings,
    "circles": _circles,
    "swissroll": _swissroll,
}


def toy_sample(name: str, n: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw ``n`` points of the 2-D toy density ``name`` from ``seed``.

    Args:
        name: one of :data:`TOYS`.
        n: the number of points (at least 1).
        seed: the seed of the NumPy generator used; the same seed gives the
            same points.
        dtype: the floating dtype of the result.

    Returns:
        A tensor of shape ``(n, 2)``.

    Raises:
        ValueError: an unknown ``name`` or a non-positive ``n``.

    Example:
        >>> x = toy_sample("moons", 1000, seed=0)
        >>> x.shape, bool(torch.equal(x, toy_sample("moons", 1000, seed=0)))
        (torch.Size([1000, 2]), True)
    """
    if name not in _GENERATORS:
        raise ValueError(f"unknown toy dataset {name!r}; choose one of {', '.join(TOYS)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    rng = np.random.RandomState(seed)
    return torch.as_tensor(_GENERATORS[name](n, rng)[:n], dtype=dtype)
