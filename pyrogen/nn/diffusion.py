r"""Denoising networks of the diffusion family: time / noise-level embeddings, an MLP for vectors and a
small U-Net for 8x8 images, each optionally class-conditional with a "no label" token (for
classifier-free guidance).

Both map ``(x, c, y)`` -- ``x`` ``(n, *event_shape)``, ``c`` ``(n,)`` the conditioning scalar (a
timestep, a continuous time or a log noise level), ``y`` ``(n,)`` labels or ``None`` -- to a tensor
shaped like ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DENOISER_ARCHS", "DenoisingMLP", "DenoisingUNet", "sinusoidal_embedding"]

#: the architectures of the denoising networks
DENOISER_ARCHS = ("mlp", "unet")


def sinusoidal_embedding(c: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    r"""The transformer's sinusoidal features of a scalar per example (Vaswani et al., 2017; Ho et al., 2020):
    ``(n,) -> (n, dim)``, :math:`[\cos(c\,\omega_k), \sin(c\,\omega_k)]`,
    :math:`\omega_k = P^{-k/(dim/2)}`."""
    if dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even integer >= 2; got {dim!r}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=c.device) / half)
    args = c.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1).to(c.dtype if c.is_floating_point() else torch.float32)


class _Conditioning(nn.Module):
    """The embedding of ``c`` (sinusoidal, then an MLP) plus a learned label embedding (index ``classes`` is
    the "no label" token of classifier-free guidance)."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.dim, self.classes = dim, classes
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.labels = nn.Embedding(classes + 1, dim) if classes else None

    def forward(self, c: torch.Tensor, y: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        e = self.mlp(sinusoidal_embedding(c.to(like.dtype), self.dim).to(like.dtype))
        if self.labels is not None:
            if y is None:
                y = torch.full((len(c),), self.classes, dtype=torch.long, device=c.device)
            e = e + self.labels(y.long())
        elif y is not None:
            raise ValueError("this network is unconditional; got labels y")
        return e


class DenoisingMLP(nn.Module):
    """An MLP for vectors: each hidden layer adds the conditioning embedding before its SiLU.

    Args:
        dim: the vectors' size.
        hidden: hidden widths.
        emb_dim: the embedding's width (even).
        classes: number of labels (0: unconditional).
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (128, 128, 128), emb_dim: int = 64, classes: int = 0) -> None:
        super().__init__()
        self.cond = _Conditioning(emb_dim, classes)
        sizes = [dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.embeds = nn.ModuleList(nn.Linear(emb_dim, b) for b in hidden)
        self.out = nn.Linear(sizes[-1], dim)
        _small_init(self.out)

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        e = self.cond(c, y, x)
        h = x.flatten(1)
        for layer, embed in zip(self.layers, self.embeds, strict=True):
            h = torch.nn.functional.silu(layer(h) + embed(e))
        return self.out(h).reshape(x.shape)


def _small_init(layer: nn.Module) -> None:
    """The output layer starts near zero (the network's first guess: no noise), not at zero, so every
    parameter has a gradient from the first step."""
    with torch.no_grad():
        layer.weight.mul_(0.1)  # type: ignore[operator]
        layer.bias.zero_()  # type: ignore[operator]


def _norm(channels: int) -> nn.GroupNorm:
    groups = math.gcd(channels, 8)
    return nn.GroupNorm(groups, channels)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.n1, self.c1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.n2, self.c2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        act = torch.nn.functional.silu
        h = self.c1(act(self.n1(x))) + self.emb(e)[:, :, None, None]
        return self.skip(x) + self.c2(act(self.n2(h)))


class DenoisingUNet(nn.Module):
    """A small U-Net for ``C x H x W`` images with even ``H, W`` (8x8 digits): a residual block at full
    resolution, a stride-2 convolution to half, two residual blocks there, a transposed convolution back up,
    and a residual block on the skip-concatenated features (Ronneberger et al., 2015; Ho et al., 2020, at
    small scale). GroupNorm, SiLU, the conditioning added in every block, the last layer initialised near zero.

    Args:
        event_shape: ``(C, H, W)``.
        features: channels at full resolution (twice that at half).
        emb_dim: the embedding's width.
        classes: number of labels (0: unconditional).
    """

    def __init__(self, event_shape: Sequence[int], features: int = 32, emb_dim: int = 64, classes: int = 0) -> None:
        super().__init__()
        if len(event_shape) != 3 or event_shape[1] % 2 or event_shape[2] % 2:
            raise ValueError(f"the U-Net takes C x H x W images with even H and W; got event_shape {event_shape!r}")
        c, f = int(event_shape[0]), features
        self.cond = _Conditioning(emb_dim, classes)
        self.inp = nn.Conv2d(c, f, 3, padding=1)
        self.down1 = _ResBlock(f, f, emb_dim)
        self.pool = nn.Conv2d(f, 2 * f, 3, stride=2, padding=1)
        self.mid1 = _ResBlock(2 * f, 2 * f, emb_dim)
        self.mid2 = _ResBlock(2 * f, 2 * f, emb_dim)
        self.upsample = nn.ConvTranspose2d(2 * f, f, 4, stride=2, padding=1)
        self.up1 = _ResBlock(2 * f, f, emb_dim)
        self.out_norm = _norm(f)
        self.out = nn.Conv2d(f, c, 3, padding=1)
        _small_init(self.out)

    def forward(self, x: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        e = self.cond(c, y, x)
        h0 = self.down1(self.inp(x), e)
        h = self.mid2(self.mid1(self.pool(h0), e), e)
        h = self.up1(torch.cat([self.upsample(h), h0], 1), e)
        return self.out(torch.nn.functional.silu(self.out_norm(h)))
