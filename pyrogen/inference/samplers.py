r"""MCMC kernels for many chains held in one tensor, and their adapter to Pyro's ``MCMC``.

Pyro's HMC and NUTS run one chain on a dictionary of sites; an energy-based model or a
score network wants hundreds of short chains advanced together, in plain tensor code, on
the GPU. The kernels here do that, on one contract in the manner of NumPyro's
``init``/``sample`` kernels: the state of every chain is explicit (:class:`ChainState`:
position, log density, its gradient, step size, the last transition's acceptance
probability), :meth:`Kernel.init` builds it from starting points and :meth:`Kernel.step`
advances all chains by one transition. :func:`sample_chains` runs warm-up with per-chain
step-size adaptation (dual averaging, Hoffman and Gelman, 2014) to a target acceptance
probability and records per-draw statistics; :meth:`Chains.to_inference_data` hands the
draws to ArviZ with ``lp``, ``acceptance_rate``, ``step_size``, ``energy`` and ``diverging``
in ``sample_stats`` (ArviZ's names), so that its energy plot, BFMI, R-hat and ESS work.

Kernels (the target is an unnormalized log density ``log_prob(x) -> (chains,)``):

- :class:`Langevin` -- unadjusted Langevin,
  :math:`x' = x + \epsilon \nabla \log p(x) + \sqrt{2\epsilon}\,\xi` (or a fixed noise scale,
  as in EBM training); biased for any :math:`\epsilon > 0`, no accept step, takes a score
  function instead of a density if that is all there is;
- :class:`MALA` -- the same proposal with a Metropolis-Hastings correction (exact);
- :class:`RandomWalkMH` -- Gaussian random-walk Metropolis-Hastings;
- :class:`HMC` -- Hamiltonian Monte Carlo with unit mass and a fixed number of leapfrog steps;
- :class:`ChEES` -- HMC for many chains that adapts its trajectory length (jittered), one step size and a
  diagonal mass matrix from the chains themselves (Hoffman, Radul and Sountsov, 2021);
- :class:`AnnealedLangevin` -- Langevin dynamics over a decreasing sequence of noise levels
  with a noise-conditional score (Song and Ermon, 2019), the sampler of NCSN.

:class:`PyroKernel` makes any of the first four a Pyro
:class:`~pyro.infer.mcmc.mcmc_kernel.MCMCKernel`, so that ``pyro.infer.MCMC`` runs it on a
Pyro model (sites in unconstrained space, through Pyro's own ``initialize_model``) or on a
``potential_fn``, and ``arviz.from_pyro`` accepts the run.

Example:
    >>> import torch
    >>> from pyrogen.inference.samplers import MALA, sample_chains
    >>> log_prob = lambda x: -0.5 * (x**2).sum(-1)
    >>> chains = sample_chains(MALA(log_prob, step_size=0.5), torch.zeros(4, 2), 200, warmup_steps=100)
    >>> chains.samples.shape
    torch.Size([4, 200, 2])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.ops.dual_averaging import DualAveraging

from pyrogen.checks import integer as _check_count
from pyrogen.checks import number

__all__ = [
    "ChainState",
    "Chains",
    "Kernel",
    "Langevin",
    "MALA",
    "RandomWalkMH",
    "HMC",
    "ChEES",
    "Gibbs",
    "KERNELS",
    "kernel_class",
    "AnnealedLangevin",
    "StepSizeAdapter",
    "sample_chains",
    "PyroKernel",
    "AISResult",
    "annealed_importance_sampling",
]

_positive = functools.partial(number, lo=0, strict=True)

LogProb = Callable[[torch.Tensor], torch.Tensor]
Score = Callable[[torch.Tensor], torch.Tensor]

#: a transition whose energy error exceeds this is a divergence (Pyro's and Stan's threshold)
MAX_DELTA_ENERGY = 1000.0


@dataclass(frozen=True)
class ChainState:
    """The state of a batch of chains; every tensor has the chains as its first dimension.

    Attributes:
        position: ``(chains, *event_shape)``.
        log_prob: ``(chains,)``, the unnormalized log density at ``position`` (NaN when the
            kernel only has a score function).
        grad: ``(chains, *event_shape)``, :math:`\\nabla \\log p` at ``position`` (``None`` for
            kernels that do not use it).
        step_size: ``(chains,)``.
        accept_prob: ``(chains,)``, the last transition's acceptance probability (1 for
            unadjusted kernels).
        accepted: ``(chains,)`` bool, whether the last proposal was taken.
        energy: ``(chains,)``, the Hamiltonian of the current point for HMC, ``-log_prob`` otherwise.
        diverging: ``(chains,)`` bool, whether the last transition diverged (an energy error
            above :data:`MAX_DELTA_ENERGY` or a non-finite proposal).
        adaptation: what the kernel's warm-up adaptation carries from one transition to the next (the
            step-size adapter; for :class:`ChEES`, also the trajectory length and the mass matrix, which the
            draws after warm-up use), ``None`` before warm-up (the state of NumPyro's ``warmup_adapter``, kept
            in the kernel's state as NumPyro keeps it).
    """

    position: torch.Tensor
    log_prob: torch.Tensor
    grad: torch.Tensor | None
    step_size: torch.Tensor
    accept_prob: torch.Tensor
    accepted: torch.Tensor
    energy: torch.Tensor
    diverging: torch.Tensor
    adaptation: Any = None


def _check_position(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"the initial position must be a tensor of shape (chains, *event_shape); got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise ValueError(f"the initial position must be floating point; got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(
            f"the initial position must have shape (chains, *event_shape), both non-empty; got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("the initial position holds NaN or infinite values")
    return x.detach()


def _sum_event(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).sum(-1)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per chain: ``a`` where ``mask`` else ``b``."""
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def _per_chain(step: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return step.view(-1, *([1] * (like.dim() - 1)))


class Kernel:
    r"""The contract every batched kernel keeps.

    Args:
        log_prob: ``x -> (chains,)`` unnormalized log density of a batch of positions
            ``(chains, *event_shape)``, differentiable in ``x`` (by autograd) for the
            gradient-based kernels.
        step_size: the initial step size, the same for every chain.
        target_accept: the acceptance probability warm-up adapts each chain's step size to.
        adapt_step_size: whether :func:`sample_chains` adapts the step size during warm-up.
    """

    #: whether :meth:`step` needs :math:`\nabla \log p`
    uses_grad: bool = True
    #: whether the kernel has a Metropolis-Hastings test (and so an acceptance rate to adapt to)
    adjusted: bool = True
    default_target_accept: float = 0.8

    def __init__(
        self,
        log_prob: LogProb,
        step_size: float = 0.1,
        *,
        target_accept: float | None = None,
        adapt_step_size: bool = True,
    ) -> None:
        if not callable(log_prob):
            raise TypeError(f"log_prob must be a callable x -> (chains,); got {type(log_prob).__name__}")
        self.log_prob_fn = log_prob
        self.step_size = _positive("step_size", step_size)
        ta = self.default_target_accept if target_accept is None else target_accept
        if isinstance(ta, bool) or not isinstance(ta, (int, float)) or not 0 < ta < 1:
            raise ValueError(f"target_accept must be in (0, 1); got {target_accept!r}")
        self.target_accept = float(ta)
        self.adapt_step_size = bool(adapt_step_size) and self.adjusted

    # -- the target --------------------------------------------------------------------------
    def _log_prob(self, x: torch.Tensor) -> torch.Tensor:
        lp = self.log_prob_fn(x)
        if not isinstance(lp, torch.Tensor) or lp.shape != x.shape[:1]:
            got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
            raise ValueError(f"log_prob must return one value per chain, shape ({x.shape[0]},); got {got}")
        return lp

    def _log_prob_and_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            lp = self._log_prob(x)
            (g,) = torch.autograd.grad(lp.sum(), x)
        return lp.detach(), g.detach()

    def _evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.uses_grad:
            return self._log_prob_and_grad(x)
        with torch.no_grad():
            return self._log_prob(x), None

    def _has_density(self) -> bool:
        """Whether the kernel evaluates a log density (a score-only Langevin kernel does not)."""
        return True

    # -- the contract ------------------------------------------------------------------------
    def init(self, position: torch.Tensor, step_size: torch.Tensor | float | None = None) -> ChainState:
        """The state of chains starting at ``position`` ``(chains, *event_shape)``."""
        x = _check_position(position)
        lp, g = self._evaluate(x)
        bad = torch.isnan(lp) | (lp == math.inf)
        if self._has_density() and bad.any():
            where = torch.nonzero(bad).flatten()[:5].tolist()
            raise ValueError(
                f"log_prob is {float(lp[bad][0])} at the starting position of chains {where} (of {len(lp)}): a "
                "log density must be finite or -inf; check the target (or start the chains elsewhere)"
            )
        if g is not None and not torch.isfinite(g[torch.isfinite(lp) | ~self._has_density()]).all():
            raise ValueError("the gradient of log_prob (or the score) is not finite at a starting position")
        n = x.shape[0]
        if step_size is None:
            step = torch.full((n,), self.step_size, dtype=x.dtype, device=x.device)
        else:
            step = torch.as_tensor(step_size, dtype=x.dtype, device=x.device).expand(n).clone()
        return ChainState(
            position=x,
            log_prob=lp,
            grad=g,
            step_size=step,
            accept_prob=torch.ones(n, dtype=x.dtype, device=x.device),
            accepted=torch.ones(n, dtype=torch.bool, device=x.device),
            energy=-lp,
            diverging=torch.zeros(n, dtype=torch.bool, device=x.device),
        )

    def step(self, state: ChainState) -> ChainState:
        """One transition of every chain (no adaptation: :meth:`adapt` does that, in warm-up)."""
        raise NotImplementedError

    def adapt(self, state: ChainState, t: int, warmup_steps: int) -> ChainState:
        """Adapt after warm-up transition ``t`` of ``warmup_steps`` (:func:`sample_chains` and
        :class:`PyroKernel` call it): each chain's step size to :attr:`target_accept`
        (:class:`StepSizeAdapter`, carried in ``state.adaptation``), where the kernel adapts it."""
        if not self.adapt_step_size:
            return state
        adapter = state.adaptation if t > 0 and isinstance(state.adaptation, StepSizeAdapter) else None
        if adapter is None:
            adapter = StepSizeAdapter(state.step_size, self.target_accept, warmup_steps)
        return replace(state, step_size=adapter.update(state.accept_prob).to(state.step_size), adaptation=adapter)

    def proposal_log_density(
        self, x: torch.Tensor, grad_x: torch.Tensor | None, y: torch.Tensor, step_size: torch.Tensor
    ) -> torch.Tensor:
        r""":math:`\log q(y \mid x)` per chain, for the kernels with a Metropolis-Hastings test (the same
        function their acceptance ratio is computed from)."""
        raise NotImplementedError(f"{type(self).__name__} has no proposal density")

    def log_acceptance(
        self, x: torch.Tensor, lp_x: torch.Tensor, g_x: torch.Tensor | None, y: torch.Tensor, step_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(log alpha(x -> y), log p(y), grad log p(y))``: the Metropolis-Hastings log acceptance
        probability (not clamped at 0), what :meth:`step` accepts by."""
        lp_y, g_y = self._evaluate(y)
        log_alpha = (
            lp_y
            - lp_x
            + self.proposal_log_density(y, g_y, x, step_size)
            - self.proposal_log_density(x, g_x, y, step_size)
        )
        return torch.nan_to_num(log_alpha, nan=-math.inf), lp_y, g_y

    def transition_log_density(self, x: torch.Tensor, y: torch.Tensor, step_size: torch.Tensor) -> torch.Tensor:
        r""":math:`\log K(x \to y) = \log q(y \mid x) + \min(0, \log \alpha(x \to y))` for :math:`y \ne x`, per
        chain: detailed balance is :math:`p(x) K(x \to y) = p(y) K(y \to x)`."""
        lp_x, g_x = self._evaluate(x)
        log_alpha, _, _ = self.log_acceptance(x, lp_x, g_x, y, step_size)
        return self.proposal_log_density(x, g_x, y, step_size) + log_alpha.clamp(max=0)

    def _mh(self, state: ChainState, proposal: torch.Tensor) -> ChainState:
        """Metropolis-Hastings on ``proposal`` (one per chain)."""
        log_alpha, lp_new, g_new = self.log_acceptance(
            state.position, state.log_prob, state.grad, proposal, state.step_size
        )
        diverging = ~torch.isfinite(lp_new) | (log_alpha < -MAX_DELTA_ENERGY)
        accept_prob = log_alpha.clamp(max=0).exp()
        u = torch.rand_like(accept_prob)
        accepted = (u < accept_prob) & ~diverging
        lp = torch.where(accepted, lp_new, state.log_prob)
        return replace(
            state,
            position=_where(accepted, proposal, state.position),
            log_prob=lp,
            grad=None if g_new is None else _where(accepted, g_new, state.grad),  # type: ignore[arg-type]
            accept_prob=accept_prob,
            accepted=accepted,
            energy=-lp,
            diverging=diverging,
        )


class Langevin(Kernel):
    r"""Unadjusted Langevin: :math:`x' = x + \epsilon\,\nabla \log p(x) + \sigma \xi`, :math:`\xi \sim N(0, I)`.

    With ``noise=None``, :math:`\sigma = \sqrt{2\epsilon}` (the discretized Langevin diffusion,
    whose stationary law tends to :math:`p` as :math:`\epsilon \to 0`; for a Gaussian
    :math:`N(0, s^2)` it is :math:`N(0, s^2 / (1 - \epsilon / 2s^2))`); a fixed ``noise`` decouples
    the two, as EBM training does (Du and Mordatch, 2019). Every proposal is taken, so there is
    no acceptance rate to adapt to.

    Args:
        log_prob: the unnormalized log density; or give ``score`` instead.
        score: ``x -> grad log p(x)`` (same shape as ``x``), when there is no density.
        step_size: :math:`\epsilon`.
        noise: the standard deviation of the injected noise (``None``: :math:`\sqrt{2\epsilon}`).
        grad_clip: clamp each coordinate of the gradient to ``[-grad_clip, grad_clip]``
            (``None``: no clamp), the usual guard in short-run EBM sampling.
    """

    adjusted = False

    def __init__(
        self,
        log_prob: LogProb | None = None,
        step_size: float = 0.01,
        *,
        score: Score | None = None,
        noise: float | None = None,
        grad_clip: float | None = None,
    ) -> None:
        if (log_prob is None) == (score is None):
            raise ValueError("give exactly one of log_prob and score")
        if score is not None and not callable(score):
            raise TypeError(f"score must be a callable x -> grad log p(x); got {type(score).__name__}")
        super().__init__(log_prob if log_prob is not None else _no_density, step_size, adapt_step_size=False)
        self.score_fn = score
        self.noise = None if noise is None else _positive("noise", noise)
        self.grad_clip = None if grad_clip is None else _positive("grad_clip", grad_clip)

    def _has_density(self) -> bool:
        return self.score_fn is None

    def _evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.score_fn is None:
            lp, g = self._log_prob_and_grad(x)
        else:
            with torch.no_grad():
                g = self.score_fn(x)
            if not isinstance(g, torch.Tensor) or g.shape != x.shape:
                got = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
                raise ValueError(f"score must return a tensor shaped like x, {tuple(x.shape)}; got {got}")
            lp = torch.full(x.shape[:1], math.nan, dtype=x.dtype, device=x.device)
        if self.grad_clip is not None:
            g = g.clamp(-self.grad_clip, self.grad_clip)
        return lp, g

    def step(self, state: ChainState) -> ChainState:
        x, eps = state.position, _per_chain(state.step_size, state.position)
        sigma = (2 * eps).sqrt() if self.noise is None else self.noise
        assert state.grad is not None
        x_new = x + eps * state.grad + sigma * torch.randn_like(x)
        lp, g = self._evaluate(x_new)
        n = x.shape[0]
        return replace(
            state,
            position=x_new.detach(),
            log_prob=lp,
            grad=g,
            accept_prob=torch.ones(n, dtype=x.dtype, device=x.device),
            accepted=torch.ones(n, dtype=torch.bool, device=x.device),
            energy=-lp,
            diverging=~torch.isfinite(x_new.flatten(1)).all(-1),
        )


def _no_density(x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - never called
    raise AssertionError("a score-only Langevin kernel has no density")


class MALA(Kernel):
    r"""Metropolis-adjusted Langevin (Roberts and Tweedie, 1996): the Langevin proposal
    :math:`x' \sim N(x + \epsilon \nabla \log p(x), 2\epsilon I)` accepted with probability
    :math:`\min\{1, p(x') q(x \mid x') / p(x) q(x' \mid x)\}`, so that :math:`p` is stationary
    for every :math:`\epsilon`. Warm-up adapts :math:`\epsilon` to ``target_accept``
    (0.574, the optimal rate of Roberts and Rosenthal, 1998)."""

    default_target_accept = 0.574

    def proposal_log_density(
        self, x: torch.Tensor, grad_x: torch.Tensor | None, y: torch.Tensor, step_size: torch.Tensor
    ) -> torch.Tensor:
        assert grad_x is not None
        eps = _per_chain(step_size, x)
        d = x[0].numel()
        sq = _sum_event((y - x - eps * grad_x) ** 2)
        return -sq / (4 * step_size) - 0.5 * d * torch.log(4 * math.pi * step_size)

    def step(self, state: ChainState) -> ChainState:
        x, g, eps = state.position, state.grad, _per_chain(state.step_size, state.position)
        assert g is not None
        proposal = x + eps * g + (2 * eps).sqrt() * torch.randn_like(x)
        return self._mh(state, proposal.detach())


class RandomWalkMH(Kernel):
    r"""Random-walk Metropolis-Hastings: :math:`x' \sim N(x, \epsilon^2 I)`, accepted with
    probability :math:`\min\{1, p(x')/p(x)\}`; needs no gradient. Warm-up adapts
    :math:`\epsilon` to ``target_accept`` (0.234, Roberts, Gelman and Gilks, 1997)."""

    uses_grad = False
    default_target_accept = 0.234

    def proposal_log_density(
        self, x: torch.Tensor, grad_x: torch.Tensor | None, y: torch.Tensor, step_size: torch.Tensor
    ) -> torch.Tensor:
        d = x[0].numel()
        return (
            -0.5 * _sum_event((y - x) ** 2) / step_size**2 - d * torch.log(step_size) - 0.5 * d * math.log(2 * math.pi)
        )

    def step(self, state: ChainState) -> ChainState:
        x = state.position
        proposal = x + _per_chain(state.step_size, x) * torch.randn_like(x)
        return self._mh(state, proposal)


class HMC(Kernel):
    r"""Hamiltonian Monte Carlo (Duane et al., 1987; Neal, 2011) with an identity mass matrix:
    a fresh momentum :math:`r \sim N(0, I)`, ``num_steps`` leapfrog steps of size
    :math:`\epsilon` on :math:`H(x, r) = -\log p(x) + \lVert r\rVert^2 / 2`, accepted with
    probability :math:`\min\{1, e^{-\Delta H}\}`. ``energy`` is :math:`H` at the kept point (what
    ArviZ's energy plot and BFMI read). ``num_steps=1`` is MALA with step :math:`\epsilon^2/2`.

    Args:
        num_steps: leapfrog steps per transition.
    """

    default_target_accept = 0.8

    def __init__(self, log_prob: LogProb, step_size: float = 0.1, num_steps: int = 10, **kwargs: Any) -> None:
        super().__init__(log_prob, step_size, **kwargs)
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer; got {num_steps!r}")
        self.num_steps = num_steps

    def leapfrog(
        self, x: torch.Tensor, r: torch.Tensor, grad: torch.Tensor, step_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``num_steps`` leapfrog steps from ``(x, r)``; returns ``(x, r, log_prob, grad)`` at the end."""
        eps = _per_chain(step_size, x)
        lp = torch.empty(0)
        r = r + 0.5 * eps * grad
        for i in range(self.num_steps):
            x = x + eps * r
            lp, grad = self._log_prob_and_grad(x)
            r = r + (eps if i < self.num_steps - 1 else 0.5 * eps) * grad
        return x, r, lp, grad

    def step(self, state: ChainState) -> ChainState:
        assert state.grad is not None
        r0 = torch.randn_like(state.position)
        h0 = -state.log_prob + 0.5 * _sum_event(r0**2)
        x, r, lp, g = self.leapfrog(state.position, r0, state.grad, state.step_size)
        return _hamiltonian_test(state, x, lp, g, h0, -lp + 0.5 * _sum_event(r**2))


def _hamiltonian_test(
    state: ChainState, x: torch.Tensor, lp: torch.Tensor, g: torch.Tensor, h0: torch.Tensor, h: torch.Tensor
) -> ChainState:
    """The Metropolis--Hastings test of an HMC proposal ``x`` (log density ``lp``, gradient ``g``) on the
    Hamiltonian's change ``h - h0``; a non-finite density or an energy error above :data:`MAX_DELTA_ENERGY`
    diverges (and is refused: its acceptance probability underflows to 0)."""
    assert state.grad is not None
    delta = torch.nan_to_num(h - h0, nan=math.inf)
    diverging = ~torch.isfinite(lp) | (delta > MAX_DELTA_ENERGY)
    accept_prob = (-delta).clamp(max=0).exp()
    accepted = (torch.rand_like(accept_prob) < accept_prob) & ~diverging
    return replace(
        state,
        position=_where(accepted, x, state.position),
        log_prob=torch.where(accepted, lp, state.log_prob),
        grad=_where(accepted, g, state.grad),
        accept_prob=accept_prob,
        accepted=accepted,
        energy=torch.where(accepted, h, h0),
        diverging=diverging,
    )


class ChEES(Kernel):
    r"""ChEES-HMC (Hoffman, Radul and Sountsov, 2021): HMC for many chains that tunes itself from the chains.

    Every transition draws one jitter :math:`u \sim U(0, 1)` for all chains and runs
    :math:`L = \lceil u T / \epsilon \rceil` leapfrog steps (at most ``max_leapfrog``) with a diagonal mass
    matrix :math:`M`: momentum :math:`p \sim N(0, M)`, :math:`H = -\log p(x) + \tfrac12 p^\top M^{-1} p`, the
    Metropolis--Hastings test on :math:`H`. For a fixed :math:`(T, \epsilon, M)` each :math:`L` is a reversible
    HMC kernel and the jittered mixture leaves the target invariant.

    In warm-up (:meth:`adapt`), across the chains:

    - the trajectory length :math:`T` climbs the ChEES criterion
      :math:`\tfrac14 E[(\lVert x' - \bar x'\rVert^2 - \lVert x - \bar x\rVert^2)^2]` (the change in the
      chains' spread, :math:`\bar x` the mean over chains) by Adam on :math:`\log T`, with the paper's
      acceptance-weighted gradient estimate
      :math:`\hat g = \sum_n \alpha_n t_n (\lVert x'_n - \bar x'\rVert^2 - \lVert x_n - \bar x\rVert^2)
      (x'_n - \bar x')^\top M^{-1} p'_n / \sum_n \alpha_n`;
    - one step size :math:`\epsilon` for all chains by dual averaging (Hoffman and Gelman, 2014) of the harmonic
      mean of their acceptance probabilities, to ``target_accept`` (0.651 by default, the paper's);
    - :math:`M^{-1}` is the variance of each coordinate over the chains, averaged over the middle half of
      warm-up (the first quarter lets the chains forget their start) and fixed after it; the step size's
      dual averaging starts again then, for the last quarter.

    The adapted :math:`(T, \epsilon, M)` live in ``state.adaptation`` and are what the draws use.

    Args:
        log_prob: the unnormalized log density of a batch of positions.
        step_size: the initial step size.
        trajectory_length: the initial :math:`T`.
        max_leapfrog: the most leapfrog steps of one transition (bounds :math:`T / \epsilon`).
        learning_rate: Adam's learning rate on :math:`\log T` (the paper's 0.025).
        adapt_mass: whether warm-up adapts the diagonal mass matrix.
    """

    default_target_accept = 0.651

    def __init__(
        self,
        log_prob: LogProb,
        step_size: float = 0.1,
        trajectory_length: float = 1.0,
        *,
        max_leapfrog: int = 100,
        learning_rate: float = 0.025,
        adapt_mass: bool = True,
        target_accept: float | None = None,
        adapt_step_size: bool = True,
    ) -> None:
        super().__init__(log_prob, step_size, target_accept=target_accept, adapt_step_size=adapt_step_size)
        self.trajectory_length = _positive("trajectory_length", trajectory_length)
        self.max_leapfrog = _check_count("max_leapfrog", max_leapfrog, 1)
        self.learning_rate = _positive("learning_rate", learning_rate)
        self.adapt_mass = bool(adapt_mass)

    def _tuning(self, state: ChainState) -> dict[str, Any]:
        if isinstance(state.adaptation, dict):
            return state.adaptation
        x = state.position
        return {
            "log_T": torch.tensor(math.log(self.trajectory_length), dtype=x.dtype),
            "inv_mass": torch.ones_like(x[0]),
        }

    def init(self, position: torch.Tensor, step_size: torch.Tensor | float | None = None) -> ChainState:
        state = super().init(position, step_size)
        if step_size is None or isinstance(step_size, float):  # one step size for all chains
            state = replace(state, step_size=state.step_size[:1].expand_as(state.step_size).clone())
        return replace(state, adaptation=self._tuning(state))

    def step(self, state: ChainState) -> ChainState:
        assert state.grad is not None
        tuning = self._tuning(state)
        inv_mass, T = tuning["inv_mass"], float(tuning["log_T"].exp())
        eps = float(state.step_size[0])
        u = float(torch.rand(()))
        n_steps = max(1, min(self.max_leapfrog, math.ceil(u * T / eps)))
        x0 = state.position
        p = torch.randn_like(x0) / inv_mass.sqrt()
        h0 = -state.log_prob + 0.5 * _sum_event(p**2 * inv_mass)
        x, g, lp = x0, state.grad, state.log_prob
        p = p + 0.5 * eps * g
        for i in range(n_steps):
            x = x + eps * inv_mass * p
            lp, g = self._log_prob_and_grad(x)
            p = p + (eps if i < n_steps - 1 else 0.5 * eps) * g
        new = _hamiltonian_test(state, x, lp, g, h0, -lp + 0.5 * _sum_event(p**2 * inv_mass))
        return replace(new, adaptation={**tuning, "last": (x0, x, p, new.accept_prob, n_steps * eps)})

    def adapt(self, state: ChainState, t: int, warmup_steps: int) -> ChainState:
        tuning = dict(self._tuning(state))
        x0, x1, p1, alpha, traj = tuning.pop("last")
        inv_mass = tuning["inv_mass"]
        ok = torch.isfinite(_sum_event(x1**2)) & torch.isfinite(_sum_event(p1**2))
        alpha = torch.where(ok, alpha, torch.zeros_like(alpha))
        x1, p1 = _where(ok, x1, x0), _where(ok, p1, torch.zeros_like(p1))
        # the trajectory length: Adam up the ChEES criterion
        c0, c1 = x0 - x0.mean(0), x1 - x1.mean(0)
        change = _sum_event(c1**2) - _sum_event(c0**2)
        g = traj * change * _sum_event(c1 * inv_mass * p1)
        grad = float((alpha * g).sum() / alpha.sum().clamp_min(1e-12))
        T = float(tuning["log_T"].exp())
        m = 0.9 * tuning.get("m", 0.0) + 0.1 * grad * T
        v = 0.999 * tuning.get("v", 0.0) + 0.001 * (grad * T) ** 2
        k = t + 1
        m_hat, v_hat = m / (1 - 0.9**k), v / (1 - 0.999**k)
        log_T = tuning["log_T"] + self.learning_rate * m_hat / (math.sqrt(v_hat) + 1e-8)
        eps = float(state.step_size[0])
        tuning.update(m=m, v=v, log_T=log_T.clamp(max=math.log(self.max_leapfrog * eps)))
        # one step size for every chain, from the harmonic mean of the acceptance probabilities
        if self.adapt_step_size:
            dual = tuning.get("dual")
            if dual is None:
                dual = DualAveraging(prox_center=math.log(10 * eps))
            harmonic = float(len(alpha) / (1.0 / alpha.clamp_min(1e-10)).sum())
            dual.step(self.target_accept - harmonic)
            log_step, log_avg = dual.get_state()
            eps = math.exp(log_avg if t == warmup_steps - 1 else log_step)
            tuning["dual"] = dual
        # the diagonal mass matrix: the coordinates' variance over the chains, averaged over mid warm-up
        if self.adapt_mass and len(x1) > 1 and warmup_steps // 4 <= t < 3 * warmup_steps // 4:
            var = state.position.var(0)
            count = tuning.get("count", 0) + 1
            mean_var = tuning.get("mean_var", torch.zeros_like(var)) + (var - tuning.get("mean_var", 0.0)) / count
            tuning.update(count=count, mean_var=mean_var)
            tuning["inv_mass"] = mean_var.clamp_min(1e-10 * float(mean_var.max().clamp_min(1e-30)))
            if self.adapt_step_size and t == 3 * warmup_steps // 4 - 1:  # the metric is final: the step size
                tuning["dual"] = DualAveraging(prox_center=math.log(10 * eps))  # re-adapts to it from here
        return replace(state, step_size=torch.full_like(state.step_size, eps), adaptation=tuning)


class Gibbs(Kernel):
    r"""Gibbs sampling of a discrete state as a kernel: each step is one ``sweep`` (block Gibbs for the restricted
    and deep Boltzmann machines, single-site for the fully connected one), every draw taken, so there is no
    step size and nothing to adapt.

    Args:
        sweep: ``state -> state``, one sweep of every chain (a batch ``(chains, *state_shape)``), drawing from the
            conditionals of the target.
        log_prob: the unnormalized log density of a state, recorded with each draw (``None``: none; a wrapper may
            record what it needs with :func:`sample_chains`' ``record``).
    """

    uses_grad = False
    adjusted = False

    def __init__(self, sweep: Callable[[torch.Tensor], torch.Tensor], log_prob: LogProb | None = None) -> None:
        if not callable(sweep):
            raise TypeError(f"sweep must be a callable state -> state; got {type(sweep).__name__}")
        super().__init__(log_prob if log_prob is not None else _no_density, 1.0, adapt_step_size=False)
        self.sweep_fn, self.density = sweep, log_prob is not None

    def _has_density(self) -> bool:
        return self.density

    def _evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.density:
            return torch.full(x.shape[:1], math.nan, dtype=x.dtype, device=x.device), None
        with torch.no_grad():
            return self._log_prob(x), None

    def step(self, state: ChainState) -> ChainState:
        with torch.no_grad():
            x = self.sweep_fn(state.position)
        if not isinstance(x, torch.Tensor) or x.shape != state.position.shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"sweep must return a state shaped like its input, {tuple(state.position.shape)}; got {got}"
            )
        lp, _ = self._evaluate(x)
        return replace(state, position=x, log_prob=lp, energy=-lp, diverging=~torch.isfinite(x.flatten(1)).all(-1))


#: The kernels by name: what ``EBM.sample(kernel=...)`` takes and :func:`kernel_class` looks up.
KERNELS: dict[str, type[Kernel]] = {
    "langevin": Langevin,
    "mala": MALA,
    "rwmh": RandomWalkMH,
    "hmc": HMC,
    "chees": ChEES,
}


def kernel_class(name: object) -> type[Kernel]:
    """The kernel class called ``name`` in :data:`KERNELS`.

    Raises:
        ValueError: an unknown name (the error lists the names).
    """
    if not isinstance(name, str) or name not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {name!r}")
    return KERNELS[name]


# -- running chains -----------------------------------------------------------------------------


@dataclass
class Chains:
    """Draws of a batch of chains and their per-draw statistics.

    Attributes:
        samples: ``(chains, draws, *event_shape)``.
        stats: ``(chains, draws)`` tensors: ``lp``, ``acceptance_rate``, ``step_size``, ``energy``,
            ``diverging`` (and ``accepted``).
        state: the last state (to continue the chains with ``sample_chains(kernel, state, ...)``).
    """

    samples: torch.Tensor
    stats: dict[str, torch.Tensor]
    state: ChainState | None = None

    def to_inference_data(self, name: str = "x") -> Any:
        """ArviZ ``InferenceData``: the draws under ``name`` and the statistics in ``sample_stats``
        (statistics that are unknown, such as ``lp`` of a score-only kernel, are left out)."""
        from pyrogen.diagnostics import from_chains

        stats = {k: v for k, v in self.stats.items() if v.dtype == torch.bool or torch.isfinite(v).all()}
        return from_chains({name: self.samples}, stats)

    @property
    def acceptance_rate(self) -> torch.Tensor:
        """Per chain: the mean acceptance probability over the draws."""
        return self.stats["acceptance_rate"].mean(-1)


class StepSizeAdapter:
    r"""Per-chain step-size adaptation to a target acceptance probability :math:`\delta`, over ``warmup_steps``.

    Two stages. The first three quarters run dual averaging (Nesterov, 2009; Hoffman and Gelman, 2014,
    Algorithm 5, Pyro's :class:`~pyro.ops.dual_averaging.DualAveraging`), robust from a start far off.
    Its iterates do not converge -- only their average does -- and the average of one chain's noisy
    acceptance is :math:`\delta` over the *iterates*: where the acceptance is concave in
    :math:`\log \epsilon` (HMC at 0.8, MALA at 0.57) the averaged step accepts more than
    :math:`\delta`, where it is convex (random-walk MH at 0.23) less. The last quarter therefore
    starts at that average and runs a Robbins--Monro iteration (Robbins and Monro, 1951; Andrieu and
    Thoms, 2008, Sec. 4) :math:`\log \epsilon_{k+1} = \log \epsilon_k + 2 (a_k - \delta) / (k + 10)`,
    whose iterates converge to the root of :math:`E[a(\epsilon)] = \delta`; the step kept is its last
    iterate.

    Args:
        step_size: the initial step size per chain, ``(chains,)``.
        target_accept: :math:`\delta`.
        warmup_steps: the number of :meth:`update` calls the adaptation is spread over.
    """

    def __init__(self, step_size: torch.Tensor, target_accept: float, warmup_steps: int) -> None:
        self.target_accept = float(target_accept)
        self.warmup_steps = int(warmup_steps)
        self.final_steps = self.warmup_steps // 4
        self._dual = DualAveraging(prox_center=torch.log(10 * step_size))
        self._log_step = torch.log(step_size)
        self._t = 0

    def update(self, accept_prob: torch.Tensor) -> torch.Tensor:
        """Feed one transition's acceptance probabilities ``(chains,)``; returns the next step sizes."""
        first = self.warmup_steps - self.final_steps
        if self._t < first:
            self._dual.step(self.target_accept - accept_prob)
            log_step, log_avg = self._dual.get_state()
            self._log_step = log_avg if self._t == first - 1 else log_step
        else:
            k = self._t - first
            self._log_step = self._log_step + 2.0 * (accept_prob - self.target_accept) / (k + 10)
        self._t += 1
        return torch.exp(self._log_step)


def sample_chains(
    kernel: Kernel,
    initial: torch.Tensor | ChainState,
    num_samples: int,
    *,
    warmup_steps: int = 0,
    thin: int = 1,
    progress: bool = False,
    record: Callable[[ChainState], dict[str, torch.Tensor]] | None = None,
) -> Chains:
    """Run every chain through ``warmup_steps`` transitions (each followed by the kernel's
    :meth:`~Kernel.adapt`: the step size where the kernel has an acceptance test and ``adapt_step_size``),
    then keep ``num_samples`` draws, one every ``thin`` transitions.

    Args:
        kernel: a :class:`Kernel`.
        initial: starting positions ``(chains, *event_shape)``, or a :class:`ChainState` to go on from.
        num_samples: draws kept per chain (at least 1).
        warmup_steps: transitions before the first draw, discarded.
        thin: keep one transition in ``thin``.
        record: ``state -> {name: (chains,) tensor}``, statistics of each kept draw beyond the kernel's own
            (a wrapper's: :class:`AnnealedLangevin` records the noise level and the score's norm).

    Returns:
        :class:`Chains` with ``samples`` of shape ``(chains, num_samples, *event_shape)``.
    """
    if not isinstance(kernel, Kernel):
        what = f"the string {kernel!r}" if isinstance(kernel, str) else type(kernel).__name__
        raise TypeError(
            f"kernel must be a pyrogen.inference.samplers.Kernel built on your log density (e.g. "
            f"MALA(log_prob, step_size=0.1), or kernel_class({what.split()[-1] if isinstance(kernel, str) else 'name'})"
            f"(log_prob) for a name of {sorted(KERNELS)}); got {what}"
        )
    _check_count("num_samples", num_samples, 1)
    _check_count("warmup_steps", warmup_steps, 0)
    _check_count("thin", thin, 1)
    state = initial if isinstance(initial, ChainState) else kernel.init(initial)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=warmup_steps + num_samples * thin, desc=type(kernel).__name__)
    for t in range(warmup_steps):
        state = kernel.adapt(kernel.step(state), t, warmup_steps)
        if bar is not None:
            bar.update(1)
    draws: list[torch.Tensor] = []
    recs: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("lp", "acceptance_rate", "step_size", "energy", "diverging", "accepted")
    }
    for t in range(num_samples * thin):
        state = kernel.step(state)
        if (t + 1) % thin == 0:
            draws.append(state.position)
            kept = {
                "lp": state.log_prob,
                "acceptance_rate": state.accept_prob,
                "step_size": state.step_size,
                "energy": state.energy,
                "diverging": state.diverging,
                "accepted": state.accepted,
            }
            kept |= record(state) if record is not None else {}  # a wrapper's statistics, its own names first
            for k, v in kept.items():
                recs.setdefault(k, []).append(v)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return Chains(samples=torch.stack(draws, 1), stats={k: torch.stack(v, 1) for k, v in recs.items()}, state=state)


# -- annealed Langevin --------------------------------------------------------------------------


@dataclass
class AnnealedLangevin:
    r"""Annealed Langevin dynamics (Song and Ermon, 2019, Algorithm 1).

    For each noise level :math:`\sigma_1 > \dots > \sigma_L`, ``steps_per_level`` unadjusted Langevin
    steps on the score :math:`s(x, \sigma_i)` of the data perturbed by :math:`N(0, \sigma_i^2 I)`, with
    step :math:`\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2`; optionally a last denoising step
    :math:`x + \sigma_L^2 s(x, \sigma_L)` (Tweedie's formula, Song and Ermon, 2020). The large levels
    move mass between modes, which Langevin on the data score alone cannot, and so the modes'
    weights come out right.

    Args:
        score: ``(x, sigma) -> grad_x log p_sigma(x)``, ``sigma`` a tensor of shape ``(chains,)``.
        sigmas: the noise levels, strictly decreasing, positive.
        steps_per_level: Langevin steps at each level (``T`` in the paper).
        eps: :math:`\epsilon`, the step at the smallest level.
        denoise: whether to end with the Tweedie denoising step.
    """

    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    sigmas: Sequence[float] | torch.Tensor
    steps_per_level: int = 100
    eps: float = 2e-5
    denoise: bool = True
    _sigmas: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not callable(self.score):
            raise TypeError(
                f"score must be a callable (x, sigma) -> grad log p_sigma(x); got {type(self.score).__name__}"
            )
        s = torch.as_tensor(self.sigmas, dtype=torch.float64).flatten()
        if s.numel() == 0 or not torch.isfinite(s).all() or (s <= 0).any() or (s[1:] >= s[:-1]).any():
            raise ValueError(f"sigmas must be positive, finite and strictly decreasing; got {self.sigmas!r}")
        self._sigmas = s
        _check_count("steps_per_level", self.steps_per_level, 1)
        self.eps = _positive("eps", self.eps)

    def run(self, initial: torch.Tensor, *, record_every: int = 0) -> Chains:
        r"""Run every chain from ``initial`` ``(chains, *event_shape)`` through all levels: at each level a
        :class:`Langevin` kernel on :math:`s(\cdot, \sigma_i)` run by :func:`sample_chains`.

        Returns :class:`Chains` whose draws are the positions at the end of each level (or every
        ``record_every`` steps within a level, its end included), the last one the final sample; ``stats`` has
        per-draw ``step_size``, ``sigma`` and ``grad_norm`` (the norm of the score at the draw,
        :math:`\approx \sqrt{D}/\sigma` when the chains are at equilibrium).
        """
        x = _check_position(initial)
        n = x.shape[0]
        if record_every:
            _check_count("record_every", record_every, 1)
        last = float(self._sigmas[-1])
        keep = ("step_size", "sigma", "grad_norm")
        parts: list[Chains] = []
        state: ChainState | None = None
        for level in self._sigmas.tolist():
            sigma = torch.full((n,), level, dtype=x.dtype, device=x.device)
            kernel = Langevin(score=_at_level(self.score, sigma), step_size=self.eps * level**2 / last**2)
            state = kernel.init(x if state is None else state.position)
            thin = min(record_every, self.steps_per_level) if record_every else self.steps_per_level
            chains = sample_chains(
                kernel,
                state,
                self.steps_per_level // thin,
                warmup_steps=self.steps_per_level % thin,
                thin=thin,
                record=functools.partial(_level_stats, sigma=sigma),
            )
            parts.append(Chains(chains.samples, {k: chains.stats[k] for k in keep}))
            state = chains.state
            assert state is not None
        if self.denoise:
            assert state is not None
            sigma = torch.full((n,), last, dtype=x.dtype, device=x.device)
            g = _at_level(self.score, sigma)(state.position)
            final = state.position + last**2 * g
            stats = {"step_size": torch.zeros_like(sigma), **_level_stats(replace(state, grad=g), sigma)}
            parts.append(Chains(final.unsqueeze(1), {k: v.unsqueeze(1) for k, v in stats.items()}))
        return Chains(
            samples=torch.cat([c.samples for c in parts], 1),
            stats={k: torch.cat([c.stats[k] for c in parts], 1) for k in keep},
        )


def _at_level(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], sigma: torch.Tensor) -> Score:
    """``x -> score(x, sigma)``, checked to be shaped like ``x``."""

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            g = score(x, sigma)
        if not isinstance(g, torch.Tensor) or g.shape != x.shape:
            got = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ValueError(f"score must return a tensor shaped like x, {tuple(x.shape)}; got {got}")
        return g

    return call


def _level_stats(state: ChainState, sigma: torch.Tensor) -> dict[str, torch.Tensor]:
    assert state.grad is not None
    return {"sigma": sigma, "grad_norm": state.grad.flatten(1).norm(dim=-1)}


# -- Pyro's MCMC --------------------------------------------------------------------------------


class PyroKernel(MCMCKernel):
    r"""One of the batched kernels as a Pyro :class:`~pyro.infer.mcmc.mcmc_kernel.MCMCKernel`.

    ``pyro.infer.MCMC(PyroKernel(MALA, model=model), num_samples, warmup_steps).run(...)`` samples the
    model's latent sites in unconstrained space (Pyro's ``initialize_model`` gives the potential and
    the transforms, exactly as for Pyro's own HMC), adapts the step size during warm-up by dual
    averaging, and records divergences and the acceptance rate where ``arviz.from_pyro`` and
    :func:`pyrogen.diagnostics.from_pyro` look for them.

    Args:
        kernel: a :class:`Kernel` subclass (:class:`MALA`, :class:`HMC`, :class:`RandomWalkMH`,
            :class:`Langevin`).
        model: a Pyro model; or give ``potential_fn`` (a function of a dict of unconstrained sites,
            the negative log density) and pass ``initial_params`` to ``MCMC``.
        transforms: with ``potential_fn``, the transforms to constrained space (default none).
        **kernel_kwargs: the kernel's own arguments (``step_size``, ``num_steps``, ``target_accept``...).
    """

    def __init__(
        self,
        kernel: type[Kernel],
        model: Callable[..., Any] | None = None,
        potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
        *,
        transforms: Mapping[str, Any] | None = None,
        **kernel_kwargs: Any,
    ) -> None:
        if not (isinstance(kernel, type) and issubclass(kernel, Kernel)):
            raise TypeError(f"kernel must be a pyrogen Kernel class (MALA, HMC, ...); got {kernel!r}")
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        self.kernel_cls = kernel
        self.kernel_kwargs = kernel_kwargs
        self.model = model
        self.potential_fn = potential_fn
        self.transforms = dict(transforms) if transforms is not None else ({} if model is None else None)
        self._initial_params: dict[str, torch.Tensor] | None = None
        self._kernel: Kernel | None = None
        self._state: ChainState | None = None
        self._layout: list[tuple[str, torch.Size]] = []

    # -- flat <-> dict
    def _flatten(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([params[k].reshape(-1) for k, _ in self._layout]).unsqueeze(0)

    def _unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, shape in self._layout:
            n = shape.numel()
            out[k] = flat[i : i + n].reshape(shape)
            i += n
        return out

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        from pyro.infer.mcmc.util import initialize_model

        self._warmup_steps = warmup_steps
        self._t = 0
        self._accept_sum = 0.0
        self._divergences: list[int] = []
        if self.model is not None:
            init, potential_fn, transforms, _ = initialize_model(
                self.model, model_args=args, model_kwargs=kwargs, initial_params=self._initial_params
            )
            self.potential_fn = potential_fn
            self.transforms = transforms
            if self._initial_params is None:
                self._initial_params = init
        if self._initial_params is None:
            raise ValueError("with potential_fn, give MCMC(..., initial_params={site: tensor})")
        self._layout = [(k, v.shape) for k, v in sorted(self._initial_params.items())]
        potential = self.potential_fn
        assert potential is not None

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            return torch.stack([-potential(self._unflatten(row)) for row in x])

        self._kernel = self.kernel_cls(log_prob, **self.kernel_kwargs)
        self._state = self._kernel.init(self._flatten(self._initial_params).detach())

    @property
    def initial_params(self) -> dict[str, torch.Tensor] | None:
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor]) -> None:
        self._initial_params = params

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert self._kernel is not None and self._state is not None
        flat = self._flatten(params).detach()
        if not torch.equal(flat, self._state.position):  # moved from outside: start from there
            kept = self._state
            self._state = replace(self._kernel.init(flat, kept.step_size), adaptation=kept.adaptation)
        state = self._kernel.step(self._state)
        if self._t < self._warmup_steps:
            state = self._kernel.adapt(state, self._t, self._warmup_steps)
        else:
            self._accept_sum += float(state.accept_prob[0])
            if bool(state.diverging[0]):
                self._divergences.append(self._t - self._warmup_steps)
        self._t += 1
        self._state = state
        return self._unflatten(state.position[0])

    def logging(self) -> dict[str, str]:
        s = self._state
        if s is None:
            return {}
        return {"step size": f"{float(s.step_size[0]):.2e}", "acc. prob": f"{float(s.accept_prob[0]):.3f}"}

    def diagnostics(self) -> dict[str, Any]:
        n = max(self._t - self._warmup_steps, 1)
        return {"divergences": list(self._divergences), "acceptance rate": self._accept_sum / n}


# -- annealed importance sampling ---------------------------------------------------------------------------


@dataclass
class AISResult:
    r"""What :func:`annealed_importance_sampling` returns.

    Attributes:
        log_z: the estimate of :math:`\log Z` (the log of the mean importance weight; a stochastic lower
            bound in expectation, by Jensen).
        stderr: its standard error by the delta method, :math:`\mathrm{sd}(w) / (\sqrt n\, \bar w)`.
        log_weights: per chain, ``(chains,)``.
        samples: the chains' final positions (approximate draws of the target).
        acceptance_rate: the mean acceptance probability of the transitions.
    """

    log_z: float
    stderr: float
    log_weights: torch.Tensor
    samples: torch.Tensor
    acceptance_rate: float


def annealed_importance_sampling(
    log_prob: LogProb,
    initial: torch.Tensor,
    base_log_prob: LogProb,
    *,
    num_temps: int = 1000,
    steps_per_temp: int = 1,
    step_size: float = 0.01,
    kernel: str = "mala",
    target_accept: float | None = None,
) -> AISResult:
    r"""Annealed importance sampling (Neal, 2001) of :math:`Z = \int e^{f}` from a normalized base :math:`p_0`.

    Chains start at ``initial`` (draws of :math:`p_0`) and move through the geometric path
    :math:`\log \pi_\beta = (1 - \beta) \log p_0 + \beta f`, :math:`\beta` from 0 to 1 in ``num_temps`` equal
    steps, with ``steps_per_temp`` transitions of MALA (``kernel="mala"``) or random-walk MH (``"rwmh"``)
    leaving each :math:`\pi_\beta` invariant; each chain's log weight accumulates
    :math:`(\beta_t - \beta_{t-1}) (f - \log p_0)` at the point it reached. :math:`\mathbb E[w] = Z`.

    Args:
        log_prob: ``x -> (chains,)``, the unnormalized target :math:`f`.
        initial: ``(chains, *event_shape)`` draws of the base.
        base_log_prob: ``x -> (chains,)``, the normalized base log density (``-inf`` off its support).
        step_size: the transitions' step size (the start, with ``target_accept``).
        target_accept: adapt each chain's step size along the path towards this acceptance probability (0.57
            for MALA): after each transition :math:`\log \epsilon \mathrel{+}= \alpha - \text{target}`. A
            fixed step that suits the base is far too large near :math:`\beta = 1` for a peaked target (MALA
            then accepts almost nothing and the chains never reach it). Each chain's step depends only on its
            own past, so every transition still leaves its :math:`\pi_\beta` invariant and the weights stay
            unbiased.
    """
    _check_count("num_temps", num_temps, 1)
    if target_accept is not None and not 0 < target_accept < 1:
        raise ValueError(f"target_accept must be in (0, 1) or None; got {target_accept!r}")
    _check_count("steps_per_temp", steps_per_temp, 1)
    if kernel not in ("mala", "rwmh"):
        raise ValueError(f"kernel must be 'mala' or 'rwmh'; got {kernel!r}")
    x = _check_position(initial)
    betas = torch.linspace(0, 1, num_temps + 1, dtype=torch.float64).tolist()
    log_w = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    accept: list[float] = []
    beta = [0.0]  # the kernel's target is read at the current temperature: one kernel for the whole path

    def tempered(v: torch.Tensor) -> torch.Tensor:
        lp0 = base_log_prob(v)
        f = log_prob(v)
        # off the base's support the tempered density is 0, whatever f says there
        return torch.where(torch.isfinite(lp0), (1 - beta[0]) * lp0 + beta[0] * f, lp0)

    k = (MALA if kernel == "mala" else RandomWalkMH)(tempered, step_size, adapt_step_size=False)
    steps = torch.full((len(x),), float(step_size), dtype=x.dtype, device=x.device)
    for b0, b1 in zip(betas[:-1], betas[1:], strict=True):
        with torch.no_grad():
            log_w = log_w + (b1 - b0) * (log_prob(x) - base_log_prob(x)).double()
        beta[0] = b1
        state = k.init(x, steps)  # the log density and its gradient at the new temperature
        for _ in range(steps_per_temp):
            state = k.step(state)
            accept.append(float(state.accept_prob.mean()))
            if target_accept is not None:
                steps = steps * torch.exp(state.accept_prob.detach().nan_to_num(0.0) - target_accept)
                state = replace(state, step_size=steps)
        x = state.position
    log_z = torch.logsumexp(log_w, 0) - math.log(len(log_w))
    w = (log_w - log_w.max()).exp()
    stderr = float(w.std() / (math.sqrt(len(w)) * w.mean())) if len(w) > 1 else math.nan
    return AISResult(float(log_z), stderr, log_w, x, sum(accept) / len(accept))
