r"""Energy-based models :math:`p_\theta(x) = e^{f_\theta(x)} / Z_\theta`, trained without :math:`Z_\theta`.

One network :math:`f_\theta` (:class:`~pyrogen.nn.EnergyNet`), five ways to fit it:

- ``ebm`` -- contrastive divergence: the model's own samples, short-run Langevin chains restarted from
  a replay buffer of persistent states (Du and Mordatch, 2019), stand in for :math:`\nabla \log Z`;
- ``ebm-sm`` -- score matching: exact (the Hessian trace by autograd), sliced, or denoising;
- ``ebm-nce`` -- noise-contrastive estimation against a Gaussian (or uniform) noise, with a learned
  :math:`\log Z`;
- ``ebm-fce`` -- flow contrastive estimation: NCE against a RealNVP trained jointly;
- ``ebm-adv`` -- adversarial training against a RealNVP sampler of exact entropy.

Each is a Pyro citizen: :meth:`EnergyModel.as_distribution` is an
:class:`~pyrogen.distributions.EnergyDistribution` (``log_prob`` = :math:`f`, documented as
unnormalized; ``sample`` by Langevin chains), :meth:`EnergyModel.potential_fn` plugs into
``NUTS(potential_fn=...)`` and the batched kernels of :mod:`pyrogen.inference.samplers` sample it.
What validation watches is the same for all five: the score-matching objective on held-out data
(the Fisher divergence to the data up to a constant, which needs no :math:`Z`).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Sequence
from typing import Any

import pyro
import torch
from torch import nn

from pyrogen.checks import number
from pyrogen.data import Dataset
from pyrogen.distributions.energy import EnergyDistribution
from pyrogen.inference import energy as E
from pyrogen.inference.hooks import ReplayBuffer
from pyrogen.inference.program import data_plate
from pyrogen.inference.samplers import Langevin, kernel_class, sample_chains
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
)
from pyrogen.models.registry import Recipe, continuous_support, register
from pyrogen.nn.energy import ENERGY_ARCHS, EnergyNet

__all__ = ["EBM", "AdversarialEBM", "EnergyModel", "FlowContrastiveEBM", "NCEEBM", "ScoreMatchingEBM"]

_number = functools.partial(number, lo=0.0, strict=True)

#: exact score matching's cost grows with the dimension (one backward pass each): above this, sliced
EXACT_MAX_DIM = E.EXACT_MAX_DIM


def _log_unit_cube(x: torch.Tensor) -> torch.Tensor:
    inside = ((x >= 0) & (x <= 1)).flatten(1).all(-1)
    zero = torch.zeros(inside.shape, dtype=x.dtype, device=x.device)
    return torch.where(inside, zero, zero - math.inf)


#: Images above this many pixels (MNIST at 28 x 28) get the short-run settings of :data:`SHORT_RUN`.
SHORT_RUN_MIN_PIXELS = 256

#: The EBM (contrastive divergence) on large images: short-run, non-persistent chains (Nijkamp, Hill, Zhu and
#: Wu, 2019) -- 20 Langevin steps from uniform noise, a large step on a clamped gradient with small decoupled noise
#: (the settings of Du and Mordatch, 2019, in [0, 1] units) -- and :meth:`EnergyModel.sample` runs the same
#: 20-step chain, the sampler the network was trained with. Long chains from noise, or persistent chains from
#: the replay buffer (``reinit=0.05``), leave that regime (``docs/images.md`` measures both).
SHORT_RUN: dict[str, Any] = {
    "features": 16,
    "chain_steps": 20,
    "chain_step_size": 5.0,
    "langevin_noise": 0.005,
    "langevin_grad_clip": 0.03,
    "reinit": 1.0,
    "sample_steps": 20,
    "sample_step_size": 5.0,
}


def _short_run(data: Dataset) -> bool:
    return data.kind == "image" and math.prod(data.event_shape[1:]) > SHORT_RUN_MIN_PIXELS


def _ebm_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """An EBM for ``data``: an MLP for vectors (chains start in a box 1.2 times the data's extent), the
    conv net for images; the contrastive-divergence EBM on images above 256 pixels takes :data:`SHORT_RUN`.

    Raises:
        ValueError: discrete data (Langevin dynamics needs a continuous space; use the grey ``digits``).
    """
    kwargs = continuous_support(recipe, data, kwargs, hint="use the grey-level 'digits'")
    kwargs.setdefault("arch", "conv" if data.kind == "image" else "mlp")
    if data.support == "real":
        kwargs.setdefault("init_scale", round(1.2 * float(data.train.abs().max()), 2))
    if recipe.name == "ebm" and _short_run(data):
        kwargs = {**SHORT_RUN, **kwargs}
    return kwargs


def _ebm_train(data: Dataset) -> dict[str, Any]:
    """Vectors: 3000 steps of batch 256 at lr 1e-3; images: 3000 steps of batch 64 at lr 1e-4; validation
    every 250 steps (the best network kept). Images above 256 pixels: 2000 steps of batch 64 at lr 1e-4 with
    Adam's first moment off (``betas`` (0, 0.999), as Du and Mordatch, 2019) and no validation -- the
    held-out Fisher divergence does not track what the short-run sampler draws; the last network is kept."""
    if _short_run(data):
        return {
            "lr": 1e-4,
            "batch_size": 64,
            "steps": 2000,
            "val_every": 0,
            "groups": {"model": {"betas": [0.0, 0.999]}},
        }
    if data.kind == "image":
        return {"lr": 1e-4, "batch_size": 64, "steps": 3000, "val_every": 250}
    return {"lr": 1e-3, "batch_size": 256, "steps": 3000, "val_every": 250}


#: What the family's recipes share.
_RECIPE: dict[str, Any] = {
    "family": "ebm",
    "data": "8gaussians",
    "choices": _ebm_choices,
    "train": _ebm_train,
    "sample_options": ("steps", "kernel"),
}


class EnergyModel(GenerativeModel):
    r"""The shared part of the EBMs: the energy network, sampling, the Pyro program and the monitor.

    Args:
        event_shape: the shape of one example.
        arch: ``"mlp"`` (vectors) or ``"conv"`` (images); hidden, features: its sizes.
        support: ``"real"`` or ``"unit_interval"`` (images: chains are clamped to [0, 1] when sampled).
        tether: :math:`\tau` of an optional Gaussian base measure, :meth:`f` (``None``: none).
        init_scale: chains start uniform in :math:`[-s, s]^D` (real data; set from the data by
            :meth:`from_dataset`), or in :math:`[0, 1]^D` (unit interval).
        sample_steps, sample_step_size: the Langevin chains :meth:`sample` runs from those starts
            (:math:`x' = x + \epsilon \nabla f + \sigma\xi`).
        langevin_noise: :math:`\sigma` of every Langevin chain of the model (``None``: :math:`\sqrt{2\epsilon}`,
            the discretized Langevin diffusion); a fixed small :math:`\sigma` decouples it from the step, as
            short-run EBM training on images does (Du and Mordatch, 2019; Nijkamp et al., 2019): the chains
            then sample a colder distribution than :math:`p_\theta`.
        langevin_grad_clip: clamp each coordinate of :math:`\nabla f` to :math:`[-c, c]` in every chain
            (``None``: no clamp).
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        arch: str = "mlp",
        hidden: Sequence[int] = (128, 128),
        features: int = 32,
        support: str = "real",
        init_scale: float = 4.0,
        sample_steps: int = 500,
        sample_step_size: float = 0.01,
        tether: float | None = None,
        langevin_noise: float | None = None,
        langevin_grad_clip: float | None = None,
    ) -> None:
        super().__init__(event_shape)
        self.tether = None if tether is None else _number("tether", tether)
        if arch not in ENERGY_ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ENERGY_ARCHS)}; got {arch!r}")
        if support not in ("real", "unit_interval"):
            raise ValueError(f"support must be 'real' or 'unit_interval'; got {support!r}")
        self.arch, self.hidden, self.features = arch, check_hidden(hidden), check_positive_int("features", features)
        self.support = support
        self.init_scale = _number("init_scale", init_scale)
        self.sample_steps = check_positive_int("sample_steps", sample_steps)
        self.sample_step_size = _number("sample_step_size", sample_step_size)
        self.langevin_noise = None if langevin_noise is None else _number("langevin_noise", langevin_noise)
        self.langevin_grad_clip = (
            None if langevin_grad_clip is None else _number("langevin_grad_clip", langevin_grad_clip)
        )
        self.net = EnergyNet(self.event_shape, arch, self.hidden, self.features)

    # -- the density ------------------------------------------------------------------------------------------
    def f(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`f_\theta(x)` without input checks (what the objectives and kernels call): the network, minus
        :math:`\lVert x\rVert^2 / 2\tau^2` with a ``tether`` :math:`\tau` (a Gaussian base measure that keeps
        the density normalizable and chains from running off)."""
        out = self.net(x)
        if self.tether is not None:
            out = out - 0.5 * x.flatten(1).pow(2).sum(-1) / self.tether**2
        return out

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`f_\theta(x)`, ``(n, *event_shape) -> (n,)``: the log density up to :math:`-\log Z_\theta`."""
        return self.f(self.validate(x))

    @accepts_unbatched()
    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`E_\theta(x) = -f_\theta(x)`, per example."""
        return -self.unnormalized_log_prob(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla_x \log p_\theta(x) = \nabla_x f_\theta(x)` (no normalizer needed)."""
        return E.score(self.f, self.validate(x))[1]

    def potential_fn(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """``E(x)`` summed, for ``NUTS(potential_fn=model.potential_fn)`` over a site ``"x"`` of shape
        ``(*batch, *event_shape)``."""
        if "x" not in params:
            raise ValueError(f"potential_fn reads the site 'x'; got sites {sorted(params)}")
        x = params["x"].reshape(-1, *self.event_shape)
        return -self.f(x).sum()

    def log_normalizer(self, points: int | None = None, width: float | None = None) -> torch.Tensor:
        r""":math:`\log Z_\theta = \log \int e^{f_\theta}` by quadrature (the midpoint rule) on a grid over
        :math:`[-w, w]^D`, for real data of one or two dimensions; ``width`` :math:`w` defaults to twice the
        chains' box (``init_scale``), ``points`` per axis to 4001 (1-D) or 401 (2-D).

        Raises:
            ValueError: more than two dimensions, or unit-interval data (use a sample-quality metric).
        """
        d = math.prod(self.event_shape)
        if d > 2 or self.support != "real":
            raise ValueError(f"log Z by quadrature needs real data of at most 2 dimensions; this model has {d}")
        w = 2 * self.init_scale if width is None else _number("width", width)
        k = (4001 if d == 1 else 401) if points is None else check_positive_int("points", points)
        ref = self._ref()
        h = 2 * w / k
        axis = -w + h * (torch.arange(k, dtype=ref.dtype, device=ref.device) + 0.5)
        grid = axis[:, None] if d == 1 else torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        with torch.no_grad():
            f = torch.cat([self.f(c.reshape(-1, *self.event_shape)) for c in grid.split(65536)])
        return torch.logsumexp(f, 0) + d * math.log(h)

    def log_normalizer_ais(
        self, chains: int = 256, num_temps: int = 2000, step_size: float = 0.002, target_accept: float | None = 0.57
    ) -> Any:
        r""":math:`\log Z_\theta` by annealed importance sampling from the uniform distribution on the unit cube
        (unit-interval data), MALA transitions whose step each chain adapts along the path towards
        ``target_accept``; returns the :class:`~pyrogen.inference.samplers.AISResult` (``log_z`` and its
        ``stderr``)."""
        from pyrogen.inference.samplers import annealed_importance_sampling

        if self.support != "unit_interval":
            raise ValueError("log Z by AIS starts from the unit cube: unit-interval data only (2-D: quadrature)")
        was = self.training
        self.eval()
        try:
            x0 = self.init_chains(check_positive_int("chains", chains))
            return annealed_importance_sampling(
                self.f, x0, _log_unit_cube, num_temps=num_temps, step_size=step_size, target_accept=target_accept
            )
        finally:
            self.train(was)

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, Any]:
        r"""What ``pyrogen evaluate`` adds for an EBM: the test NLL in nats (``nll_nats``, ``nll_stderr``,
        ``nll_method``, ``log_z``), with :math:`\log Z` by quadrature on real data of at most two dimensions and
        by AIS on unit-interval data (then also ``log_z_stderr``, the AIS estimate's standard error, which the
        NLL inherits in full, and ``ais_acceptance``)."""
        x = self.validate(x)
        extra: dict[str, Any] = {}
        if math.prod(self.event_shape) <= 2 and self.support == "real":
            log_z, method = self.log_normalizer(), "quadrature"
        elif self.support == "unit_interval":
            ais = self.log_normalizer_ais()
            log_z, method = torch.tensor(ais.log_z), "ais"
            extra = {"log_z_stderr": ais.stderr, "ais_acceptance": ais.acceptance_rate}
        else:
            return {}
        with torch.no_grad():
            nll = -(self.f(x) - log_z.to(x))
        return {
            "nll_nats": float(nll.mean()),
            "nll_stderr": float(nll.std() / math.sqrt(len(nll))) if len(nll) > 1 else float("nan"),
            "nll_method": method,
            "log_z": float(log_z),
            **extra,
        }

    # -- sampling ---------------------------------------------------------------------------------------------
    def _ref(self) -> torch.Tensor:
        return next(self.net.parameters())

    def init_chains(self, n: int) -> torch.Tensor:
        """``n`` chain starts: uniform in the box (real data) or in the unit cube."""
        ref = self._ref()
        u = torch.rand(n, *self.event_shape, dtype=ref.dtype, device=ref.device)
        return u if self.support == "unit_interval" else (2 * u - 1) * self.init_scale

    def langevin(self, step_size: float) -> Langevin:
        """The model's Langevin kernel on :math:`f_\\theta` at ``step_size``, with its ``langevin_noise``
        and ``langevin_grad_clip``."""
        return Langevin(self.f, step_size, noise=self.langevin_noise, grad_clip=self.langevin_grad_clip)

    def _clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0, 1) if self.support == "unit_interval" else x

    def sample(
        self, n: int, steps: int | None = None, kernel: str = "langevin", step_size: float | None = None
    ) -> torch.Tensor:
        r"""``n`` draws by MCMC from :meth:`init_chains`: ``steps`` (default ``sample_steps``) transitions of
        unadjusted Langevin (``kernel="langevin"``, step ``sample_step_size``) or of another kernel of
        :data:`~pyrogen.inference.samplers.KERNELS` (``"mala"``, ``"hmc"``, ``"chees"``, ``"rwmh"``: adapted during
        the first half). Images are clamped to [0, 1] at the end."""
        check_positive_int("n", n)
        steps = self.sample_steps if steps is None else check_positive_int("steps", steps)
        eps = self.sample_step_size if step_size is None else _number("step_size", step_size)
        cls = kernel_class(kernel)
        was = self.training
        self.eval()
        try:
            x0 = self.init_chains(n)
            if cls is Langevin:
                chains = sample_chains(self.langevin(eps), x0, 1, warmup_steps=steps - 1)
            else:
                warm = max(steps // 2, 1)
                chains = sample_chains(cls(self.f, eps), x0, 1, warmup_steps=warm, thin=max(steps - warm, 1))
        finally:
            self.train(was)
        return self._clamp(chains.samples[:, -1]).detach()

    @frozen_unless_trainable
    def as_distribution(self) -> EnergyDistribution:
        """:class:`~pyrogen.distributions.EnergyDistribution` of :math:`f_\\theta`: ``log_prob`` unnormalized,
        ``sample`` by :meth:`sample`."""
        from torch.distributions import constraints

        support = constraints.unit_interval if self.support == "unit_interval" else constraints.real
        return EnergyDistribution(self.f, self.sample, self.event_shape, support=support)

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """A Pyro program: ``x`` observed under the energy distribution (its ``log_prob`` unnormalized)."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(), obs=x)


@register("ebm", objective=lambda model: E.ContrastiveDivergence(model.reg), **_RECIPE)
class EBM(EnergyModel):
    r"""An EBM trained by contrastive divergence with short-run Langevin chains (Du and Mordatch, 2019).

    Each step draws chain starts from a replay buffer of past chain ends (fresh uniform starts with
    probability ``reinit``), runs ``chain_steps`` Langevin steps of size ``chain_step_size`` on the current
    :math:`f_\theta`, and minimizes :func:`~pyrogen.inference.energy.contrastive_divergence` between the batch
    and the chain ends, with the penalty ``reg`` on the squared log densities.

    Args:
        chain_steps, chain_step_size: the short-run chains.
        buffer_size, reinit: the replay buffer.
        reg: :math:`\alpha` of the penalty.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        chain_steps: int = 40,
        chain_step_size: float = 0.01,
        buffer_size: int = 10000,
        reinit: float = 0.05,
        reg: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.chain_steps = check_positive_int("chain_steps", chain_steps)
        self.chain_step_size = _number("chain_step_size", chain_step_size)
        self.reg = _number("reg", reg, strict=False)
        self.buffer = ReplayBuffer(check_positive_int("buffer_size", buffer_size), self.event_shape, reinit)

    def negatives(self, n: int) -> torch.Tensor:
        """``n`` short-run chain ends from buffer starts (handed back to the buffer)."""
        x0 = self.buffer.sample(n, self.init_chains)
        k = self.langevin(self.chain_step_size)
        x = self._clamp(sample_chains(k, x0, 1, warmup_steps=self.chain_steps - 1).samples[:, -1])
        self.buffer.push(x)
        return x.detach()


@register("ebm-sm", objective=lambda model: E.ScoreMatching(model.method, model.sigma), **_RECIPE)
class ScoreMatchingEBM(EnergyModel):
    r"""An EBM trained by score matching: ``method`` ``"exact"`` (Hyvärinen, 2005; one backward pass per
    dimension), ``"sliced"`` / ``"sliced-vr"`` (Song et al., 2019) or ``"denoising"`` (Vincent, 2011, noise
    ``sigma``: the model then fits the data blurred by :math:`N(0, \sigma^2 I)`). Default: exact up to 16
    dimensions, sliced-vr above; denoising for unit-interval data (Hyvärinen's objective assumes the density
    vanishes at the boundary of its domain, which digits piled at 0 break; the blurred data have no boundary).
    """

    def __init__(
        self, event_shape: Sequence[int], method: str | None = None, sigma: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(event_shape, **kwargs)
        if method is None:
            if self.support == "unit_interval":  # see the class docstring
                method = "denoising"
            else:
                method = "exact" if math.prod(self.event_shape) <= EXACT_MAX_DIM else "sliced-vr"
        if method not in E.SCORE_MATCHING:
            raise ValueError(f"method must be one of {', '.join(E.SCORE_MATCHING)}; got {method!r}")
        self.method = method
        self.sigma = _number("sigma", sigma)


def _nce_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if data.support == "real":
        kwargs.setdefault("noise_scale", round(1.5 * float(data.train.std(0).max()), 2))
    return _ebm_choices(recipe, data, kwargs)


@register("ebm-nce", objective=lambda model: E.NoiseContrastive(model.nu), **{**_RECIPE, "choices": _nce_choices})
class NCEEBM(EnergyModel):
    r"""An EBM trained by noise-contrastive estimation (Gutmann and Hyvärinen, 2010) with a learned
    :math:`\log Z` (:attr:`log_z`): logistic regression of the data against ``nu`` noise draws per example
    from :math:`N(0, s^2 I)` (``noise_scale`` :math:`s`, set from the data) or, for images, the uniform
    distribution on the unit cube. At the optimum :math:`f_\theta - \log Z` is the normalized data
    log density, so :meth:`normalized_log_prob` is an estimate of :math:`\log p` (good where the noise
    covers the data). The estimator's variance falls as ``nu`` grows (Gutmann and Hyvärinen, 2012): the
    default 4 normalizes a model trained 1500 steps on 8gaussians to within 10% by quadrature
    (``tests/test_ebm.py``)."""

    def __init__(self, event_shape: Sequence[int], noise_scale: float = 2.5, nu: int = 4, **kwargs: Any) -> None:
        super().__init__(event_shape, **kwargs)
        self.noise_scale = _number("noise_scale", noise_scale)
        self.nu = check_positive_int("nu", nu)
        self.log_z = nn.Parameter(torch.zeros(()))

    def noise(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ref = self._ref()
        shape = (n, *self.event_shape)
        if self.support == "unit_interval":
            return torch.rand(shape, dtype=ref.dtype, device=ref.device), torch.zeros(
                n, dtype=ref.dtype, device=ref.device
            )
        y = torch.randn(shape, dtype=ref.dtype, device=ref.device) * self.noise_scale
        return y, self.noise_log_prob(y)

    def noise_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        if self.support == "unit_interval":
            return torch.zeros(len(x), dtype=x.dtype, device=x.device)
        d = math.prod(self.event_shape)
        s = self.noise_scale
        return -0.5 * (x / s).flatten(1).pow(2).sum(-1) - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def normalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`f_\theta(x) - \log Z`, with NCE's estimate of :math:`\log Z`."""
        return self.unnormalized_log_prob(x) - self.log_z


class _FlowPairedEBM(EnergyModel):
    """An EBM trained jointly with a RealNVP flow (``flow_layers`` couplings of ``flow_hidden`` MLPs), in two
    parameter groups: ``"energy"`` (the network, and ``log_z`` where there is one) and ``"flow"``. Chains that
    sample the EBM start from the flow's samples, already close to the data."""

    def __init__(
        self,
        event_shape: Sequence[int],
        flow_layers: int = 6,
        flow_hidden: Sequence[int] = (64, 64),
        reg: float = 0.0,
        flow_steps: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(event_shape, **kwargs)
        self.flow_steps = check_positive_int("flow_steps", flow_steps)
        from pyrogen.models.flows import RealNVP

        if self.support != "real" or len(self.event_shape) != 1:
            raise ValueError(f"{type(self).__name__} models real vectors (a RealNVP partner); got {self.support} data")
        self.flow_layers = check_positive_int("flow_layers", flow_layers)
        self.flow_hidden = check_hidden(flow_hidden)
        self.reg = _number("reg", reg, strict=False)
        # unclipped conditioners: the flow models the EBM's own samples (its numbers were measured so)
        self.flow = RealNVP(
            self.event_shape, num_layers=self.flow_layers, hidden=self.flow_hidden, conditioner_clip=None
        )

    def energy_parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def init_chains(self, n: int) -> torch.Tensor:
        with torch.no_grad():
            return self.flow.sample(n)


@register("ebm-fce", objective=lambda model: E.FlowContrastive(model.flow_steps), **_RECIPE)
class FlowContrastiveEBM(_FlowPairedEBM):
    r"""Flow contrastive estimation (Gao et al., 2020): NCE with a RealNVP flow :math:`q_\alpha` as the noise,
    trained jointly and adversarially on the value
    :math:`V = \mathbb E_{p_{data}}[\log D(x)] + \mathbb E_{q_\alpha}[\log(1 - D(y))]`,
    :math:`D = p_\theta / (p_\theta + q_\alpha)`, :math:`p_\theta = e^{f_\theta - \log Z}`: the EBM (with its
    learned :math:`\log Z`) maximizes :math:`V`, the flow minimizes it (reparameterized samples), so the noise
    keeps up with the model and the logistic regression stays informative. At the optimum both equal the
    data density, and :math:`f_\theta - \log Z` is normalized."""

    def __init__(self, event_shape: Sequence[int], **kwargs: Any) -> None:
        super().__init__(event_shape, **kwargs)
        self.log_z = nn.Parameter(torch.zeros(()))

    def energy_parameters(self) -> list[nn.Parameter]:
        return [*self.net.parameters(), self.log_z]

    def normalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`f_\theta(x) - \log Z`, with FCE's estimate of :math:`\log Z`."""
        return self.unnormalized_log_prob(x) - self.log_z


def _adv_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """As every EBM, the chains tethered at the initial box's scale unless told."""
    kwargs = _ebm_choices(recipe, data, kwargs)
    kwargs.setdefault(
        "tether", kwargs.get("init_scale", inspect.signature(EnergyModel).parameters["init_scale"].default)
    )
    return kwargs


@register(
    "ebm-adv",
    objective=lambda model: E.AdversarialEnergy(model.reg, model.flow_steps, model.gp),
    **{**_RECIPE, "choices": _adv_choices},
)
class AdversarialEBM(_FlowPairedEBM):
    r"""An EBM trained adversarially against a sampler of exact entropy (Kim and Bengio, 2016;
    Grathwohl et al., 2021): for any :math:`q`, :math:`\log Z_\theta \ge \mathbb E_q[f_\theta] + H(q)`, so

    .. math:: \mathbb E_{p_{data}}[\log p_\theta] \le \mathbb E_{p_{data}}[f_\theta] - \mathbb E_q[f_\theta] - H(q),

    with equality at :math:`q = p_\theta`. The flow :math:`q_\alpha` maximizes
    :math:`\mathbb E_q[f_\theta] + H(q)` (a reparameterized, exact-entropy estimate: minimizes
    :math:`\mathrm{KL}(q \,\|\, p_\theta)`); the EBM minimizes
    :math:`\mathbb E_q[f_\theta] - \mathbb E_{p_{data}}[f_\theta]` (+ ``reg`` times the squared log
    densities), a contrastive-divergence step with the flow's samples as negatives -- no MCMC in training.

    The bound is tight only where the flow keeps up with the EBM; where it does not, the EBM raises
    :math:`f_\theta` where the flow never goes, the flow chases it and training diverges (the trainer stops
    it: "loss exploded"). The ``tether`` (:meth:`EnergyModel.f`), set by :meth:`from_dataset` to the chains'
    box, prevents that; ``gp`` adds :math:`\gamma \lVert \nabla_x f_\theta\rVert^2` on the data and
    ``flow_steps`` gives the flow more updates per EBM update (neither needed on the toys).
    """

    def __init__(
        self, event_shape: Sequence[int], reg: float = 0.1, flow_steps: int = 1, gp: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(event_shape, reg=reg, flow_steps=flow_steps, **kwargs)
        self.gp = _number("gp", gp, strict=False)

    def log_z_bound(self, n: int = 10000) -> torch.Tensor:
        r"""The variational bound :math:`\mathbb E_q[f_\theta] + H(q) \le \log Z_\theta`, by ``n`` flow samples."""
        check_positive_int("n", n)
        with torch.no_grad():
            y, log_q = self.flow.rsample(n)
            return (self.f(y) - log_q).mean()
