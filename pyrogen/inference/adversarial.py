"""Adversarial objectives: functions of critic scores and networks, shared by every adversarial family.

Each returns a scalar to *minimise*. ``real`` and ``fake`` are critic outputs
of shape ``(n,)`` or ``(n, 1)`` on data and on generated samples.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gradient_penalty", "wgan_critic_loss", "wgan_generator_loss"]


def wgan_critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r"""The Wasserstein critic loss :math:`\mathbb{E}_q[D(\tilde x)] - \mathbb{E}_p[D(x)]` (Arjovsky et al., 2017).

    Its negative estimates the Wasserstein-1 distance when :math:`D` is 1-Lipschitz.

    Example:
        >>> float(wgan_critic_loss(torch.tensor([2.0, 4.0]), torch.tensor([1.0])))
        -2.0
    """
    return fake.mean() - real.mean()


def wgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The Wasserstein generator loss :math:`-\mathbb{E}_q[D(G(z))]`.

    Example:
        >>> float(wgan_generator_loss(torch.tensor([1.0, 3.0])))
        -2.0
    """
    return -fake.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
) -> torch.Tensor:
    r"""WGAN-GP's penalty :math:`\lambda\,\mathbb{E}_{\hat x}[(\lVert\nabla_{\hat x} D(\hat x)\rVert_2 - 1)^2]`.

    :math:`\hat x = \epsilon x + (1 - \epsilon)\tilde x` with :math:`\epsilon \sim U(0, 1)` per example, on
    straight lines between data and samples (Gulrajani et al., 2017, arXiv:1704.00028). The gradient is
    taken with ``create_graph=True`` so the penalty trains the critic.

    Args:
        critic: the critic network, ``(n,) + event_shape -> (n,)`` or ``(n, 1)``.
        real, fake: data and generated samples of the same shape ``(n,) + event_shape``.
        weight: :math:`\lambda`.

    Raises:
        ValueError: ``real`` and ``fake`` differ in shape.

    Example:
        >>> w = torch.tensor([3.0, 4.0])  # a linear critic with gradient norm 5
        >>> float(gradient_penalty(lambda x: x @ w, torch.zeros(4, 2), torch.ones(4, 2), weight=1.0))
        16.0
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape; got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps = torch.rand((len(real),) + (1,) * (real.dim() - 1), dtype=real.dtype, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
