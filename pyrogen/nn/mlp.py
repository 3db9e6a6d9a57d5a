"""Multilayer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["MLP", "soft_clip"]


class _SoftClip(torch.autograd.Function):
    """:func:`soft_clip` as one autograd node: its derivative :math:`1 / (1 + (|x| - c)^+)` is one division in the
    backward pass (the composed version cost a RealNVP training step 15%); the backward is written in
    differentiable ops of the saved input, so higher derivatives are right too."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, c: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.c = c
        a = x.abs()
        if x.device.type == "cpu" and not bool((a > c).any()):  # the usual case: all within, the identity
            return x.clone()  # (the check would cost an accelerator a synchronization; there the where is cheap)
        return torch.where(a <= c, x, torch.sign(x) * (c + torch.log1p((a - c).clamp_min(0))))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad / (1 + (x.abs() - ctx.c).clamp_min(0)), None


def soft_clip(x: torch.Tensor, c: float) -> torch.Tensor:
    r"""``x`` itself where :math:`|x| \le c`, :math:`\operatorname{sign}(x)(c + \log(1 + |x| - c))` beyond:
    continuous with a continuous derivative, exactly the identity inside, logarithmic growth outside.

    Example:
        >>> soft_clip(torch.tensor([-30.0, 1.0, 20.0, 21.0]), 20.0)
        tensor([-22.3979,   1.0000,  20.0000,  20.6931])
    """
    return _SoftClip.apply(x, c)


class MLP(nn.Sequential):
    r"""A multilayer perceptron :math:`x \mapsto W_L \sigma(\dots \sigma(W_1 x + b_1)) + b_L`.

    Args:
        in_features: size of the input's last dimension.
        hidden: sizes of the hidden layers (may be empty).
        out_features: size of the output's last dimension.
        activation: the non-linearity class placed after every hidden layer.
        chunks: split the output into this many equal parts along the last
            dimension and return them as a tuple (e.g. 2 for the shift and
            log-scale of an affine coupling, as Pyro's ``DenseNN`` does).
        context: size of a context vector concatenated to the input
            (``forward(x, context=c)``, as Pyro's ``ConditionalDenseNN``); 0 for none.
        input_clip: pass the input through :func:`soft_clip` at this level first (``None``: as it is). A flow's
            conditioner may read its input through any function without losing invertibility; this one leaves
            inputs within the level untouched and keeps far-tail inputs from driving the outputs (and, through
            the next layers, the gradient) to overflow.

    Raises:
        ValueError: a non-positive size, or ``out_features`` not divisible by ``chunks``.

    Example:
        >>> net = MLP(4, [16, 16], 3)
        >>> net(torch.zeros(5, 4)).shape
        torch.Size([5, 3])
        >>> shift, log_scale = MLP(1, [8], 2, chunks=2)(torch.zeros(5, 1))
        >>> shift.shape
        torch.Size([5, 1])
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: type[nn.Module] = nn.ReLU,
        chunks: int = 1,
        context: int = 0,
        input_clip: float | None = None,
    ) -> None:
        if input_clip is not None and not input_clip > 0:
            raise ValueError(f"input_clip must be positive or None; got {input_clip!r}")
        if not isinstance(chunks, int) or chunks < 1 or out_features % chunks:
            raise ValueError(f"chunks must be a positive divisor of out_features={out_features}; got {chunks!r}")
        sizes = [in_features + context, *hidden, out_features]
        for s in sizes:
            if not isinstance(s, int) or s < 1:
                raise ValueError(f"layer sizes must be positive integers; got {sizes}")
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation())
        super().__init__(*layers)
        self.chunks, self.context, self.input_clip = chunks, context, input_clip

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> Any:
        x = self[-1](self.hidden_features(x, context))
        return x if self.chunks == 1 else x.chunk(self.chunks, dim=-1)

    def hidden_features(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer's activations (the input, with its context, when there is no hidden layer): what
        the output layer reads, for a network that goes on from there (a ladder VAE's deterministic path)."""
        if (context is None) != (self.context == 0):
            raise ValueError(f"this network takes a context of size {self.context}; got {context!r:.60}")
        if self.input_clip is not None:
            x = soft_clip(x, self.input_clip)
        if context is not None:
            x = torch.cat([x, context.expand(*x.shape[:-1], context.shape[-1])], dim=-1)
        for layer in list(self)[:-1]:
            x = layer(x)
        return x
