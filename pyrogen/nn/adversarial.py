"""The networks of the adversarial families: generators, critics, encoders and image-to-image translators.

Two architectures share one set of classes: ``"mlp"`` for vectors (the 2-D
toys) and ``"dcgan"`` for small images (Radford, Metz and Chintala, 2016,
arXiv:1511.06434): a generator of transposed convolutions with batch norm and
ReLU, a critic of strided convolutions with LeakyReLU(0.2) and no batch norm
(so that a gradient penalty, which is per example, stays valid). Spectral
normalization (Miyato et al., 2018, arXiv:1802.05957) is an option of every
critic; a critic with ``classes`` is a projection discriminator (Miyato and
Koyama, 2018, arXiv:1802.05637); one with ``joint`` also reads a latent code
(BiGAN's joint discriminator, Donahue, Krähenbühl and Darrell, 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

__all__ = ["ARCHS", "Critic", "Encoder", "Generator", "Translator", "apply_spectral_norm"]

#: The architectures of :class:`Generator`, :class:`Critic` and :class:`Encoder`.
ARCHS = ("mlp", "dcgan")


def _image(event_shape: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = tuple(event_shape)
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ValueError(f"the dcgan {what} needs images (C, H, W) with H and W divisible by 4; got {shape}")
    return shape


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {arch!r}")


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalize the weight of every linear, convolution and embedding layer of ``module``, in place."""
    for m in list(module.modules()):
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
            _sn(m)
    return module


def _mlp(sizes: Sequence[int], act: type[nn.Module], last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(act(0.2) if act is nn.LeakyReLU else act())
    return nn.Sequential(*layers)


class Generator(nn.Module):
    r"""A generator :math:`G(z)` (or :math:`G(z, y)` with ``classes``): noise to ``event_shape``.

    Args:
        latent_dim: size of :math:`z`.
        event_shape: shape of one output.
        arch: ``"mlp"`` (``hidden`` layers, ReLU) or ``"dcgan"`` (a linear layer to ``2 features`` maps of a
            quarter of the size, then two transposed convolutions that double it, batch norm and ReLU between).
        hidden: MLP layer sizes; features: DCGAN width.
        output: ``"linear"`` for real data, ``"sigmoid"`` for data in the unit interval.
        classes: a conditional generator reads a one-hot label next to :math:`z` (0: unconditional).

    Example:
        >>> Generator(2, (1, 8, 8), arch="dcgan", features=8, output="sigmoid")(torch.randn(3, 2)).shape
        torch.Size([3, 1, 8, 8])
    """

    def __init__(
        self,
        latent_dim: int,
        event_shape: Sequence[int],
        arch: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        features: int = 32,
        output: str = "linear",
        classes: int = 0,
    ) -> None:
        super().__init__()
        _check_arch(arch)
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid'; got {output!r}")
        self.event_shape, self.classes, self.output = torch.Size(event_shape), classes, output
        d_in = latent_dim + classes
        if arch == "mlp":
            self.net: nn.Module = _mlp([d_in, *hidden, math.prod(event_shape)], nn.ReLU, last_act=False)
        else:
            c, h, w = _image(event_shape, "generator")
            self.net = nn.Sequential(
                nn.Linear(d_in, 2 * features * (h // 4) * (w // 4)),
                nn.Unflatten(1, (2 * features, h // 4, w // 4)),
                nn.BatchNorm2d(2 * features),
                nn.ReLU(),
                nn.ConvTranspose2d(2 * features, features, 4, stride=2, padding=1),
                nn.BatchNorm2d(features),
                nn.ReLU(),
                nn.ConvTranspose2d(features, c, 4, stride=2, padding=1),
            )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes:
            if y is None:
                raise ValueError("this generator is conditional: give the labels y")
            z = torch.cat([z, nn.functional.one_hot(y.long(), self.classes).to(z.dtype)], dim=-1)
        out = self.net(z).reshape(len(z), *self.event_shape)
        return torch.sigmoid(out) if self.output == "sigmoid" else out


class _Features(nn.Module):
    """The body of a critic or an encoder: ``(n,) + event_shape -> (n, dim)``."""

    def __init__(self, event_shape: Sequence[int], arch: str, hidden: Sequence[int], features: int) -> None:
        super().__init__()
        _check_arch(arch)
        if arch == "mlp":
            if not hidden:
                raise ValueError("an mlp critic or encoder needs at least one hidden layer")
            self.net: nn.Module = nn.Sequential(
                nn.Flatten(), _mlp([math.prod(event_shape), *hidden], nn.LeakyReLU, last_act=True)
            )
            self.dim = hidden[-1]
        else:
            c, h, w = _image(event_shape, "critic")
            self.net = nn.Sequential(
                nn.Conv2d(c, features, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Conv2d(features, 2 * features, 4, stride=2, padding=1),
                nn.LeakyReLU(0.2),
                nn.Flatten(),
            )
            self.dim = 2 * features * (h // 4) * (w // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Critic(nn.Module):
    r"""A critic (discriminator) :math:`D(x)`, unbounded real output, shape ``(n,)``.

    With ``classes`` it is the projection discriminator
    :math:`D(x, y) = \psi(\phi(x)) + e_y^\top \phi(x)` (Miyato and Koyama, 2018); with ``joint`` it scores
    pairs :math:`(x, z)` through :math:`\psi([\phi(x), \phi_z(z)])` (BiGAN).

    Args:
        event_shape, arch, hidden, features: as :class:`Generator`.
        spectral_norm: spectrally normalize every layer.
        classes: number of labels of a projection discriminator (0: none).
        joint: size of the latent code read with ``x`` (0: none).
        bias: whether the output layer has a bias (a Wasserstein critic's would cancel out of its loss).

    Example:
        >>> Critic((2,), hidden=(16,))(torch.zeros(5, 2)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        arch: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        features: int = 32,
        spectral_norm: bool = False,
        classes: int = 0,
        joint: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.features = _Features(event_shape, arch, hidden, features)
        dim = self.features.dim
        self.classes, self.joint = classes, joint
        if joint:
            width = hidden[-1] if hidden else 2 * features
            self.code = _mlp([joint, width, width], nn.LeakyReLU, last_act=True)
            self.mix = _mlp([dim + width, width], nn.LeakyReLU, last_act=True)
            dim = width
        self.head = nn.Linear(dim, 1, bias=bias)
        if classes:
            self.embed = nn.Embedding(classes, dim)
            nn.init.normal_(self.embed.weight, std=0.02)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.joint:
            if z is None:
                raise ValueError("this critic scores pairs (x, z): give z")
            h = self.mix(torch.cat([h, self.code(z)], dim=-1))
        out = self.head(h).squeeze(-1)
        if self.classes:
            if y is None:
                raise ValueError("this critic is a projection discriminator: give the labels y")
            out = out + (self.embed(y.long()) * h).sum(-1)
        return out


class Encoder(nn.Module):
    """A deterministic encoder :math:`E(x)`, ``(n,) + event_shape -> (n, latent_dim)`` (BiGAN's).

    Example:
        >>> Encoder((1, 8, 8), 4, arch="dcgan", features=8)(torch.zeros(3, 1, 8, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        latent_dim: int,
        arch: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        features: int = 32,
    ) -> None:
        super().__init__()
        self.features = _Features(event_shape, arch, hidden, features)
        self.out = nn.Linear(self.features.dim, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))


class Translator(nn.Module):
    r"""An image-to-image generator (CycleGAN's), ``(n, C, H, W) -> (n, C, H, W)`` in the unit interval.

    Fully convolutional, as in Zhu et al. (2017): three 3x3 convolutions at full resolution (LeakyReLU,
    batch norm in the middle), a sigmoid out. Each output pixel sees a 7x7 neighbourhood of its input
    pixel, and that locality is what makes unpaired translation keep the content: a network that can
    move pixels anywhere (an earlier version had a fully connected bottleneck, to reach a transpose)
    satisfies the cycle term just as well by mapping each digit to *another* class (the uses table of the
    README, from ``benchmarks/gan.py --uses cyclegan``).

    Example:
        >>> Translator((1, 8, 8), features=8)(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, event_shape: Sequence[int], features: int = 32) -> None:
        super().__init__()
        c, _, _ = _image(event_shape, "translator")
        f = features
        self.net = nn.Sequential(
            nn.Conv2d(c, f, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(f, f, 3, padding=1),
            nn.BatchNorm2d(f),
            nn.LeakyReLU(0.2),
            nn.Conv2d(f, c, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
