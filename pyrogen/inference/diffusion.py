r"""Samplers and likelihoods of diffusion and score models, on one contract: functions of a network and a
schedule (:mod:`pyrogen.inference.schedules`) that advance a batch of chains held in one tensor.

- :func:`ancestral` -- DDPM's reverse chain :math:`p_\theta(x_{t-1} \mid x_t)` (Ho et al., 2020);
- :func:`ddim` -- DDIM on any subsequence of the steps, deterministic (:math:`\eta = 0`) or stochastic
  (Song, Meng and Ermon, 2021);
- :func:`euler_maruyama` and :func:`predictor_corrector` -- the reverse-time SDE, the latter with
  Langevin corrector steps at a target signal-to-noise ratio (Song et al., 2021);
- :func:`probability_flow` -- the probability-flow ODE, integrated by an adaptive solver of
  ``torchdiffeq``, and :func:`probability_flow_log_prob` -- the log-likelihood through it by the
  instantaneous change of variables, with the exact divergence (one backward pass per dimension) or
  Hutchinson's estimator.

Annealed Langevin dynamics (NCSN's sampler) is :class:`~pyrogen.inference.samplers.AnnealedLangevin`.
Every sampler returns :class:`~pyrogen.inference.samplers.Chains`: the positions at the recorded steps,
the last one the sample, with per-step statistics (``t``, ``noise_std``, ``grad_norm``), so that
``chains.to_inference_data()`` lets ArviZ look at the reverse chain like at any other.

The objectives that train the diffusion family, :class:`Denoising` and :class:`DiffusionELBO`, close the module.

``eps_fn(x, t)`` takes ``t`` as an integer tensor ``(n,)`` of DDPM steps; ``score_fn(x, t)`` a float
tensor ``(n,)`` of times in :math:`[0, 1]`. Neither is differentiated by the samplers (only by
:func:`probability_flow_log_prob`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pyrogen.checks import integer as _count
from pyrogen.checks import number as _number
from pyrogen.inference.objectives import Objective, _args, eval_mode
from pyrogen.inference.samplers import Chains
from pyrogen.inference.schedules import SDE, NoiseSchedule, _bcast

__all__ = [
    "AncestralScheduler",
    "DDIMScheduler",
    "Denoising",
    "DiffusionELBO",
    "EulerMaruyamaScheduler",
    "MidpointScheduler",
    "PredictorCorrectorScheduler",
    "RePaintScheduler",
    "Scheduler",
    "ancestral",
    "ddim",
    "ddim_timesteps",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow",
    "probability_flow_log_prob",
    "run_scheduler",
]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_start(x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) == 0:
        raise ValueError("the chains' start must be a non-empty floating tensor (chains, *event_shape)")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the chains' start must be finite")
    return x


class _Recorder:
    """The positions and statistics of the recorded steps (every ``every``-th, and always the last)."""

    def __init__(self, steps: int, every: int) -> None:
        self.steps, self.every = steps, _count("record_every", every, 0) if every else 0
        self.draws: list[torch.Tensor] = []
        self.stats: dict[str, list[torch.Tensor]] = {"t": [], "noise_std": [], "grad_norm": []}

    def __call__(self, i: int, x: torch.Tensor, t: float, noise_std: float, out: torch.Tensor) -> None:
        last = i == self.steps - 1
        if not last and not (self.every and (i + 1) % self.every == 0):
            return
        n = len(x)
        self.draws.append(x)
        self.stats["t"].append(torch.full((n,), float(t), dtype=x.dtype, device=x.device))
        self.stats["noise_std"].append(torch.full((n,), float(noise_std), dtype=x.dtype, device=x.device))
        self.stats["grad_norm"].append(out.flatten(1).norm(dim=-1))

    def chains(self) -> Chains:
        return Chains(torch.stack(self.draws, 1), {k: torch.stack(v, 1) for k, v in self.stats.items()})


def _at_time(
    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    return _call(fn, x, t)


def _call(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = fn(x, t)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the network must return a tensor shaped like x, {tuple(x.shape)}; got {got}")
    if not bool(torch.isfinite(out).all()):
        bad = int((~out.isfinite()).sum())
        raise ValueError(
            f"the network returned non-finite values at t = {float(t.flatten()[0]):g} ({bad} entries): the chains "
            "stop here rather than go on as NaN"
        )
    return out


class Scheduler:
    r"""A reverse-diffusion sampler as a sequence of steps, in the manner of diffusers' schedulers: the driver
    :func:`run_scheduler` calls the network at each of :attr:`timesteps` and hands its output to :meth:`step`,
    which returns the next position and the estimate of the clean data :math:`\hat x_0`.

    A subclass sets ``timesteps`` (the network's inputs, in the order they are visited) and implements
    :meth:`network_time` and :meth:`step`; :meth:`correct` is a hook for Langevin corrector steps (a
    predictor-corrector sampler), :meth:`noise_std` and :meth:`recorded_time` what :class:`Chains` records.
    """

    timesteps: list[Any]

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The network's time input at step ``i``, ``(chains,)``."""
        raise NotImplementedError

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_prev, x0_hat)`` from the network's ``output`` at step ``i`` and position ``x``."""
        raise NotImplementedError

    def correct(self, net: Callable[[torch.Tensor], torch.Tensor], i: int, x: torch.Tensor) -> torch.Tensor:
        """Steps taken at step ``i``'s time before the network is called for :meth:`step` (none here)."""
        return x

    def recorded_time(self, i: int) -> float:
        """The time the position after step ``i`` is at."""
        raise NotImplementedError

    def noise_std(self, i: int) -> float:
        """The marginal noise standard deviation recorded with step ``i``."""
        raise NotImplementedError


def run_scheduler(fn: EpsFn | ScoreFn, scheduler: Scheduler, x: torch.Tensor, *, record_every: int = 0) -> Chains:
    """The one loop of the step-wise diffusion samplers: ``fn(x, t)`` at each of the scheduler's steps, then its
    :meth:`Scheduler.step`. Returns :class:`Chains` of the positions every ``record_every`` steps and at the end
    (the last one the sample), with the per-step ``t``, ``noise_std`` and ``grad_norm`` (of the network's output).
    """
    if not isinstance(scheduler, Scheduler):
        raise TypeError(f"scheduler must be a pyrogen.inference.diffusion.Scheduler; got {type(scheduler).__name__}")
    x = _check_start(x)
    rec = _Recorder(len(scheduler.timesteps), record_every)
    for i in range(len(scheduler.timesteps)):
        t = scheduler.network_time(i, x)
        x = scheduler.correct(functools.partial(_call, fn, t=t), i, x)
        out = _call(fn, x, t)
        x, _ = scheduler.step(out, i, x)
        rec(i, x, scheduler.recorded_time(i), scheduler.noise_std(i), out)
    return rec.chains()


class AncestralScheduler(Scheduler):
    r"""DDPM's ancestral sampling: for :math:`t = T, \dots, 1`,
    :math:`x_{t-1} = \tilde\mu_t(\hat x_0, x_t) + \sigma_t z`, :math:`\hat x_0` from the predicted
    :math:`\epsilon` (clipped to :math:`[-c, c]` with ``clip``), :math:`\sigma_t^2 = \tilde\beta_t`
    (``variance="posterior"``) or :math:`\beta_t` (``"beta"``); no noise at the last step.
    """

    def __init__(self, schedule: NoiseSchedule, variance: str = "posterior", clip: float | None = None) -> None:
        if variance not in ("posterior", "beta"):
            raise ValueError(f"variance must be 'posterior' or 'beta'; got {variance!r}")
        self.variance, self.clip = variance, clip
        self.timesteps = list(range(schedule.T, 0, -1))
        # the per-step coefficients as Python floats: the arithmetic is then on x alone
        self.ab, self.a, self.b = schedule.alpha_bars.tolist(), schedule.alphas.tolist(), schedule.betas.tolist()

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.timesteps[i], dtype=torch.long, device=x.device)

    def x0_hat(self, eps: torch.Tensor, step: int, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\hat x_0` from :math:`\hat\epsilon` at DDPM step ``step`` (clipped with ``clip``)."""
        ab = self.ab
        x0 = (x - math.sqrt(1 - ab[step]) * eps) / math.sqrt(ab[step])
        return x0.clamp(-self.clip, self.clip) if self.clip is not None else x0

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step, ab, a, b = self.timesteps[i], self.ab, self.a, self.b
        x0 = self.x0_hat(output, step, x)
        # the posterior mean of q(x_{t-1} | x_t, x_0) at x_0 = x0 (NoiseSchedule.posterior, in scalars)
        c0 = math.sqrt(ab[step - 1]) * b[step] / (1 - ab[step])
        c1 = math.sqrt(a[step]) * (1 - ab[step - 1]) / (1 - ab[step])
        mean = c0 * x0 + c1 * x
        var = (1 - ab[step - 1]) / (1 - ab[step]) * b[step] if self.variance == "posterior" else b[step]
        return (mean + math.sqrt(var) * torch.randn_like(x) if step > 1 else mean), x0

    def recorded_time(self, i: int) -> float:
        return float(self.timesteps[i])

    def noise_std(self, i: int) -> float:
        return math.sqrt(1 - self.ab[self.timesteps[i] - 1])


class RePaintScheduler(Scheduler):
    r"""Inpainting by the ancestral chain with the known part of :math:`x_0` put back at every step (Lugmayr et
    al., 2022): after each reverse step the known entries are replaced by a draw of
    :math:`q(x_{t-1} \mid x_0)`, and each step is taken ``resample`` times, going back by one forward step
    :math:`q(x_t \mid x_{t-1})` between the rounds, which lets the generated part agree with the known one
    (``resample=1``: the plain replacement method).

    Args:
        schedule: the DDPM noise schedule.
        x0: the data, ``(chains, *event_shape)``, read where ``known``.
        known: boolean, broadcastable to ``x0``, True where ``x0`` is observed.
        resample: rounds per step.
        variance, clip: as :class:`AncestralScheduler`.
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        x0: torch.Tensor,
        known: torch.Tensor,
        resample: int = 5,
        variance: str = "posterior",
        clip: float | None = None,
    ) -> None:
        self.inner = AncestralScheduler(schedule, variance, clip)
        self.schedule, self.x0, self.known = schedule, x0, known
        self.rounds = _count("resample", resample)
        self.timesteps = [step for step in self.inner.timesteps for _ in range(self.rounds)]

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.timesteps[i], dtype=torch.long, device=x.device)

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prev, x0_hat = self.inner.step(output, i // self.rounds, x)
        step, t = self.timesteps[i], self.network_time(i, x)
        known_prev = self.schedule.q_sample(self.x0, t - 1) if step > 1 else self.x0
        prev = torch.where(self.known, known_prev, prev)
        if i % self.rounds < self.rounds - 1 and step > 1:
            prev = self.schedule.q_step(prev, t)  # back to step t for the next round
        return prev, x0_hat

    def recorded_time(self, i: int) -> float:
        return self.inner.recorded_time(i // self.rounds)

    def noise_std(self, i: int) -> float:
        return self.inner.noise_std(i // self.rounds)


class MidpointScheduler(Scheduler):
    r"""The explicit midpoint method for :math:`dx/d\tau = v(x, \tau)` from :math:`\tau = 0` to 1 in ``steps``
    equal steps of :math:`h`, as two scheduler steps per step (the way diffusers' Heun scheduler takes its two
    stages): :math:`x_{1/2} = x + \tfrac h2 v(x, \tau)`, then :math:`x' = x + h\, v(x_{1/2}, \tau + \tfrac h2)`;
    flow matching's sampler with a fixed number of steps (``2 * steps`` network evaluations).

    Args:
        steps: midpoint steps.
        sigma_min: the conditional optimal-transport path's :math:`\sigma_{min}`: the recorded noise standard
            deviation at :math:`\tau` is :math:`1 - (1 - \sigma_{min})\tau`.
    """

    def __init__(self, steps: int, sigma_min: float = 0.0) -> None:
        self.h = 1.0 / _count("steps", steps)
        self.sigma_min = _number("sigma_min", sigma_min, 0.0, 1.0)
        self.timesteps = [j * self.h + 0.5 * self.h * (i % 2) for j in range(steps) for i in range(2)]
        self._start: torch.Tensor | None = None

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        tau = torch.full((len(x),), (i // 2) * self.h, dtype=x.dtype, device=x.device)
        return tau + 0.5 * self.h if i % 2 else tau

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if i % 2 == 0:
            self._start = x
            return x + 0.5 * self.h * output, x
        assert self._start is not None
        x_new = self._start + self.h * output
        return x_new, x_new

    def recorded_time(self, i: int) -> float:
        return self.timesteps[i] + 0.5 * self.h

    def noise_std(self, i: int) -> float:
        return 1 - (1 - self.sigma_min) * self.recorded_time(i)


def ancestral(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    variance: str = "posterior",
    clip: float | None = None,
    record_every: int = 0,
) -> Chains:
    """DDPM's ancestral sampling from ``x_T`` (:class:`AncestralScheduler` run by :func:`run_scheduler`)."""
    return run_scheduler(eps_fn, AncestralScheduler(schedule, variance, clip), x_T, record_every=record_every)


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The DDIM subsequence: ``steps`` evenly spaced steps of ``1..T``, descending, ending at 1."""
    _count("steps", steps)
    if steps > T:
        raise ValueError(f"steps must be at most the model's {T} timesteps; got {steps}")
    seq = torch.linspace(1, T, steps, dtype=torch.float64).round().long().unique().tolist()
    return sorted(seq, reverse=True)


class DDIMScheduler(Scheduler):
    r"""DDIM (Song, Meng and Ermon, 2021) on ``steps`` steps :math:`\tau_S > \dots > \tau_1`:

    .. math::
        x_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\,\hat x_0
          + \sqrt{1 - \bar\alpha_{\tau_{i-1}} - \sigma_i^2}\,\hat\epsilon + \sigma_i z,\qquad
        \sigma_i = \eta\sqrt{\frac{1 - \bar\alpha_{\tau_{i-1}}}{1 - \bar\alpha_{\tau_i}}}
          \sqrt{1 - \frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}}

    (:math:`\bar\alpha_{\tau_0} = 1`): deterministic at ``eta=0``, DDPM's ancestral chain at ``eta=1`` on all
    the steps.
    """

    def __init__(self, schedule: NoiseSchedule, steps: int = 50, eta: float = 0.0, clip: float | None = None) -> None:
        self.eta = _number("eta", eta, 0.0)
        self.clip = clip
        self.timesteps = ddim_timesteps(schedule.T, steps)
        self.ab = schedule.alpha_bars.tolist()

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), self.timesteps[i], dtype=torch.long, device=x.device)

    def _prev(self, i: int) -> int:
        return self.timesteps[i + 1] if i + 1 < len(self.timesteps) else 0

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        step, prev, eps = self.timesteps[i], self._prev(i), output
        a_t, a_prev = self.ab[step], self.ab[prev]
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = self.eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0 and prev > 0:
            x = x + sigma * torch.randn_like(x)
        return x, x0

    def recorded_time(self, i: int) -> float:
        return float(self.timesteps[i])

    def noise_std(self, i: int) -> float:
        return math.sqrt(1 - self.ab[self._prev(i)])


def ddim(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    steps: int = 50,
    eta: float = 0.0,
    clip: float | None = None,
    record_every: int = 0,
) -> Chains:
    """DDIM from ``x_T`` (:class:`DDIMScheduler` run by :func:`run_scheduler`)."""
    return run_scheduler(eps_fn, DDIMScheduler(schedule, steps, eta, clip), x_T, record_every=record_every)


class EulerMaruyamaScheduler(Scheduler):
    r"""The reverse-time SDE :math:`dx = [f - g^2 \nabla\log p_t]\,dt + g\,d\bar w` from :math:`t = 1` to
    ``t_min`` by Euler-Maruyama in ``steps`` equal steps; the last step takes the mean (no noise)."""

    def __init__(self, sde: SDE, steps: int = 500, t_min: float = 1e-3) -> None:
        _count("steps", steps)
        _number("t_min", t_min, 0.0, 1.0)
        self.sde = sde
        self.ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
        self.timesteps = self.ts[:-1].tolist()

    def network_time(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x),), float(self.ts[i]), dtype=x.dtype, device=x.device)

    def step(self, output: torch.Tensor, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.network_time(i, x)
        dt = float(self.ts[i] - self.ts[i + 1])
        x_new = x - self.sde.reverse_drift(x, t, output) * dt
        if i < len(self.timesteps) - 1:
            x_new = x_new + _bcast(self.sde.diffusion(t), x) * math.sqrt(dt) * torch.randn_like(x)
        mean, std = self.sde.marginal(t)
        x0 = (x + _bcast(std, x) ** 2 * output) / _bcast(mean, x)  # Tweedie's estimate of the clean data
        return x_new, x0

    def recorded_time(self, i: int) -> float:
        return float(self.ts[i + 1])

    def noise_std(self, i: int) -> float:
        return float(self.sde.marginal(self.ts[i : i + 1].float())[1])


class PredictorCorrectorScheduler(EulerMaruyamaScheduler):
    r"""Predictor-corrector sampling (Song et al., 2021, Algorithm 1): each reverse Euler-Maruyama step is
    preceded by ``corrector_steps`` Langevin steps at its time, of size
    :math:`2\alpha (r \lVert z\rVert / \lVert s\rVert)^2` with ``snr`` :math:`r`, the norms averaged over the
    chains, :math:`\alpha = 1 - \beta_i` for the VP SDEs and 1 for the VE."""

    def __init__(
        self, sde: SDE, steps: int = 500, snr: float = 0.16, corrector_steps: int = 1, t_min: float = 1e-3
    ) -> None:
        super().__init__(sde, steps, t_min)
        self.snr = _number("snr", snr, 0.0)
        self.corrector_steps = _count("corrector_steps", corrector_steps, 0)

    def _alpha(self, t: torch.Tensor) -> float:  # Song et al.'s alpha_i = 1 - beta_i of the discretized VP chain
        beta = getattr(self.sde, "beta", None)
        return 1.0 if beta is None else max(1.0 - float(beta(t[:1])) / len(self.timesteps), 1e-3)

    def correct(self, net: Callable[[torch.Tensor], torch.Tensor], i: int, x: torch.Tensor) -> torch.Tensor:
        t = self.network_time(i, x)
        for _ in range(self.corrector_steps):
            s = net(x)
            z = torch.randn_like(x)
            # the norms averaged over the chains, as Song et al.'s code: a per-chain ratio gives a chain whose
            # score happens to be small a huge step
            ratio = z.flatten(1).norm(dim=-1).mean() / s.flatten(1).norm(dim=-1).mean().clamp_min(1e-12)
            step = 2 * (self.snr * ratio) ** 2 * self._alpha(t)
            x = x + step * s + (2 * step).sqrt() * z
        return x


def euler_maruyama(
    score_fn: ScoreFn, sde: SDE, x_1: torch.Tensor, *, steps: int = 500, t_min: float = 1e-3, record_every: int = 0
) -> Chains:
    """The reverse-time SDE by Euler-Maruyama from ``x_1`` (:class:`EulerMaruyamaScheduler` run by
    :func:`run_scheduler`)."""
    return run_scheduler(score_fn, EulerMaruyamaScheduler(sde, steps, t_min), x_1, record_every=record_every)


def predictor_corrector(
    score_fn: ScoreFn,
    sde: SDE,
    x_1: torch.Tensor,
    *,
    steps: int = 500,
    snr: float = 0.16,
    corrector_steps: int = 1,
    t_min: float = 1e-3,
    record_every: int = 0,
) -> Chains:
    """Predictor-corrector sampling from ``x_1`` (:class:`PredictorCorrectorScheduler` run by
    :func:`run_scheduler`)."""
    scheduler = PredictorCorrectorScheduler(sde, steps, snr, corrector_steps, t_min)
    return run_scheduler(score_fn, scheduler, x_1, record_every=record_every)


def _odeint(func: Any, y0: Any, t: torch.Tensor, rtol: float, atol: float, method: str) -> Any:
    from torchdiffeq import odeint

    # adaptive solvers step past the end and interpolate back; the SDE is undefined below t = 0, so the
    # end is a step the solver must land on
    options = {"step_t": t} if method in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun") else None
    return odeint(func, y0, t, rtol=rtol, atol=atol, method=method, options=options)


def probability_flow(
    score_fn: ScoreFn,
    sde: SDE,
    x_1: torch.Tensor,
    *,
    t_min: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
) -> tuple[torch.Tensor, int]:
    r"""Integrate the probability-flow ODE :math:`dx/dt = f - \tfrac12 g^2 \nabla\log p_t` from :math:`t = 1`
    down to ``t_min`` with ``torchdiffeq``'s ``method`` (adaptive by default): a deterministic map from the
    prior to the data. Returns the samples and the number of network evaluations."""
    x = _check_start(x_1)
    _number("t_min", t_min, 0.0, 1.0)
    nfe = 0

    def func(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        tt = t.to(x).expand(len(x))
        return sde.reverse_drift(x, tt, _call(score_fn, x, tt), probability_flow=True)

    ts = torch.tensor([1.0, t_min], dtype=x.dtype, device=x.device)
    with torch.no_grad():
        out = _odeint(func, x, ts, rtol, atol, method)[-1]
    return out, nfe


def probability_flow_log_prob(
    score_fn: ScoreFn,
    sde: SDE,
    x: torch.Tensor,
    *,
    t_min: float = 1e-3,
    trace: str = "exact",
    probes: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    method: str = "dopri5",
    generator: torch.Generator | None = None,
    differentiable: bool = False,
) -> tuple[torch.Tensor, int]:
    r"""The log-density of ``x`` (at time ``t_min``) under the probability-flow ODE, by the instantaneous change
    of variables (Chen et al., 2018; Song et al., 2021):

    .. math:: \log p_{t_{min}}(x) = \log p_1(x_1) + \int_{t_{min}}^1 \nabla\cdot \tilde f(x_t, t)\,dt

    integrated jointly with :math:`x_t` from ``t_min`` to 1. ``trace="exact"``: the divergence by one backward
    pass per dimension; ``"hutchinson"``: :math:`\mathbb E_v[v^\top \nabla\tilde f\, v]` with ``probes``
    Rademacher vectors fixed over the integration (an unbiased estimate of the log-likelihood).
    ``differentiable``: keep the graph through the solver's steps (for gradients in the network's parameters;
    memory grows with the number of steps). Returns the per-example log-density and the number of network
    evaluations.
    """
    x = _check_start(x)
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson'; got {trace!r}")
    _count("probes", probes)
    _number("t_min", t_min, 0.0, 1.0)
    n, d = len(x), x[0].numel()
    shape = x.shape
    if trace == "hutchinson":
        v = torch.randint(0, 2, (probes, *shape), generator=generator, device="cpu").to(x) * 2 - 1
    nfe = 0

    def func(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal nfe
        nfe += 1
        xt = state[0]
        tt = t.to(xt).expand(n)
        with torch.enable_grad():
            if not (differentiable and xt.requires_grad):
                xt = xt.detach().requires_grad_(True)
            drift = sde.reverse_drift(xt, tt, score_fn(xt, tt), probability_flow=True)
            keep = differentiable
            div = torch.zeros(n, dtype=xt.dtype, device=xt.device)
            if trace == "exact":
                flat = drift.reshape(n, d)
                for i in range(d):
                    (g,) = torch.autograd.grad(flat[:, i].sum(), xt, retain_graph=keep or i < d - 1, create_graph=keep)
                    div = div + g.reshape(n, d)[:, i]
            else:
                for j in range(probes):
                    (g,) = torch.autograd.grad(
                        (drift * v[j]).sum(), xt, retain_graph=keep or j < probes - 1, create_graph=keep
                    )
                    div = div + (g * v[j]).flatten(1).sum(-1) / probes
        return (drift, div) if differentiable else (drift.detach(), div.detach())

    ts = torch.tensor([t_min, 1.0], dtype=x.dtype, device=x.device)
    zero = torch.zeros(n, dtype=x.dtype, device=x.device)
    x1, delta = _odeint(func, (x, zero), ts, rtol, atol, method)
    return sde.prior_log_prob(x1[-1]) + delta[-1], nfe


# -- the objectives ---------------------------------------------------------------------------------------------
class Denoising(Objective):
    r"""The mean denoising loss of a diffusion or score model, ``model.denoising_loss(batch)``: DDPM's
    :math:`\lVert \epsilon - \epsilon_\theta(x_t, t)\rVert^2` (or its :math:`L_{vlb}`), NCSN's denoising score
    matching over its noise levels, the score SDE's. Validation watches the same loss on a fixed draw of
    times and noise (seed 0, the global random state untouched) with the averaged weights where there are any,
    comparable from one validation to the next. It is no ELBO of the model's Pyro program (for that,
    :class:`DiffusionELBO`)."""

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return model.denoising_loss(batch).mean()  # type: ignore[operator]

    def validation(self, model: nn.Module, batch: Any) -> torch.Tensor:
        ref = next(model.parameters())
        with torch.random.fork_rng(devices=[ref.device] if ref.is_cuda else []):
            torch.manual_seed(0)
            with torch.no_grad(), eval_mode(model):
                return model.denoising_loss(batch, averaged=True).mean()  # type: ignore[operator]


class DiffusionELBO(Objective):
    r"""Minus a DDPM's variational bound on one chain drawn backwards from :math:`q(x_T \mid x_0)` through the
    posteriors, per example (``model.chain_bound(batch)``): what Pyro's ``TraceMeanField_ELBO`` computes on
    the model's ``model`` and ``guide`` (each KL in closed form, the same draws on the same seed), which
    ``objective="pyro"`` uses. Training by it is Sohl-Dickstein et al.'s (2015); Ho et al. (2020) train the
    reweighted :class:`Denoising` loss."""

    def loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        return model.chain_bound(batch).mean()  # type: ignore[operator]

    def pyro_loss(self, model: nn.Module, batch: Any, group: str = "model") -> torch.Tensor:
        from pyro.infer import TraceMeanField_ELBO

        args = _args(batch)
        return TraceMeanField_ELBO().differentiable_loss(model.model, model.guide, *args) / len(args[0])
