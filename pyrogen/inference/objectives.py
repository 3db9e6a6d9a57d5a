"""Objectives and estimators shared by the model families."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pyro
import torch
from pyro import poutine
from pyro.poutine.util import site_is_subsample

__all__ = ["gaussian_kl", "iwae_bound", "log_mean_exp"]


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
