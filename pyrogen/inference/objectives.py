"""Objectives and estimators shared by the model families."""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_kl", "log_mean_exp"]


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
