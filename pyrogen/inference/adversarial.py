r"""Adversarial objectives: functions of critic scores and networks, shared by every adversarial family, and the
:class:`Adversarial` objective (with BiGAN's and CycleGAN's) that trains a generator against a critic with them.

Each returns a scalar to *minimise*. ``real`` and ``fake`` are critic outputs
of shape ``(n,)`` or ``(n, 1)`` on data and on generated samples. For the
classifier-based losses they are *logits* :math:`l`, with
:math:`D = \sigma(l)`; written in logits every loss is a ``softplus``, exact
where :math:`D` saturates.

The theory the tests check numerically: for a fixed generator
:math:`q`, the optimal discriminator is :math:`D^* = p/(p + q)` (its logit
:math:`\log p/q`); then :math:`V(G, D^*) = 2\,\mathrm{JSD}(p, q) - \log 4`, and
the KL-based generator loss (minimax + non-saturating) equals
:math:`\mathrm{KL}(q \,\|\, p)`. For every :class:`FDivergence`,
:math:`\mathbb E_p[T] - \mathbb E_q[f^*(T)] \le D_f(P \,\|\, Q)` with equality at
:math:`T^* = f'(p/q)` (Nowozin, Cseke and Tomioka, 2016, arXiv:1606.00709).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.inference.objectives import Objective, eval_mode

__all__ = [
    "Adversarial",
    "Bidirectional",
    "CycleConsistent",
    "F_DIVERGENCES",
    "FDivergence",
    "LOSS_PAIRS",
    "LossPair",
    "fgan_loss_pair",
    "loss_pair",
    "clip_weights_",
    "discriminator_loss",
    "f_divergence",
    "fgan_critic_loss",
    "fgan_generator_loss",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "kl_generator_loss",
    "lambert_w",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "minimax_generator_loss",
    "nonsaturating_generator_loss",
    "wgan_critic_loss",
    "wgan_generator_loss",
]


def _flat(s: torch.Tensor, name: str) -> torch.Tensor:
    if s.dim() == 2 and s.shape[1] == 1:
        s = s.squeeze(1)
    if s.dim() != 1:
        raise ValueError(f"{name} must be critic scores of shape (n,) or (n, 1); got {tuple(s.shape)}")
    return s


# -- the classifier GAN (Goodfellow et al., 2014) ---------------------------------------------------------------
def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r"""The discriminator's loss :math:`-\mathbb E_p[\log D(x)] - \mathbb E_q[\log(1 - D(\tilde x))]`, on logits.

    Equal to :math:`-V(G, D)`; at the optimum :math:`D^* = p/(p+q)` it is :math:`\log 4 - 2\,\mathrm{JSD}(p, q)`.

    Example:
        >>> round(float(discriminator_loss(torch.zeros(3), torch.zeros(3))), 4)  # D = 1/2 everywhere: log 4
        1.3863
    """
    return F.softplus(-_flat(real, "real")).mean() + F.softplus(_flat(fake, "fake")).mean()


def minimax_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The minimax generator loss :math:`\mathbb E_q[\log(1 - D(G(z)))] = -\mathbb E_q[\operatorname{softplus}(l)]`.

    Its gradient in the logit is :math:`-\sigma(l) \to 0` as :math:`D(G(z)) \to 0`: it saturates early in
    training, when the discriminator rejects every sample.

    Example:
        >>> round(float(minimax_generator_loss(torch.zeros(2))), 4)  # log(1/2)
        -0.6931
    """
    return -F.softplus(_flat(fake, "fake")).mean()


def nonsaturating_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The non-saturating generator loss :math:`-\mathbb E_q[\log D(G(z))] = \mathbb E_q[\operatorname{softplus}(-l)]`.

    Its gradient in the logit is :math:`-\sigma(-l) \to -1` as :math:`D(G(z)) \to 0`.

    Example:
        >>> round(float(nonsaturating_generator_loss(torch.zeros(2))), 4)
        0.6931
    """
    return F.softplus(-_flat(fake, "fake")).mean()


def kl_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The KL-based generator loss (minimax + non-saturating) :math:`\mathbb E_q[\log\frac{1-D}{D}] = -\mathbb E_q[l]`.

    At the optimal discriminator, whose logit is :math:`\log p/q`, it equals :math:`\mathrm{KL}(q \,\|\, p)`
    (Huszár, 2016).

    Example:
        >>> float(kl_generator_loss(torch.tensor([1.0, 3.0])))
        -2.0
    """
    return -_flat(fake, "fake").mean()


def least_squares_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r"""LSGAN's discriminator loss :math:`\tfrac12\mathbb E_p[(D - 1)^2] + \tfrac12\mathbb E_q[D^2]` (Mao et al., 2017).

    CycleGAN's adversarial terms (Zhu et al., 2017) use it.

    Example:
        >>> float(least_squares_discriminator_loss(torch.ones(2), torch.zeros(2)))
        0.0
    """
    return 0.5 * ((_flat(real, "real") - 1) ** 2).mean() + 0.5 * (_flat(fake, "fake") ** 2).mean()


def least_squares_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""LSGAN's generator loss :math:`\tfrac12\mathbb E_q[(D(G(z)) - 1)^2]`.

    Example:
        >>> float(least_squares_generator_loss(torch.ones(2)))
        0.0
    """
    return 0.5 * ((_flat(fake, "fake") - 1) ** 2).mean()


# -- the hinge loss of the projection discriminator (Miyato and Koyama, 2018) -------------------------------------
def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r"""The hinge loss :math:`\mathbb E_p[\max(0, 1 - D(x))] + \mathbb E_q[\max(0, 1 + D(\tilde x))]`.

    Example:
        >>> float(hinge_discriminator_loss(torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])))
        1.5
    """
    return F.relu(1 - _flat(real, "real")).mean() + F.relu(1 + _flat(fake, "fake")).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The generator's side of the hinge loss, :math:`-\mathbb E_q[D(G(z))]`.

    Example:
        >>> float(hinge_generator_loss(torch.tensor([1.0, 3.0])))
        -2.0
    """
    return -_flat(fake, "fake").mean()


# -- Wasserstein GANs -----------------------------------------------------------------------------------------------
def wgan_critic_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    r"""The Wasserstein critic loss :math:`\mathbb{E}_q[D(\tilde x)] - \mathbb{E}_p[D(x)]` (Arjovsky et al., 2017).

    Its negative estimates the Wasserstein-1 distance when :math:`D` is 1-Lipschitz; without a constraint
    (clipping, a gradient penalty) it is unbounded below.

    Example:
        >>> float(wgan_critic_loss(torch.tensor([2.0, 4.0]), torch.tensor([1.0])))
        -2.0
    """
    return _flat(fake, "fake").mean() - _flat(real, "real").mean()


def wgan_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    r"""The Wasserstein generator loss :math:`-\mathbb{E}_q[D(G(z))]`.

    Example:
        >>> float(wgan_generator_loss(torch.tensor([1.0, 3.0])))
        -2.0
    """
    return -_flat(fake, "fake").mean()


@torch.no_grad()
def clip_weights_(module: nn.Module, clip: float) -> None:
    r"""WGAN's Lipschitz constraint: clamp every parameter of ``module`` to :math:`[-c, c]` in place.

    Raises:
        ValueError: ``clip`` not a positive number.

    Example:
        >>> lin = nn.Linear(2, 1)
        >>> _ = lin.weight.data.fill_(3.0)
        >>> clip_weights_(lin, 0.01)
        >>> round(lin.weight.max().item(), 6)
        0.01
    """
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0:
        raise ValueError(f"clip must be a positive number; got {clip!r}")
    for p in module.parameters():
        p.clamp_(-clip, clip)


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


# -- f-GAN (Nowozin, Cseke and Tomioka, 2016) -------------------------------------------------------------------------
def lambert_w(x: torch.Tensor) -> torch.Tensor:
    r"""The principal branch :math:`W_0` of the Lambert W function, :math:`W(x)\,e^{W(x)} = x`, for :math:`x > 0`.

    Newton's method on :math:`u = \log W`, i.e. :math:`e^u + u = \log x` (convex and increasing in :math:`u`,
    so it converges from any start); written in logs it holds for :math:`x` from ``1e-300`` to ``1e300``.

    Example:
        >>> round(float(lambert_w(torch.tensor(math.e))), 6)
        1.0
    """
    return _lambert_w_exp(torch.log(x))


def _lambert_w_exp(s: torch.Tensor) -> torch.Tensor:
    """:math:`W(e^s)`, by Newton's method on :math:`e^u + u = s` with :math:`u = \\log W`."""
    u = torch.where(s > 1, torch.log(s.clamp_min(1.0)), s)
    for _ in range(40):
        eu = torch.exp(u)
        u = u - (eu + u - s) / (eu + 1)
    return torch.exp(u)


@dataclass(frozen=True)
class FDivergence:
    r"""An f-divergence :math:`D_f(P \,\|\, Q) = \mathbb E_Q[f(p/q)]` with what f-GAN needs of it.

    Attributes:
        name: the name users type (see :data:`F_DIVERGENCES`).
        f: the generator function, convex with :math:`f(1) = 0`, on ratios :math:`u > 0`.
        f_prime: :math:`f'`; the optimal critic is :math:`T^*(x) = f'(p(x)/q(x))`.
        f_star: the convex conjugate :math:`f^*(t) = \sup_u\, t u - f(u)` on its domain.
        activation: the output activation :math:`g_f`, from the critic's unbounded output :math:`v` into the
            domain of :math:`f^*` (Nowozin et al., 2016, table 2): :math:`T = g_f(v)`.
        conjugate: :math:`f^*(g_f(v))`, written so it stays finite where :math:`g_f(v)` nears the domain's edge.
    """

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    f_prime: Callable[[torch.Tensor], torch.Tensor]
    f_star: Callable[[torch.Tensor], torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]


_LOG2 = math.log(2.0)


def _alpha(alpha: float) -> FDivergence:
    a = float(alpha)
    if not math.isfinite(a) or a in (0.0, 1.0):
        raise ValueError(f"alpha must be a finite number other than 0 and 1; got {alpha!r}")
    e = a / (a - 1)

    def act(v: torch.Tensor) -> torch.Tensor:
        return F.softplus(v) - 1 / (a - 1) if a > 1 else 1 / (1 - a) - F.softplus(-v)

    def base(v: torch.Tensor) -> torch.Tensor:  # 1 + (a - 1) g_f(v), positive by construction
        return (a - 1) * F.softplus(v) if a > 1 else (1 - a) * F.softplus(-v)

    return FDivergence(
        name="alpha",
        f=lambda u: (u**a - 1 - a * (u - 1)) / (a * (a - 1)),
        f_prime=lambda u: (u ** (a - 1) - 1) / (a - 1),
        f_star=lambda t: ((1 + (a - 1) * t) ** e - 1) / a,
        activation=act,
        conjugate=lambda v: (base(v) ** e - 1) / a,
    )


def _weighted_js(pi: float) -> FDivergence:
    p = float(pi)
    if not 0 < p < 1:
        raise ValueError(f"pi must be a number in (0, 1); got {pi!r}")
    edge = -p * math.log(p)  # the domain of f* is t < -pi log pi
    return FDivergence(
        name="weighted-jensen-shannon",
        f=lambda u: p * u * torch.log(u) - (1 - p + p * u) * torch.log(1 - p + p * u),
        f_prime=lambda u: p * torch.log(u / (1 - p + p * u)),
        f_star=lambda t: (1 - p) * (math.log(1 - p) - torch.log1p(-p * torch.exp(t / p))),
        activation=lambda v: edge - F.softplus(-v),
        conjugate=lambda v: (1 - p) * (math.log(1 - p) - torch.log(-torch.expm1(F.logsigmoid(v) / p))),
    )


def _table() -> dict[str, Callable[..., FDivergence]]:
    def tv() -> FDivergence:
        return FDivergence(
            "total-variation",
            f=lambda u: 0.5 * (u - 1).abs(),
            f_prime=lambda u: 0.5 * torch.sign(u - 1),
            f_star=lambda t: t,
            activation=lambda v: 0.5 * torch.tanh(v),
            conjugate=lambda v: 0.5 * torch.tanh(v),
        )

    def kl() -> FDivergence:
        return FDivergence(
            "kl",
            f=lambda u: u * torch.log(u),
            f_prime=lambda u: 1 + torch.log(u),
            f_star=lambda t: torch.exp(t - 1),
            activation=lambda v: v,
            conjugate=lambda v: torch.exp(v - 1),
        )

    def reverse_kl() -> FDivergence:
        return FDivergence(
            "reverse-kl",
            f=lambda u: -torch.log(u),
            f_prime=lambda u: -1 / u,
            f_star=lambda t: -1 - torch.log(-t),
            activation=lambda v: -torch.exp(-v),
            conjugate=lambda v: v - 1,
        )

    def pearson() -> FDivergence:
        return FDivergence(
            "pearson",
            f=lambda u: (u - 1) ** 2,
            f_prime=lambda u: 2 * (u - 1),
            f_star=lambda t: t**2 / 4 + t,
            activation=lambda v: v,
            conjugate=lambda v: v**2 / 4 + v,
        )

    def neyman() -> FDivergence:
        return FDivergence(
            "neyman",
            f=lambda u: (1 - u) ** 2 / u,
            f_prime=lambda u: 1 - u**-2,
            f_star=lambda t: 2 - 2 * torch.sqrt(1 - t),
            activation=lambda v: -torch.expm1(-v),
            conjugate=lambda v: 2 - 2 * torch.exp(-v / 2),
        )

    def hellinger() -> FDivergence:
        return FDivergence(
            "hellinger",
            f=lambda u: (torch.sqrt(u) - 1) ** 2,
            f_prime=lambda u: 1 - u**-0.5,
            f_star=lambda t: t / (1 - t),
            activation=lambda v: -torch.expm1(-v),
            conjugate=lambda v: torch.expm1(v),
        )

    def jeffrey() -> FDivergence:
        def f_star(t: torch.Tensor) -> torch.Tensor:
            w = _lambert_w_exp(1 - t)
            return w + 1 / w + t - 2

        return FDivergence(
            "jeffrey",
            f=lambda u: (u - 1) * torch.log(u),
            f_prime=lambda u: torch.log(u) + 1 - 1 / u,
            f_star=f_star,
            activation=lambda v: v,
            conjugate=f_star,
        )

    def js() -> FDivergence:
        return FDivergence(
            "jensen-shannon",
            f=lambda u: u * torch.log(u) - (u + 1) * torch.log((1 + u) / 2),
            f_prime=lambda u: torch.log(2 * u / (1 + u)),
            f_star=lambda t: -torch.log(2 - torch.exp(t)),
            activation=lambda v: _LOG2 - F.softplus(-v),
            conjugate=lambda v: F.softplus(v) - _LOG2,
        )

    def gan() -> FDivergence:
        return FDivergence(
            "gan",
            f=lambda u: u * torch.log(u) - (u + 1) * torch.log(1 + u),
            f_prime=lambda u: torch.log(u / (1 + u)),
            f_star=lambda t: -torch.log(-torch.expm1(t)),
            activation=lambda v: -F.softplus(-v),
            conjugate=lambda v: F.softplus(v),
        )

    return {
        "total-variation": tv,
        "kl": kl,
        "reverse-kl": reverse_kl,
        "pearson": pearson,
        "neyman": neyman,
        "hellinger": hellinger,
        "jeffrey": jeffrey,
        "jensen-shannon": js,
        "weighted-jensen-shannon": _weighted_js,
        "gan": gan,
        "alpha": _alpha,
    }


_F_TABLE = _table()
#: The divergences of :func:`f_divergence`: total variation, KL, reverse KL, Pearson and Neyman :math:`\chi^2`,
#: squared Hellinger, Jeffrey, Jensen-Shannon (Nowozin's :math:`f`, so :math:`D_f = 2\,\mathrm{JSD}`), weighted
#: Jensen-Shannon (parameter ``pi``), the GAN divergence (:math:`D_f = 2\,\mathrm{JSD} - \log 4`) and the
#: :math:`\alpha`-divergences (parameter ``alpha``).
F_DIVERGENCES: tuple[str, ...] = tuple(_F_TABLE)


def f_divergence(name: str, alpha: float = 2.0, pi: float = 0.5) -> FDivergence:
    r"""The f-divergence ``name`` of :data:`F_DIVERGENCES`, with ``alpha`` or ``pi`` where it has one.

    Raises:
        ValueError: an unknown name, ``alpha`` in {0, 1}, ``pi`` outside (0, 1).

    Example:
        >>> d = f_divergence("kl")
        >>> float(d.f(torch.tensor(1.0)))  # f(1) = 0 for every f-divergence
        0.0
    """
    if name not in _F_TABLE:
        raise ValueError(f"unknown f-divergence {name!r}; choose one of {', '.join(F_DIVERGENCES)}")
    if name == "alpha":
        return _alpha(alpha)
    if name == "weighted-jensen-shannon":
        return _weighted_js(pi)
    return _F_TABLE[name]()


def fgan_critic_loss(real: torch.Tensor, fake: torch.Tensor, divergence: FDivergence) -> torch.Tensor:
    r"""The f-GAN critic loss, the negated variational bound :math:`-(\mathbb E_p[g_f(v)] - \mathbb E_q[f^*(g_f(v))])`.

    ``real`` and ``fake`` are the critic's raw outputs :math:`v`; the bound is at most
    :math:`D_f(P \,\|\, Q)`, reached at :math:`g_f(v) = f'(p/q)`.

    Example:
        >>> d = f_divergence("kl")
        >>> float(fgan_critic_loss(torch.ones(2), torch.ones(2), d))  # -(1 - e^0)
        0.0
    """
    return divergence.conjugate(_flat(fake, "fake")).mean() - divergence.activation(_flat(real, "real")).mean()


def fgan_generator_loss(fake: torch.Tensor, divergence: FDivergence, trick: bool = True) -> torch.Tensor:
    r"""The f-GAN generator loss.

    ``trick=False``: the saddle point's own, :math:`-\mathbb E_q[f^*(g_f(v))]` (the generator minimises the
    bound). ``trick=True`` (the default, as Nowozin et al. train): :math:`-\mathbb E_q[g_f(v)]`, which has the
    same fixed point and does not saturate early, as the non-saturating GAN loss.

    Example:
        >>> float(fgan_generator_loss(torch.zeros(2), f_divergence("kl"), trick=True))
        -0.0
    """
    v = _flat(fake, "fake")
    return -(divergence.activation(v) if trick else divergence.conjugate(v)).mean()


@dataclass(frozen=True)
class LossPair:
    """What a GAN variant is: the critic's loss on ``(real, fake)`` scores and the generator's on the fake ones.

    Attributes:
        critic: ``(real scores, fake scores) -> loss`` the critic minimises.
        generator: ``fake scores -> loss`` the generator minimises.
        reference: where the pair comes from.
    """

    critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    generator: Callable[[torch.Tensor], torch.Tensor]
    reference: str = ""


#: Every loss pair by name, in one table (f-GAN's pairs come from :func:`fgan_loss_pair`, one per divergence).
LOSS_PAIRS: dict[str, LossPair] = {
    "minimax": LossPair(discriminator_loss, minimax_generator_loss, "Goodfellow et al., 2014, arXiv:1406.2661"),
    "ns": LossPair(discriminator_loss, nonsaturating_generator_loss, "Goodfellow et al., 2014, Sec. 3"),
    "kl": LossPair(discriminator_loss, kl_generator_loss, "Sonderby et al., 2017, arXiv:1610.04490"),
    "wgan": LossPair(wgan_critic_loss, wgan_generator_loss, "Arjovsky et al., 2017, arXiv:1701.07875"),
    "hinge": LossPair(hinge_discriminator_loss, hinge_generator_loss, "Miyato et al., 2018, arXiv:1802.05957"),
    "least-squares": LossPair(
        least_squares_discriminator_loss, least_squares_generator_loss, "Mao et al., 2017, arXiv:1611.04076"
    ),
}


def fgan_loss_pair(divergence: FDivergence, trick: bool = True) -> LossPair:
    """The f-GAN pair of ``divergence`` (Nowozin et al., 2016, arXiv:1606.00709)."""
    return LossPair(
        functools.partial(fgan_critic_loss, divergence=divergence),
        functools.partial(fgan_generator_loss, divergence=divergence, trick=trick),
        "Nowozin et al., 2016, arXiv:1606.00709",
    )


def loss_pair(name: str, divergence: FDivergence | None = None, trick: bool = True) -> LossPair:
    """The pair ``name`` of :data:`LOSS_PAIRS`, or ``"f"`` with its ``divergence``.

    Raises:
        ValueError: an unknown name, or ``"f"`` without a divergence.
    """
    if name == "f":
        if divergence is None:
            raise ValueError("the f-GAN loss pair needs a divergence (see f_divergence)")
        return fgan_loss_pair(divergence, trick)
    if name not in LOSS_PAIRS:
        raise ValueError(f"loss must be one of {', '.join([*LOSS_PAIRS, 'f'])}; got {name!r}")
    return LOSS_PAIRS[name]


# -- the objectives ---------------------------------------------------------------------------------------------
class Adversarial(Objective):
    r"""A generator and a critic trained against each other under a :class:`LossPair`: ``n_critic`` critic
    updates (each on a batch of its own, Arjovsky et al., 2017, Algorithm 1) per generator update.

    The model gives ``unpack(batch)`` (examples and labels or ``None``), ``noise(n, like)``,
    ``generator_output(z, y)`` (the generator's own weights, as trained), ``critic_score(x, y)`` and its
    ``critic`` and ``generator`` modules (the two parameter groups). Validation watches the unbiased MMD²
    (median bandwidth) between as many samples as the batch (with its labels, for a conditional GAN) and the
    batch: the adversarial losses say nothing about the samples' quality.

    Args:
        pair: the critic's and the generator's losses (:data:`LOSS_PAIRS`, :func:`fgan_loss_pair`).
        n_critic: critic updates per generator update.
        clip: WGAN's weight clipping (the critic's parameters clamped to :math:`[-c, c]` before every use).
        gp_weight: the gradient penalty :math:`\lambda` on interpolates (Gulrajani et al., 2017; 0: none).
        betas: Adam's betas of both groups; critic_lr, generator_lr: each group's learning rate (``None``: the
            run's).
    """

    monitor: str | None = "mmd"

    def __init__(
        self,
        pair: LossPair,
        n_critic: int = 1,
        clip: float | None = None,
        gp_weight: float = 0.0,
        betas: tuple[float, float] = (0.5, 0.999),
        critic_lr: float | None = None,
        generator_lr: float | None = None,
    ) -> None:
        if not isinstance(pair, LossPair):
            raise TypeError(f"pair must be a LossPair (see LOSS_PAIRS); got {type(pair).__name__}")
        if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(f"n_critic must be a positive integer; got {n_critic!r}")
        self.pair, self.n_critic, self.clip, self.gp_weight = pair, n_critic, clip, float(gp_weight)
        self.betas, self.critic_lr, self.generator_lr = tuple(betas), critic_lr, generator_lr

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"critic": list(model.critic.parameters()), "generator": list(model.generator.parameters())}  # type: ignore[union-attr]

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return ("critic",) * self.n_critic + ("generator",)

    def settings(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {"critic": {"betas": self.betas}, "generator": {"betas": self.betas}}
        if self.critic_lr is not None:
            out["critic"]["lr"] = self.critic_lr
        if self.generator_lr is not None:
            out["generator"]["lr"] = self.generator_lr
        return out

    def loss(self, model: nn.Module, batch: Any, group: str = "critic") -> torch.Tensor:
        r"""The group's loss on ``batch`` against as many generated samples. The critic's: for the minimax pair at
        the optimal critic :math:`\log 4 - 2\,\mathrm{JSD}`; for ``wgan`` its negative (penalty aside) estimates
        the Wasserstein-1 distance; for an f-GAN its negative is the variational lower bound on :math:`D_f`."""
        m: Any = model
        x, y = m.unpack(batch)
        if self.clip is not None:
            clip_weights_(m.critic, self.clip)
        fake = m.generator_output(m.noise(len(x), x), y)
        if group == "generator":
            return self.pair.generator(m.critic_score(fake, y))
        loss = self.pair.critic(m.critic_score(x, y), m.critic_score(fake, y))
        if self.gp_weight:
            loss = loss + gradient_penalty(lambda v: m.critic_score(v, y), x, fake, self.gp_weight)
        return loss

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        from pyrogen.quality import mmd2

        m: Any = model
        x, y = m.unpack(batch)
        fake = m.generate(m.noise(len(x), x), y)
        return torch.tensor(mmd2(fake.detach().flatten(1).double(), x.flatten(1).double()))


class Bidirectional(Adversarial):
    r"""BiGAN / ALI's objective (Donahue et al., 2017; Dumoulin et al., 2017): the discriminator tells data pairs
    :math:`(x, E(x))` from generated pairs :math:`(G(z), z)`; generator and encoder (the ``"generator"``
    group) fool it with the non-saturating loss on both sides (the labels swapped)."""

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {
            "critic": list(m.critic.parameters()),
            "generator": [*m.generator.parameters(), *m.encoder.parameters()],
        }

    def loss(self, model: nn.Module, batch: Any, group: str = "critic") -> torch.Tensor:
        m: Any = model
        x, _ = m.unpack(batch)
        z = m.noise(len(x), x)
        real = m.critic(x, z=m.encoder(x))
        fake = m.critic(m.generator(z), z=z)
        if group == "generator":  # labels swapped: data pairs should look generated and generated pairs real
            return discriminator_loss(fake, real)
        return discriminator_loss(real, fake)


class CycleConsistent(Adversarial):
    r"""CycleGAN's objective (Zhu et al., 2017): two critics (``"critic"``) and two translators :math:`G: A \to B`,
    :math:`F: B \to A` (``"generator"``) under the loss pair (least squares, Mao et al., 2017, as Zhu et al.
    train), plus :math:`\lambda\,(\lVert F(G(a)) - a\rVert_1 + \lVert G(F(b)) - b\rVert_1)` and optionally the
    identity term. The model gives ``domains(x)``, the batch's two unpaired domains. Validation watches the
    cycle-consistency error (per pixel).

    Args:
        cycle_weight: :math:`\lambda`; identity_weight: weight of :math:`\lVert G(b) - b\rVert_1 + \lVert F(a) -
            a\rVert_1`; the rest as :class:`Adversarial`.
    """

    monitor: str | None = "cycle"

    def __init__(self, pair: LossPair, cycle_weight: float = 10.0, identity_weight: float = 0.0, **kwargs: Any) -> None:
        super().__init__(pair, **kwargs)
        self.cycle_weight, self.identity_weight = float(cycle_weight), float(identity_weight)

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {
            "critic": [*m.critic.parameters(), *m.critic_a.parameters()],
            "generator": [*m.generator.parameters(), *m.generator_ba.parameters()],
        }

    def loss(self, model: nn.Module, batch: Any, group: str = "critic") -> torch.Tensor:
        m: Any = model
        x, _ = m.unpack(batch)
        a, b = m.domains(x)
        fake_b, fake_a = m.generator(a), m.generator_ba(b)
        pair = self.pair
        if group == "critic":
            return pair.critic(m.critic(b), m.critic(fake_b)) + pair.critic(m.critic_a(a), m.critic_a(fake_a))
        loss = pair.generator(m.critic(fake_b)) + pair.generator(m.critic_a(fake_a))
        cycle = (m.generator_ba(fake_b) - a).abs().mean() + (m.generator(fake_a) - b).abs().mean()
        loss = loss + self.cycle_weight * cycle
        if self.identity_weight:
            ident = (m.generator(b) - b).abs().mean() + (m.generator_ba(a) - a).abs().mean()
            loss = loss + self.identity_weight * ident
        return loss

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        m: Any = model
        x, _ = m.unpack(batch)
        a, b = m.domains(x)
        with eval_mode(m):
            return (m.generator_ba(m.generator(a)) - a).abs().mean() + (m.generator(m.generator_ba(b)) - b).abs().mean()
