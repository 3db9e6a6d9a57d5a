"""Training hooks: state that a model keeps beside its parameters and updates after every step.

A hook is an ``nn.Module`` child of the model, so its state lives in the
model's ``state_dict``: it travels in every checkpoint, is restored on resume
and moves with ``model.to(device)``. After each optimisation step
:func:`pyrogen.inference.fit` calls :meth:`TrainingHook.after_step` on every
hook it finds in ``model.modules()``; a model needs no trainer change to use
one.

- :class:`EMA` — an exponential moving average of a chosen set of parameters
  (a GAN's generator, a diffusion model's network), swapped in for sampling
  and evaluation with :meth:`EMA.averaged`;
- :class:`StepClock` — the training step, for a program that anneals with it (set before every step);
- :class:`ReplayBuffer` — persistent chains of an energy-based model (Du and
  Mordatch, 2019): the model draws chain starts from it and hands back the
  chains' ends, which the buffer stores after the step.

Under DDP the replay buffer gathers every rank's chains, so every rank holds
the same buffer; the EMA averages parameters that DDP keeps identical.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as tdist
from torch import nn

__all__ = ["EMA", "ReplayBuffer", "StepClock", "TrainingHook"]


class TrainingHook(nn.Module):
    """Base class of the modules the trainer calls before and after every optimisation step."""

    def before_step(self, step: int) -> None:
        """Called by the trainer before step ``step`` (0-based), and with the last step when training ends."""

    def after_step(self, step: int) -> None:
        """Called by the trainer after the optimisers of step ``step`` (0-based) have stepped."""


class StepClock(TrainingHook):
    """The training step, for a model whose program anneals with it (a KL warm-up) or cycles through settings
    (MADE's orderings). It holds no state of its own in the ``state_dict``: the trainer sets it before every
    step, on resume included, so a resumed run sees the step an uninterrupted one does.

    Args:
        on_step: called with each step (optional).

    Example:
        >>> clock = StepClock()
        >>> clock.before_step(7)
        >>> clock.step
        7
    """

    def __init__(self, on_step: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.step = 0
        self._on_step = on_step

    def before_step(self, step: int) -> None:
        self.step = int(step)
        if self._on_step is not None:
            self._on_step(self.step)


class EMA(TrainingHook):
    r"""Exponential moving average of the parameters of ``target``.

    .. math::
        \bar\theta_t = \beta_t \bar\theta_{t-1} + (1 - \beta_t)\,\theta_t, \qquad
        \beta_t = \min\!\left(\beta, \frac{1 + t}{10 + t}\right)

    (the warm-up of ``beta_t`` keeps early averages from being dominated by the
    initial weights, as in TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``).

    Args:
        target: the module whose parameters are averaged. It is *not*
            registered as a child of the EMA, so the model's ``state_dict``
            holds its parameters once.
        decay: :math:`\beta` in ``[0, 1)``.

    Raises:
        ValueError: ``decay`` outside ``[0, 1)`` or a target without parameters.

    Example:
        >>> net = nn.Linear(2, 1)
        >>> ema = EMA(net, decay=0.5)
        >>> with torch.no_grad():
        ...     _ = net.weight.add_(1.0)
        >>> ema.after_step(0)
        >>> with ema.averaged():
        ...     torch.allclose(net.weight, ema.shadow_0)
        True
    """

    _target: nn.Module
    num_updates: torch.Tensor

    def __init__(self, target: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1); got {decay!r}")
        params = [p for p in target.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"target {type(target).__name__} has no trainable parameter to average")
        self.__dict__["_target"] = target  # not a child: its parameters stay where they are
        self.__dict__["_averaged"] = params  # the same Parameter objects through .to() and load_state_dict
        self.decay = float(decay)
        for i, p in enumerate(params):
            self.register_buffer(f"shadow_{i}", p.detach().clone())
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def _params(self) -> list[torch.Tensor]:
        return self.__dict__["_averaged"]

    def _shadows(self) -> list[torch.Tensor]:
        return [getattr(self, f"shadow_{i}") for i in range(len(self._params()))]

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        t = int(self.num_updates)
        beta = min(self.decay, (1 + t) / (10 + t))
        torch._foreach_lerp_(self._shadows(), self._params(), 1.0 - beta)
        self.num_updates += 1

    def averaged_parameters(self) -> dict[str, torch.Tensor]:
        """The averages under the target's parameter names (what ``torch.func.functional_call`` takes)."""
        names = {id(p): n for n, p in self._target.named_parameters()}
        return {names[id(p)]: s for p, s in zip(self._params(), self._shadows(), strict=True)}

    def call(self, *args: Any, **kwargs: Any) -> Any:
        """The target run on ``args`` with the averaged parameters (``torch.func.functional_call``); its own
        parameters are left as they are and collect no gradient, and the averages (buffers) none either.
        Differentiable in the inputs: what a model's ``model``/``guide`` use in eval mode."""
        from torch.func import functional_call

        return functional_call(self._target, self.averaged_parameters(), args, kwargs, strict=False)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Within the block the target holds the averaged parameters; afterwards its own again."""
        params, shadows = self._params(), self._shadows()
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, s in zip(params, shadows, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)

    def extra_repr(self) -> str:
        return f"decay={self.decay}, tensors={len(self._params())}"


class ReplayBuffer(TrainingHook):
    """A buffer of persistent chain states, for short-run MCMC with restarts (Du and Mordatch, 2019).

    :meth:`sample` returns ``n`` chain starts: with probability
    ``reinit`` (and always while the buffer is empty) a fresh draw of
    ``init(n)``, else a stored state chosen uniformly. The model runs its
    chains from there and passes their ends to :meth:`push`; the buffer
    stores them after the optimisation step (in a ring, oldest first out).

    Args:
        capacity: number of states held.
        event_shape: shape of one state.
        reinit: probability of a fresh start, in ``[0, 1]``.

    Raises:
        ValueError: a non-positive capacity or ``reinit`` outside ``[0, 1]``.

    Example:
        >>> buf = ReplayBuffer(8, (2,), reinit=0.0)
        >>> x0 = buf.sample(4, lambda n: torch.zeros(n, 2))  # empty: fresh starts
        >>> buf.push(x0 + 1.0)
        >>> buf.after_step(0)
        >>> int(buf.size), buf.sample(3, lambda n: torch.zeros(n, 2)).sum().item()
        (4, 6.0)
    """

    states: torch.Tensor
    size: torch.Tensor
    head: torch.Tensor

    def __init__(self, capacity: int, event_shape: Sequence[int], reinit: float = 0.05) -> None:
        super().__init__()
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer; got {capacity!r}")
        if isinstance(reinit, bool) or not isinstance(reinit, (int, float)) or not 0 <= reinit <= 1:
            raise ValueError(f"reinit must be a probability in [0, 1]; got {reinit!r}")
        self.reinit = float(reinit)
        self.register_buffer("states", torch.zeros((capacity, *event_shape)))
        self.register_buffer("size", torch.zeros((), dtype=torch.long))
        self.register_buffer("head", torch.zeros((), dtype=torch.long))
        self._pending: torch.Tensor | None = None

    @property
    def capacity(self) -> int:
        return len(self.states)

    def sample(self, n: int, init: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """``n`` chain starts: stored states, or fresh ``init(n)`` draws with probability ``reinit``."""
        fresh = init(n)
        size = int(self.size)
        if size == 0:
            return fresh
        idx = torch.randint(0, size, (n,), device=self.states.device)
        keep = torch.rand(n, device=self.states.device) >= self.reinit
        stored = self.states[idx].to(fresh.dtype)
        return torch.where(keep.view(-1, *([1] * (fresh.dim() - 1))), stored, fresh)

    def push(self, x: torch.Tensor) -> None:
        """Hand back chain ends; they are stored after the optimisation step."""
        x = x.detach()
        self._pending = x if self._pending is None else torch.cat([self._pending, x])

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        x = self._pending
        self._pending = None
        if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
            x = _gather_ranks(x, self.states)
        if x is None or len(x) == 0:
            return
        x = x[-self.capacity :].to(self.states.dtype)
        pos = (int(self.head) + torch.arange(len(x), device=self.states.device)) % self.capacity
        self.states[pos] = x
        self.head.copy_((self.head + len(x)) % self.capacity)
        self.size.clamp_(min=0).add_(len(x)).clamp_(max=self.capacity)

    def extra_repr(self) -> str:
        return f"capacity={self.capacity}, reinit={self.reinit}"


def _gather_ranks(x: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """Every rank's pending states, concatenated in rank order (the same on every rank)."""
    n = torch.tensor([0 if x is None else len(x)], device=like.device)
    sizes = [torch.zeros_like(n) for _ in range(tdist.get_world_size())]
    tdist.all_gather(sizes, n)
    counts = [int(s) for s in sizes]
    if max(counts) == 0:
        return None
    if len(set(counts)) > 1:
        raise RuntimeError(f"ranks pushed different numbers of chain states to the replay buffer: {counts}")
    assert x is not None
    parts = [torch.empty_like(x) for _ in counts]
    tdist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
