r"""Diffusion and score models: DDPM (with DDIM sampling), NCSN and score SDEs.

- ``ddpm`` -- a Markovian hierarchical latent-variable model whose encoder is fixed (Ho et al., 2020):
  the guide is the forward chain :math:`q(x_{1:T} \mid x_0)` (in its posterior factorization
  :math:`q(x_T \mid x_0)\prod_t q(x_{t-1} \mid x_t, x_0)`), the model the learned reverse chain
  :math:`p(x_T)\prod_t p_\theta(x_{t-1} \mid x_t)` with a decoder :math:`p_\theta(x_0 \mid x_1)` (a Gaussian
  discretized to the data's bins for dequantized images). ``TraceMeanField_ELBO`` on the pair is the
  closed-form bound -- the prior-matching, consistency and reconstruction terms; the :math:`\epsilon`-loss
  is its reweighted fast path. Sampled by the ancestral chain or by DDIM with any number of steps.
- ``ncsn`` -- a noise-conditional score network :math:`s_\theta(x, \sigma)` trained by denoising score matching
  over geometric noise levels, sampled by annealed Langevin dynamics (Song and Ermon, 2019).
- ``score-sde`` -- the continuous-time score model of a VP, sub-VP or VE SDE (Song et al., 2021), sampled by
  Euler-Maruyama, predictor-corrector or the probability-flow ODE, with the exact log-likelihood through
  that ODE (``density == "exact"``).

All three share :class:`DiffusionModel`: the denoising network of :mod:`pyrogen.nn.diffusion` (an MLP for
vectors, a U-Net for images), an affine map of the data to a standardized space (images to
:math:`[-1, 1]`), an exponential moving average of the weights for sampling and evaluation, and optional class
conditioning with classifier-free guidance (``classes``, ``p_uncond``; ``sample(n, y=..., guidance=w)``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyrogen.checks import choice as _choice
from pyrogen.checks import integer, number
from pyrogen.data import Dataset
from pyrogen.data import captions as _captions
from pyrogen.data.batch import as_batch, split_context
from pyrogen.distributions.discretized import DiscretizedNormal
from pyrogen.distributions.energy import NumericalDensity
from pyrogen.inference import diffusion as D
from pyrogen.inference.diffusion import Denoising
from pyrogen.inference.hooks import EMA
from pyrogen.inference.objectives import MaximumLikelihood, Part, Phases, objective_for, use_objective
from pyrogen.inference.program import data_plate, refuse_frozen_in_svi
from pyrogen.inference.samplers import AnnealedLangevin, Chains
from pyrogen.inference.schedules import PARAMETRIZATIONS, SCHEDULES, SDES, NoiseSchedule, geometric_sigmas, make_sde
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_dropout,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
    takes_context,
)
from pyrogen.models.registry import Recipe, continuous_support, register
from pyrogen.nn.diffusion import DENOISER_ARCHS, DenoisingMLP, DenoisingUNet

__all__ = ["DDPM", "FFJORD", "NCSN", "DiffusionModel", "FlowMatching", "LatentDiffusion", "ScoreSDE", "TextDiffusion"]


def _number(name: str, v: object, lo: float = 0.0, strict: bool = True) -> float:
    return number(name, v, lo, strict=strict)


def _largest_distance(data: Dataset) -> float:
    """The largest distance between (up to 2000) training examples in the diffusion's space (the data map of
    :meth:`DiffusionModel.from_dataset`): the largest noise level (Song and Ermon, 2020, technique 1)."""
    scale = 0.5 if data.kind == "image" else float(data.train.std())
    x = data.train[:2000].flatten(1) / scale
    return round(float(torch.cdist(x, x).max()), 2)


def _diffusion_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A model for ``data``: a U-Net mapping images to :math:`[-1, 1]`, an MLP for vectors standardized by
    the training data's standard deviation.

    Raises:
        ValueError: discrete data (use the dequantized ``digits``).
    """
    kwargs = continuous_support(recipe, data, kwargs, hint="use the dequantized 'digits'")
    if data.kind == "image":
        kwargs.setdefault("shift", 0.5)
        kwargs.setdefault("scale", 0.5)
    else:
        kwargs.setdefault("shift", 0.0)
        kwargs.setdefault("scale", round(float(data.train.std()), 4))
    return kwargs


def _diffusion_train(data: Dataset) -> dict[str, Any]:
    """Vectors: 10000 steps of batch 256 at lr 1e-3; 8 x 8 images: 8000 steps of batch 128 at lr 5e-4, 28 x 28 ones
    4000 steps of batch 64 (a step of the U-Net on 128 MNIST digits takes 0.9 s on one core); validation every
    1000 steps on a fixed draw of noise (the best EMA weights kept)."""
    if data.kind == "image" and math.prod(data.event_shape) > 256:
        return {"lr": 5e-4, "batch_size": 64, "steps": 4000, "val_every": 1000}
    if data.kind == "image":
        return {"lr": 5e-4, "batch_size": 128, "steps": 8000, "val_every": 1000}
    return {"lr": 1e-3, "batch_size": 256, "steps": 10000, "val_every": 1000}


#: What the family's recipes share.
_RECIPE: dict[str, Any] = {"family": "diffusion", "data": "8gaussians", "train": _diffusion_train}


class DiffusionModel(GenerativeModel):
    r"""What the diffusion family shares: the denoising network, the data map, the EMA and the conditioning.

    Args:
        event_shape: the shape of one example.
        arch: ``"mlp"`` (vectors) or ``"unet"`` (images; the default for 3-D events).
        hidden: the MLP's widths; features: the U-Net's channels; emb_dim: the embedding's width.
        support: ``"real"`` or ``"unit_interval"``.
        shift, scale: the data map :math:`x \mapsto (x - \text{shift}) / \text{scale}` into the space the
            diffusion runs in (set from the data by :meth:`from_dataset`: images to :math:`[-1, 1]`, vectors
            to unit variance).
        classes: labels to condition on (0: unconditional); then the training data are
            ``(examples, labels)`` and a label is dropped with probability ``p_uncond`` (classifier-free
            guidance, Ho and Salimans, 2021).
        ema: decay of the weights' moving average used to sample and evaluate (``None``: the raw weights).
    """

    #: what :meth:`sample` keywords the CLI's ``pyrogen sample`` may pass

    def __init__(
        self,
        event_shape: Sequence[int],
        arch: str | None = None,
        hidden: Sequence[int] = (128, 128, 128),
        features: int = 32,
        emb_dim: int = 64,
        support: str = "real",
        shift: float = 0.0,
        scale: float = 1.0,
        classes: int = 0,
        p_uncond: float = 0.1,
        ema: float | None = 0.999,
        _space: Sequence[int] | None = None,
    ) -> None:
        super().__init__(event_shape)
        #: the shape the diffusion runs in: the data's, or a latent code's (latent diffusion)
        self.space_shape = torch.Size(self.event_shape if _space is None else _space)
        arch = ("unet" if len(self.space_shape) == 3 else "mlp") if arch is None else arch
        self.arch = _choice("arch", arch, DENOISER_ARCHS)
        self.support = _choice("support", support, ("real", "unit_interval"))
        self.hidden, self.features = check_hidden(hidden), check_positive_int("features", features)
        self.emb_dim = check_positive_int("emb_dim", emb_dim)
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even; got {emb_dim!r}")
        self.shift, self.scale = _number("shift", shift, -math.inf), _number("scale", scale)
        if isinstance(classes, bool) or not isinstance(classes, int) or classes < 0 or classes == 1:
            raise ValueError(f"classes must be 0 (unconditional) or an integer >= 2; got {classes!r}")
        self.classes = classes
        self.labelled = classes > 0
        self.p_uncond = check_dropout(p_uncond, "p_uncond")
        if ema is not None and (isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0 <= ema < 1):
            raise ValueError(f"ema must be a decay in [0, 1) or None; got {ema!r}")
        self.ema_decay = None if ema is None else float(ema)
        self.net: nn.Module = self._denoiser()
        self.ema = EMA(self.net, self.ema_decay) if self.ema_decay is not None else None

    # -- the data map and the network -----------------------------------------------------------------------
    def _denoiser(self) -> nn.Module:
        """The denoising network ``net(z, c, y)`` over :attr:`space_shape`."""
        if self.arch == "unet":
            return DenoisingUNet(self.space_shape, self.features, self.emb_dim, self.classes)
        return DenoisingMLP(math.prod(self.space_shape), self.hidden, self.emb_dim, self.classes)

    def _ref(self) -> torch.Tensor:
        return next(self.net.parameters())

    def to_latent_space(self, x: torch.Tensor) -> torch.Tensor:
        r"""The data in the diffusion's space, :math:`(x - \text{shift}) / \text{scale}`."""
        return (x - self.shift) / self.scale

    def to_data_space(self, z: torch.Tensor) -> torch.Tensor:
        return self.shift + self.scale * z

    def _split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, y = split_context(batch, bool(self.classes), type(self).__name__)
        return x, None if y is None else y.to(x.device).long()

    def _labels(self, y: object, n: int) -> torch.Tensor | None:
        if y is None:
            return None
        if not self.classes:
            raise ValueError(f"{type(self).__name__} is unconditional; got labels y")
        ref = self._ref()
        if isinstance(y, int) and not isinstance(y, bool):
            y = torch.full((n,), y, dtype=torch.long, device=ref.device)
        if not isinstance(y, torch.Tensor) or y.shape != (n,) or y.is_floating_point():
            raise ValueError(f"y must be a label or an integer tensor of shape ({n},); got {y!r}")
        if ((y < 0) | (y >= self.classes)).any():
            raise ValueError(f"y must hold classes in 0..{self.classes - 1}; got {y.tolist()}")
        return y.to(ref.device).long()

    def _drop_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if y is None or not self.p_uncond or not self.training:
            return y
        drop = torch.rand(len(y), device=y.device) < self.p_uncond
        return torch.where(drop, torch.full_like(y, self.classes), y)

    def _net(self, z: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None, averaged: bool = False) -> torch.Tensor:
        if not averaged or self.ema is None:
            return self.net(z, c, y)
        return self.ema.call(z, c, y)

    def _guided(
        self, z: torch.Tensor, c: torch.Tensor, y: torch.Tensor | None, guidance: float, averaged: bool = True
    ) -> torch.Tensor:
        r"""The network's output with classifier-free guidance :math:`(1 + w)\,o(z, y) - w\,o(z, \varnothing)`."""
        out = self._net(z, c, y, averaged)
        if y is None or not guidance:
            return out
        return (1 + guidance) * out - guidance * self._net(z, c, None, averaged)

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        was = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was)

    @contextlib.contextmanager
    def _sampling(self) -> Iterator[None]:
        """Eval mode, no gradients, and the EMA weights copied into the network for the block (one copy, not a
        ``functional_call`` per step: the samplers call the network hundreds of times)."""
        averaged: contextlib.AbstractContextManager[Any] = (
            self.ema.averaged() if self.ema is not None else contextlib.nullcontext()
        )
        with torch.no_grad(), self._evaluating(), averaged:
            yield

    def _finish(self, z: torch.Tensor) -> torch.Tensor:
        x = self.to_data_space(z)
        return x.clamp(0, 1) if self.support == "unit_interval" else x

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        """The family's denoising loss per example on a (trusted) batch, the weights' average with ``averaged``
        (what :class:`~pyrogen.inference.diffusion.Denoising` trains)."""
        raise NotImplementedError

    def _start(self, n: int, std: float = 1.0) -> torch.Tensor:
        ref = self._ref()
        return torch.randn(n, *self.space_shape, dtype=ref.dtype, device=ref.device) * std

    def _check_guidance(self, guidance: object) -> float:
        g = _number("guidance", guidance, 0.0, strict=False)
        if g and not self.classes:
            raise ValueError(f"guidance needs a class-conditional model; {type(self).__name__} has classes=0")
        return g


def _ddpm_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """As :meth:`DiffusionModel.from_dataset`; dequantized images get the discretized decoder of their
    levels and :math:`\\hat x_0` clipped to the data's range while sampling."""
    if data.kind == "image" and data.support == "unit_interval":
        if data.dequantized:
            kwargs.setdefault("levels", data.levels)
        kwargs.setdefault("clip", 1.0)
    return _diffusion_choices(recipe, data, kwargs)


@register("ddpm", **{**_RECIPE, "choices": _ddpm_choices, "sample_options": ("sampler", "steps", "eta", "guidance")})
class DDPM(DiffusionModel):
    r"""Denoising diffusion probabilistic model (Ho et al., 2020) as a Pyro model/guide pair.

    Args:
        timesteps: :math:`T`.
        schedule: the :math:`\beta` schedule, ``"linear"`` or ``"cosine"``.
        parametrization: what the network predicts: ``"eps"``, ``"x0"`` or ``"v"``.
        objective: ``"simple"`` -- the mean squared error of the prediction at a uniform :math:`t`
            (Ho et al.'s :math:`L_{simple}` for ``eps``) -- or ``"vlb"`` -- an unbiased one-step estimate of
            the negative variational bound in nats, :math:`T\,L_{t-1}` at a uniform :math:`t` plus :math:`L_T`.
        sampler: the default of :meth:`sample`, ``"ancestral"`` or ``"ddim"``; sample_steps, eta: DDIM's.
        levels: the bins of dequantized data (the decoder is then a discretized Gaussian); ``None``: a
            Gaussian decoder on real data.
        clip: clip :math:`\hat x_0` to :math:`[-c, c]` while sampling (images: 1, the data space's edge).
    """

    #: the likelihood reported is the variational bound itself (no importance sampling over chains)
    bound_only: ClassVar[bool] = True

    def __init__(
        self,
        event_shape: Sequence[int],
        timesteps: int = 1000,
        schedule: str = "linear",
        parametrization: str = "eps",
        objective: str = "simple",
        sampler: str = "ancestral",
        sample_steps: int = 50,
        eta: float = 0.0,
        levels: int | None = None,
        clip: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.timesteps = check_positive_int("timesteps", timesteps)
        self.schedule_name = _choice("schedule", schedule, SCHEDULES)
        self.schedule = NoiseSchedule.make(schedule, timesteps)
        self.parametrization = _choice(
            "parametrization", parametrization, [p for p in PARAMETRIZATIONS if p != "score"]
        )
        self.objective = _choice("objective", objective, ("simple", "vlb"))
        self.sampler = _choice("sampler", sampler, ("ancestral", "ddim"))
        self.sample_steps = check_positive_int("sample_steps", sample_steps)
        self.eta = _number("eta", eta, strict=False)
        if levels is not None:
            check_positive_int("levels", levels)
            if levels < 2 or self.support != "unit_interval":
                raise ValueError(f"levels (a discretized decoder) needs unit-interval data and >= 2; got {levels!r}")
        self.levels_ = levels
        self.clip = None if clip is None else _number("clip", clip)

    def to_latent_space(self, x: torch.Tensor) -> torch.Tensor:
        r"""The data in the diffusion's space; with ``levels``, first the centre :math:`(k + \tfrac12)/L` of each
        value's bin: the chain then models the discrete data (as Ho et al.'s on 8-bit images), which the
        discretized decoder scores. (Diffusing the dequantization noise itself would leave the finest noise levels
        to model uniform noise inside the bins, and the bound pays for it at every small :math:`t`.)"""
        if self.levels_ is not None:
            x = ((x * self.levels_).floor().clamp(0, self.levels_ - 1) + 0.5) / self.levels_
        return (x - self.shift) / self.scale

    # -- the reverse chain --------------------------------------------------------------------------------------
    def _c(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self._ref().dtype) * (1000.0 / self.timesteps)

    @takes_context
    def eps(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        guidance: float = 0.0,
        averaged: bool = True,
    ) -> torch.Tensor:
        r""":math:`\hat\epsilon_\theta(z_t, t)` in the diffusion's space, whatever the network predicts."""
        out = self._guided(z, self._c(t), y, guidance, averaged)
        return self.schedule.to_eps(out, z, t, self.parametrization)

    def _x0(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, averaged: bool) -> torch.Tensor:
        return self.schedule.eps_to_x0(self.eps(z, t, y, averaged=averaged), z, t)

    def _decoder(self, x0_hat: torch.Tensor) -> dist.TorchDistribution:
        """:math:`p_\\theta(x_0 \\mid x_1)` in data space: :math:`N(\\hat x_0, \\beta_1)` mapped to the data,
        discretized to the bins when there are ``levels``."""
        loc = self.to_data_space(x0_hat)
        scale = self.scale * math.sqrt(float(self.schedule.betas[1]))
        d = len(self.event_shape)
        if self.levels_ is not None:
            return DiscretizedNormal(loc, torch.full_like(loc, scale), self.levels_, event_dim=d)
        return dist.Normal(loc, scale).to_event(d)

    def _term(
        self,
        x: torch.Tensor,
        z0: torch.Tensor,
        zt: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None,
        averaged: bool,
    ) -> torch.Tensor:
        r"""Per example: :math:`L_{t-1} = \mathrm{KL}(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t))`
        where :math:`t \ge 2` and :math:`L_0 = -\log p_\theta(x_0 \mid x_1)` where :math:`t = 1`."""
        x0_hat = self._x0(zt, t, y, averaged)
        first = t == 1
        out = torch.zeros(len(x), dtype=zt.dtype, device=zt.device)
        if first.any():
            out = torch.where(first, -self._decoder(x0_hat).log_prob(x), out)
        if (~first).any():
            tt = t.clamp_min(2)
            mean_q, var = self.schedule.posterior(z0, zt, tt)
            mean_p, _ = self.schedule.posterior(x0_hat, zt, tt)
            kl = ((mean_q - mean_p) ** 2 / (2 * var)).flatten(1).sum(-1)
            out = torch.where(first, out, kl)
        return out

    def prior_kl(self, z0: torch.Tensor) -> torch.Tensor:
        r""":math:`L_T = \mathrm{KL}(q(x_T \mid x_0) \,\|\, N(0, I))` per example (no parameter)."""
        t = torch.full((len(z0),), self.timesteps, dtype=torch.long, device=z0.device)
        mean, std = self.schedule.q_moments(z0, t)
        var = std**2
        return 0.5 * (var + mean**2 - 1 - var.log()).flatten(1).sum(-1)

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        x, y = self._split(batch)
        y = self._drop_labels(y)
        z0 = self.to_latent_space(x)
        t = torch.randint(1, self.timesteps + 1, (len(x),), device=x.device)
        eps = torch.randn_like(z0)
        zt = self.schedule.q_sample(z0, t, eps)
        if self.objective == "vlb":
            return self.timesteps * self._term(x, z0, zt, t, y, averaged) + self.prior_kl(z0)
        out = self._net(zt, self._c(t), y, averaged)
        target = self.schedule.from_eps(eps, zt, t, self.parametrization)
        return (out - target).pow(2).flatten(1).mean(-1)

    # -- the bound ---------------------------------------------------------------------------------------------
    @takes_context
    @accepts_unbatched(label=0)
    def elbo(self, x: torch.Tensor, y: object = None) -> torch.Tensor:
        r"""The variational bound on :math:`\log p(x)` in nats, per example, with every term in closed form:
        :math:`-L_T - \sum_{t \ge 2} L_{t-1} - L_0`, each :math:`L_{t-1}` at its own draw of
        :math:`x_t \sim q(x_t \mid x_0)` (Ho et al., 2020, Appendix), EMA weights. :math:`T` network evaluations
        per example."""
        if isinstance(x, tuple):  # (examples, labels) of a conditional model
            x, y = x
        x = self.validate(x)
        labels = self._labels(y, len(x))
        z0 = self.to_latent_space(x)
        with torch.no_grad(), self._evaluating():
            total = -self.prior_kl(z0)
            for step in range(1, self.timesteps + 1):
                t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
                zt = self.schedule.q_sample(z0, t)
                total = total - self._term(x, z0, zt, t, labels, averaged=True)
        return total

    def log_likelihood(self, x: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """The variational bound (:meth:`elbo`; ``k`` is not used: DDPM's bound is reported as it is)."""
        return self.elbo(x)

    def iwae(self, x: torch.Tensor, k: int = 1) -> torch.Tensor:
        """Not estimated: importance sampling over whole chains of :math:`T` steps is out of reach."""
        raise NotImplementedError("DDPM reports its variational bound: use elbo(x)")

    # -- the Pyro program -------------------------------------------------------------------------------------
    @takes_context
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        r"""The reverse chain: :math:`x_T \sim N(0, I)`, :math:`x_{t-1} \sim N(\mu_\theta(x_t, t), \tilde\beta_t I)`
        for :math:`t = T, \dots, 2` (sites ``x_T``, ..., ``x_1``, in the diffusion's space), and the decoder
        ``x_0`` observed at ``x`` in data space. In eval mode the network runs with the EMA weights, those of
        :meth:`sample` and :meth:`elbo`; in training mode with its own (what ``SVI`` updates)."""
        pyro.module(self._param_store_name(), self)
        if self.ema is not None:
            refuse_frozen_in_svi(self)
        averaged = not self.training
        n = 1 if x is None else len(x)
        ref = self._ref()
        d = len(self.space_shape)
        with data_plate(n):
            z = pyro.sample(
                f"x_{self.timesteps}",
                dist.Normal(torch.zeros(n, *self.space_shape, dtype=ref.dtype, device=ref.device), 1.0).to_event(d),
            )
            for step in range(self.timesteps, 1, -1):
                t = torch.full((n,), step, dtype=torch.long, device=ref.device)
                mean, var = self.schedule.posterior(self._x0(z, t, y, averaged), z, t)
                z = pyro.sample(f"x_{step - 1}", dist.Normal(mean, var.sqrt()).to_event(d))
            t1 = torch.ones(n, dtype=torch.long, device=ref.device)
            return pyro.sample("x_0", self._decoder(self._x0(z, t1, y, averaged)), obs=x)

    @takes_context
    def guide(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
        r"""The fixed forward chain in its posterior factorization: :math:`x_T \sim q(x_T \mid x_0)`, then
        :math:`x_{t-1} \sim q(x_{t-1} \mid x_t, x_0)` -- no parameters."""
        if x is None:
            raise ValueError("the guide conditions on the data: give x")
        z0 = self.to_latent_space(x)
        d = len(self.space_shape)
        with data_plate(len(x)):
            t = torch.full((len(x),), self.timesteps, dtype=torch.long, device=x.device)
            mean, std = self.schedule.q_moments(z0, t)
            z = pyro.sample(f"x_{self.timesteps}", dist.Normal(mean, std.expand_as(mean)).to_event(d))
            for step in range(self.timesteps, 1, -1):
                t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
                mean, var = self.schedule.posterior(z0, z, t)
                z = pyro.sample(f"x_{step - 1}", dist.Normal(mean, var.sqrt().expand_as(mean)).to_event(d))

    def chain_bound(self, batch: Any) -> torch.Tensor:
        """Minus the variational bound per example on one chain drawn backwards from :math:`q(x_T \\mid x_0)`
        through the posteriors: what Pyro's ``TraceMeanField_ELBO`` computes on :meth:`model` and :meth:`guide`
        (the same draws on the same seed; :class:`~pyrogen.inference.diffusion.DiffusionELBO`)."""
        x, y = self._split(self._checked_batch(batch))
        averaged = not self.training  # as model() does
        z0 = self.to_latent_space(x)
        t = torch.full((len(x),), self.timesteps, dtype=torch.long, device=x.device)
        mean, std = self.schedule.q_moments(z0, t)
        z = dist.Normal(mean, std.expand_as(mean)).rsample()
        total = self.prior_kl(z0)
        for step in range(self.timesteps, 1, -1):
            t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
            total = total + self._term(x, z0, z, t, y, averaged)
            mean, var = self.schedule.posterior(z0, z, t)
            z = dist.Normal(mean, var.sqrt().expand_as(mean)).rsample()
        t1 = torch.ones(len(x), dtype=torch.long, device=x.device)
        return total + self._term(x, z0, z, t1, y, averaged)

    # -- sampling -------------------------------------------------------------------------------------------
    @takes_context
    def reverse_chain(
        self,
        n: int,
        y: object = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float = 0.0,
        record_every: int = 0,
    ) -> Chains:
        """The reverse chains of :meth:`sample` (in the diffusion's space), their positions recorded every
        ``record_every`` steps and at the end, for ``chains.to_inference_data()``."""
        check_positive_int("n", n)
        sampler = _choice("sampler", self.sampler if sampler is None else sampler, ("ancestral", "ddim"))
        labels = self._labels(y, n)
        g = self._check_guidance(guidance)

        def eps_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.eps(z, t, labels, g, averaged=False)  # the EMA weights are in the network (_sampling)

        with self._sampling():
            start = self._start(n)
            if sampler == "ancestral":
                if steps is not None and steps != self.timesteps:
                    raise ValueError(f"the ancestral sampler takes all {self.timesteps} steps; got steps={steps}")
                return D.ancestral(eps_fn, self.schedule, start, clip=self.clip, record_every=record_every)
            return D.ddim(
                eps_fn,
                self.schedule,
                start,
                steps=self.sample_steps if steps is None else steps,
                eta=self.eta if eta is None else eta,
                clip=self.clip,
                record_every=record_every,
            )

    @takes_context
    def sample(
        self,
        n: int,
        y: object = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float = 0.0,
    ) -> torch.Tensor:
        """``n`` draws in data space: the ancestral chain (all :math:`T` steps) or DDIM (``steps``, ``eta``);
        ``y`` a label for a conditional model, ``guidance`` :math:`w` of classifier-free guidance."""
        chains = self.reverse_chain(n, y, sampler, steps, eta, guidance)
        return self._finish(chains.samples[:, -1])

    @takes_context
    def inpaint(
        self, x: torch.Tensor, known: torch.Tensor, method: str = "repaint", resample: int = 5, y: object = None
    ) -> torch.Tensor:
        r"""Fill in the unknown part of ``x`` (``known`` a boolean mask broadcastable to ``x``, True where
        observed) by the reverse chain with the known part replaced, at every step, by a draw of
        :math:`q(x_{t-1} \mid x_0)` (``method="replace"``), and also going back and forth ``resample`` times
        per step (one forward step :math:`q(x_t \mid x_{t-1})` after each reverse one; ``"repaint"``, Lugmayr
        et al., 2022), which lets the generated part agree with the known one."""
        x = self.validate(x)
        method = _choice("method", method, ("replace", "repaint"))
        rounds = 1 if method == "replace" else check_positive_int("resample", resample)
        if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
            raise ValueError("known must be a boolean tensor, True where x is observed")
        try:
            known = torch.broadcast_to(known.to(x.device), x.shape)
        except RuntimeError:
            raise ValueError(f"known must broadcast to x's shape {tuple(x.shape)}; got {tuple(known.shape)}") from None
        labels = self._labels(y, len(x))
        scheduler = D.RePaintScheduler(self.schedule, self.to_latent_space(x), known, rounds, clip=self.clip)
        with self._sampling():
            chains = D.run_scheduler(
                lambda z, t: self.eps(z, t, labels, averaged=False), scheduler, self._start(len(x))
            )
        return torch.where(known, x, self._finish(chains.samples[:, -1]))


def _ncsn_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "sigma_max" not in kwargs and data.support in ("real", "unit_interval"):
        kwargs["sigma_max"] = _largest_distance(data)
    return _diffusion_choices(recipe, data, kwargs)


@register("ncsn", **{**_RECIPE, "choices": _ncsn_choices, "sample_options": ("steps",)})
class NCSN(DiffusionModel):
    r"""Noise-conditional score network (Song and Ermon, 2019, 2020): :math:`s_\theta(x, \sigma) = o(x, \log\sigma)
    / \sigma` trained by denoising score matching over ``num_scales`` geometric noise levels from
    ``sigma_max`` (set from the data by :meth:`from_dataset`: the largest distance between training examples,
    Song and Ermon 2020's technique 1) to ``sigma_min``, weighted by :math:`\sigma^2`:
    :math:`\tfrac12\lVert \sigma s_\theta(x + \sigma z, \sigma) + z\rVert^2`; sampled by annealed Langevin
    dynamics (``steps_per_level`` steps of size :math:`\epsilon\,\sigma_i^2/\sigma_L^2`, ``step_eps``
    :math:`\epsilon`) with a last denoising step."""

    def __init__(
        self,
        event_shape: Sequence[int],
        sigma_max: float = 4.0,
        sigma_min: float = 0.01,
        num_scales: int = 20,
        steps_per_level: int = 100,
        step_eps: float = 2e-5,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.sigmas = geometric_sigmas(sigma_max, sigma_min, num_scales)
        self.sigma_max, self.sigma_min, self.num_scales = float(sigma_max), float(sigma_min), num_scales
        self.steps_per_level = check_positive_int("steps_per_level", steps_per_level)
        self.step_eps = _number("step_eps", step_eps)

    @takes_context
    def score(
        self,
        z: torch.Tensor,
        sigma: torch.Tensor,
        y: torch.Tensor | None = None,
        guidance: float = 0.0,
        averaged: bool = True,
    ) -> torch.Tensor:
        r""":math:`s_\theta(z, \sigma)` in the diffusion's space (EMA weights), ``sigma`` ``(n,)``."""
        s = sigma.to(z).reshape(-1, *([1] * (z.dim() - 1)))
        return self._guided(z, sigma.to(z).log(), y, guidance, averaged) / s

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        x, y = self._split(batch)
        y = self._drop_labels(y)
        z0 = self.to_latent_space(x)
        idx = torch.randint(0, self.num_scales, (len(x),))
        sigma = self.sigmas[idx].to(z0)
        s = sigma.reshape(-1, *([1] * (z0.dim() - 1)))
        noise = torch.randn_like(z0)
        out = self._net(z0 + s * noise, sigma.log(), y, averaged)  # = sigma * score
        return 0.5 * (out + noise).pow(2).flatten(1).sum(-1) / math.prod(self.event_shape)

    @takes_context
    def reverse_chain(
        self, n: int, y: object = None, steps: int | None = None, guidance: float = 0.0, record_every: int = 0
    ) -> Chains:
        """Annealed Langevin chains from :math:`N(0, \\sigma_{max}^2 I)`; ``steps`` per noise level."""
        check_positive_int("n", n)
        labels = self._labels(y, n)
        g = self._check_guidance(guidance)
        per_level = self.steps_per_level if steps is None else check_positive_int("steps", steps)
        sampler = AnnealedLangevin(
            lambda z, sigma: self.score(z, sigma, labels, g, averaged=False),
            self.sigmas,
            per_level,
            self.step_eps,
            denoise=True,
        )
        with self._sampling():
            return sampler.run(self._start(n, self.sigma_max), record_every=record_every)

    @takes_context
    def sample(self, n: int, y: object = None, steps: int | None = None, guidance: float = 0.0) -> torch.Tensor:
        """``n`` draws in data space by annealed Langevin dynamics (``steps`` per level)."""
        return self._finish(self.reverse_chain(n, y, steps, guidance).samples[:, -1])


def _sde_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if kwargs.get("sde") == "ve" and "sigma_max" not in kwargs:
        kwargs["sigma_max"] = _largest_distance(data)
    return _diffusion_choices(recipe, data, kwargs)


class _ODEDensity(DiffusionModel):
    """What the score SDE and flow matching share: an exact density through an ODE between a prior and the data,
    by the instantaneous change of variables (:func:`~pyrogen.inference.diffusion.probability_flow_log_prob`):
    ``log_prob``, ``as_distribution`` and the Pyro program. A subclass gives the ODE (:meth:`_ode`).

    Args:
        ode_tol: the ODE solver's relative and absolute tolerance.
        exact_trace_max: the largest dimension for which the divergence is exact (Hutchinson's estimator above).
    """

    def __init__(
        self, event_shape: Sequence[int], ode_tol: float = 1e-5, exact_trace_max: int = 16, **kwargs: Any
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.ode_tol = _number("ode_tol", ode_tol)
        self.exact_trace_max = check_positive_int("exact_trace_max", exact_trace_max)

    def _ode(self, averaged: bool) -> tuple[D.ScoreFn, Any, float]:
        """The field the probability-flow solver integrates (``(z, t) -> out``, ``t`` from 1 at the prior to the
        data), the ODE (``reverse_drift``, ``prior_log_prob``) and the time the data sit at."""
        raise NotImplementedError

    @accepts_unbatched(label=0)
    def log_prob(
        self, x: torch.Tensor, trace: str | None = None, probes: int = 1, differentiable: bool = False
    ) -> torch.Tensor:
        r""":math:`\log p_\theta(x)` in nats through the ODE (the density of the data where the ODE
        ends); ``trace`` ``"exact"`` or ``"hutchinson"`` (default: exact up to
        ``exact_trace_max`` dimensions). The EMA weights; with ``differentiable``, the raw weights and the graph
        through the solver (gradients in the parameters)."""
        return self._log_prob(self.validate(x), trace, probes, differentiable)

    def _log_prob(
        self,
        x: torch.Tensor,
        trace: str | None,
        probes: int,
        differentiable: bool,
        averaged: bool | None = None,
        tol: float | None = None,
    ) -> torch.Tensor:
        d = math.prod(self.event_shape)
        tol = self.ode_tol if tol is None else tol
        trace = ("exact" if d <= self.exact_trace_max else "hutchinson") if trace is None else trace
        averaged = not differentiable if averaged is None else averaged
        field, ode, t_min = self._ode(averaged)
        with self._evaluating():
            lp, _ = D.probability_flow_log_prob(
                field,
                ode,
                self.to_latent_space(x),
                t_min=t_min,
                trace=trace,
                probes=probes,
                rtol=tol,
                atol=tol,
                differentiable=differentiable,
            )
        lp = lp if differentiable else lp.detach()
        return lp - d * math.log(self.scale)

    @frozen_unless_trainable
    def as_distribution(self) -> NumericalDensity:
        """:class:`~pyrogen.distributions.NumericalDensity`: ``log_prob`` through the probability-flow ODE
        (differentiable; in eval mode with the EMA weights, those of :meth:`sample` and :meth:`log_prob`, in
        training mode with the raw ones), ``sample`` by :meth:`sample`."""
        from torch.distributions import constraints

        support = constraints.unit_interval if self.support == "unit_interval" else constraints.real
        averaged = not self.training
        return NumericalDensity(
            lambda x: self._log_prob(x, None, 1, True, averaged), self.sample, self.event_shape, support=support
        )

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """A Pyro program: ``x`` observed under :meth:`as_distribution`."""
        pyro.module(self._param_store_name(), self)
        if self.ema is not None:
            refuse_frozen_in_svi(self)
        n = 1 if x is None else len(x)
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(), obs=x)


@register("score-sde", **{**_RECIPE, "choices": _sde_choices, "sample_options": ("sampler", "steps", "guidance")})
class ScoreSDE(_ODEDensity):
    r"""A score model of a forward SDE (Song et al., 2021): ``sde`` ``"vp"`` (DDPM's limit), ``"subvp"`` or
    ``"ve"`` (NCSN's limit). The network predicts the noise, :math:`s_\theta(x, t) = -o(x, t) / \sigma(t)`,
    trained by denoising score matching with :math:`\lambda(t) = \sigma(t)^2` at :math:`t \sim U(10^{-5}, 1)`.

    The probability-flow ODE makes it a density: :meth:`log_prob` is the exact log-likelihood through the ODE
    (adaptive ``dopri5`` at tolerance ``ode_tol``), its divergence exact up to ``exact_trace_max`` dimensions and
    Hutchinson's estimator above (unbiased; the estimator's variance is in the reported standard error).

    Args:
        sde: ``"vp"``, ``"subvp"`` or ``"ve"``; beta_min, beta_max (VP), sigma_min, sigma_max (VE).
        sampler: the default of :meth:`sample`: ``"ode"``, ``"em"`` (Euler-Maruyama) or ``"pc"``
            (predictor-corrector); sample_steps: the SDE samplers' steps.
        ode_tol: the ODE solver's relative and absolute tolerance.
        exact_trace_max: the largest dimension for which the divergence is exact.
    """

    T_MIN_TRAIN: ClassVar[float] = 1e-5
    T_MIN_SAMPLE: ClassVar[float] = 1e-3

    def __init__(
        self,
        event_shape: Sequence[int],
        sde: str = "vp",
        beta_min: float = 0.1,
        beta_max: float = 20.0,
        sigma_min: float = 0.01,
        sigma_max: float = 4.0,
        sampler: str = "ode",
        sample_steps: int = 500,
        ode_tol: float = 1e-5,
        exact_trace_max: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, ode_tol=ode_tol, exact_trace_max=exact_trace_max, **kwargs)
        self.sde_name = _choice("sde", sde, SDES)
        params = (
            {"beta_min": beta_min, "beta_max": beta_max}
            if sde != "ve"
            else {"sigma_min": sigma_min, "sigma_max": sigma_max}
        )
        self.sde = make_sde(sde, **params)
        self.beta_min, self.beta_max, self.sigma_min, self.sigma_max = beta_min, beta_max, sigma_min, sigma_max
        self.sampler = _choice("sampler", sampler, ("ode", "em", "pc"))
        self.sample_steps = check_positive_int("sample_steps", sample_steps)

    @takes_context
    def score(
        self,
        z: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor | None = None,
        guidance: float = 0.0,
        averaged: bool = True,
    ) -> torch.Tensor:
        r""":math:`s_\theta(z, t) = -o(z, t)/\sigma(t)` in the diffusion's space, ``t`` ``(n,)`` in :math:`(0, 1]`."""
        _, std = self.sde.marginal(t.to(z))
        out = self._guided(z, 999.0 * t.to(z), y, guidance, averaged)
        return -out / std.reshape(-1, *([1] * (z.dim() - 1))).clamp_min(1e-5)

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        x, y = self._split(batch)
        y = self._drop_labels(y)
        z0 = self.to_latent_space(x)
        t = self.T_MIN_TRAIN + (1 - self.T_MIN_TRAIN) * torch.rand(len(x), dtype=z0.dtype, device=z0.device)
        noise = torch.randn_like(z0)
        out = self._net(self.sde.perturb(z0, t, noise), 999.0 * t, y, averaged)
        return (out - noise).pow(2).flatten(1).mean(-1)

    def _ode(self, averaged: bool) -> tuple[D.ScoreFn, Any, float]:
        return (lambda z, t: self.score(z, t, averaged=averaged)), self.sde, self.T_MIN_TRAIN

    @takes_context
    def reverse_chain(
        self,
        n: int,
        y: object = None,
        sampler: str | None = None,
        steps: int | None = None,
        guidance: float = 0.0,
        record_every: int = 0,
    ) -> Chains:
        """The reverse-time chains of :meth:`sample` in the diffusion's space (the ODE's: its end point only,
        whatever ``record_every``)."""
        check_positive_int("n", n)
        integer("record_every", record_every, 0)
        sampler = _choice("sampler", self.sampler if sampler is None else sampler, ("ode", "em", "pc"))
        labels = self._labels(y, n)
        g = self._check_guidance(guidance)

        def score_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.score(z, t, labels, g, averaged=False)  # the EMA weights are in the network (_sampling)

        k = self.sample_steps if steps is None else check_positive_int("steps", steps)
        with self._sampling():
            start = self._start(n, self.sde.prior_std)
            if sampler == "ode":
                z, nfe = D.probability_flow(
                    score_fn, self.sde, start, t_min=self.T_MIN_SAMPLE, rtol=self.ode_tol, atol=self.ode_tol
                )
                nan = torch.full((n, 1), float("nan"), dtype=z.dtype, device=z.device)
                return Chains(z[:, None], {"t": nan.fill_(self.T_MIN_SAMPLE), "nfe": torch.full_like(nan, nfe)})
            run = D.euler_maruyama if sampler == "em" else D.predictor_corrector
            return run(score_fn, self.sde, start, steps=k, t_min=self.T_MIN_SAMPLE, record_every=record_every)

    @takes_context
    def sample(
        self, n: int, y: object = None, sampler: str | None = None, steps: int | None = None, guidance: float = 0.0
    ) -> torch.Tensor:
        """``n`` draws in data space by the probability-flow ODE, Euler-Maruyama or predictor-corrector."""
        return self._finish(self.reverse_chain(n, y, sampler, steps, guidance).samples[:, -1])


class _VelocityODE:
    """Flow matching's ODE in the probability-flow solver's time: its :math:`t` runs from 1 (the prior) to 0
    (the data), flow matching's :math:`\tau = 1 - t` the other way, so the drift is :math:`-v(x, 1 - t)`; the
    prior is a standard normal."""

    prior_std = 1.0

    def reverse_drift(
        self, x: torch.Tensor, t: torch.Tensor, velocity: torch.Tensor, probability_flow: bool = True
    ) -> torch.Tensor:
        return -velocity

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * x.square().flatten(1).sum(-1) - 0.5 * x[0].numel() * math.log(2 * math.pi)


@register("flow-matching", **{**_RECIPE, "choices": _diffusion_choices, "sample_options": ("steps", "guidance")})
class FlowMatching(_ODEDensity):
    r"""Conditional flow matching with the optimal-transport path (Lipman et al., 2023; Liu et al., 2023's
    rectified flow with :math:`\sigma_{min} = 0`): a velocity field :math:`v_\theta(x, \tau)` regressed on the
    straight paths from noise :math:`x_0 \sim N(0, I)` to data :math:`x_1`,

    .. math::
        x_\tau = (1 - (1 - \sigma_{min}) \tau)\, x_0 + \tau x_1, \qquad
        \mathcal L = \mathbb E_{\tau, x_0, x_1} \| v_\theta(x_\tau, \tau) - (x_1 - (1 - \sigma_{min}) x_0) \|^2,

    :math:`\tau \sim U(0, 1)`. Samples integrate :math:`dx/d\tau = v_\theta` from noise: adaptive ``dopri5``
    by default, or ``steps`` midpoint steps (two network evaluations each). :meth:`log_prob` is the exact
    log-likelihood through the same ODE (the instantaneous change of variables, the divergence exact up to
    ``exact_trace_max`` dimensions and Hutchinson's estimator above), as for the score SDE; the network,
    its EMA, the data map and classifier-free guidance are the diffusion family's.

    Args:
        sigma_min: :math:`\sigma_{min}`, the width of the paths' end at the data.
        sample_steps: the default of :meth:`sample` (``None``: adaptive).
        ode_tol: the adaptive solver's tolerances; exact_trace_max: as for :class:`ScoreSDE`.
        **kwargs: the network, data map, EMA and conditioning of :class:`DiffusionModel`.

    References: Lipman, Chen, Ben-Hamu, Nickel and Le, 2023, arXiv:2210.02747; Liu, Gong and Liu, 2023,
    arXiv:2209.03003.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> fm = FlowMatching(event_shape=(2,), hidden=(16,), emb_dim=8, sample_steps=4)
        >>> fm.sample(3).shape, fm.log_prob(torch.zeros(2, 2)).shape
        (torch.Size([3, 2]), torch.Size([2]))
    """

    T_MIN: ClassVar[float] = 1e-5
    #: the network's conditioning scalar is ``TIME_SCALE * tau`` (the timestep range of the diffusion family's nets)
    TIME_SCALE: ClassVar[float] = 999.0

    def __init__(
        self,
        event_shape: Sequence[int],
        sigma_min: float = 0.0,
        sample_steps: int | None = None,
        ode_tol: float = 1e-5,
        exact_trace_max: int = 16,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, ode_tol=ode_tol, exact_trace_max=exact_trace_max, **kwargs)
        if isinstance(sigma_min, bool) or not isinstance(sigma_min, (int, float)) or not 0 <= sigma_min < 1:
            raise ValueError(f"sigma_min must be a number in [0, 1); got {sigma_min!r}")
        self.sigma_min = float(sigma_min)
        self.sample_steps = None if sample_steps is None else check_positive_int("sample_steps", sample_steps)
        self.ode = _VelocityODE()

    @takes_context
    def velocity(
        self,
        z: torch.Tensor,
        tau: torch.Tensor,
        y: torch.Tensor | None = None,
        guidance: float = 0.0,
        averaged: bool = True,
    ) -> torch.Tensor:
        r""":math:`v_\theta(z, \tau)` in the diffusion's space, ``tau`` ``(n,)`` in :math:`[0, 1]`."""
        return self._guided(z, self.TIME_SCALE * tau.to(z), y, guidance, averaged)

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        x, y = self._split(batch)
        y = self._drop_labels(y)
        x1 = self.to_latent_space(x)
        tau = torch.rand(len(x1), dtype=x1.dtype, device=x1.device).reshape(-1, *([1] * (x1.dim() - 1)))
        x0 = torch.randn_like(x1)
        xt = (1 - (1 - self.sigma_min) * tau) * x0 + tau * x1
        out = self._net(xt, self.TIME_SCALE * tau.flatten(), y, averaged)
        return (out - (x1 - (1 - self.sigma_min) * x0)).pow(2).flatten(1).mean(-1)

    def _ode(self, averaged: bool) -> tuple[D.ScoreFn, Any, float]:
        return (lambda z, t: self.velocity(z, 1 - t, averaged=averaged)), self.ode, self.T_MIN

    @takes_context
    def reverse_chain(self, n: int, y: object = None, steps: int | None = None, guidance: float = 0.0) -> Chains:
        """The ODE's end points from noise in the diffusion's space (``steps`` midpoint steps, or adaptive)."""
        check_positive_int("n", n)
        labels = self._labels(y, n)
        g = self._check_guidance(guidance)
        k = self.sample_steps if steps is None else check_positive_int("steps", steps)
        with self._sampling(), torch.no_grad():
            z = self._start(n)
            if k is None:
                z, nfe = D.probability_flow(
                    lambda x, t: self.velocity(x, 1 - t, labels, g, averaged=False),
                    self.ode,  # type: ignore[arg-type]
                    z,
                    t_min=self.T_MIN,
                    rtol=self.ode_tol,
                    atol=self.ode_tol,
                )
            else:
                return D.run_scheduler(
                    lambda x, tau: self.velocity(x, tau, labels, g, averaged=False),
                    D.MidpointScheduler(k, self.sigma_min),
                    z,
                )
        nan = torch.full((n, 1), float("nan"), dtype=z.dtype, device=z.device)
        return Chains(z[:, None], {"t": nan.fill_(1.0), "nfe": torch.full_like(nan, nfe)})

    @takes_context
    def sample(self, n: int, y: object = None, steps: int | None = None, guidance: float = 0.0) -> torch.Tensor:
        """``n`` draws in data space by the ODE from noise."""
        return self._finish(self.reverse_chain(n, y, steps, guidance).samples[:, -1])


def _ffjord_train(data: Dataset) -> dict[str, Any]:
    """2000 steps of batch 256 at lr 1e-3 (each step solves the ODE adaptively, with its graph), gradients
    clipped at 10; validation every 250 steps on the exact likelihood."""
    return {"lr": 1e-3, "batch_size": 256, "steps": 2000, "val_every": 250, "grad_clip": 10.0}


def _ffjord_objective(model: FFJORD) -> MaximumLikelihood:
    return MaximumLikelihood(options={"differentiable": True})


@register(
    "ffjord",
    **{
        **_RECIPE,
        "family": "flow",
        "choices": _diffusion_choices,
        "train": _ffjord_train,
        "objective": _ffjord_objective,
        "sample_options": ("steps",),
    },
)
class FFJORD(FlowMatching):
    r"""FFJORD (Grathwohl et al., 2019): a continuous normalizing flow :math:`dx/d\tau = v_\theta(x, \tau)` from
    a standard normal (:math:`\tau = 0`) to the data (:math:`\tau = 1`), trained by maximum likelihood through
    the ODE solver (Chen et al., 2018's instantaneous change of variables):

    .. math:: \log p(x) = \log N(x_0; 0, I) - \int_0^1 \nabla\cdot v_\theta(x_\tau, \tau)\,d\tau.

    In training the divergence is Hutchinson's estimator (one Rademacher probe, fixed along each solve) and
    the adaptive solver runs at ``train_tol``, its steps kept for the gradient (no adjoint: the toys' ODEs
    take tens of steps); in evaluation it is exact up to ``exact_trace_max`` dimensions, at ``ode_tol``. The
    same velocity field, sampler and density as :class:`FlowMatching`, which regresses the field on straight
    paths instead, with no solver in training.

    Args:
        train_tol: the solver's tolerances in training.
        ema: the weights' moving average (``None``: the raw weights, as maximum likelihood trains them).
        **kwargs: as :class:`FlowMatching` (``ode_tol``, ``exact_trace_max``, ``sample_steps``, the network:
            ``hidden`` three layers of 64 by default).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> f = FFJORD(event_shape=(2,), hidden=(16,), emb_dim=8)
        >>> f.train().log_prob(torch.zeros(4, 2), differentiable=True).shape
        torch.Size([4])
    """

    def __init__(
        self, event_shape: Sequence[int], train_tol: float = 1e-3, ema: float | None = None, **kwargs: Any
    ) -> None:
        if kwargs.get("sigma_min", 0.0) != 0.0:
            raise ValueError("ffjord has no sigma_min (no regression paths)")
        kwargs.setdefault("hidden", (64, 64, 64))
        super().__init__(event_shape, ema=ema, **kwargs)
        self.train_tol = _number("train_tol", train_tol)

    def _log_prob(
        self,
        x: torch.Tensor,
        trace: str | None,
        probes: int,
        differentiable: bool,
        averaged: bool | None = None,
        tol: float | None = None,
    ) -> torch.Tensor:
        if differentiable and self.training:  # the training solve: Hutchinson's divergence at the training tolerance
            trace, tol = trace or "hutchinson", self.train_tol if tol is None else tol
        return super()._log_prob(x, trace, probes, differentiable, averaged, tol)

    #: the network sees :math:`c = 10\tau`: the time embedding's frequencies then vary slowly along a solve
    #: (flow matching's :math:`999\tau` makes the field oscillate in time, and an adaptive solver take small steps)
    TIME_SCALE: ClassVar[float] = 10.0

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        raise NotImplementedError("ffjord trains by maximum likelihood through the ODE, not a denoising loss")

    def rsample(self, n: int) -> torch.Tensor:
        """``n`` draws in data space with their graph to the parameters: the ODE from noise solved adaptively
        at ``ode_tol`` (the raw weights in training mode, the EMA's, if any, in eval mode)."""
        check_positive_int("n", n)
        averaged = not self.training

        def field(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            return self.velocity(z, t.to(z).expand(len(z)), averaged=averaged)

        z = D._odeint(
            field, self._start(n), torch.tensor([0.0, 1.0]).to(self._ref()), self.ode_tol, self.ode_tol, "dopri5"
        )
        return self.to_data_space(z[-1])

    @frozen_unless_trainable
    def as_distribution(self) -> NumericalDensity:
        """As :class:`FlowMatching`'s, with ``rsample`` (:meth:`rsample`: the ODE from noise, differentiable)."""
        from torch.distributions import constraints

        averaged = not self.training
        return NumericalDensity(
            lambda x: self._log_prob(x, None, 1, True, averaged),
            self.rsample,
            self.event_shape,
            support=constraints.unit_interval if self.support == "unit_interval" else constraints.real,
            reparameterized=True,
        )


#: The KL weight of latent diffusion's VAE: a lightly regularized autoencoder (see :class:`LatentDiffusion`).
VAE_KL_WEIGHT = 1e-3


@register(
    "latent-diffusion",
    **{**_RECIPE, "data": "digits", "choices": continuous_support, "sample_options": ("sampler", "steps", "eta")},
)
class LatentDiffusion(DDPM):
    r"""Latent diffusion (Rombach et al., 2022, at small scale): a DDPM over the codes :math:`z = \mu_\phi(x)` of a
    pyrogen :class:`~pyrogen.models.VAE` (divided by their standard deviation, measured once when the diffusion
    starts training), decoded by the VAE's decoder. One run trains both, in two parameter groups: ``"vae"`` for
    the first ``vae_steps`` steps (the VAE's own ELBO), then ``"diffusion"`` (the VAE frozen);
    :meth:`from_vae` starts from a VAE already trained.

    The pair is a Pyro program like DDPM's -- the reverse chain over codes, the VAE's decoder
    :math:`p(x \mid \hat z_0(z_1))` observed at ``x``; the guide the forward chain from the encoder's code -- and
    its ELBO is a bound on this model's :math:`\log p(x)` (:meth:`elbo`).

    Args:
        latent_dim, vae_hidden, vae_likelihood: the VAE's (see :class:`~pyrogen.models.VAE`).
        vae_steps: steps of the VAE phase.
        vae_arch: the VAE's ``arch``; ``"spatial"`` makes the code a feature map (``latent_dim / (H W / 4)``
            channels at half resolution) that a U-Net denoises, as Rombach et al.'s.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        latent_dim: int = 8,
        vae_hidden: Sequence[int] = (256, 256),
        vae_likelihood: str = "gaussian",
        vae_steps: int = 3000,
        vae_arch: str = "mlp",
        **kwargs: Any,
    ) -> None:
        from pyrogen.models.vae import VAE

        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        if kwargs.get("objective", "simple") != "simple" or kwargs.get("levels") is not None:
            raise ValueError("latent-diffusion trains with objective='simple' and has no levels")
        kwargs.setdefault("hidden", (256, 256, 256))
        # a spatial code diffuses as the feature map it is, under a U-Net
        space: tuple[int, ...] = (self.latent_dim,)
        if vae_arch == "spatial":
            from pyrogen.nn.conv import _spatial_channels

            space = _spatial_channels(event_shape, self.latent_dim)
        super().__init__(event_shape, _space=space, **kwargs)
        self.vae_arch = vae_arch
        if isinstance(vae_steps, bool) or not isinstance(vae_steps, int) or vae_steps < 0:
            raise ValueError(f"vae_steps must be a non-negative integer; got {vae_steps!r}")
        self.vae_steps = vae_steps
        self.vae_hidden = check_hidden(vae_hidden)
        self.vae_likelihood = vae_likelihood
        # a lightly KL-regularized autoencoder, as latent diffusion's first stage is (Rombach et al., 2022, weigh
        # the KL by 1e-6): the codes stay informative and near zero
        self.vae = VAE(
            self.event_shape,
            latent_dim,
            self.vae_hidden,
            likelihood=vae_likelihood,
            kl_warmup=0,
            beta=VAE_KL_WEIGHT,
            arch=vae_arch,
        )
        self.register_buffer("code_scale", torch.ones(()))
        self.register_buffer("code_fitted", torch.zeros((), dtype=torch.bool))

    @classmethod
    def from_vae(cls, vae: GenerativeModel, **kwargs: Any) -> LatentDiffusion:
        """A latent diffusion over the codes of the trained ``vae`` (copied; ``vae_steps=0``)."""
        cfg = vae.config()
        model = cls(
            cfg["event_shape"],
            latent_dim=cfg["latent_dim"],
            vae_hidden=cfg["hidden"],
            vae_likelihood=cfg["likelihood"],
            vae_steps=0,
            vae_arch=cfg.get("arch", "mlp"),
            support=kwargs.pop("support", "unit_interval" if vae.support != "real" else "real"),
            **kwargs,
        )
        model.vae.load_state_dict(vae.state_dict())
        return model

    def to_latent_space(self, x: torch.Tensor) -> torch.Tensor:
        r"""The encoder's code :math:`\mu_\phi(x)` divided by the codes' standard deviation (no gradient)."""
        with torch.no_grad():
            return (self.vae.encode(x)[0] / self.code_scale).reshape(len(x), *self.space_shape)

    def to_data_space(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z.flatten(1) * self.code_scale)

    def _finish(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._evaluating():  # samples carry no graph through the decoder
            return super()._finish(z)

    def _decoder(self, x0_hat: torch.Tensor) -> dist.TorchDistribution:
        return self.vae.likelihood(x0_hat.flatten(1) * self.code_scale)

    def denoising_loss(self, batch: Any, averaged: bool = False) -> torch.Tensor:
        """DDPM's loss on the codes; the first call in training measures the codes' scale (once)."""
        if self.training and not bool(self.code_fitted):
            with torch.no_grad():
                self.code_scale.copy_(self.vae.encode(self._split(batch)[0])[0].std().clamp_min(1e-3))
                self.code_fitted.fill_(True)
        return super().denoising_loss(batch, averaged)

    def inpaint(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError("latent-diffusion cannot replace pixels in code space; use ddpm.inpaint")


use_objective(DiffusionModel, lambda model: Denoising())


def _latent_diffusion_objective(model: LatentDiffusion) -> Phases:
    """The VAE's ELBO for ``vae_steps``, then DDPM's loss over its codes (the VAE frozen); no validation: the
    two phases' losses are no one comparable score."""
    vae_phase = Part("vae", objective_for(model.vae), part=lambda m: m.vae)
    diffusion_phase = Part("diffusion", Denoising(), params=lambda m: list(m.net.parameters()))
    return Phases((model.vae_steps, vae_phase), (None, diffusion_phase), monitor=None)


use_objective(LatentDiffusion, _latent_diffusion_objective)


def _text_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Captioned 8x8 grey digits only: their labels and measured attributes make the captions."""
    if data.kind != "image" or tuple(data.event_shape) != (1, 8, 8) or "train" not in data.labels:
        raise ValueError(
            f"text-diffusion captions labelled 8x8 grey digits (use the dequantized 'digits'); got {data.name!r}"
        )
    return continuous_support(recipe, data, kwargs, hint="use the dequantized 'digits'")


def _text_train(data: Dataset) -> dict[str, Any]:
    """12000 steps of batch 128 at lr 5e-4 (the first ``vae_steps`` the VAE's), no validation (two phases'
    losses are no one score)."""
    return {"lr": 5e-4, "batch_size": 128, "steps": 12000, "val_every": 0}


@register(
    "text-diffusion",
    **{
        **_RECIPE,
        "data": "digits",
        "choices": _text_choices,
        "train": _text_train,
        "sample_options": ("sampler", "steps", "eta", "guidance", "prompt"),
    },
)
class TextDiffusion(LatentDiffusion):
    r"""Text-to-image latent diffusion (Rombach et al., 2022, at the scale of 8x8 digits): a DDPM over the
    spatial codes of a pyrogen VAE (``vae_arch="spatial"``: ``latent_channels`` maps of 4x4), denoised by a
    U-Net whose feature maps cross-attend to a caption's tokens (:class:`~pyrogen.nn.TextUNet`; the text
    encoder, a small transformer over words, is trained from scratch with the diffusion), with
    classifier-free guidance by dropping the caption with probability ``p_uncond`` (Ho and Salimans, 2021).

    The captions come from each training digit's label and measured thickness, size and slant
    (:mod:`pyrogen.data.captions`): ``"a thick small seven leaning right"``. The model trains on
    ``(images, caption tokens)``; :meth:`sample` takes a ``prompt`` (one string, or one per sample), and
    ``pyrogen sample RUN --prompt "a thick seven" --guidance 3`` writes the images. A word outside the
    captions' vocabulary is refused by name.

    One run trains both parts in two phases, as :class:`LatentDiffusion`: the VAE for ``vae_steps``, then the
    diffusion and the text encoder (the VAE frozen).

    Args:
        latent_channels: the code's channels (each a 4x4 map).
        vae_hidden: the VAE's convolution widths (the last is used).
        text_dim, text_layers, heads: the text encoder's width and depth, and the attention heads.
        kwargs: as :class:`LatentDiffusion` (``vae_steps``, ``timesteps``, ``features``, ``p_uncond``, ...).
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_channels: int = 2,
        vae_hidden: Sequence[int] = (64,),
        text_dim: int = 64,
        text_layers: int = 2,
        heads: int = 4,
        p_uncond: float = 0.1,
        **kwargs: Any,
    ) -> None:
        if tuple(event_shape) != (1, 8, 8):
            raise ValueError(
                f"text-diffusion captions 8x8 grey digits: event_shape must be (1, 8, 8); got {event_shape!r}"
            )
        for key in ("latent_dim", "vae_arch", "classes", "arch"):
            if key in kwargs:
                raise ValueError(f"text-diffusion sets {key} itself (a spatial code under a text U-Net)")
        self.latent_channels = check_positive_int("latent_channels", latent_channels)
        self.text_dim, self.text_layers = (
            check_positive_int("text_dim", text_dim),
            check_positive_int("text_layers", text_layers),
        )
        self.heads = check_positive_int("heads", heads)
        if self.text_dim % self.heads:
            raise ValueError(f"text_dim must be a multiple of heads; got text_dim={text_dim}, heads={heads}")
        kwargs.setdefault("vae_steps", 3000)
        super().__init__(
            event_shape,
            latent_dim=latent_channels * 16,
            vae_hidden=vae_hidden,
            vae_arch="spatial",
            arch="unet",
            p_uncond=p_uncond,
            **kwargs,
        )
        self.labelled = True  # trains on (images, caption tokens)

    def _denoiser(self) -> nn.Module:
        from pyrogen.nn.text import TextUNet

        vocab, longest = len(_captions.VOCAB), _captions.MAX_TOKENS
        return TextUNet(
            self.space_shape, vocab, longest, self.features, self.emb_dim, self.text_dim, self.text_layers, self.heads
        )

    # -- captions in place of labels ----------------------------------------------------------------------------
    def training_data(self, data: Dataset, split: str) -> Any:
        """``(images, caption tokens)`` of ``split``: each digit's caption from its label and attributes."""
        x = data.split(split)
        if split not in data.labels or tuple(data.event_shape) != (1, 8, 8):
            raise ValueError(f"text-diffusion needs labelled 8x8 grey digits; dataset {data.name!r} is not")
        return x, _captions.tokenize(_captions.captions(x, data.labels[split]))

    def _tokens(self, tokens: object, n: int) -> torch.Tensor:
        c = _captions
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or len(tokens) != n or tokens.is_floating_point():
            raise ValueError(f"captions must be token ids (n={n}, L) from captions.tokenize; got {tokens!r}")
        if (
            tokens.shape[1] > c.MAX_TOKENS
            or ((tokens < 0) | (tokens >= len(c.VOCAB))).any()
            or (tokens[:, 0] != c.BOS).any()
        ):
            raise ValueError(f"captions must be token ids from captions.tokenize (<bos> first, ids < {len(c.VOCAB)})")
        return tokens.to(self._ref().device).long()

    def _split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, tokens = as_batch(batch)  # no caption: the empty one
        return x, None if tokens is None else self._tokens(tokens, len(x))

    def _labels(self, y: object, n: int) -> torch.Tensor | None:
        if y is None:
            return None
        if isinstance(y, str):
            y = [y] * n
        if isinstance(y, (list, tuple)):
            if len(y) != n:
                raise ValueError(f"give one prompt or {n} prompts; got {len(y)}")
            y = _captions.tokenize(list(y))
        return self._tokens(y, n)

    def _drop_labels(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if y is None or not self.p_uncond or not self.training:
            return y
        drop = torch.rand(len(y), device=y.device) < self.p_uncond
        empty = torch.full_like(y, _captions.PAD)
        empty[:, 0] = _captions.BOS
        return torch.where(drop[:, None], empty, y)

    def _check_guidance(self, guidance: object) -> float:
        return _number("guidance", guidance, 0.0, strict=False)

    @takes_context
    def sample(
        self,
        n: int,
        y: object = None,
        sampler: str | None = None,
        steps: int | None = None,
        eta: float | None = None,
        guidance: float = 0.0,
        prompt: str | Sequence[str] | None = None,
    ) -> torch.Tensor:
        """``n`` images for ``prompt`` (one string, or ``n``; ``None``: the empty caption), with guidance
        :math:`w` (``guidance``) and DDPM's samplers (``sampler``, ``steps``, ``eta``).

        Raises:
            ValueError: a word outside the captions' vocabulary (named), or prompts given twice.
        """
        if prompt is not None and y is not None:
            raise ValueError("give the caption once: prompt or y")
        return super().sample(n, prompt if prompt is not None else y, sampler, steps, eta, guidance)


def _text_diffusion_objective(model: TextDiffusion) -> Phases:
    """As latent diffusion's: the VAE's ELBO on the images of ``(images, captions)`` for ``vae_steps``, then the
    diffusion and its text encoder (the VAE frozen)."""
    vae_phase = Part("vae", objective_for(model.vae), part=lambda m: m.vae, inputs=lambda b: b[0])
    diffusion_phase = Part("diffusion", Denoising(), params=lambda m: list(m.net.parameters()))
    return Phases((model.vae_steps, vae_phase), (None, diffusion_phase), monitor=None)


use_objective(TextDiffusion, _text_diffusion_objective)
