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
    "Denoising",
    "DiffusionELBO",
    "ancestral",
    "ddim",
    "ddim_timesteps",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow",
    "probability_flow_log_prob",
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


def _call(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = fn(x, t)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the network must return a tensor shaped like x, {tuple(x.shape)}; got {got}")
    return out


def ancestral(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    *,
    variance: str = "posterior",
    clip: float | None = None,
    record_every: int = 0,
) -> Chains:
    r"""DDPM's ancestral sampling: for :math:`t = T, \dots, 1`,
    :math:`x_{t-1} = \tilde\mu_t(\hat x_0, x_t) + \sigma_t z`, :math:`\hat x_0` from the predicted
    :math:`\epsilon` (clipped to :math:`[-c, c]` with ``clip``), :math:`\sigma_t^2 = \tilde\beta_t`
    (``variance="posterior"``) or :math:`\beta_t` (``"beta"``); no noise at the last step.
    """
    x = _check_start(x_T)
    if variance not in ("posterior", "beta"):
        raise ValueError(f"variance must be 'posterior' or 'beta'; got {variance!r}")
    rec = _Recorder(schedule.T, record_every)
    # the per-step coefficients as Python floats: the loop's arithmetic is then on x alone
    ab, a, b = schedule.alpha_bars.tolist(), schedule.alphas.tolist(), schedule.betas.tolist()
    for i, step in enumerate(range(schedule.T, 0, -1)):
        t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
        eps = _call(eps_fn, x, t)
        x0 = (x - math.sqrt(1 - ab[step]) * eps) / math.sqrt(ab[step])
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        # the posterior mean of q(x_{t-1} | x_t, x_0) at x_0 = x0 (NoiseSchedule.posterior, in scalars)
        c0 = math.sqrt(ab[step - 1]) * b[step] / (1 - ab[step])
        c1 = math.sqrt(a[step]) * (1 - ab[step - 1]) / (1 - ab[step])
        mean = c0 * x0 + c1 * x
        var = (1 - ab[step - 1]) / (1 - ab[step]) * b[step] if variance == "posterior" else b[step]
        x = mean + math.sqrt(var) * torch.randn_like(x) if step > 1 else mean
        rec(i, x, step, math.sqrt(1 - ab[step - 1]), eps)
    return rec.chains()


def ddim_timesteps(T: int, steps: int) -> list[int]:
    """The DDIM subsequence: ``steps`` evenly spaced steps of ``1..T``, descending, ending at 1."""
    _count("steps", steps)
    if steps > T:
        raise ValueError(f"steps must be at most the model's {T} timesteps; got {steps}")
    seq = torch.linspace(1, T, steps, dtype=torch.float64).round().long().unique().tolist()
    return sorted(seq, reverse=True)


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
    r"""DDIM (Song, Meng and Ermon, 2021) on ``steps`` steps :math:`\tau_S > \dots > \tau_1`:

    .. math::
        x_{\tau_{i-1}} = \sqrt{\bar\alpha_{\tau_{i-1}}}\,\hat x_0
          + \sqrt{1 - \bar\alpha_{\tau_{i-1}} - \sigma_i^2}\,\hat\epsilon + \sigma_i z,\qquad
        \sigma_i = \eta\sqrt{\frac{1 - \bar\alpha_{\tau_{i-1}}}{1 - \bar\alpha_{\tau_i}}}
          \sqrt{1 - \frac{\bar\alpha_{\tau_i}}{\bar\alpha_{\tau_{i-1}}}}

    (:math:`\bar\alpha_{\tau_0} = 1`): deterministic at ``eta=0``, DDPM's ancestral chain at ``eta=1`` on all
    the steps.
    """
    x = _check_start(x_T)
    eta = _number("eta", eta, 0.0)
    seq = ddim_timesteps(schedule.T, steps)
    ab = schedule.alpha_bars.tolist()
    rec = _Recorder(len(seq), record_every)
    for i, step in enumerate(seq):
        prev = seq[i + 1] if i + 1 < len(seq) else 0
        t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
        eps = _call(eps_fn, x, t)
        a_t, a_prev = ab[step], ab[prev]
        x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
        sigma = eta * math.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0 and prev > 0:
            x = x + sigma * torch.randn_like(x)
        rec(i, x, step, math.sqrt(1 - a_prev), eps)
    return rec.chains()


def _times(sde: SDE, steps: int, t_min: float) -> torch.Tensor:
    _count("steps", steps)
    _number("t_min", t_min, 0.0, 1.0)
    return torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)


def _reverse_step(
    score_fn: ScoreFn, sde: SDE, x: torch.Tensor, t: torch.Tensor, dt: float, noise: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler-Maruyama step of the reverse-time SDE from ``t`` to ``t - dt`` (the mean only without ``noise``);
    returns the new position and the score it used."""
    s = _call(score_fn, x, t)
    x = x - sde.reverse_drift(x, t, s) * dt
    if noise:
        x = x + _bcast(sde.diffusion(t), x) * math.sqrt(dt) * torch.randn_like(x)
    return x, s


def euler_maruyama(
    score_fn: ScoreFn, sde: SDE, x_1: torch.Tensor, *, steps: int = 500, t_min: float = 1e-3, record_every: int = 0
) -> Chains:
    r"""The reverse-time SDE :math:`dx = [f - g^2 \nabla\log p_t]\,dt + g\,d\bar w` from :math:`t = 1` to
    ``t_min`` by Euler-Maruyama in ``steps`` equal steps; the last step takes the mean (no noise)."""
    x = _check_start(x_1)
    ts = _times(sde, steps, t_min)
    rec = _Recorder(steps, record_every)
    for i in range(steps):
        t = torch.full((len(x),), float(ts[i]), dtype=x.dtype, device=x.device)
        x, s = _reverse_step(score_fn, sde, x, t, float(ts[i] - ts[i + 1]), noise=i < steps - 1)
        rec(i, x, float(ts[i + 1]), float(sde.marginal(t[:1])[1]), s)
    return rec.chains()


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
    r"""Predictor-corrector sampling (Song et al., 2021, Algorithm 1): each reverse Euler-Maruyama step is
    followed by ``corrector_steps`` Langevin steps at :math:`t`, of size
    :math:`2\alpha (r \lVert z\rVert / \lVert s\rVert)^2` with ``snr`` :math:`r`, the norms averaged over the
    chains, :math:`\alpha = 1 - \beta_i` for the VP SDEs and 1 for the VE."""
    x = _check_start(x_1)
    ts = _times(sde, steps, t_min)
    r = _number("snr", snr, 0.0)
    _count("corrector_steps", corrector_steps, 0)
    rec = _Recorder(steps, record_every)

    def alpha(t: torch.Tensor) -> float:  # Song et al.'s alpha_i = 1 - beta_i of the discretized VP chain
        beta = getattr(sde, "beta", None)
        return 1.0 if beta is None else max(1.0 - float(beta(t[:1])) / steps, 1e-3)

    for i in range(steps):
        t = torch.full((len(x),), float(ts[i]), dtype=x.dtype, device=x.device)
        for _ in range(corrector_steps):
            s = _call(score_fn, x, t)
            z = torch.randn_like(x)
            # the norms averaged over the chains, as Song et al.'s code: a per-chain ratio gives a chain whose
            # score happens to be small a huge step
            ratio = z.flatten(1).norm(dim=-1).mean() / s.flatten(1).norm(dim=-1).mean().clamp_min(1e-12)
            step = 2 * (r * ratio) ** 2 * alpha(t)
            x = x + step * s + (2 * step).sqrt() * z
        x, s = _reverse_step(score_fn, sde, x, t, float(ts[i] - ts[i + 1]), noise=i < steps - 1)
        rec(i, x, float(ts[i + 1]), float(sde.marginal(t[:1])[1]), s)
    return rec.chains()


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
