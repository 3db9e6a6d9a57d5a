"""Normalizing-flow guides for any Pyro model, in the manner of Pyro's ``AutoNormalizingFlow``.

:func:`flow_guide` builds Pyro's :class:`~pyro.infer.autoguide.AutoNormalizingFlow`
on the unconstrained latent space of a model, with pyrogen's layers: IAF
(:class:`~pyrogen.distributions.transforms.MaskedAutoregressive`, one network
pass per sample and its density from the same pass), RealNVP-style affine
couplings, or planar layers. Train it with ``SVI`` and ``Trace_ELBO`` as any
guide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from pyro.distributions.transforms import AffineCoupling, ComposeTransformModule, Permute
from pyro.infer.autoguide import AutoNormalizingFlow
from torch import nn

from pyrogen.distributions.transforms import MaskedAutoregressive, Planar
from pyrogen.nn import MLP, MADENet

__all__ = ["FLOW_GUIDE_KINDS", "flow_guide", "flow_transform"]

#: The layer kinds :func:`flow_guide` offers.
FLOW_GUIDE_KINDS = ("iaf", "realnvp", "planar")


def flow_transform(
    dim: int, kind: str = "iaf", num_layers: int = 3, hidden: Sequence[int] = (32, 32)
) -> ComposeTransformModule:
    """A learnable bijection of :math:`\\mathbb R^{dim}`: ``num_layers`` layers of ``kind``.

    Args:
        dim: the dimension.
        kind: ``"iaf"``, ``"realnvp"`` or ``"planar"``.
        num_layers: layers (IAF and RealNVP layers alternate their orderings/halves).
        hidden: hidden sizes of the IAF and coupling networks.

    Raises:
        ValueError: an unknown ``kind``, or ``dim < 2`` for ``"realnvp"``.
    """
    if kind not in FLOW_GUIDE_KINDS:
        raise ValueError(f"kind must be one of {FLOW_GUIDE_KINDS}; got {kind!r}")
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"num_layers must be a positive integer; got {num_layers!r}")
    layers: list[nn.Module] = []
    reverse = torch.arange(dim - 1, -1, -1)
    for k in range(num_layers):
        if kind == "iaf":
            order = list(range(dim)) if k % 2 == 0 else list(range(dim - 1, -1, -1))
            layers.append(MaskedAutoregressive(MADENet(dim, hidden, out_mult=2, order=order).shrink_output_()))
        elif kind == "realnvp":
            if dim < 2:
                raise ValueError(f"realnvp layers need dim >= 2; got {dim}")
            split = dim // 2
            layers.append(AffineCoupling(split, MLP(split, hidden, 2 * (dim - split), chunks=2)))
            layers.append(Permute(reverse))  # type: ignore[arg-type]
        else:
            layers.append(Planar(dim))
    return ComposeTransformModule(layers)


def flow_guide(
    model: Callable[..., Any],
    kind: str = "iaf",
    num_layers: int = 3,
    hidden: Sequence[int] = (32, 32),
) -> AutoNormalizingFlow:
    """Pyro's ``AutoNormalizingFlow`` guide for ``model`` with pyrogen's flow layers.

    The guide draws a standard normal of the model's unconstrained latent
    dimension and pushes it through :func:`flow_transform`; Pyro maps the
    result to each latent site's support.

    Args:
        model: a Pyro model.
        kind, num_layers, hidden: see :func:`flow_transform`.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> def model():
        ...     pyro.sample("z", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        >>> guide = flow_guide(model, kind="iaf", num_layers=2)
        >>> guide()["z"].shape
        torch.Size([2])
    """
    if kind not in FLOW_GUIDE_KINDS:
        raise ValueError(f"kind must be one of {FLOW_GUIDE_KINDS}; got {kind!r}")
    return AutoNormalizingFlow(model, partial(flow_transform, kind=kind, num_layers=num_layers, hidden=hidden))
