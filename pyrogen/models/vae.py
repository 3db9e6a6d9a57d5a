r"""Latent-variable models: the variational autoencoder family.

Every model here is :math:`p(x, z) = p(z)\, p(x \mid z)` with an amortized
posterior :math:`q(z \mid x)`, written as a Pyro model/guide pair and trained
on a fused objective that equals Pyro's ELBO on the same seed:

- :class:`VAE` (``vae``): Bernoulli, Gaussian (fixed or learned variance) or
  categorical decoder; MLP or convolutional networks; standard normal,
  mixture-of-Gaussians or flow prior; Gaussian posterior optionally followed
  by planar or inverse-autoregressive layers; KL warm-up, :math:`\beta`, and
  the :math:`k`-sample IWAE objective are options of the same class;
- :class:`BetaVAE` (``beta-vae``), :class:`IWAE` (``iwae``),
  :class:`MixturePriorVAE` (``gmvae``), :class:`FlowVAE` (``vae-flow``):
  the VAE with those options as defaults;
- :class:`CVAE` (``cvae``): conditioned on the class label;
- :class:`SSVAE` (``ssvae``): Kingma et al.'s M2, the label a latent variable
  enumerated by ``TraceEnum_ELBO`` wherever it is missing;
- :class:`HierarchicalVAE` (``hvae``): two stochastic layers,
  :math:`p(z_2)\, p(z_1 \mid z_2)\, p(x \mid z_1)` with
  :math:`q(z_1 \mid x)\, q(z_2 \mid z_1)`.

Every model estimates :math:`\log p(x)` with :meth:`~LatentVariableModel.iwae`
(Burda et al., 2016) and bounds it with :meth:`~LatentVariableModel.elbo`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, cast

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions.transforms import Planar
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import nn
from torch.distributions import kl_divergence
from torch.distributions.utils import _standard_normal

from pyrogen.checks import choice as _choice
from pyrogen.checks import number
from pyrogen.data import Dataset
from pyrogen.data.batch import as_batch, split_context
from pyrogen.distributions.transforms import ConditionalMaskedAutoregressive
from pyrogen.inference.hooks import StepClock
from pyrogen.inference.objectives import ELBO, SemiSupervisedELBO, gaussian_kl, log_mean_exp, use_objective
from pyrogen.inference.program import data_plate
from pyrogen.inference.protocol import dataset_part
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_hidden, check_positive_int, takes_context
from pyrogen.models.registry import Recipe, preset, register
from pyrogen.nn import MLP, ConvDecoder, ConvEncoder, MADENet, SpatialConvDecoder, SpatialConvEncoder

__all__ = [
    "CVAE",
    "IWAE",
    "LIKELIHOODS",
    "POSTERIOR_FLOWS",
    "PRIORS",
    "SSVAE",
    "VAE",
    "BetaVAE",
    "FlowVAE",
    "HierarchicalVAE",
    "LadderVAE",
    "LatentVariableModel",
    "MixturePriorVAE",
]

_positive_float = functools.partial(number, lo=0, strict=True)

#: Decoder distributions :math:`p(x \mid z)` and the data support each one models.
LIKELIHOODS = {"bernoulli": "binary", "gaussian": "real", "categorical": "integer"}
#: Priors :math:`p(z)`.
PRIORS = ("normal", "mixture", "flow")
#: Layers that may follow the Gaussian posterior.
POSTERIOR_FLOWS = (None, "planar", "iaf")
_ARCHS = ("mlp", "conv", "spatial")
_DATA_LIKELIHOOD = {"binary": "bernoulli", "unit_interval": "gaussian", "real": "gaussian", "integer": "categorical"}


def _join(h: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """``h`` with ``context`` concatenated on the last dimension, both broadcast over the leading ones."""
    if context is None:
        return h
    lead = torch.broadcast_shapes(h.shape[:-1], context.shape[:-1])
    return torch.cat([h.expand(*lead, h.shape[-1]), context.expand(*lead, context.shape[-1])], dim=-1)


class MixturePrior(nn.Module):
    r"""A learnable mixture of :math:`K` diagonal Gaussians: :math:`p(z) = \sum_k \pi_k \mathcal N(\mu_k, \sigma_k^2)`.

    Means start at standard normal draws and scales at one (Dilokthanakul et al., 2016; Tomczak and Welling's
    VampPrior paper, 2018, compares it with other learnable priors).
    """

    def __init__(self, latent_dim: int, components: int) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, latent_dim))
        self.raw_scales = nn.Parameter(torch.full((components, latent_dim), math.log(math.e - 1)))

    def forward(self) -> dist.TorchDistribution:
        comps = dist.Normal(self.locs, F.softplus(self.raw_scales) + 1e-3).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), comps)


class FlowPrior(nn.Module):
    """A standard normal pushed through RealNVP coupling layers (exact density both ways)."""

    def __init__(self, latent_dim: int, num_layers: int, hidden: Sequence[int]) -> None:
        super().__init__()
        from pyrogen.inference.guides import flow_transform

        self.transform = flow_transform(latent_dim, kind="realnvp", num_layers=num_layers, hidden=hidden)
        self.zeros: torch.Tensor
        self.register_buffer("zeros", torch.zeros(latent_dim))

    def forward(self) -> dist.TorchDistribution:
        base = dist.Normal(self.zeros, 1.0).to_event(1)
        return dist.TransformedDistribution(base, list(self.transform.parts))


def _vae_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The decoder for ``data`` unless ``likelihood`` is given: binary data get a Bernoulli decoder, real or
    dequantized data a Gaussian one, integer data a categorical one with the dataset's number of levels.

    Raises:
        ValueError: the decoder's support does not fit the data.
    """
    likelihood = kwargs.setdefault("likelihood", _DATA_LIKELIHOOD.get(data.support, "bernoulli"))
    if likelihood == "categorical" and data.levels is not None:
        kwargs.setdefault("levels", data.levels)
    needed = LIKELIHOODS.get(likelihood)
    if needed is not None and needed != data.support and not (needed == "real" and data.support == "unit_interval"):
        raise ValueError(f"a {likelihood} decoder models {needed} data; dataset {data.name!r} is {data.support}")
    return kwargs


class LatentVariableModel(GenerativeModel):
    """What every latent-variable model shares: the ELBO, IWAE and their Pyro references.

    A subclass implements :meth:`elbo_terms` (one draw of the latents per example,
    or ``particles`` of them) and the Pyro :meth:`model` and :meth:`guide`
    that draw the same numbers in the same order, so that the fused loss of
    :class:`~pyrogen.inference.objectives.ELBO` equals Pyro's on a seed.
    """

    family = "latent"
    density = "lower_bound"
    #: Pyro's ELBO of the :class:`~pyrogen.inference.objectives.ELBO` objective's Pyro path when ``k == 1``.
    _pyro_elbo: ClassVar[type] = TraceMeanField_ELBO

    beta: float = 1.0
    kl_warmup: int = 0
    k: int = 1
    classes: int = 0

    @property
    def kl_weight(self) -> float:
        r""":math:`\beta` times the warm-up factor :math:`\min(1, t / T)` while training; :math:`\beta` in eval mode."""
        if not self.training or self.kl_warmup == 0:
            return self.beta
        return self.beta * min(1.0, (self.clock.step + 1) / self.kl_warmup)

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\log p(x \mid z), \log p(z) - \log q(z \mid x))` per example for one draw ``z ~ q``.

        Shapes ``(n,)``, or ``(particles, n)`` when ``particles`` draws are made.
        With ``analytic`` the second term is :math:`-\mathrm{KL}(q \,\|\, p)` in
        closed form where the model has one.
        """
        raise NotImplementedError

    # -- labels ----------------------------------------------------------------
    def unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = split_context(batch, self.labelled, type(self).__name__)
        return self._cast(x), None if y is None else self._check_labels(y, len(x))

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        """Real-valued data in the parameters' dtype (float32 data into a float64 model, say)."""
        dtype = next(self.parameters()).dtype
        return x.to(dtype) if x.is_floating_point() and x.dtype != dtype else x

    def _check_labels(self, y: object, n: int, missing_ok: bool = False) -> torch.Tensor:
        labels = torch.as_tensor(y, device=self._device())
        if labels.dim() == 0:
            labels = labels.expand(n)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != (n,):
            raise ValueError(f"y must hold {n} integer labels; got shape {tuple(labels.shape)} {labels.dtype}")
        lo = -1 if missing_ok else 0
        if len(labels) and (int(labels.min()) < lo or int(labels.max()) >= self.classes):
            raise ValueError(f"labels y must be in {lo}..{self.classes - 1}; got {labels.unique().tolist()[:12]}")
        return labels.long()

    # -- estimators --------------------------------------------------------------
    def _inputs(self, x: Any, y: object = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(x, (tuple, list)):
            if y is not None:
                raise ValueError("give the labels either in x = (examples, labels) or as y, not both")
            x, y = x
        x = self._cast(self.validate(x))
        if self.labelled:
            if y is None:
                raise ValueError(f"{type(self).__name__} is class-conditional: pass the labels y")
            return x, self._check_labels(y, len(x))
        if y is not None:
            raise ValueError(f"{type(self).__name__} is unconditional; got labels y")
        return x, None

    def _elbo(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        rec, log_r = self.elbo_terms(x, y, None, analytic=True)
        return rec + log_r

    @takes_context
    @accepts_unbatched(label=0)
    def elbo(self, x: Any, y: object = None) -> torch.Tensor:
        """Single-sample ELBO per example in nats (closed-form KL where there is one), shape ``(n,)``.

        ``x`` may be a ``(examples, labels)`` pair; a conditional model needs the labels.
        """
        return self._elbo(*self._inputs(x, y))

    @takes_context
    @accepts_unbatched(label=2)
    def iwae(self, x: Any, k: int = 1000, chunk: int = 100, y: object = None) -> torch.Tensor:
        r"""Importance-weighted bound :math:`\log \frac1k \sum_i p(x, z_i) / q(z_i \mid x)`, per example.

        With ``k = 1`` it is an unbiased estimate of the ELBO; it increases with
        ``k`` towards :math:`\log p(x)` (Burda et al., 2016). Samples are drawn in
        chunks of ``chunk`` to bound memory.

        Raises:
            ValueError: ``k`` or ``chunk`` not a positive integer; bad ``x`` or labels.
        """
        check_positive_int("k", k)
        check_positive_int("chunk", chunk)
        x, labels = self._inputs(x, y)
        return self._iwae(x, labels, k, chunk)

    def _iwae(self, x: torch.Tensor, y: torch.Tensor | None, k: int, chunk: int) -> torch.Tensor:
        parts = []
        for start in range(0, k, chunk):
            rec, log_r = self.elbo_terms(x, y, min(chunk, k - start), analytic=False)
            parts.append(rec + log_r)
        return log_mean_exp(torch.cat(parts), dim=0)

    def _device(self) -> torch.device:
        return next(self.parameters()).device


use_objective(LatentVariableModel, lambda model: ELBO(pyro_elbo=model._pyro_elbo))


@register(
    "vae",
    family="latent",
    data="digits-binary",
    train={"batch_size": 128, "lr": 1e-3, "steps": 4000, "val_every": 100, "patience": 10},
    choices=_vae_choices,
)
class VAE(LatentVariableModel):
    r"""Variational autoencoder: a Gaussian encoder, a choice of decoder, prior and posterior layers.

    .. math::
        p(z)\,p(x \mid z),\quad p(x \mid z) = \prod_j p(x_j \mid f_\theta(z)_j),\quad
        q(z \mid x) = T_\phi\big(\mathcal N(\mu_\phi(x), \mathrm{diag}\,\sigma_\phi(x)^2)\big)

    trained on :math:`\mathbb E_q[\log p(x \mid z)] + \beta_t\, \mathbb E_q[\log p(z) - \log q(z \mid x)]` with
    :math:`\beta_t = \beta \min(1, t / T_{\text{warmup}})`: the KL warm-up of Bowman et al. (2016), which keeps
    latent units active on small data, and the :math:`\beta` of Higgins et al. (2017), both applied with
    ``poutine.scale`` on ``z`` in model and guide. With the standard normal prior and no posterior layers the KL
    is in closed form. ``k > 1`` trains on the IWAE bound instead. It trains under
    :class:`~pyrogen.inference.objectives.ELBO`, whose fused loss Pyro's ELBO on :meth:`model` and :meth:`guide`
    reproduces on a seed.

    Args:
        event_shape: shape of one example, e.g. ``(1, 8, 8)``.
        latent_dim: :math:`L`.
        hidden: hidden sizes of the MLP encoder (the decoder mirrors them); for
            ``arch="conv"`` the last one is the fully connected width.
        kl_warmup: :math:`T_{\text{warmup}}` in steps (0: no warm-up).
        likelihood: ``"bernoulli"`` (binary pixels), ``"gaussian"`` (real or
            dequantized pixels) or ``"categorical"`` (integer pixels in
            ``0..levels-1``).
        levels: the categories of a categorical decoder.
        decoder_scale: fixed standard deviation of a Gaussian decoder, or
            ``None`` to learn one per pixel and example.
        arch: ``"mlp"``, ``"conv"`` (images with even height and width) or ``"spatial"`` (convolutions only:
            the code is a feature map of ``latent_dim / (H W / 4)`` channels at half resolution, as latent
            diffusion's first stage; ``hidden[-1]`` is the convolutions' width; no ``classes``).
        beta: the weight :math:`\beta` of the KL term.
        k: importance samples of the training objective (1: the ELBO).
        prior: ``"normal"``, ``"mixture"`` (learnable mixture of Gaussians) or
            ``"flow"`` (RealNVP coupling layers on a standard normal).
        prior_components: mixture components; prior_layers: flow prior layers.
        posterior_flow: ``None``, ``"planar"`` (Pyro's planar layers, Rezende and Mohamed, 2015) or
            ``"iaf"`` (pyrogen's :class:`~pyrogen.distributions.transforms.ConditionalMaskedAutoregressive`
            layers in the one-pass direction, reading a context vector from the encoder, orders alternating;
            Kingma et al., 2016). Pyro's transform cache scores the sampled :math:`z` exactly.
        flow_layers: layers of the posterior flow.
        classes: condition encoder and decoder on a one-hot label with this
            many classes (0: unconditional).

    Raises:
        ValueError: a bad size, option or combination; at run time, data outside the decoder's support.

    References: Kingma and Welling, 2014, arXiv:1312.6114; Rezende et al., 2014, arXiv:1401.4082;
    Burda et al., 2016, arXiv:1509.00519; Higgins et al., 2017 (beta-VAE).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> vae = VAE(event_shape=(1, 8, 8), latent_dim=4, hidden=(32,))
        >>> x = vae.sample(3)
        >>> x.shape, vae.elbo(x).shape, bool((vae.iwae(x, k=10) > -1e9).all())
        (torch.Size([3, 1, 8, 8]), torch.Size([3]), True)
    """

    support = "binary"

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        kl_warmup: int = 1000,
        *,
        likelihood: str = "bernoulli",
        levels: int = 17,
        decoder_scale: float | None = None,
        arch: str = "mlp",
        beta: float = 1.0,
        k: int = 1,
        prior: str = "normal",
        prior_components: int = 10,
        prior_layers: int = 4,
        posterior_flow: str | None = None,
        flow_layers: int = 2,
        classes: int = 0,
    ) -> None:
        super().__init__(event_shape)
        self.clock = StepClock()  # the KL warm-up's step, set by the trainer
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.hidden = check_hidden(hidden)
        if not isinstance(kl_warmup, int) or isinstance(kl_warmup, bool) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be a non-negative integer; got {kl_warmup!r}")
        self.kl_warmup = kl_warmup
        self.likelihood_name = _choice("likelihood", likelihood, tuple(LIKELIHOODS))
        self.support = LIKELIHOODS[likelihood]
        self.num_levels = check_positive_int("levels", levels)
        if likelihood == "categorical" and levels < 2:
            raise ValueError(f"levels must be at least 2; got {levels!r}")
        self.decoder_scale = None if decoder_scale is None else _positive_float("decoder_scale", decoder_scale)
        self.arch = _choice("arch", arch, _ARCHS)
        self.beta = _positive_float("beta", beta)
        self.k = check_positive_int("k", k)
        self.prior_name = _choice("prior", prior, PRIORS)
        self.prior_components = check_positive_int("prior_components", prior_components)
        self.prior_layers = check_positive_int("prior_layers", prior_layers)
        self.posterior_flow = _choice("posterior_flow", posterior_flow, POSTERIOR_FLOWS)
        self.flow_layers = check_positive_int("flow_layers", flow_layers)
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0 or classes == 1:
            raise ValueError(f"classes must be 0 (unconditional) or an integer >= 2; got {classes!r}")
        self.classes = classes
        self.labelled = classes > 0  # conditioned on labels: trains on (examples, labels)
        self.data_dim = math.prod(self.event_shape)
        L = self.latent_dim
        self._flow_context = 2 * L if posterior_flow == "iaf" else 0
        out = {"bernoulli": 1, "gaussian": 1 if decoder_scale is not None else 2, "categorical": levels}[likelihood]
        self._out_mult = out
        enc_out = 2 * L + self._flow_context
        if arch == "mlp":
            self.encoder: nn.Module = MLP(self.data_dim, self.hidden, enc_out, context=classes)
            self.decoder: nn.Module = MLP(L + classes, self.hidden[::-1], out * self.data_dim)
        elif arch == "conv":
            self.encoder = ConvEncoder(self.event_shape, enc_out, hidden=self.hidden[-1], context=classes)
            self.decoder = ConvDecoder(L + classes, self.event_shape, out_mult=out, hidden=self.hidden[-1])
        else:
            if classes or self._flow_context:
                raise ValueError("arch='spatial' takes no classes and no posterior_flow='iaf'")
            self.encoder = SpatialConvEncoder(self.event_shape, L, width=self.hidden[-1])
            self.decoder = SpatialConvDecoder(L, self.event_shape, out_mult=out, width=self.hidden[-1])
        self.prior_net: nn.Module | None = None
        if prior == "mixture":
            self.prior_net = MixturePrior(L, prior_components)
        elif prior == "flow":
            if L < 2:
                raise ValueError(f"a flow prior needs latent_dim >= 2; got {L}")
            self.prior_net = FlowPrior(L, prior_layers, (64, 64))
        self.posterior_layers: nn.ModuleList | None = None
        if posterior_flow == "planar":
            self.posterior_layers = nn.ModuleList([Planar(L) for _ in range(flow_layers)])
        elif posterior_flow == "iaf":  # pyrogen's autoregressive layer, reading the encoder's context; orders alternate
            self.posterior_layers = nn.ModuleList(
                [
                    ConditionalMaskedAutoregressive(
                        MADENet(
                            L,
                            [4 * L, 4 * L],
                            out_mult=2,
                            context=self._flow_context,
                            order=list(range(L)) if i % 2 == 0 else list(range(L - 1, -1, -1)),
                        ).shrink_output_()
                    )
                    for i in range(flow_layers)
                ]
            )
        self.register_buffer("_zeros", torch.zeros(L))

    @property
    def levels(self) -> int | None:
        """The number of values each coordinate of the data takes (2 for binary), ``None`` for real data."""
        return {"binary": 2, "integer": self.num_levels}.get(self.support)

    _levels = levels  # what validate() checks integer data against

    # -- networks -------------------------------------------------------------
    def _onehot(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if not self.classes:
            return None
        if y is None:
            raise ValueError(f"{type(self).__name__} is class-conditional: pass the labels y")
        return F.one_hot(y, self.classes).to(self._zeros.dtype)

    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(self._zeros.dtype)
        if self.likelihood_name == "categorical":
            h = h / (self.num_levels - 1)
        return h.reshape(len(x), self.data_dim) if self.arch == "mlp" else h

    def _encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        h = self._encoder_input(x)
        onehot = self._onehot(y)
        if onehot is None:
            out = self.encoder(h)
        else:  # labels may carry leading dimensions (enumerated by TraceEnum_ELBO): broadcast and flatten
            lead = torch.broadcast_shapes(onehot.shape[:-1], (len(x),))
            hx = h.expand(*lead, *h.shape[1:]).reshape(-1, *h.shape[1:])
            out = self.encoder(hx, onehot.expand(*lead, self.classes).reshape(-1, self.classes))
            out = out.reshape(*lead, out.shape[-1])
        L = self.latent_dim
        loc, raw = out[..., :L], out[..., L : 2 * L]
        return loc, F.softplus(raw) + 1e-4, out[..., 2 * L :] if self._flow_context else None

    @takes_context
    def encode(self, x: Any, y: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`(\\mu_\\phi(x), \\sigma_\\phi(x))` of the Gaussian part of :math:`q(z \\mid x)`, each ``(n, L)``."""
        x, labels = self._inputs(x, y)
        loc, scale, _ = self._encode(x, labels)
        return loc, scale

    def _decoder_out(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        h = self.decoder(_join(z, self._onehot(y)))
        return h.reshape(h.shape[:-1] + (self._out_mult,) + self.event_shape) if self.arch == "mlp" else h

    def _likelihood(self, h: torch.Tensor) -> dist.TorchDistribution:
        E = len(self.event_shape)
        axis = -1 - E
        if self.likelihood_name == "bernoulli":
            return dist.Bernoulli(logits=h.select(axis, 0)).to_event(E)
        if self.likelihood_name == "gaussian":
            loc = h.select(axis, 0)
            scale = (
                torch.full_like(loc, self.decoder_scale)
                if self.decoder_scale is not None
                else F.softplus(h.select(axis, 1)) + 1e-3
            )
            return dist.Normal(loc, scale).to_event(E)
        return dist.Categorical(logits=h.movedim(axis, -1)).to_event(E)

    @takes_context
    def likelihood(self, z: torch.Tensor, y: object = None) -> dist.TorchDistribution:
        """The decoder's distribution :math:`p(x \\mid z)` (event shape ``event_shape``)."""
        labels = self._check_labels(y, z.shape[-2] if z.dim() > 1 else 1) if self.classes and y is not None else None
        return self._likelihood(self._decoder_out(z, labels))

    @takes_context
    def decode(self, z: torch.Tensor, y: object = None) -> torch.Tensor:
        """The mean image :math:`\\mathbb E[x \\mid z]`, shape ``z.shape[:-1] + event_shape``."""
        d = self.likelihood(z, y)
        if self.likelihood_name == "categorical":
            probs = d.base_dist.probs
            return (probs * torch.arange(self.num_levels, dtype=probs.dtype, device=probs.device)).sum(-1)
        return d.mean

    def _log_lik(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.likelihood_name == "bernoulli":
            logits = h.select(-1 - len(self.event_shape), 0).flatten(-len(self.event_shape))
            target = x.reshape(len(x), -1).to(logits.dtype).expand_as(logits)
            return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(-1)
        return self._likelihood(h).log_prob(x)

    def _prior(self) -> dist.TorchDistribution:
        if self.prior_net is None:
            return dist.Normal(self._zeros, 1.0).to_event(1)
        return self.prior_net()

    def _posterior_transforms(self, context: torch.Tensor | None) -> list[Any]:
        if self.posterior_layers is None:
            return []
        if self.posterior_flow == "iaf":
            layers: list[Any] = list(self.posterior_layers)
            return [t.condition(context) for t in layers]
        return list(self.posterior_layers)

    @property
    def _closed_form_kl(self) -> bool:
        return self.prior_net is None and self.posterior_layers is None

    @property
    def gaussian_posterior(self) -> bool:
        """Whether :math:`q(z \\mid x)` is one diagonal Gaussian over the whole latent, given ``x`` alone (what
        :func:`~pyrogen.inference.optimize_local_posterior` replaces per example)."""
        return self.posterior_layers is None and not self.classes

    # -- the Pyro program -----------------------------------------------------
    @takes_context
    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        pyro.module("decoder", self.decoder)
        if self.prior_net is not None:
            pyro.module("prior", self.prior_net)
        n = len(x) if x is not None else len(y) if y is not None else (num_samples or 1)
        with data_plate(n):
            with poutine.scale(scale=self.kl_weight):
                z = pyro.sample("z", self._prior())
            return pyro.sample("x", self._likelihood(self._decoder_out(z, y)), obs=x)

    @takes_context
    def guide(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> None:
        if x is None:  # nothing observed: the model's prior is the posterior
            return
        pyro.module("encoder", self.encoder)
        if self.posterior_layers is not None:
            pyro.module("posterior_flow", self.posterior_layers)
        with data_plate(len(x)):
            loc, scale, context = self._encode(x, y)
            q: dist.TorchDistribution = dist.Normal(loc, scale).to_event(1)
            transforms = self._posterior_transforms(context)
            if transforms:
                q = dist.TransformedDistribution(q, transforms)
            with poutine.scale(scale=self.kl_weight):
                pyro.sample("z", q)

    # -- fused objective ------------------------------------------------------
    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loc, scale, context = self._encode(x, y)
        shape = loc.shape if particles is None else (particles, *loc.shape)
        z = loc + _standard_normal(shape, dtype=loc.dtype, device=loc.device) * scale
        if analytic and self._closed_form_kl:
            return self._log_lik(self._decoder_out(z, y), x), -gaussian_kl(loc, scale)
        log_q = dist.Normal(loc, scale).log_prob(z).sum(-1)
        for t in self._posterior_transforms(context):
            z_next = t(z)
            log_q = log_q - t.log_abs_det_jacobian(z, z_next)
            z = z_next
        return self._log_lik(self._decoder_out(z, y), x), self._prior().log_prob(z) - log_q

    @torch.no_grad()
    def active_units(self, x: Any, threshold: float = 0.01) -> int:
        r"""Number of latent units with :math:`\mathrm{Cov}_x(\mathbb E_q[z_u]) > 0.01` (Burda et al., 2016)."""
        loc, _ = self.encode(x)
        return int((loc.var(0) > threshold).sum())

    @torch.no_grad()
    def sample_latent(self, n: int) -> torch.Tensor:
        """``n`` draws from the prior :math:`p(z)`, shape ``(n, L)``."""
        return self._prior().sample((check_positive_int("n", n),))

    @takes_context
    @torch.no_grad()
    def sample(self, n: int, y: object = None, mean: bool = False) -> torch.Tensor:
        """``n`` draws from :math:`p(x)` (from :math:`p(x \\mid y)` given labels ``y``, one or ``n`` of them; a
        conditional model without ``y`` draws uniform labels); the mean images :math:`\\mathbb E[x \\mid z]` if
        ``mean``."""
        z = self.sample_latent(n)
        labels = self._sample_labels(y, n)
        return self.decode(z, labels) if mean else self._likelihood(self._decoder_out(z, labels)).sample()

    def _sample_labels(self, y: object, n: int) -> torch.Tensor | None:
        if not self.classes:
            if y is not None:
                raise ValueError(f"{type(self).__name__} is unconditional; got labels y")
            return None
        if y is None:  # labels drawn uniformly: a draw from the marginal p(x)
            return torch.randint(self.classes, (n,), device=self._device())
        return self._check_labels(y, n)


register(
    "beta-vae",
    VAE,
    like="vae",
    defaults={"beta": 4.0},
    doc="The beta-VAE (Higgins et al., 2017): beta = 4 trades reconstruction (distortion) for a smaller KL "
    "(rate); beta enters both Pyro programs through poutine.scale on the latent site.",
)
register(
    "iwae",
    VAE,
    like="vae",
    defaults={"k": 10},
    doc="The importance-weighted autoencoder (Burda et al., 2016): a VAE trained on the k = 10 bound.",
)
register(
    "gmvae",
    VAE,
    like="vae",
    defaults={"prior": "mixture"},
    doc="A VAE with a learnable mixture-of-Gaussians prior (10 components by default).",
)
register(
    "vae-flow",
    VAE,
    like="vae",
    defaults={"posterior_flow": "iaf"},
    doc="A VAE whose posterior is a Gaussian followed by inverse autoregressive layers (Kingma et al., 2016); "
    "posterior_flow='planar' gives Rezende and Mohamed's planar posterior, prior='flow' a flow prior.",
)
register(
    "cvae",
    VAE,
    like="vae",
    defaults={"classes": 10},
    doc="The conditional VAE (Sohn et al., 2015): encoder and decoder see the one-hot class label; trains on "
    "(examples, labels), and sample takes the labels to draw.",
)
BetaVAE, IWAE, MixturePriorVAE, FlowVAE, CVAE = map(preset, ("beta-vae", "iwae", "gmvae", "vae-flow", "cvae"))


@register("ssvae", like="vae")
class SSVAE(VAE):
    r"""The semi-supervised VAE, M2 of Kingma et al. (2014): the label is a latent variable where it is missing.

    .. math::
        p(y) = \mathrm{Cat}(1/K),\ p(z) = \mathcal N(0, I),\ p(x \mid y, z);\qquad
        q(y \mid x)\, q(z \mid x, y)

    Training data are ``(examples, labels)`` with label ``-1`` where it is missing. A labelled example
    contributes its ELBO plus :math:`\alpha \log q(y \mid x)` (the classification term that makes
    :math:`q(y \mid x)` learn from the labels, written as a ``pyro.factor`` in the model); an unlabelled one
    contributes :math:`\sum_y q(y \mid x)\,[\mathrm{ELBO}(x, y) - \log q(y \mid x)]`, the label summed out exactly:
    the guide marks it for enumeration and Pyro's ``TraceEnum_ELBO`` computes the same number as the fused loss
    (:class:`~pyrogen.inference.objectives.SemiSupervisedELBO`).
    :meth:`predict` classifies with :math:`q(y \mid x)`.

    Args:
        alpha: weight of the classification term per labelled example.
        label_fraction: the share of training labels :meth:`training_data` keeps (a fixed,
            class-balanced subset).
        classes: number of classes.
        other arguments: as :class:`VAE` (no prior or posterior layers).

    References: Kingma, Rezende, Mohamed and Welling, 2014, arXiv:1406.5298.
    """

    labelled = True

    def __init__(
        self, *args: Any, classes: int = 10, alpha: float = 50.0, label_fraction: float = 0.1, **kwargs: Any
    ) -> None:
        if classes < 2:
            raise ValueError(f"classes must be an integer >= 2 for the semi-supervised VAE; got {classes!r}")
        if kwargs.get("prior", "normal") != "normal" or kwargs.get("posterior_flow") is not None:
            raise ValueError("SSVAE supports the standard normal prior and a Gaussian posterior only")
        if kwargs.get("k", 1) != 1:
            raise ValueError(f"SSVAE trains on the ELBO; k must be 1, got {kwargs['k']!r}")
        super().__init__(*args, classes=classes, **kwargs)
        self.alpha = _positive_float("alpha", alpha)
        if (
            isinstance(label_fraction, bool)
            or not isinstance(label_fraction, (int, float))
            or not 0 < label_fraction <= 1
        ):
            raise ValueError(f"label_fraction must be in (0, 1]; got {label_fraction!r}")
        self.label_fraction = float(label_fraction)
        if self.arch == "mlp":
            self.classifier: nn.Module = MLP(self.data_dim, self.hidden, classes)
        else:
            self.classifier = ConvEncoder(self.event_shape, classes, hidden=self.hidden[-1])

    def training_data(self, data: Dataset, split: str) -> Any:
        """``(examples, labels)`` of ``split``; in ``"train"`` only :attr:`label_fraction` of the labels are kept
        (the same class-balanced subset for every seed of the model), the rest set to ``-1``."""
        x, y = dataset_part(self, data, split)
        if split != "train" or self.label_fraction == 1.0:
            return x, y
        g = torch.Generator().manual_seed(0)
        keep = torch.zeros(len(y), dtype=torch.bool)
        for c in range(self.classes):
            idx = (y == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            keep[idx[: max(1, round(self.label_fraction * len(idx)))]] = True
        return x, torch.where(keep, y, torch.full_like(y, -1))

    # -- labels may be missing -------------------------------------------------
    def unpack(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = as_batch(batch)  # labels may be missing altogether, or -1 for some examples
        return self._cast(x), None if y is None else self._check_labels(y, len(x), missing_ok=True)

    def _inputs(self, x: Any, y: object = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(x, (tuple, list)):  # the marginal likelihood p(x) does not use labels
            x = x[0]
        return self._cast(self.validate(x)), None

    def split_labelled(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[Any, Any, torch.Tensor]:
        if y is None:
            y = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
        seen = y >= 0
        return (x[seen], y[seen]), x[~seen], seen

    def _log_prior_y(self) -> float:
        return -math.log(self.classes)

    def class_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log q(y \\mid x)`, shape ``(n, classes)``."""
        return F.log_softmax(self.classifier(self._encoder_input(x)), dim=-1)

    @takes_context
    def encode(self, x: Any, y: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`q(z \\mid x, y)`'s mean and scale; without labels ``y`` (or ``-1``) the predicted class is used."""
        if isinstance(x, (tuple, list)):
            x, y = x
        x = self.validate(x)
        labels = torch.full((len(x),), -1, device=x.device) if y is None else self._check_labels(y, len(x), True)
        missing = labels < 0
        if missing.any():  # classify only the examples without a label
            with torch.no_grad():
                labels = labels.masked_scatter(missing, self.class_log_probs(x[missing]).argmax(-1))
        loc, scale, _ = self._encode(x, labels)
        return loc, scale

    @torch.no_grad()
    def predict(self, x: Any) -> torch.Tensor:
        """The most probable class under :math:`q(y \\mid x)`, shape ``(n,)``."""
        x, _ = self._inputs(x)
        return self.class_log_probs(x).argmax(-1)

    def _all_labels(self, n: int) -> torch.Tensor:
        return torch.arange(self.classes, device=self._device()).reshape(-1, 1).expand(-1, n)

    # -- the Pyro program -----------------------------------------------------
    @takes_context
    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        pyro.module("decoder", self.decoder)
        pyro.module("classifier", self.classifier)
        uniform = dist.Categorical(logits=torch.zeros(self.classes, device=self._device()))
        if x is None:
            n = num_samples or 1
            with pyro.plate("unlabelled", n):
                y_u = pyro.sample("y_u", uniform)
                z = pyro.sample("z_u", self._prior())
                return pyro.sample("x_u", self._likelihood(self._decoder_out(z, y_u)))
        (x_l, y_l), x_u, _ = self.split_labelled(x, y)
        if len(x_l):
            with pyro.plate("labelled", len(x_l)):
                pyro.sample("y_l", uniform, obs=y_l)
                with poutine.scale(scale=self.kl_weight):
                    z_l = pyro.sample("z_l", self._prior())
                pyro.sample("x_l", self._likelihood(self._decoder_out(z_l, y_l)), obs=x_l)
                log_q = self.class_log_probs(x_l).gather(-1, y_l[:, None]).squeeze(-1)
                pyro.factor("classify", self.alpha * log_q)
        if len(x_u):
            with pyro.plate("unlabelled", len(x_u)):
                y_u = pyro.sample("y_u", uniform)
                with poutine.scale(scale=self.kl_weight):
                    z_u = pyro.sample("z_u", self._prior())
                pyro.sample("x_u", self._likelihood(self._decoder_out(z_u, y_u)), obs=x_u)
        return x

    @takes_context
    def guide(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> None:
        if x is None:
            return
        pyro.module("encoder", self.encoder)
        pyro.module("classifier", self.classifier)
        (x_l, y_l), x_u, _ = self.split_labelled(x, y)
        if len(x_l):
            with pyro.plate("labelled", len(x_l)):
                loc, scale, _ = self._encode(x_l, y_l)
                with poutine.scale(scale=self.kl_weight):
                    pyro.sample("z_l", dist.Normal(loc, scale).to_event(1))
        if len(x_u):
            with pyro.plate("unlabelled", len(x_u)):
                y_u = pyro.sample(
                    "y_u", dist.Categorical(logits=self.class_log_probs(x_u)), infer={"enumerate": "parallel"}
                )
                loc, scale, _ = self._encode(x_u, y_u)
                with poutine.scale(scale=self.kl_weight):
                    pyro.sample("z_u", dist.Normal(loc, scale).to_event(1))

    # -- fused objective ------------------------------------------------------
    def labelled_elbo(self, x: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
        rec, log_r = super().elbo_terms(x, y, None, analytic=False)
        return rec + w * log_r + self._log_prior_y()

    def unlabelled_elbo(self, x: torch.Tensor, w: float) -> torch.Tensor:
        """:math:`\\sum_y q(y \\mid x)[\\mathrm{ELBO}_w(x, y) - \\log q(y \\mid x)]`, one draw of z per label."""
        rec, log_r = super().elbo_terms(x, self._all_labels(len(x)), None, analytic=False)  # (K, n)
        log_qy = self.class_log_probs(x).T
        return (log_qy.exp() * (rec + w * log_r + self._log_prior_y() - log_qy)).sum(0)

    def _elbo(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return self.unlabelled_elbo(x, 1.0)

    def _iwae(self, x: torch.Tensor, y: torch.Tensor | None, k: int, chunk: int) -> torch.Tensor:
        r""":math:`\log \sum_y p(y)\, \hat p_k(x \mid y)` with :math:`\hat p_k` the IWAE estimate under
        :math:`q(z \mid x, y)`: the label summed out exactly, an unbiased estimate of :math:`p(x)` inside the log."""
        per_label = torch.stack(
            [
                super(SSVAE, self)._iwae(x, torch.full((len(x),), c, device=x.device), k, chunk)
                for c in range(self.classes)
            ]
        )
        return torch.logsumexp(per_label + self._log_prior_y(), dim=0)


use_objective(SSVAE, lambda model: SemiSupervisedELBO())


@register("hvae", like="vae")
class HierarchicalVAE(VAE):
    r"""A VAE with two stochastic layers, Markovian in both directions.

    .. math::
        p(z_2)\, p(z_1 \mid z_2)\, p(x \mid z_1),\qquad q(z_1 \mid x)\, q(z_2 \mid z_1)

    with :math:`p(z_2) = \mathcal N(0, I)` and diagonal Gaussian conditionals given by MLPs. The KL terms have no
    closed form, so both the fused loss and Pyro's (``Trace_ELBO``) use one Monte Carlo draw.

    Args:
        top_dim: size of :math:`z_2` (``latent_dim`` is the size of :math:`z_1`).
        top_hidden: hidden sizes of the networks between :math:`z_1` and :math:`z_2`.
        other arguments: as :class:`VAE` (standard normal prior, Gaussian posterior, unconditional).

    References: Rezende et al., 2014; Sønderby et al., 2016 (ladder VAE), arXiv:1602.02282.
    """

    _pyro_elbo = Trace_ELBO

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        kl_warmup: int = 1000,
        *,
        top_dim: int = 8,
        top_hidden: Sequence[int] = (128,),
        **kwargs: Any,
    ) -> None:
        for key in ("prior", "posterior_flow", "classes"):
            if kwargs.get(key) not in (None, "normal", 0):
                raise ValueError(
                    f"HierarchicalVAE has its own prior and posterior; {key}={kwargs[key]!r} is not supported"
                )
        super().__init__(event_shape, latent_dim, hidden, kl_warmup, **kwargs)
        self.top_dim = check_positive_int("top_dim", top_dim)
        self.top_hidden = check_hidden(top_hidden)
        self.conditional_prior = MLP(top_dim, self.top_hidden, 2 * latent_dim)  # p(z1 | z2)
        self.top_encoder = MLP(self._top_input_size(), self.top_hidden, 2 * top_dim)  # q(z2 | z1)
        self.register_buffer("_top_zeros", torch.zeros(top_dim))

    def _top_input_size(self) -> int:
        """What the top level's encoder reads: :math:`z_1`."""
        return self.latent_dim

    @staticmethod
    def _gaussian(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = h.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4

    def _top_prior(self) -> dist.TorchDistribution:
        return dist.Normal(self._top_zeros, 1.0).to_event(1)

    @property
    def _closed_form_kl(self) -> bool:
        return False

    @property
    def gaussian_posterior(self) -> bool:
        return False  # two stochastic layers

    @takes_context
    def model(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> torch.Tensor:
        pyro.module("decoder", self.decoder)
        pyro.module("prior", self.conditional_prior)
        n = len(x) if x is not None else (num_samples or 1)
        with data_plate(n):
            with poutine.scale(scale=self.kl_weight):
                z2 = pyro.sample("z2", self._top_prior())
                z1 = pyro.sample("z1", dist.Normal(*self._gaussian(self.conditional_prior(z2))).to_event(1))
            return pyro.sample("x", self._likelihood(self._decoder_out(z1, None)), obs=x)

    @takes_context
    def guide(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> None:
        if x is None:
            return
        pyro.module("encoder", self.encoder)
        pyro.module("top_encoder", self.top_encoder)
        with data_plate(len(x)):
            loc, scale, _ = self._encode(x, None)
            with poutine.scale(scale=self.kl_weight):
                z1 = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
                pyro.sample("z2", dist.Normal(*self._gaussian(self.top_encoder(z1))).to_event(1))

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loc1, scale1, _ = self._encode(x, None)
        shape = loc1.shape if particles is None else (particles, *loc1.shape)
        z1 = loc1 + _standard_normal(shape, dtype=loc1.dtype, device=loc1.device) * scale1
        loc2, scale2 = self._gaussian(self.top_encoder(z1))
        z2 = loc2 + _standard_normal(loc2.shape, dtype=loc2.dtype, device=loc2.device) * scale2
        log_q = dist.Normal(loc1, scale1).log_prob(z1).sum(-1) + dist.Normal(loc2, scale2).log_prob(z2).sum(-1)
        log_p = self._top_prior().log_prob(z2) + dist.Normal(*self._gaussian(self.conditional_prior(z2))).to_event(
            1
        ).log_prob(z1)
        return self._log_lik(self._decoder_out(z1, None), x), log_p - log_q

    def _prior(self) -> dist.TorchDistribution:
        raise NotImplementedError("the hierarchical prior is sampled by sample_latent")

    @torch.no_grad()
    def active_units_per_level(self, x: Any, threshold: float = 0.01) -> dict[str, int]:
        r"""Per stochastic level, the units whose posterior mean varies over ``x`` by more than ``threshold``
        (Burda et al., 2016): :math:`z_1` by :meth:`encode`, :math:`z_2` by the mean of its posterior at
        :math:`z_1`'s mean."""
        loc1, loc2 = self._posterior_means(self.validate(x))
        return {"z1": int((loc1.var(0) > threshold).sum()), "z2": int((loc2.var(0) > threshold).sum())}

    def _posterior_means(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc1, _, _ = self._encode(x, None)
        return loc1, self._gaussian(self.top_encoder(loc1))[0]

    @torch.no_grad()
    def sample_latent(self, n: int) -> torch.Tensor:
        """``n`` draws of :math:`z_1` from :math:`p(z_1) = \\int p(z_2) p(z_1 \\mid z_2) dz_2`, shape ``(n, L)``."""
        z2 = self._top_prior().sample((check_positive_int("n", n),))
        return dist.Normal(*self._gaussian(self.conditional_prior(z2))).sample()


@register("ladder-vae", like="hvae", defaults={"free_bits": (0.25, 0.5)})
class LadderVAE(HierarchicalVAE):
    r"""The ladder VAE (Sønderby et al., 2016): the hierarchical VAE's generative model
    :math:`p(z_2)\, p(z_1 \mid z_2)\, p(x \mid z_1)` with top-down inference that shares the generative path.

    A deterministic bottom-up pass gives each level a Gaussian "likelihood" term: :math:`(\hat\mu_1,
    \hat\sigma_1)` from :math:`x`, :math:`(\hat\mu_2, \hat\sigma_2)` from :math:`\hat\mu_1`. The posterior is
    then drawn top-down: :math:`q(z_2 \mid x) = N(\hat\mu_2, \hat\sigma_2^2)` and
    :math:`q(z_1 \mid z_2, x)` the precision-weighted merge of the bottom-up term with the generative
    conditional :math:`p(z_1 \mid z_2) = N(\mu_p, \sigma_p^2)`,

    .. math::
        \sigma_q^2 = (\hat\sigma_1^{-2} + \sigma_p^{-2})^{-1},\qquad
        \mu_q = (\hat\mu_1 \hat\sigma_1^{-2} + \mu_p \sigma_p^{-2})\, \sigma_q^2,

    so the guide reads the prior network (its parameters are the model's). The guide's sites come in the
    order :math:`z_2`, :math:`z_1`; the fused loss and Pyro's ``Trace_ELBO`` take the same draws.

    Both KL terms are in closed form, :math:`z_1`'s at the drawn :math:`z_2` (an unbiased estimate of
    :math:`\mathbb E_{q(z_2)} \mathrm{KL}(q(z_1 \mid z_2, x) \,\|\, p(z_1 \mid z_2))`), so the fused loss is
    Pyro's ``TraceMeanField_ELBO`` on the pair: guide and model both draw :math:`z_2` first.

    Args:
        free_bits: "free bits" (Kingma et al., 2016), nats per latent unit, one floor for both levels or a
            pair ``(z1, z2)``: while training, a unit whose KL, averaged over the batch, is below its floor
            counts as exactly the floor (and gets no gradient from its KL), so the top level is not switched off
            before the decoder learns to use it; 0 trains the ELBO itself, the class's default. The registered
            ``ladder-vae`` trains with ``(0.25, 0.5)``. Evaluation, validation and the Pyro path (the model and
            guide under ``TraceMeanField_ELBO``) always use the ELBO.
        other arguments: as :class:`HierarchicalVAE` (``latent_dim`` the size of :math:`z_1`, ``top_dim`` of
            :math:`z_2`).

    References: Sønderby et al., 2016, arXiv:1602.02282; Kingma et al., 2016 (free bits), arXiv:1606.04934.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        kl_warmup: int = 1000,
        *,
        top_dim: int = 8,
        top_hidden: Sequence[int] = (128,),
        free_bits: float | Sequence[float] = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, latent_dim, hidden, kl_warmup, top_dim=top_dim, top_hidden=top_hidden, **kwargs)
        pair = free_bits if isinstance(free_bits, (list, tuple)) else (free_bits, free_bits)
        if len(pair) != 2:
            raise ValueError(f"free_bits must be one number or a pair (z1, z2); got {free_bits!r}")
        self.free_bits = tuple(number("free_bits", f, 0.0) for f in pair)

    def _kl(self, q: dist.Normal, p: dist.Normal, level: int) -> torch.Tensor:
        r""":math:`\mathrm{KL}(q \,\|\, p)` summed over units, each unit's floored at its level's ``free_bits``
        (on its batch mean) while training."""
        kl = kl_divergence(q, p)
        floor = self.free_bits[level]
        if self.training and floor > 0:
            mean = kl.reshape(-1, kl.shape[-1]).mean(0)
            kl = torch.where(mean < floor, torch.full_like(kl, floor), kl)
        return kl.sum(-1)

    @staticmethod
    def merge(
        loc_a: torch.Tensor, scale_a: torch.Tensor, loc_b: torch.Tensor, scale_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The precision-weighted product of two Gaussians' densities, normalized: its mean and scale."""
        prec_a, prec_b = scale_a.pow(-2), scale_b.pow(-2)
        var = 1 / (prec_a + prec_b)
        return (loc_a * prec_a + loc_b * prec_b) * var, var.sqrt()

    def _top_input_size(self) -> int:
        r"""The deterministic path goes on from the encoder's last hidden layer (a convolutional encoder's: from
        :math:`\hat\mu_1`)."""
        if self.arch != "mlp":
            return self.latent_dim
        return self.hidden[-1] if self.hidden else self.data_dim

    def _bottom_up(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        r"""The deterministic upward pass: :math:`d_1` = the encoder's last hidden layer, :math:`(\hat\mu_1,
        \hat\sigma_1)` read from it, then :math:`d_2` and :math:`(\hat\mu_2, \hat\sigma_2)` from :math:`d_1`
        (Sønderby et al.'s Eq. 9-10). A convolutional encoder's top level reads :math:`\hat\mu_1`."""
        if self.arch != "mlp":
            loc1, scale1, _ = self._encode(x, None)
            loc2, scale2 = self._gaussian(self.top_encoder(loc1))
            return loc1, scale1, loc2, scale2
        encoder = cast("MLP", self.encoder)
        d1 = encoder.hidden_features(self._encoder_input(x))
        out = encoder[-1](d1)
        L = self.latent_dim
        loc2, scale2 = self._gaussian(self.top_encoder(d1))
        return out[..., :L], F.softplus(out[..., L : 2 * L]) + 1e-4, loc2, scale2

    @takes_context
    def guide(
        self, x: torch.Tensor | None = None, y: torch.Tensor | None = None, num_samples: int | None = None
    ) -> None:
        if x is None:
            return
        pyro.module("encoder", self.encoder)
        pyro.module("top_encoder", self.top_encoder)
        pyro.module("prior", self.conditional_prior)  # the top-down pass shares the generative path
        with data_plate(len(x)):
            loc1, scale1, loc2, scale2 = self._bottom_up(x)
            with poutine.scale(scale=self.kl_weight):
                z2 = pyro.sample("z2", dist.Normal(loc2, scale2).to_event(1))
                loc_q, scale_q = self.merge(loc1, scale1, *self._gaussian(self.conditional_prior(z2)))
                pyro.sample("z1", dist.Normal(loc_q, scale_q).to_event(1))

    _pyro_elbo = TraceMeanField_ELBO

    @property
    def _closed_form_kl(self) -> bool:
        return True  # both levels' KL, z1's at the drawn z2: guide and model both sample z2 first

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        loc1, scale1, loc2, scale2 = self._bottom_up(x)
        shape = loc2.shape if particles is None else (particles, *loc2.shape)
        z2 = loc2 + _standard_normal(shape, dtype=loc2.dtype, device=loc2.device) * scale2
        loc_p, scale_p = self._gaussian(self.conditional_prior(z2))
        loc_q, scale_q = self.merge(loc1, scale1, loc_p, scale_p)
        z1 = loc_q + _standard_normal(loc_q.shape, dtype=loc_q.dtype, device=loc_q.device) * scale_q
        if analytic:  # E_q(z2)[KL(q(z1 | z2, x) || p(z1 | z2))] by the one draw of z2, plus KL(q(z2 | x) || p(z2))
            kl1 = self._kl(dist.Normal(loc_q, scale_q), dist.Normal(loc_p, scale_p), 0)
            kl2 = self._kl(dist.Normal(loc2, scale2), dist.Normal(torch.zeros_like(loc2), torch.ones_like(scale2)), 1)
            return self._log_lik(self._decoder_out(z1, None), x), -(kl1 + kl2)
        log_q = dist.Normal(loc2, scale2).log_prob(z2).sum(-1) + dist.Normal(loc_q, scale_q).log_prob(z1).sum(-1)
        log_p = self._top_prior().log_prob(z2) + dist.Normal(loc_p, scale_p).log_prob(z1).sum(-1)
        return self._log_lik(self._decoder_out(z1, None), x), log_p - log_q

    @takes_context
    def encode(self, x: Any, y: object = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and scale of :math:`q(z_1 \\mid z_2, x)` at :math:`z_2`'s posterior mean, each ``(n, L)``."""
        x, _ = self._inputs(x, y)
        loc1, scale1, loc2, _ = self._bottom_up(x)
        return self.merge(loc1, scale1, *self._gaussian(self.conditional_prior(loc2)))

    def _posterior_means(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc2 = self._bottom_up(x)[2]
        return self.encode(x)[0], loc2
