"""Four densities the flows were never tuned on, made with a fixed seed, each with its exact entropy.

- ``funnel``: Neal's funnel in 2-D, v ~ N(0, 3^2), x | v ~ N(0, e^v);
  H = H(v) + E[H(x | v)] = 1/2 log(2 pi e 9) + 1/2 log(2 pi e) (E[v] = 0).
- ``banana-units``: x1 ~ N(0, 1), x2 ~ N(x1^2 - 1, 0.3^2) (a unit-Jacobian shear of two normals), reported in
  other units: (100 x1, 0.01 x2); H = 1/2 log(2 pi e) + 1/2 log(2 pi e 0.09) + log 100 + log 0.01.
- ``three-scales``: an equal mixture of isotropic 2-D normals with standard deviations 0.05, 1 and 5 at
  (-4, 0), (0, 0) and (6, 3); H = -E log p by Monte Carlo over 4,000,000 draws (seed 1; its standard error
  is printed, about 0.001 nats), since a mixture's entropy has no closed form.
- ``copula-8d``: an 8-D Gaussian copula (R_ij = 0.6^|i - j|) with skewed marginals, exponential(1) on the
  even coordinates and lognormal(0, 0.5) on the odd ones; H = sum of the marginal entropies + 1/2 log det R
  (the Gaussian copula's entropy).

Each has 30,000 training, 5,000 validation and 5,000 test points, as the bundled toys.

    python benchmarks/fresh_densities.py     # print the entropies (and the Monte Carlo one's standard error)
"""

from __future__ import annotations

import math
import sys
from functools import cache

import torch

from pyrogen.data import TOY_SIZES, Dataset, from_array

NAMES = ("funnel", "banana-units", "three-scales", "copula-8d")
_LOG_2PIE = math.log(2 * math.pi * math.e)
_MEANS = torch.tensor([[-4.0, 0.0], [0.0, 0.0], [6.0, 3.0]], dtype=torch.float64)
_STDS = torch.tensor([0.05, 1.0, 5.0], dtype=torch.float64)


def _corr(d: int = 8, rho: float = 0.6) -> torch.Tensor:
    i = torch.arange(d, dtype=torch.float64)
    return rho ** (i[:, None] - i[None, :]).abs()


def sample(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` draws of the density ``name`` (float64)."""
    g = generator
    if name == "funnel":
        v = 3 * torch.randn(n, generator=g, dtype=torch.float64)
        x = torch.randn(n, generator=g, dtype=torch.float64) * (v / 2).exp()
        return torch.stack([v, x], 1)
    if name == "banana-units":
        x1 = torch.randn(n, generator=g, dtype=torch.float64)
        x2 = x1**2 - 1 + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        return torch.stack([100 * x1, 0.01 * x2], 1)
    if name == "three-scales":
        k = torch.randint(0, 3, (n,), generator=g)
        return _MEANS[k] + _STDS[k, None] * torch.randn(n, 2, generator=g, dtype=torch.float64)
    if name == "copula-8d":
        z = torch.randn(n, 8, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(_corr()).T
        u = torch.special.ndtr(z).clamp(1e-300, 1 - 1e-16)
        expo = -torch.log1p(-u)  # exponential(1) quantile
        logn = (0.5 * z).exp()  # lognormal(0, 0.5): exp(0.5 z) with z the copula's own normal score
        return torch.where(torch.arange(8) % 2 == 0, expo, logn)
    raise ValueError(f"unknown density {name!r}; choose one of {', '.join(NAMES)}")


def _mixture_log_prob(x: torch.Tensor) -> torch.Tensor:
    comp = torch.distributions.Normal(_MEANS, _STDS[:, None])
    lp = comp.log_prob(x[:, None, :]).sum(-1) + math.log(1 / 3)
    return torch.logsumexp(lp, 1)


@cache
def entropy(name: str) -> tuple[float, float]:
    """The entropy in nats and its standard error (0 where exact)."""
    if name == "funnel":
        return 0.5 * (_LOG_2PIE + math.log(9)) + 0.5 * _LOG_2PIE, 0.0
    if name == "banana-units":
        return 0.5 * _LOG_2PIE + 0.5 * (_LOG_2PIE + math.log(0.09)) + math.log(100) + math.log(0.01), 0.0
    if name == "three-scales":
        g = torch.Generator().manual_seed(1)
        lps = torch.cat([_mixture_log_prob(sample(name, 1_000_000, g)) for _ in range(4)])
        return float(-lps.mean()), float(lps.std() / math.sqrt(len(lps)))
    if name == "copula-8d":
        h_exp = 1.0
        h_logn = 0.0 + 0.5 + math.log(0.5 * math.sqrt(2 * math.pi))  # mu + 1/2 + log(sigma sqrt(2 pi))
        return 4 * h_exp + 4 * h_logn + 0.5 * float(torch.logdet(_corr())), 0.0
    raise ValueError(f"unknown density {name!r}; choose one of {', '.join(NAMES)}")


def load_fresh(name: str, seed: int = 0) -> Dataset:
    """The density ``name`` as a :class:`~pyrogen.data.Dataset` with the toys' part sizes (seed 0 makes the
    benchmark's data)."""
    sizes = (TOY_SIZES["train"], TOY_SIZES["val"], TOY_SIZES["test"])
    x = sample(name, sum(sizes), torch.Generator().manual_seed(seed)).float()
    return from_array(x, name=name, support="real", sizes=sizes)


def main() -> int:
    for name in NAMES:
        h, se = entropy(name)
        print(f"{name:<14} entropy {h:.4f} nats" + (f" (Monte Carlo standard error {se:.4f})" if se else " (exact)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
