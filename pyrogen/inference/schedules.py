r"""Noise schedules of diffusion and score models, as plain tensors with no parameters.

Two kinds, kept apart from the networks the way diffusers keeps its schedulers:

- :class:`NoiseSchedule` -- the discrete chain of DDPM (Ho et al., 2020) over :math:`t = 1, \dots, T`:
  :math:`q(x_t \mid x_{t-1}) = N(\sqrt{\alpha_t}\, x_{t-1}, \beta_t I)`, so that
  :math:`q(x_t \mid x_0) = N(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)` with
  :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`; linear and cosine :math:`\beta` schedules, the SNR
  :math:`\bar\alpha_t / (1 - \bar\alpha_t)`, the posterior :math:`q(x_{t-1} \mid x_t, x_0)`, and the
  conversions between the :math:`\epsilon`-, :math:`x_0`-, :math:`v`- and score parametrisations.
- :class:`SDE` -- the continuous processes of score SDEs (Song et al., 2021) over :math:`t \in [0, 1]`:
  :class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE`, each with its drift and diffusion, the marginal
  :math:`p_{0t}(x_t \mid x_0)` in closed form and the prior :math:`p_1`; and :func:`geometric_sigmas`,
  NCSN's noise levels.

Index convention of :class:`NoiseSchedule`: tensors of length :math:`T + 1` indexed by :math:`t`, entry 0
the clean data (:math:`\bar\alpha_0 = 1`, :math:`\beta_0 = 0`).

Example:
    >>> s = NoiseSchedule.make("linear", 1000)
    >>> round(float(s.alpha_bars[-1]), 5), s.T
    (4e-05, 1000)
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import torch

from pyrogen.checks import integer as _count
from pyrogen.checks import number

__all__ = [
    "PARAMETRIZATIONS",
    "SCHEDULES",
    "SDE",
    "SDES",
    "NoiseSchedule",
    "SubVPSDE",
    "VESDE",
    "VPSDE",
    "geometric_sigmas",
    "make_sde",
]

_positive = functools.partial(number, lo=0, strict=True)

#: the :math:`\beta` schedules :meth:`NoiseSchedule.make` knows
SCHEDULES = ("linear", "cosine")
#: what a denoising network may predict (:meth:`NoiseSchedule.to_eps` converts each to :math:`\epsilon`)
PARAMETRIZATIONS = ("eps", "x0", "v", "score")


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(n,)`` per-example values shaped to broadcast against ``x`` ``(n, ...)``, in ``x``'s dtype."""
    return v.to(x).reshape(-1, *([1] * (x.dim() - 1)))


class NoiseSchedule:
    r"""The discrete forward chain of DDPM, from its :math:`\beta_1, \dots, \beta_T` (stored in float64).

    Args:
        betas: ``(T,)``, each in :math:`(0, 1)`.

    Raises:
        ValueError: betas empty, not finite or outside :math:`(0, 1)`.
    """

    def __init__(self, betas: torch.Tensor) -> None:
        b = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if b.numel() == 0 or not torch.isfinite(b).all() or (b <= 0).any() or (b >= 1).any():
            raise ValueError(f"betas must be a non-empty sequence of numbers in (0, 1); got {betas!r}")
        self.T = b.numel()
        self.betas = torch.cat([b.new_zeros(1), b])
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)

    @classmethod
    def make(cls, name: str, timesteps: int) -> NoiseSchedule:
        r"""A named schedule of ``timesteps`` steps.

        - ``"linear"``: :math:`\beta_t` from :math:`10^{-4}` to 0.02 (Ho et al., 2020), both scaled by
          :math:`1000 / T` (Nichol and Dhariwal, 2021) so that any :math:`T` describes about the same process;
        - ``"cosine"``: :math:`\bar\alpha_t = \cos^2\!\big(\tfrac{t/T + s}{1 + s}\tfrac{\pi}{2}\big) / \bar\alpha_0`,
          :math:`s = 0.008`, :math:`\beta_t` clipped at 0.999 (Nichol and Dhariwal, 2021).
        """
        T = _count("timesteps", timesteps)
        if name == "linear":
            scale = 1000 / T
            return cls(torch.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T, dtype=torch.float64))
        if name == "cosine":
            s = 0.008
            t = torch.arange(T + 1, dtype=torch.float64) / T
            f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
            ab = f / f[0]
            return cls((1 - ab[1:] / ab[:-1]).clamp(max=0.999))
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {name!r}")

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.T}, beta_1={float(self.betas[1]):.3g}, beta_T={float(self.betas[-1]):.3g})"

    # -- the chain --------------------------------------------------------------------------------------------
    def _at(self, table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=table.device).long()
        if t.dim() == 0:
            t = t.expand(len(x))
        if ((t < 0) | (t > self.T)).any():
            raise ValueError(f"t must hold steps in 0..{self.T}; got {t.min().item()}..{t.max().item()}")
        return _bcast(table[t.cpu()].to(x.device), x)

    @property
    def snr(self) -> torch.Tensor:
        r""":math:`\bar\alpha_t / (1 - \bar\alpha_t)`, ``(T + 1,)`` (infinite at :math:`t = 0`)."""
        return self.alpha_bars / (1 - self.alpha_bars)

    def q_moments(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and standard deviation of :math:`q(x_t \mid x_0)`: :math:`\sqrt{\bar\alpha_t}\, x_0` and
        :math:`\sqrt{1 - \bar\alpha_t}` (shaped to broadcast)."""
        ab = self._at(self.alpha_bars, t, x0)
        return ab.sqrt() * x0, (1 - ab).sqrt()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon` (``eps`` standard
        normal, drawn if not given)."""
        mean, std = self.q_moments(x0, t)
        return mean + std * (torch.randn_like(x0) if eps is None else eps)

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        r"""One forward step :math:`x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{\beta_t}\, \epsilon`."""
        a = self._at(self.alphas, t, x_prev)
        return a.sqrt() * x_prev + (1 - a).sqrt() * (torch.randn_like(x_prev) if eps is None else eps)

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean and variance of :math:`q(x_{t-1} \mid x_t, x_0)` for :math:`t \ge 1`:

        .. math::
            \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1 - \bar\alpha_t} x_0
              + \frac{\sqrt{\alpha_t}(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t} x_t, \qquad
            \tilde\beta_t = \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}\beta_t

        (:math:`\tilde\beta_1 = 0`: :math:`x_0` is then known).
        """
        t = torch.as_tensor(t).long()
        if (t < 1).any():
            raise ValueError("the posterior q(x_{t-1} | x_t, x_0) needs t >= 1")
        ab, ab_prev = self._at(self.alpha_bars, t, x0), self._at(self.alpha_bars, t - 1, x0)
        a, b = self._at(self.alphas, t, x0), self._at(self.betas, t, x0)
        mean = (ab_prev.sqrt() * b * x0 + a.sqrt() * (1 - ab_prev) * xt) / (1 - ab)
        return mean, (1 - ab_prev) / (1 - ab) * b

    def posterior_variance(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        r""":math:`\tilde\beta_t`, shaped to broadcast against ``like``."""
        t = torch.as_tensor(t).long()
        ab, ab_prev = self._at(self.alpha_bars, t, like), self._at(self.alpha_bars, t - 1, like)
        return (1 - ab_prev) / (1 - ab) * self._at(self.betas, t, like)

    # -- parametrisations -------------------------------------------------------------------------------------
    def to_eps(self, out: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, parametrization: str) -> torch.Tensor:
        r"""The :math:`\epsilon` a network output ``out`` of the given parametrisation stands for, at
        :math:`x_t`: :math:`x_0 \mapsto (x_t - \sqrt{\bar\alpha}x_0)/\sqrt{1-\bar\alpha}`,
        :math:`v \mapsto \sqrt{\bar\alpha}\,v + \sqrt{1-\bar\alpha}\,x_t`,
        score :math:`s \mapsto -\sqrt{1-\bar\alpha}\, s`."""
        if parametrization == "eps":
            return out
        ab = self._at(self.alpha_bars, t, xt)
        if parametrization == "x0":
            return (xt - ab.sqrt() * out) / (1 - ab).sqrt()
        if parametrization == "v":
            return ab.sqrt() * out + (1 - ab).sqrt() * xt
        if parametrization == "score":
            return -(1 - ab).sqrt() * out
        raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}; got {parametrization!r}")

    def from_eps(self, eps: torch.Tensor, xt: torch.Tensor, t: torch.Tensor, parametrization: str) -> torch.Tensor:
        """The inverse of :meth:`to_eps`: what a network of ``parametrization`` outputs for this :math:`\\epsilon`."""
        if parametrization == "eps":
            return eps
        ab = self._at(self.alpha_bars, t, xt)
        if parametrization == "x0":
            return self.eps_to_x0(eps, xt, t)
        if parametrization == "v":
            x0 = self.eps_to_x0(eps, xt, t)
            return ab.sqrt() * eps - (1 - ab).sqrt() * x0
        if parametrization == "score":
            return -eps / (1 - ab).sqrt()
        raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}; got {parametrization!r}")

    def eps_to_x0(self, eps: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0 = (x_t - \sqrt{1 - \bar\alpha_t}\,\epsilon) / \sqrt{\bar\alpha_t}`."""
        ab = self._at(self.alpha_bars, t, xt)
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    def eps_to_score(self, eps: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla_{x_t} \log q(x_t) \approx -\epsilon / \sqrt{1 - \bar\alpha_t}`."""
        return -eps / (1 - self._at(self.alpha_bars, t, xt)).sqrt()


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> torch.Tensor:
    r"""NCSN's noise levels: ``levels`` values from ``sigma_max`` down to ``sigma_min``, geometrically spaced."""
    hi, lo, n = _positive("sigma_max", sigma_max), _positive("sigma_min", sigma_min), _count("levels", levels)
    if lo >= hi:
        raise ValueError(f"sigma_min must be below sigma_max; got {sigma_min!r} >= {sigma_max!r}")
    return torch.logspace(math.log10(hi), math.log10(lo), n, dtype=torch.float64)


class SDE:
    r"""A forward SDE :math:`dx = f(x, t)\,dt + g(t)\,dw` on :math:`t \in [0, 1]` whose marginals
    :math:`p_{0t}(x_t \mid x_0) = N(m(t)\, x_0, \sigma(t)^2 I)` are known in closed form."""

    name: ClassVar[str] = ""

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        """:math:`g(t)`, ``(n,)``."""
        raise NotImplementedError

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`m(t)` and :math:`\\sigma(t)`, each ``(n,)``."""
        raise NotImplementedError

    @property
    def prior_std(self) -> float:
        """Standard deviation of the prior :math:`p_1 = N(0, s^2 I)`."""
        return 1.0

    def perturb(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        r""":math:`x_t = m(t)\, x_0 + \sigma(t)\, \epsilon`."""
        m, s = self.marginal(t)
        return _bcast(m, x0) * x0 + _bcast(s, x0) * eps

    def prior_sample(self, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, dtype=like.dtype, device=like.device) * self.prior_std

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        d = x[0].numel()
        s = self.prior_std
        return -0.5 * (x / s).flatten(1).pow(2).sum(-1) - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def reverse_drift(
        self, x: torch.Tensor, t: torch.Tensor, score: torch.Tensor, probability_flow: bool = False
    ) -> torch.Tensor:
        r""":math:`f - g^2 s` (the reverse SDE, Anderson 1982) or :math:`f - \tfrac12 g^2 s` (the probability
        flow ODE), at ``score`` :math:`s = \nabla \log p_t(x)`."""
        g2 = _bcast(self.diffusion(t), x) ** 2
        return self.drift(x, t) - (0.5 if probability_flow else 1.0) * g2 * score


class VPSDE(SDE):
    r"""Variance preserving: :math:`dx = -\tfrac12\beta(t)x\,dt + \sqrt{\beta(t)}\,dw`,
    :math:`\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})` -- DDPM's chain in the limit."""

    name = "vp"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0) -> None:
        self.beta_min, self.beta_max = _positive("beta_min", beta_min), _positive("beta_max", beta_max)

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean(self, t: torch.Tensor) -> torch.Tensor:
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return -0.5 * _bcast(self.beta(t), x) * x

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta(t).sqrt()

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self._log_mean(t)
        return lm.exp(), (-torch.expm1(2 * lm)).sqrt()


class SubVPSDE(VPSDE):
    r"""Sub-VP: the VP drift with :math:`g(t)^2 = \beta(t)(1 - e^{-2\int_0^t \beta})`, whose variance
    :math:`(1 - e^{-\int_0^t\beta})^2` stays below the VP's (better likelihoods, Song et al., 2021)."""

    name = "subvp"

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return (self.beta(t) * -torch.expm1(4 * self._log_mean(t))).sqrt()

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self._log_mean(t)
        return lm.exp(), -torch.expm1(2 * lm)


class VESDE(SDE):
    r"""Variance exploding: :math:`dx = \sqrt{d\sigma^2(t)/dt}\,dw`,
    :math:`\sigma(t) = \sigma_{min}(\sigma_{max}/\sigma_{min})^t` -- NCSN's noise levels in the limit."""

    name = "ve"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 10.0) -> None:
        self.sigma_min, self.sigma_max = _positive("sigma_min", sigma_min), _positive("sigma_max", sigma_max)
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min must be below sigma_max; got {sigma_min!r} >= {sigma_max!r}")

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the exact marginal variance sigma(t)^2 - sigma_min^2: the data are the t = 0 state, unblurred
        s = self.sigma(t)
        return torch.ones_like(s), (s**2 - self.sigma_min**2).clamp_min(0).sqrt()

    @property
    def prior_std(self) -> float:
        return self.sigma_max


#: the SDEs :func:`make_sde` knows
SDES = ("vp", "subvp", "ve")


def make_sde(name: str, **kwargs: float) -> SDE:
    """The SDE named ``"vp"``, ``"subvp"`` or ``"ve"`` (its parameters as keywords)."""
    classes: dict[str, type[SDE]] = {"vp": VPSDE, "subvp": SubVPSDE, "ve": VESDE}
    if name not in classes:
        raise ValueError(f"sde must be one of {', '.join(SDES)}; got {name!r}")
    return classes[name](**kwargs)
