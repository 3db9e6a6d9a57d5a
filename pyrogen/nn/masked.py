"""Masked networks: MADE's masked linear layers and PixelCNN's masked convolutions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MADENet", "MaskedConv2d", "MaskedLinear", "made_degrees", "made_masks", "pixel_mask"]


def made_degrees(
    order: torch.Tensor, hidden: Sequence[int], generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    r"""MADE degrees (Germain et al., 2015) of the inputs and of every hidden layer.

    The input at position ``d`` has degree :math:`m_0(d) = 1 + \text{rank of } d` in
    ``order``; hidden unit :math:`k` of layer :math:`l` gets a degree in
    :math:`[\min m_{l-1}, D-1]`: evenly spaced when ``generator`` is ``None``,
    uniformly random otherwise (connectivity-agnostic training).

    Args:
        order: a permutation of ``range(D)``: ``order[0]`` is generated first.
        hidden: hidden layer sizes.
        generator: source of random degrees, or ``None`` for deterministic ones.

    Returns:
        ``[m_0, m_1, ..., m_L]``, integer tensors of sizes ``D, hidden...``.

    Raises:
        ValueError: ``order`` is not a permutation.

    References: Germain, Gregor, Murray and Larochelle, 2015, arXiv:1502.03509.

    Example:
        >>> [m.tolist() for m in made_degrees(torch.tensor([2, 0, 1]), [4])]
        [[2, 3, 1], [1, 2, 1, 2]]
    """
    d = len(order)
    if sorted(order.tolist()) != list(range(d)):
        raise ValueError(f"order must be a permutation of range({d}); got {order.tolist()}")
    m0 = torch.empty(d, dtype=torch.long)
    m0[order] = torch.arange(1, d + 1)
    degrees = [m0]
    for h in hidden:
        lo = int(degrees[-1].min()) if len(degrees) > 1 else 1
        hi = max(d - 1, lo)
        if generator is None:
            m = lo + (torch.arange(h) % (hi - lo + 1))
        else:
            m = torch.randint(lo, hi + 1, (h,), generator=generator)
        degrees.append(m)
    return degrees


def made_masks(degrees: Sequence[torch.Tensor], out_mult: int, in_mult: int = 1) -> list[torch.Tensor]:
    r"""The masks of a MADE from its degrees: hidden :math:`m_l \ge m_{l-1}`, output :math:`m_0 > m_L`.

    Args:
        degrees: ``[m_0, ..., m_L]`` from :func:`made_degrees`.
        out_mult: parameters per output variable (outputs are variable-major:
            output ``d * out_mult + p``).
        in_mult: input units per variable (e.g. a one-hot code of ``L``
            levels; inputs are variable-major too).

    Returns:
        One ``(out, in)`` 0/1 mask per layer, the last for the output layer,
        followed by the ``(D * out_mult, D * in_mult)`` mask of the direct
        input-to-output connection.
    """
    m0 = degrees[0].repeat_interleave(in_mult)
    masks = []
    prev = m0
    for m in degrees[1:]:
        masks.append((m[:, None] >= prev[None, :]).float())
        prev = m
    out = degrees[0].repeat_interleave(out_mult)
    masks.append((out[:, None] > prev[None, :]).float())
    masks.append((out[:, None] > m0[None, :]).float())
    return masks


class MaskedLinear(nn.Linear):
    masks: torch.Tensor

    r"""A linear layer :math:`y = (W \odot M) x + b` with one of several stored 0/1 masks.

    Args:
        in_features, out_features: sizes.
        masks: ``(K, out_features, in_features)`` stack of masks; :attr:`index`
            picks the one in use.
        bias: add a bias.

    Example:
        >>> layer = MaskedLinear(2, 2, torch.tensor([[[1.0, 0.0], [1.0, 1.0]]]))
        >>> torch.autograd.functional.jacobian(layer, torch.zeros(2))[0, 1].item()
        0.0
    """

    def __init__(self, in_features: int, out_features: int, masks: torch.Tensor, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if masks.dim() != 3 or masks.shape[1:] != (out_features, in_features):
            raise ValueError(f"masks must have shape (K, {out_features}, {in_features}); got {tuple(masks.shape)}")
        self.register_buffer("masks", masks.to(self.weight.dtype))
        self.index = 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        m = self.masks[self.index] if mask is None else mask
        return F.linear(x, self.weight * m, self.bias)


class MADENet(nn.Module):
    orders: torch.Tensor

    r"""The MADE network: an MLP whose masks make output ``d`` depend only on inputs before ``d``.

    Holds ``num_masks`` sets of masks: set 0 follows ``order`` with evenly
    spaced degrees; sets ``1..num_masks-1`` use random orderings and random
    degrees drawn from ``mask_seed`` (order- and connectivity-agnostic
    training, Germain et al., 2015, section 3.3). :attr:`index` picks the set;
    :meth:`masks_for` builds masks for any other ordering.

    Args:
        num_vars: :math:`D`, the number of variables.
        hidden: hidden layer sizes (ReLU).
        out_mult: parameters per variable.
        in_mult: input units per variable (``L`` for one-hot categorical inputs).
        order: the ordering of set 0 (default ``0..D-1``).
        num_masks: number of ordering/connectivity sets.
        mask_seed: seed of the random sets.
        direct: add masked direct input-to-output connections.
        context: size of a context vector (e.g. a one-hot label) that feeds
            the first hidden layer unmasked, for conditional densities
            :math:`p(x \mid c)`; 0 for none.

    Input ``(n, D * in_mult)`` (and ``context`` ``(n, context)``); output ``(n, D, out_mult)``.

    Example:
        >>> net = MADENet(3, [8], out_mult=1)
        >>> jac = torch.autograd.functional.jacobian(lambda x: net(x)[:, :, 0], torch.zeros(1, 3))
        >>> bool((jac[0, :, 0].triu() == 0).all())  # output d sees only inputs < d
        True
    """

    def __init__(
        self,
        num_vars: int,
        hidden: Sequence[int],
        out_mult: int,
        in_mult: int = 1,
        order: Sequence[int] | None = None,
        num_masks: int = 1,
        mask_seed: int = 0,
        direct: bool = True,
        context: int = 0,
    ) -> None:
        super().__init__()
        self.num_vars, self.hidden, self.out_mult, self.in_mult = num_vars, tuple(hidden), out_mult, in_mult
        base = torch.arange(num_vars) if order is None else torch.as_tensor(list(order), dtype=torch.long)
        gen = torch.Generator().manual_seed(mask_seed)
        orders = [base] + [torch.randperm(num_vars, generator=gen) for _ in range(num_masks - 1)]
        sets = [self._masks(o, None if k == 0 else gen) for k, o in enumerate(orders)]
        sizes = [num_vars * in_mult, *self.hidden, num_vars * out_mult]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, torch.stack([s[i] for s in sets]))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))
        )
        self.direct = (
            MaskedLinear(sizes[0], sizes[-1], torch.stack([s[-1] for s in sets]), bias=False) if direct else None
        )
        self.register_buffer("orders", torch.stack(orders))
        self._index = 0
        self.context_features = context
        self.context = nn.Linear(context, sizes[1], bias=False) if context else None

    def _masks(self, order: torch.Tensor, gen: torch.Generator | None) -> list[torch.Tensor]:
        return made_masks(made_degrees(order, self.hidden, gen), self.out_mult, self.in_mult)

    def masks_for(self, order: torch.Tensor, seed: int = 0) -> list[torch.Tensor]:
        """Masks (one per layer, then the direct one) for another ordering, random degrees from ``seed``."""
        gen = torch.Generator().manual_seed(seed)
        return [m.to(self.orders.device) for m in self._masks(order.cpu(), gen)]

    @torch.no_grad()
    def shrink_output_(self, factor: float = 1e-2) -> MADENet:
        """Scale the output layer (and the direct connection) by ``factor``: a flow layer starts near the identity."""
        last = self.layers[-1]
        assert isinstance(last, MaskedLinear)
        last.weight.mul_(factor)
        if last.bias is not None:
            last.bias.mul_(factor)
        if self.direct is not None:
            self.direct.weight.mul_(factor)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def num_masks(self) -> int:
        return len(self.orders)

    @property
    def index(self) -> int:
        return self._index

    @index.setter
    def index(self, k: int) -> None:
        if not 0 <= k < self.num_masks:
            raise ValueError(f"mask index must be in 0..{self.num_masks - 1}; got {k}")
        self._index = k
        for layer in self.layers:
            layer.index = k  # type: ignore[assignment]
        if self.direct is not None:
            self.direct.index = k

    def forward(
        self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        if (context is None) != (self.context is None):
            raise ValueError(f"this network takes a context of size {self.context_features}; got {context!r:.60}")
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h, None if masks is None else masks[i])
            if i == 0 and self.context is not None and context is not None:
                h = h + self.context(context)
            if i < last:
                h = F.relu(h)
        if self.direct is not None:
            h = h + self.direct(x, None if masks is None else masks[-1])
        return h.view(*x.shape[:-1], self.num_vars, self.out_mult)


def pixel_mask(
    kernel_size: tuple[int, int],
    mask_type: str,
    in_groups: torch.Tensor,
    out_groups: torch.Tensor,
    centre: tuple[int, int] | None = None,
) -> torch.Tensor:
    r"""PixelCNN's mask for a ``(out, in, kh, kw)`` kernel centred on the current pixel.

    Taps above the centre row, and left of the centre in the centre row, are
    open. The centre tap connects input channel group :math:`g_i` to output
    group :math:`g_o` when :math:`g_i < g_o` (mask ``"A"``, first layer) or
    :math:`g_i \le g_o` (mask ``"B"``); groups order the colour channels
    R -> G -> B within a pixel (all 0 for one channel).

    Args:
        kernel_size: ``(kh, kw)``.
        mask_type: ``"A"`` or ``"B"``.
        in_groups: group of every input channel, shape ``(in,)``.
        out_groups: group of every output channel, shape ``(out,)``.
        centre: the tap of the current pixel (default the kernel's middle;
            the horizontal stack of a gated PixelCNN puts it in the last column).

    References: van den Oord, Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759.

    Example:
        >>> pixel_mask((3, 3), "A", torch.zeros(1), torch.zeros(1))[0, 0]
        tensor([[1., 1., 1.],
                [1., 0., 0.],
                [0., 0., 0.]])
    """
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B'; got {mask_type!r}")
    kh, kw = kernel_size
    ch, cw = ((kh - 1) // 2, (kw - 1) // 2) if centre is None else centre
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ch, :] = 1
    mask[:, :, ch, :cw] = 1
    if mask_type == "A":
        tap = out_groups[:, None] > in_groups[None, :]
    else:
        tap = out_groups[:, None] >= in_groups[None, :]
    mask[:, :, ch, cw] = tap.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    mask: torch.Tensor

    """A convolution whose kernel is multiplied by a fixed :func:`pixel_mask`.

    Args:
        in_channels, out_channels: sizes.
        kernel_size: ``k`` (odd, "same" padding) or ``(kh, kw)`` with explicit ``padding``.
        mask_type: ``"A"`` or ``"B"``.
        in_groups, out_groups: colour groups of the channels (default all 0).
        padding: zero padding (default ``k // 2``).
        centre: the current pixel's tap (see :func:`pixel_mask`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str,
        in_groups: torch.Tensor | None = None,
        out_groups: torch.Tensor | None = None,
        padding: int | tuple[int, int] | None = None,
        centre: tuple[int, int] | None = None,
    ) -> None:
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else (kernel_size[0], kernel_size[1])
        pad = (ks[0] // 2, ks[1] // 2) if padding is None else padding
        super().__init__(in_channels, out_channels, ks, padding=pad)
        gi = torch.zeros(in_channels, dtype=torch.long) if in_groups is None else in_groups
        go = torch.zeros(out_channels, dtype=torch.long) if out_groups is None else out_groups
        self.register_buffer("mask", pixel_mask(ks, mask_type, gi, go, centre))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)
