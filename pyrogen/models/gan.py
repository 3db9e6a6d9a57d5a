r"""Generative adversarial networks as implicit Pyro distributions.

A GAN's generator :math:`G` defines :math:`x = G(z)`, :math:`z \sim \mathcal N(0, I)`: it samples and has no
density (``density = "none"``). Each model here is trained by pyrogen's common trainer through two parameter
groups, ``"critic"`` and ``"generator"`` (``n_critic`` critic updates per generator update), with the losses
of :mod:`pyrogen.inference.adversarial`; :meth:`AdversarialModel.as_distribution` is an
:class:`~pyrogen.distributions.ImplicitDistribution` to put in a Pyro program, and
:func:`pyrogen.latent.generator_posterior` conditions through :math:`G` with Pyro's NUTS or SVI.

Registered: ``gan`` (minimax), ``ns-gan`` (non-saturating), ``kl-gan`` (minimax + non-saturating),
``fgan`` (any divergence of :data:`~pyrogen.inference.adversarial.F_DIVERGENCES`), ``wgan`` (weight
clipping), ``wgan-gp`` (gradient penalty), ``cgan`` (projection discriminator, hinge loss, on labels),
``bigan`` (encoder, generator, joint discriminator) and ``cyclegan`` (two unpaired image domains).

Validation (``monitor = "mmd"``) scores the generator's samples against the validation data by the unbiased
MMD² (Gaussian kernel, median bandwidth; :func:`pyrogen.quality.mmd2`), so early stopping and
``restore_best`` keep the generator whose samples are closest to held-out data, not the last one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributions import constraints

from pyrogen.checks import number, optional_number
from pyrogen.data import Dataset
from pyrogen.data.batch import split_context
from pyrogen.distributions.implicit import ImplicitDistribution
from pyrogen.inference import adversarial as adv
from pyrogen.inference.hooks import EMA
from pyrogen.inference.objectives import eval_mode, use_objective
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
    takes_context,
)
from pyrogen.models.registry import Recipe, continuous_support, preset, register
from pyrogen.nn.adversarial import ARCHS, Critic, Encoder, Generator, Translator

__all__ = ["BiGAN", "CGAN", "CycleGAN", "FGAN", "GAN", "KLGAN", "NSGAN", "WGAN", "WGANGP", "AdversarialModel"]


def _positive_number(name: str, v: object, allow_none: bool = True) -> float | None:
    return optional_number(name, v, 0, strict=True) if allow_none else number(name, v, 0, strict=True)


def _gan_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The GAN for ``data``: ``dcgan`` for images, ``mlp`` otherwise; a sigmoid output for unit-interval data.

    Raises:
        ValueError: discrete data (a generator's output is continuous; use the grey ``digits``).
    """
    kwargs = continuous_support(recipe, data, kwargs, "generates", "use the grey-level 'digits'")
    kwargs.setdefault("arch", "dcgan" if data.kind == "image" else "mlp")
    if data.kind == "image":  # measured on the digits (benchmarks/gan.py): wider nets and a 32-d code
        kwargs.setdefault("features", 64)
        kwargs.setdefault("latent_dim", 32)
    else:
        kwargs.setdefault("latent_dim", 2)
    return kwargs


def _gan_train(data: Dataset) -> dict[str, Any]:
    """Images: 4000 steps of batch 64 at lr 5e-4; vectors: 3000 steps of batch 256 at lr 1e-3; validation
    (MMD²) every 250 steps, the best generator kept."""
    if data.kind == "image":
        return {"lr": 5e-4, "batch_size": 64, "steps": 4000, "val_every": 250}
    return {"lr": 1e-3, "batch_size": 256, "steps": 3000, "val_every": 250}


def _cgan_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if not data.labels:
        raise ValueError(f"cgan needs labelled data; dataset {data.name!r} has no labels")
    kwargs.setdefault("classes", int(data.labels["train"].max()) + 1)
    return _gan_choices(recipe, data, kwargs)


def _cyclegan_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if data.kind != "image" or data.support != "unit_interval":
        raise ValueError(
            f"cyclegan translates images in the unit interval; dataset {data.name!r} is not (use 'digits')"
        )
    return kwargs


class AdversarialModel(GenerativeModel):
    r"""A generator and a critic trained against each other; the base of every unconditional GAN here.

    Args:
        event_shape: shape of one example.
        latent_dim: size of :math:`z \sim \mathcal N(0, I)`.
        arch: ``"mlp"`` (vectors) or ``"dcgan"`` (images whose sides divide by 4); see :mod:`pyrogen.nn.adversarial`.
        hidden: MLP layer sizes of generator and critic; features: DCGAN width.
        support: ``"real"`` (linear output) or ``"unit_interval"`` (sigmoid output).
        n_critic: critic updates per generator update.
        clip: WGAN's weight clipping :math:`c` (the critic's parameters clamped to :math:`[-c, c]` before every
            use), or ``None``.
        gp_weight: the gradient penalty :math:`\lambda` on interpolates (0: none).
        spectral_norm: spectrally normalize every critic layer.
        ema: decay of an exponential moving average of the generator, used by :meth:`sample`,
            :meth:`generate` and :meth:`as_distribution` (``None``: the generator itself). The average's
            samples are better (FID 0.33 against 0.48 for ``ns-gan`` on the digits, ``benchmarks/gan.py``).
        critic_lr, generator_lr: each group's learning rate (``None``: the run's ``lr``).
        betas: Adam's betas of both groups.
        divergence, alpha, pi: the f-divergence of ``fgan``
            (:func:`~pyrogen.inference.adversarial.f_divergence`).
        trick: f-GAN's generator maximises :math:`\mathbb E_q[g_f(v)]` instead of the saddle point's
            :math:`\mathbb E_q[f^*(g_f(v))]`.
    """

    family: ClassVar[str] = "gan"
    density: ClassVar[str] = "none"
    support = "real"

    def __init__(
        self,
        event_shape: Sequence[int],
        latent_dim: int = 16,
        arch: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        features: int = 32,
        support: str = "real",
        loss: str = "minimax",
        n_critic: int = 1,
        clip: float | None = None,
        gp_weight: float = 0.0,
        spectral_norm: bool = False,
        ema: float | None = 0.999,
        critic_lr: float | None = None,
        generator_lr: float | None = None,
        betas: Sequence[float] = (0.5, 0.999),
        divergence: str = "jensen-shannon",
        alpha: float = 2.0,
        pi: float = 0.5,
        trick: bool = True,
    ) -> None:
        super().__init__(event_shape)
        if not isinstance(loss, str) or (loss != "f" and loss not in adv.LOSS_PAIRS):
            raise ValueError(f"loss must be one of {', '.join([*adv.LOSS_PAIRS, 'f'])}; got {loss!r}")
        self.loss_name = loss
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")
        self.arch, self.hidden = arch, check_hidden(hidden)
        self.features = check_positive_int("features", features)
        if support not in ("real", "unit_interval"):
            raise ValueError(f"support must be 'real' or 'unit_interval'; got {support!r}")
        self.support = support
        self.n_critic = check_positive_int("n_critic", n_critic)
        self.clip = _positive_number("clip", clip)
        gp = gp_weight
        if isinstance(gp, bool) or not isinstance(gp, (int, float)) or not 0 <= gp < float("inf"):
            raise ValueError(f"gp_weight must be a non-negative number; got {gp!r}")
        self.gp_weight = float(gp)
        sn = spectral_norm
        if not isinstance(sn, bool):
            raise ValueError(f"spectral_norm must be true or false; got {sn!r}")
        self.spectral_norm = sn
        self.critic_lr = _positive_number("critic_lr", critic_lr)
        self.generator_lr = _positive_number("generator_lr", generator_lr)
        b = betas
        if (
            not isinstance(b, (list, tuple))
            or len(b) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 for v in b)
        ):
            raise ValueError(f"betas must be two numbers in [0, 1); got {betas!r}")
        self.betas = (float(b[0]), float(b[1]))
        self.divergence_name, self.alpha, self.pi, self.trick = divergence, float(alpha), float(pi), bool(trick)
        self.divergence = adv.f_divergence(divergence, alpha=alpha, pi=pi) if loss == "f" else None
        self.losses = adv.loss_pair(loss, self.divergence, self.trick)
        self._build()
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1):
            raise ValueError(f"ema must be a decay in [0, 1) or None; got {ema!r}")
        self.ema_decay = None if ema is None else float(ema)
        self.ema = EMA(self.generator, self.ema_decay) if self.ema_decay is not None else None

    # -- construction -----------------------------------------------------------------------------------------
    def _output(self) -> str:
        return "sigmoid" if self.support == "unit_interval" else "linear"

    def _build(self) -> None:
        kw: dict[str, Any] = {"arch": self.arch, "hidden": self.hidden, "features": self.features}
        self.generator = Generator(self.latent_dim, self.event_shape, output=self._output(), **kw)
        self.critic = Critic(self.event_shape, spectral_norm=self.spectral_norm, bias=self._critic_bias(), **kw)

    def _critic_bias(self) -> bool:
        """A Wasserstein or hinge critic has no output bias: it cancels out of (or at the start, out of) its loss."""
        return self.loss_name not in ("wgan", "hinge")

    def unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, _ = split_context(batch, False, type(self).__name__)
        return x, None

    def critic_score(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.critic(x)

    # -- sampling ---------------------------------------------------------------------------------------------
    def _ref(self) -> torch.Tensor:
        return next(self.generator.parameters())

    def noise(self, n: int, like: torch.Tensor | None = None) -> torch.Tensor:
        ref = self._ref() if like is None or not like.is_floating_point() else like
        return torch.randn(n, self.latent_dim, dtype=ref.dtype, device=ref.device)

    def generator_output(self, z: torch.Tensor, y: torch.Tensor | None = None, averaged: bool = False) -> torch.Tensor:
        """:math:`G(z)` with the generator's own weights, or with the EMA's average (``averaged``)."""
        args = (z,) if y is None else (z, y)
        if not averaged or self.ema is None:
            return self.generator(*args)
        return self.ema.call(*args)

    @takes_context
    @accepts_unbatched(lambda self: (self.latent_dim,), label=0)
    def generate(self, z: torch.Tensor, y: object = None) -> torch.Tensor:
        r""":math:`G(z)` for given codes ``z`` of shape ``(n, latent_dim)`` (the EMA generator where there is one),
        in eval mode, differentiable in ``z`` — what a Pyro model over :math:`z` calls."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (n, {self.latent_dim}); got {tuple(getattr(z, 'shape', ()))}")
        if not z.is_floating_point():
            raise ValueError(f"z must be a floating-point tensor; got {z.dtype}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError("z must hold finite numbers; got NaN or infinity")
        with eval_mode(self.generator):
            return self.generator_output(z.to(self._ref().dtype), self._labels(y, len(z)), averaged=True)

    def _labels(self, y: object, n: int) -> torch.Tensor | None:
        if y is not None:
            raise ValueError(f"{type(self).__name__} is unconditional; got labels y")
        return None

    @takes_context
    @torch.no_grad()
    def sample(self, n: int, y: object = None) -> torch.Tensor:
        """``n`` draws of :math:`G(z)`, shape ``(n,) + event_shape`` (the generator in eval mode, its EMA where
        there is one)."""
        check_positive_int("n", n)
        return self.generate(self.noise(n), y)

    @frozen_unless_trainable
    @takes_context
    def as_distribution(self, y: object = None) -> ImplicitDistribution:
        """The implicit distribution of :math:`G(z)` for a Pyro program (``rsample`` differentiable; no
        ``log_prob``)."""
        support = constraints.unit_interval if self.support == "unit_interval" else constraints.real
        return ImplicitDistribution(lambda n: self.generate(self.noise(n), y), self.event_shape, support=support)


def _schedule(model: AdversarialModel) -> dict[str, Any]:
    """The critic schedule and optimizer settings a GAN's configuration names."""
    return {
        "n_critic": model.n_critic,
        "clip": model.clip,
        "gp_weight": model.gp_weight,
        "betas": model.betas,
        "critic_lr": model.critic_lr,
        "generator_lr": model.generator_lr,
    }


use_objective(AdversarialModel, lambda model: adv.Adversarial(model.losses, **_schedule(model)))

register(
    "gan",
    AdversarialModel,
    family="gan",
    data="digits",
    choices=_gan_choices,
    train=_gan_train,
    doc="The minimax GAN (Goodfellow et al., 2014): the generator minimises E_q[log(1 - D(G(z)))]; Adam betas "
    "(0.5, 0.999) (Radford et al., 2016), one critic update per generator update.",
)
register(
    "ns-gan",
    AdversarialModel,
    like="gan",
    defaults={"loss": "ns"},
    doc="The non-saturating GAN: the generator minimises -E_q[log D(G(z))].",
)
register(
    "kl-gan",
    AdversarialModel,
    like="gan",
    defaults={"loss": "kl"},
    doc="The KL-based GAN: the generator minimises minimax + non-saturating, KL(q || p) at the optimal discriminator.",
)
register(
    "fgan",
    AdversarialModel,
    like="gan",
    defaults={"loss": "f"},
    doc="f-GAN (Nowozin, Cseke and Tomioka, 2016): the variational bound on any f-divergence, chosen by name "
    "(divergence, with alpha or pi where it has one).",
)
register(
    "wgan",
    AdversarialModel,
    like="gan",
    defaults={"loss": "wgan", "n_critic": 5, "clip": 0.01, "betas": (0.0, 0.999)},
    doc="The Wasserstein GAN with weight clipping (Arjovsky, Chintala and Bottou, 2017): clip 0.01, five critic "
    "updates per generator update, Adam with beta1 = 0 (momentum destabilises clipping; the paper used RMSProp, "
    "which Adam with beta1 = 0 resembles).",
)
register(
    "wgan-gp",
    AdversarialModel,
    like="gan",
    defaults={"loss": "wgan", "n_critic": 5, "gp_weight": 10.0, "betas": (0.0, 0.9)},
    doc="WGAN-GP (Gulrajani et al., 2017): the gradient penalty lambda = 10 on interpolates, five critic updates "
    "per generator update, Adam betas (0, 0.9).",
)
GAN, NSGAN, KLGAN, FGAN, WGAN, WGANGP = map(preset, ("gan", "ns-gan", "kl-gan", "fgan", "wgan", "wgan-gp"))


@register("cgan", like="gan", choices=_cgan_choices)
class CGAN(AdversarialModel):
    r"""A class-conditional GAN with a projection discriminator (Miyato and Koyama, 2018) and the hinge loss.

    The generator reads a one-hot label with :math:`z`; the critic is
    :math:`D(x, y) = \psi(\phi(x)) + e_y^\top\phi(x)`, spectrally normalized by default. Trains on
    ``(examples, labels)``; :meth:`sample` draws the labels ``y`` given (one or ``n``), uniform ones otherwise.

    Args:
        classes: number of labels (``from_dataset`` reads it from the data).
    """

    labelled = True

    def __init__(
        self,
        event_shape: Sequence[int],
        classes: int = 10,
        loss: str = "hinge",
        spectral_norm: bool = True,
        **kwargs: Any,
    ) -> None:
        self.classes = check_positive_int("classes", classes)
        super().__init__(event_shape, loss=loss, spectral_norm=spectral_norm, **kwargs)

    def _build(self) -> None:
        kw: dict[str, Any] = {"arch": self.arch, "hidden": self.hidden, "features": self.features}
        self.generator = Generator(self.latent_dim, self.event_shape, output=self._output(), classes=self.classes, **kw)
        self.critic = Critic(
            self.event_shape, spectral_norm=self.spectral_norm, classes=self.classes, bias=self._critic_bias(), **kw
        )

    def unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = split_context(batch, True, "cgan")
        return x, self._check_labels(y, len(x))

    def _check_labels(self, y: object, n: int) -> torch.Tensor:
        labels = torch.as_tensor(y, device=self._ref().device)
        if labels.dim() == 0:
            labels = labels.expand(n)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
            raise ValueError(f"y must hold {n} integer labels; got shape {tuple(labels.shape)} {labels.dtype}")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.classes):
            raise ValueError(f"labels y must be in 0..{self.classes - 1}; got {labels.unique().tolist()[:12]}")
        return labels.long()

    def _labels(self, y: object, n: int) -> torch.Tensor | None:
        if y is None:
            return torch.randint(self.classes, (n,), device=self._ref().device)
        return self._check_labels(y, n)

    def critic_score(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.critic(x, y=y)


@register("bigan", like="gan")
class BiGAN(AdversarialModel):
    r"""BiGAN / ALI (Donahue et al., 2017; Dumoulin et al., 2017): an encoder :math:`E` learnt with the generator.

    The discriminator tells data pairs :math:`(x, E(x))` from generated pairs :math:`(G(z), z)`; generator and
    encoder (the ``"generator"`` group) fool it with the non-saturating loss on both sides. At the optimum
    :math:`E = G^{-1}`; :meth:`encode` gives the representation (a linear probe reads the labels from it).
    """

    def __init__(self, event_shape: Sequence[int], loss: str = "ns", **kwargs: Any) -> None:
        super().__init__(event_shape, loss=loss, **kwargs)

    def _build(self) -> None:
        kw: dict[str, Any] = {"arch": self.arch, "hidden": self.hidden, "features": self.features}
        self.generator = Generator(self.latent_dim, self.event_shape, output=self._output(), **kw)
        self.encoder = Encoder(self.event_shape, self.latent_dim, **kw)
        self.critic = Critic(self.event_shape, spectral_norm=self.spectral_norm, joint=self.latent_dim, **kw)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`E(x)`, shape ``(n, latent_dim)`` (eval mode)."""
        x = self.validate(x)
        with eval_mode(self.encoder):
            return self.encoder(x)


use_objective(BiGAN, lambda model: adv.Bidirectional(model.losses, **_schedule(model)))


#: The second image domain of :class:`CycleGAN`, made from the first.
DOMAINS = ("invert", "transpose", "flip")


def _to_domain_b(x: torch.Tensor, domain: str) -> torch.Tensor:
    if domain == "transpose":
        return x.transpose(-1, -2)
    if domain == "flip":
        return x.flip(-2)
    return 1 - x


@register("cyclegan", like="gan", choices=_cyclegan_choices)
class CycleGAN(AdversarialModel):
    r"""CycleGAN (Zhu et al., 2017): translation between two unpaired image domains.

    Domain A is the data; domain B the same kind of images changed by ``domain_b`` (``"invert"``, the
    negatives, by default; ``"transpose"`` or ``"flip"`` upside down), drawn from a *different* shuffle of
    each batch so that no pair is ever seen. The translators are fully convolutional
    (:class:`~pyrogen.nn.adversarial.Translator`): they change appearance, the task CycleGAN is made for,
    and keep the digit; the geometric changes (``transpose``, ``flip``) are beyond a local map, and
    unpaired training then relabels the digits (the limitation Zhu et al. report for geometric changes).
    Generators :math:`G: A \to B` and :math:`F: B \to A` (``"generator"`` group), critics
    :math:`D_A, D_B` (``"critic"``), least-squares adversarial terms and the cycle-consistency term
    :math:`\lambda\,(\lVert F(G(a)) - a\rVert_1 + \lVert G(F(b)) - b\rVert_1)`, and optionally the identity
    term. :meth:`translate` maps A to B, :meth:`translate_back` B to A. It does not sample from noise.

    Args:
        domain_b: how domain B is made from the data.
        cycle_weight: :math:`\lambda` (10 in the paper); identity_weight: weight of
            :math:`\lVert G(b) - b\rVert_1 + \lVert F(a) - a\rVert_1` (0: none).
    """

    can_sample = False

    def __init__(
        self,
        event_shape: Sequence[int],
        domain_b: str = "invert",
        cycle_weight: float = 10.0,
        identity_weight: float = 0.0,
        loss: str = "least-squares",
        arch: str = "dcgan",
        support: str = "unit_interval",
        **kwargs: Any,
    ) -> None:
        if domain_b not in DOMAINS:
            raise ValueError(f"domain_b must be one of {', '.join(DOMAINS)}; got {domain_b!r}")
        self.domain_b = domain_b
        self.cycle_weight = _positive_number("cycle_weight", cycle_weight, allow_none=False)
        if isinstance(identity_weight, bool) or not isinstance(identity_weight, (int, float)) or identity_weight < 0:
            raise ValueError(f"identity_weight must be a non-negative number; got {identity_weight!r}")
        self.identity_weight = float(identity_weight)
        super().__init__(event_shape, loss=loss, arch=arch, support=support, **kwargs)

    def _build(self) -> None:
        if self.arch != "dcgan" or self.support != "unit_interval":
            raise ValueError("cyclegan translates images in the unit interval: arch='dcgan', support='unit_interval'")
        f = self.features
        self.generator = Translator(self.event_shape, f)  # type: ignore[assignment]  # G: A -> B
        self.generator_ba = Translator(self.event_shape, f)  # F: B -> A
        self.critic = Critic(self.event_shape, "dcgan", features=f, spectral_norm=self.spectral_norm)  # D_B
        self.critic_a = Critic(self.event_shape, "dcgan", features=f, spectral_norm=self.spectral_norm)

    def domains(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Domain A: the batch; domain B: another shuffle of it, changed (so no pair is seen)."""
        perm = torch.randperm(len(x), device=x.device)
        return x, _to_domain_b(x[perm], self.domain_b)

    def _translate(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = self.validate(x)
        with torch.no_grad(), eval_mode(net):
            return net(x)

    def translate(self, a: torch.Tensor) -> torch.Tensor:
        """:math:`G(a)`: domain A images to domain B."""
        return self._translate(self.generator, a)

    def translate_back(self, b: torch.Tensor) -> torch.Tensor:
        """:math:`F(b)`: domain B images to domain A."""
        return self._translate(self.generator_ba, b)

    def to_domain_b(self, x: torch.Tensor) -> torch.Tensor:
        """The data changed into domain B (``domain_b``): the ground truth a translation is judged against."""
        return _to_domain_b(self.validate(x), self.domain_b)

    @takes_context
    def sample(self, n: int, y: object = None) -> torch.Tensor:
        check_positive_int("n", n)
        raise NotImplementedError(
            "cyclegan translates images and does not sample: use translate(x) or translate_back(x)"
        )

    @frozen_unless_trainable
    @takes_context
    def as_distribution(self, y: object = None) -> ImplicitDistribution:
        raise NotImplementedError("cyclegan translates images and defines no distribution: use translate(x)")

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, float]:
        r"""What ``pyrogen evaluate`` reports of a translator: the cycle errors
        :math:`\lVert F(G(a)) - a\rVert_1` (``cycle_l1``) and :math:`\lVert G(F(b)) - b\rVert_1`
        (``cycle_l1_b``), and, since domain B is made from A here, the error of the translation against the true
        image of B (``translation_l1``), all per pixel."""
        b = self.to_domain_b(x)
        fake_b = self.translate(x)
        return {
            "cycle_l1": float((self.translate_back(fake_b) - x).abs().mean()),
            "cycle_l1_b": float((self.translate(self.translate_back(b)) - b).abs().mean()),
            "translation_l1": float((fake_b - b).abs().mean()),
        }


use_objective(
    CycleGAN,
    lambda model: adv.CycleConsistent(
        model.losses, cycle_weight=model.cycle_weight, identity_weight=model.identity_weight, **_schedule(model)
    ),
)
