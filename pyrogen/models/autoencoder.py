r"""Deterministic autoencoders: vanilla, denoising, sparse, contractive and stacked.

An autoencoder learns a code :math:`h = f(x)` and a reconstruction :math:`g(h)`; it defines no distribution
over :math:`x` (``density = "none"``: no prior over codes, nothing to sample) and is used for its
representation -- :meth:`Autoencoder.encode`, :meth:`~Autoencoder.decode`, the reconstruction error (an outlier
score), and the linear-probe and k-NN accuracy of its codes (:func:`pyrogen.metrics.linear_probe`,
:func:`pyrogen.metrics.knn_accuracy`).

One class, five recipes (each only changes defaults):

- ``autoencoder``: minimize the reconstruction error, the cross-entropy of :math:`x` under Bernoulli means
  :math:`\sigma(g(h))` for binary or unit-interval data, the squared error for real-valued data;
- ``denoising-ae`` (Vincent et al., 2008): reconstruct :math:`x` from a corrupted copy (each input zeroed with
  probability ``noise``; Gaussian noise of standard deviation ``noise`` for real data);
- ``sparse-ae`` (Ng, 2011): plus :math:`\beta \sum_j \mathrm{KL}(\rho \,\|\, \hat\rho_j)`, the KL divergence of
  each code unit's mean activation :math:`\hat\rho_j` over the batch from the target :math:`\rho`;
- ``contractive-ae`` (Rifai et al., 2011): plus :math:`\lambda \lVert \partial h / \partial x \rVert_F^2`,
  exact -- in closed form for one sigmoid layer, :math:`\sum_j (h_j (1 - h_j))^2 \lVert W_j \rVert^2`, and
  as the product of the layers' Jacobians for any depth (both checked against autograd's);
- ``stacked-ae`` (Bengio et al., 2007): each encoder layer pre-trained greedily as a one-layer autoencoder of
  the codes below it (parameter groups ``layer1``, ``layer2``, ...), then the whole fine-tuned (``finetune``).

The code units are sigmoids (the sparse target and the contractive closed form are about sigmoid units); the
hidden layers of encoder and decoder are ReLUs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.checks import number
from pyrogen.data import Dataset
from pyrogen.inference.objectives import LayerReconstruction, Objective, Part, Phases, Reconstruction, use_objective
from pyrogen.models.base import GenerativeModel, check_hidden, check_positive_int, frozen_unless_trainable
from pyrogen.models.registry import Recipe, register

__all__ = ["Autoencoder", "LayerReconstruction", "Reconstruction"]

#: the supports an autoencoder reconstructs, and the error it uses for each
_ERRORS = {"binary": "cross-entropy", "unit_interval": "cross-entropy", "real": "squared"}


def _ae_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The data's support (cross-entropy for binary and unit-interval data, squared error for real values).

    Raises:
        ValueError: integer data (use the binarized or dequantized digits).
    """
    if data.support not in _ERRORS:
        raise ValueError(
            f"{recipe.name} reconstructs binary, unit-interval or real data; dataset {data.name!r} is "
            f"{data.support} (use 'digits' or 'digits-binary')"
        )
    kwargs.setdefault("support", data.support)
    return kwargs


def _ae_train(data: Dataset) -> dict[str, Any]:
    """4000 steps of batch 128 at lr 1e-3, validation (the reconstruction error) every 200 steps, patience 10."""
    return {"lr": 1e-3, "batch_size": 128, "steps": 4000, "val_every": 200, "patience": 10}


def _ae_objective(model: Autoencoder) -> Objective:
    """Reconstruction; for ``pretrain_steps > 0``, first each layer greedily for that many steps."""
    if not model.pretrain_steps:
        return Reconstruction()

    def layer_params(k: int) -> Any:
        return lambda m: [*m.encoder[k].parameters(), *m.decoder[len(m.decoder) - 1 - k].parameters()]

    layers = [
        (model.pretrain_steps, Part(f"layer{k + 1}", LayerReconstruction(k), params=layer_params(k)))
        for k in range(len(model.encoder))
    ]
    return Phases(*layers, (None, Part("finetune", Reconstruction())))


@register("autoencoder", family="autoencoder", data="digits", choices=_ae_choices, train=_ae_train)
class Autoencoder(GenerativeModel):
    r"""A deterministic autoencoder (see the module's docstring for the five recipes).

    Args:
        event_shape: the shape of one example (flattened for the networks).
        code_dim: the code's size.
        hidden: the encoder's hidden widths (the decoder mirrors them).
        support: ``"binary"``, ``"unit_interval"`` (cross-entropy) or ``"real"`` (squared error).
        noise: a denoising autoencoder's corruption: the probability of zeroing each input (binary and
            unit-interval data) or the standard deviation of added Gaussian noise (real data); 0: none.
        sparsity, sparsity_target: :math:`\beta` and :math:`\rho` of the sparsity penalty (0: none).
        contractive: :math:`\lambda` of the contractive penalty (0: none).
        pretrain_steps: steps of greedy pre-training per encoder layer before fine-tuning (0: none).

    Example:
        >>> ae = Autoencoder(event_shape=(4,), code_dim=2, hidden=(8,))
        >>> ae.encode(torch.rand(3, 4)).shape, ae.reconstruction_error(torch.rand(3, 4)).shape
        (torch.Size([3, 2]), torch.Size([3]))
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        code_dim: int = 32,
        hidden: Sequence[int] = (256,),
        support: str = "unit_interval",
        noise: float = 0.0,
        sparsity: float = 0.0,
        sparsity_target: float = 0.05,
        contractive: float = 0.0,
        pretrain_steps: int = 0,
    ) -> None:
        super().__init__(event_shape)
        if support not in _ERRORS:
            raise ValueError(f"support must be one of {', '.join(_ERRORS)}; got {support!r}")
        self.support = support
        self.code_dim = check_positive_int("code_dim", code_dim)
        self.hidden = check_hidden(hidden) if len(hidden) else ()
        limit = math.inf if support == "real" else 1.0
        self.noise = number("noise", noise, 0.0, limit, strict=False)
        if support != "real" and self.noise >= 1:
            raise ValueError(f"noise zeroes inputs with that probability: it must be below 1; got {noise!r}")
        self.sparsity = number("sparsity", sparsity, 0.0, math.inf, strict=False)
        self.sparsity_target = number("sparsity_target", sparsity_target, 0.0, 1.0, strict=True)
        if not self.sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in (0, 1); got {sparsity_target!r}")
        self.contractive = number("contractive", contractive, 0.0, math.inf, strict=False)
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be a non-negative integer; got {pretrain_steps!r}")
        self.pretrain_steps = pretrain_steps
        d = math.prod(self.event_shape)
        sizes = [d, *self.hidden, self.code_dim]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        back = sizes[::-1]
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(back[:-1], back[1:], strict=True))

    # -- the networks ------------------------------------------------------------------------------------
    def _first(self) -> nn.Linear:
        return self.encoder[0]  # type: ignore[return-value]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code ``(n, code_dim)`` of examples ``x`` (checked against the event shape and support)."""
        return self._layers(self.validate(x))

    def _layers(self, x: torch.Tensor, layers: int | None = None, start: int = 0) -> torch.Tensor:
        """The encoder's layers ``start`` up to (not including) ``layers`` (all: the code) on ``x``."""
        h = x.reshape(len(x), -1).to(self._first().weight.dtype)
        last = len(self.encoder) - 1
        for i in range(start, len(self.encoder) if layers is None else layers):
            h = torch.sigmoid(self.encoder[i](h)) if i == last else F.relu(self.encoder[i](h))
        return h

    def decoder_output(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder's output for codes ``h``, shaped like the data: logits (binary and unit-interval data) or
        values (real data)."""
        for layer in self.decoder[:-1]:
            h = F.relu(layer(h))
        return self.decoder[-1](h).reshape(len(h), *self.event_shape)

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        """The reconstruction from codes ``h``: Bernoulli means in [0, 1], or real values."""
        out = self.decoder_output(h)
        return out if self.support == "real" else torch.sigmoid(out)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` of :meth:`encode` (no corruption)."""
        return self.decode(self.encode(x))

    def error(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The reconstruction error per example of ``x`` from the decoder's output ``out``: the cross-entropy in
        nats, or the squared error."""
        x = x.to(out.dtype)
        if self.support == "real":
            return (out - x).pow(2).flatten(1).sum(-1)
        return F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(-1)

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """The error of the clean reconstruction per example: an outlier score (high: unlike the training data)."""
        x = self.validate(x)
        return self.error(x, self.decoder_output(self._layers(x)))

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """A denoising autoencoder's corrupted copy of ``x`` (``x`` itself when ``noise`` is 0)."""
        if not self.noise:
            return x
        if self.support == "real":
            return x + self.noise * torch.randn_like(x)
        return x * (torch.rand_like(x) >= self.noise).to(x.dtype)

    # -- the penalties -----------------------------------------------------------------------------------
    def sparsity_penalty(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_j \mathrm{KL}(\rho \,\|\, \hat\rho_j)` for the batch's mean code activations
        :math:`\hat\rho_j`."""
        rho, rho_hat = self.sparsity_target, h.mean(0).clamp(1e-6, 1 - 1e-6)
        return (rho * (rho / rho_hat).log() + (1 - rho) * ((1 - rho) / (1 - rho_hat)).log()).sum()

    def jacobian_norm(self, x: torch.Tensor, method: str | None = None) -> torch.Tensor:
        r""":math:`\lVert \partial h / \partial x \rVert_F^2` per example, exactly, by ``method``:

        - ``"closed_form"`` (one sigmoid layer): :math:`\sum_j (h_j(1-h_j))^2 \sum_i W_{ji}^2`;
        - ``"chain"`` (any depth, the default): the product of the layers' Jacobians
          :math:`D_L W_L \cdots D_1 W_1` (:math:`D_l` the activations' derivatives), formed per example;
        - ``"autograd"``: the Jacobian by ``torch.func`` (one reverse pass per code unit; the check of the
          other two).
        """
        method = "chain" if method is None else method
        flat = x.reshape(len(x), -1).to(self._first().weight.dtype)
        if method == "closed_form":
            if len(self.encoder) != 1:
                raise ValueError("the closed form is for an encoder of one sigmoid layer; use method='chain'")
            h = self._layers(flat)  # one layer: the code itself, sigmoid units
            w2 = self._first().weight.pow(2).sum(1)  # (code_dim,)
            return (h * (1 - h)).pow(2) @ w2
        if method == "chain":
            h, jac = flat, None
            last = len(self.encoder) - 1
            for i, layer in enumerate(self.encoder):
                a = layer(h)
                h = torch.sigmoid(a) if i == last else F.relu(a)
                d = h * (1 - h) if i == last else (a > 0).to(a.dtype)  # (n, out)
                w: torch.Tensor = layer.weight  # type: ignore[assignment]  # (out, in)
                jac = d[:, :, None] * (w[None] if jac is None else torch.matmul(w, jac))  # (n, out, D)
            assert jac is not None
            return jac.pow(2).flatten(1).sum(-1)
        if method != "autograd":
            raise ValueError(f"method must be 'closed_form', 'chain', 'autograd' or None; got {method!r}")
        jac = torch.func.vmap(torch.func.jacrev(lambda v: self._layers(v[None])[0]))(flat)
        return jac.pow(2).flatten(1).sum(-1)

    # -- what an autoencoder is not ------------------------------------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        check_positive_int("n", n)
        raise NotImplementedError(
            f"{type(self).__name__} has no prior over its codes and does not sample: use encode / decode "
            "(or a VAE, whose prior makes decoded codes samples)"
        )

    @frozen_unless_trainable
    def as_distribution(self) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} defines no distribution over x: use reconstruction_error as an outlier score"
        )

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """What ``pyrogen evaluate`` reports of an autoencoder: the mean reconstruction error per example
        (nats of cross-entropy, or squared error) and the code units' mean activation."""
        with torch.no_grad():
            return {
                "reconstruction_error": float(self.reconstruction_error(x).mean()),
                "mean_code_activation": float(self.encode(x).mean()),
            }


use_objective(Autoencoder, _ae_objective)

register(
    "denoising-ae",
    Autoencoder,
    like="autoencoder",
    defaults={"noise": 0.3},
    doc="The denoising autoencoder (Vincent et al., 2008): each input zeroed with probability 0.3, the clean "
    "example reconstructed.",
)
register(
    "sparse-ae",
    Autoencoder,
    like="autoencoder",
    defaults={"sparsity": 2.0, "sparsity_target": 0.05, "code_dim": 64},
    doc="The sparse autoencoder: 64 code units whose mean activations are held near 0.05 by a KL penalty.",
)
register(
    "contractive-ae",
    Autoencoder,
    like="autoencoder",
    defaults={"contractive": 0.1},
    doc="The contractive autoencoder (Rifai et al., 2011): the code's Jacobian's squared Frobenius norm penalized.",
)
register(
    "stacked-ae",
    Autoencoder,
    like="autoencoder",
    defaults={"hidden": (128, 64), "pretrain_steps": 1000},
    doc="The stacked autoencoder (Bengio et al., 2007): each layer pre-trained greedily, then the whole fine-tuned.",
)
