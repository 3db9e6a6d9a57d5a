r"""Hidden Markov models ``hmm``: discrete or Gaussian emissions, as Pyro programs and as Pyro's ``DiscreteHMM``.

.. math::
    p(x_{1:T}) = \sum_{z_{1:T}} \pi_{z_1} \, e_{z_1}(x_1) \prod_{t=2}^T A_{z_{t-1} z_t} \, e_{z_t}(x_t)

with :math:`S` hidden states, start probabilities :math:`\pi`, transitions :math:`A` and emissions :math:`e_s`:
categorical over ``symbols`` values (a character HMM) or diagonal Gaussians over :math:`D` coordinates. The
hidden chain is summed out by the forward algorithm in probability space with per-step normalisation (one
matrix product per step; Rabiner, 1989), which is :meth:`HiddenMarkovModel.log_prob` and what
:func:`~pyrogen.inference.fit` differentiates. The same model is

- a Pyro program (:meth:`~HiddenMarkovModel.model`: ``pyro.markov`` over time with each state enumerated, so
  ``TraceEnum_ELBO`` with an empty guide is exactly :math:`-\log p(x)`, and ``infer_discrete`` at temperature 0
  is Viterbi decoding);
- Pyro's ``DiscreteHMM`` distribution (:meth:`~HiddenMarkovModel.as_distribution`; Pyro's initial state emits
  nothing, so the first of its time-dependent transitions is :math:`\pi` from every state).

Besides: Viterbi decoding by max-product (:meth:`~HiddenMarkovModel.viterbi`), posterior state marginals by
forward-backward (:meth:`~HiddenMarkovModel.posterior_marginals`), Baum-Welch expectation-maximisation
(:meth:`~HiddenMarkovModel.fit_em`; Baum et al., 1970) and ancestral sampling.

References: Rabiner, 1989, "A tutorial on hidden Markov models and selected applications in speech recognition".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO, infer_discrete
from torch import nn

from pyrogen.data import Dataset
from pyrogen.inference.objectives import MaximumLikelihood
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_positive_int, frozen_unless_trainable
from pyrogen.models.mixture import _inv_softplus
from pyrogen.models.registry import Recipe, register

__all__ = ["EMISSIONS", "HiddenMarkovModel"]

#: The emission families of :class:`HiddenMarkovModel`.
EMISSIONS = ("categorical", "gaussian")


def _hmm_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Categorical emissions over the data's levels for integer sequences ``(T,)``; Gaussian ones for real
    sequences ``(T,)`` or ``(T, D)``.

    Raises:
        ValueError: data that are neither.
    """
    if data.support == "integer" and len(data.event_shape) == 1 and data.levels:
        kwargs.setdefault("emission", "categorical")
        kwargs.setdefault("symbols", int(data.levels))
    elif data.support == "real" and len(data.event_shape) in (1, 2):
        kwargs.setdefault("emission", "gaussian")
    else:
        raise ValueError(
            f"hmm models sequences: integer ones (T,) with a number of levels, or real ones (T,) or (T, D); dataset "
            f"{data.name!r} is {data.support} of shape {tuple(data.event_shape)}"
        )
    return kwargs


def _hmm_prepare(model: HiddenMarkovModel, data: Dataset) -> None:
    model.init_from_data(data.train)


def _hmm_train(data: Dataset) -> dict[str, Any]:
    """2000 steps of batch 64 at lr 0.03, validation every 100 steps, patience 5."""
    return {"lr": 0.03, "batch_size": 64, "steps": 2000, "val_every": 100, "patience": 5}


@register(
    "hmm",
    family="sequence",
    data="text",
    choices=_hmm_choices,
    prepare=_hmm_prepare,
    train=_hmm_train,
    # by gradient: exact maximum likelihood; Pyro's way enumerates every state (TraceEnum_ELBO, empty guide)
    objective=lambda model: MaximumLikelihood(pyro_elbo=TraceEnum_ELBO(max_plate_nesting=1)),
)
class HiddenMarkovModel(GenerativeModel):
    r"""A hidden Markov model over sequences of length :math:`T` (see the module docstring).

    Args:
        event_shape: ``(T,)`` (categorical, or one Gaussian coordinate) or ``(T, D)`` (Gaussian).
        states: :math:`S`.
        emission: ``"categorical"`` (integers ``0 .. symbols - 1``) or ``"gaussian"`` (diagonal covariances).
        symbols: the number of values of a categorical emission.
        reg: the variance floor of Gaussian emissions: EM's variances are at least ``reg`` (the constrained
            maximum, so EM stays monotone; hmmlearn adds its ``min_covar`` instead, which is not), and the
            gradient-trained variances are ``softplus(raw)^2 + reg``.

    Raises:
        ValueError: a bad argument, named with its value.

    Example:
        >>> hmm = HiddenMarkovModel(event_shape=(6,), states=3, symbols=4)
        >>> x = hmm.sample(5)
        >>> x.shape, hmm.log_prob(x).shape, hmm.viterbi(x).shape
        (torch.Size([5, 6]), torch.Size([5]), torch.Size([5, 6]))
    """

    #: categorical emissions by default; a Gaussian HMM's instances are ``"real"``
    support = "integer"

    def __init__(
        self,
        event_shape: Sequence[int] = (128,),
        states: int = 32,
        emission: str = "categorical",
        symbols: int | None = None,
        reg: float = 1e-3,
    ) -> None:
        super().__init__(event_shape)
        self.states = check_positive_int("states", states)
        if emission not in EMISSIONS:
            raise ValueError(f"emission must be one of {', '.join(EMISSIONS)}; got {emission!r}")
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not 0 < reg < 1:
            raise ValueError(f"reg must be a number in (0, 1); got {reg!r}")
        self.emission, self.reg = emission, float(reg)
        s = self.states
        if emission == "categorical":
            if len(self.event_shape) != 1:
                raise ValueError(f"a categorical HMM takes event_shape (T,); got {tuple(self.event_shape)}")
            if symbols is None or isinstance(symbols, bool) or not isinstance(symbols, int) or symbols < 2:
                raise ValueError(f"symbols must be an integer >= 2 for categorical emissions; got {symbols!r}")
            self.symbols: int | None = symbols
            self.support = "integer"
            self.emit_logits = nn.Parameter(0.5 * torch.randn(s, symbols))
        else:
            if len(self.event_shape) not in (1, 2):
                raise ValueError(f"a Gaussian HMM takes event_shape (T,) or (T, D); got {tuple(self.event_shape)}")
            if symbols is not None:
                raise ValueError(f"symbols applies to categorical emissions only; got symbols={symbols!r}")
            self.symbols = None
            self.support = "real"
            d = 1 if len(self.event_shape) == 1 else self.event_shape[1]
            self.locs = nn.Parameter(torch.randn(s, d))
            self.raw_scales = nn.Parameter(torch.zeros(s, d))
        self.start_logits = nn.Parameter(torch.zeros(s))
        self.trans_logits = nn.Parameter(0.1 * torch.randn(s, s))

    @property
    def levels(self) -> int | None:
        """The number of values each coordinate of the data takes (2 for binary), ``None`` for real data."""
        return self.symbols

    _levels = levels  # what validate() checks integer data against

    @property
    def length(self) -> int:
        """:math:`T`."""
        return self.event_shape[0]

    # -- the parameters ----------------------------------------------------------------------------------------
    def log_start(self) -> torch.Tensor:
        r""":math:`\log \pi`, ``(S,)``."""
        return torch.log_softmax(self.start_logits, -1)

    def log_transitions(self) -> torch.Tensor:
        r""":math:`\log A`, ``(S, S)``, rows the current state."""
        return torch.log_softmax(self.trans_logits, -1)

    def scales(self) -> torch.Tensor:
        """The Gaussian emissions' standard deviations, ``(S, D)``."""
        return (F.softplus(self.raw_scales).square() + self.reg).sqrt()

    def _emission_dist(self) -> dist.TorchDistribution:
        """One emission per state: batch shape ``(S,)``, event ``()`` (categorical) or ``(D,)`` (Gaussian)."""
        if self.emission == "categorical":
            return dist.Categorical(logits=self.emit_logits)
        return dist.Normal(self.locs, self.scales()).to_event(1)

    def _steps(self, x: torch.Tensor) -> torch.Tensor:
        """The observations with a coordinate axis for Gaussian emissions: ``(n, T)`` or ``(n, T, D)``."""
        return x.unsqueeze(-1) if self.emission == "gaussian" and x.dim() == 2 else x

    def emission_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log e_s(x_t)`, ``(n, T, S)``."""
        v = self._steps(x)
        if self.emission == "categorical":
            return torch.log_softmax(self.emit_logits, -1).T[v]
        return self._emission_dist().log_prob(v.unsqueeze(-2))

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Emissions from the data, so that training starts away from the symmetric point: categorical ones at
        the symbols' frequencies (plus noise), Gaussian ones at ``S`` random observations with the data's
        standard deviation."""
        v = self._steps(self.validate(x).to(self.start_logits.device))
        if self.emission == "categorical":
            assert self.symbols is not None
            counts = torch.bincount(v.flatten(), minlength=self.symbols).to(self.emit_logits.dtype) + 1.0
            noise = 0.5 * torch.randn_like(self.emit_logits)
            self.emit_logits.copy_(counts.log() - counts.sum().log() + noise)
            return
        flat = v.reshape(-1, v.shape[-1]).to(self.locs.dtype)
        self.locs.copy_(flat[torch.randint(0, len(flat), (self.states,))])
        std = flat.std(0).clamp_min(math.sqrt(self.reg) * 2)
        self.raw_scales.copy_(_inv_softplus((std.square() - self.reg).sqrt()).expand_as(self.raw_scales))

    # -- forward-backward ------------------------------------------------------------------------------------------
    def _forward(self, le: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised forward messages ``(n, T, S)`` and the log normalisers ``(n, T)`` (their sum is
        :math:`\\log p(x)`), one matrix product per step."""
        trans = self.log_transitions().exp()
        shift = le.amax(-1, keepdim=True)
        e = (le - shift).exp()
        a = self.log_start().exp() * e[:, 0]
        c = a.sum(-1)
        alphas, logs = [a / c[:, None]], [c.log() + shift[:, 0, 0]]
        for t in range(1, le.shape[1]):
            a = (alphas[-1] @ trans) * e[:, t]
            c = a.sum(-1)
            alphas.append(a / c[:, None])
            logs.append(c.log() + shift[:, t, 0])
        return torch.stack(alphas, 1), torch.stack(logs, 1)

    def _backward(self, le: torch.Tensor, logs: torch.Tensor) -> torch.Tensor:
        """Backward messages scaled by the forward normalisers, ``(n, T, S)``."""
        trans = self.log_transitions().exp()
        e = (le - logs[..., None]).exp()  # e_t / c_t
        b = torch.ones_like(le[:, -1])
        betas = [b]
        for t in range(le.shape[1] - 1, 0, -1):
            b = (e[:, t] * b) @ trans.T
            betas.append(b)
        return torch.stack(betas[::-1], 1)

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x)` by the forward algorithm, shape ``(n,)`` (or ``()`` for one sequence)."""
        _, logs = self._forward(self.emission_log_probs(self.validate(x)))
        return logs.sum(-1)

    @torch.no_grad()
    def posterior_marginals(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`p(z_t = s \mid x_{1:T})` by forward-backward, ``(n, T, S)``."""
        le = self.emission_log_probs(self.validate(x))
        alphas, logs = self._forward(le)
        return alphas * self._backward(le, logs)

    @torch.no_grad()
    def viterbi(self, x: torch.Tensor) -> torch.Tensor:
        r"""The most probable state sequence :math:`\arg\max_z p(z \mid x)` by max-product, ``(n, T)`` (ties to
        the lowest state)."""
        le = self.emission_log_probs(self.validate(x))
        log_a = self.log_transitions()
        delta = self.log_start() + le[:, 0]
        back = []
        for t in range(1, le.shape[1]):
            scores = delta[:, :, None] + log_a  # (n, from, to)
            delta, arg = scores.max(1)
            delta = delta + le[:, t]
            back.append(arg)
        z = [delta.argmax(-1)]
        for arg in reversed(back):
            z.append(arg.gather(1, z[-1][:, None])[:, 0])
        return torch.stack(z[::-1], 1)

    # -- Baum-Welch ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_em(self, x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> list[float]:
        """Baum-Welch from the current parameters; stops when the mean log-likelihood gains less than ``tol``.
        Returns the mean log-likelihood before each M step and after the last: non-decreasing in float64 (a
        state with no expected visits keeps its old emissions, as hmmlearn does).

        Raises:
            ValueError: bad data or ``iters``.
        """
        check_positive_int("iters", iters)
        v = self.validate(x)
        history: list[float] = []
        for _ in range(iters):
            le = self.emission_log_probs(v)
            alphas, logs = self._forward(le)
            history.append(float(logs.sum(-1).mean()))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
            self._m_step(v, le, alphas, logs)
        else:
            history.append(float(self.log_prob(v).mean()))
        return history

    def _m_step(self, v: torch.Tensor, le: torch.Tensor, alphas: torch.Tensor, logs: torch.Tensor) -> None:
        betas = self._backward(le, logs)
        gamma = alphas * betas  # (n, T, S)
        trans = self.log_transitions().exp()
        e = (le - logs[..., None]).exp()
        xi = torch.einsum("nti,ntj->ij", alphas[:, :-1], e[:, 1:] * betas[:, 1:]) * trans
        tiny = torch.finfo(gamma.dtype).tiny
        self.start_logits.copy_(gamma[:, 0].sum(0).clamp_min(tiny).log())
        self.trans_logits.copy_(xi.clamp_min(tiny).log())
        weight = gamma.sum((0, 1))  # (S,)
        seen = weight > 10 * torch.finfo(gamma.dtype).eps
        if self.emission == "categorical":
            assert self.symbols is not None
            counts = torch.zeros(self.states, self.symbols, dtype=gamma.dtype, device=gamma.device)
            counts.index_add_(1, v.flatten(), gamma.reshape(-1, self.states).T)
            logits = counts.clamp_min(tiny).log() - weight[:, None].clamp_min(tiny).log()
            self.emit_logits.copy_(torch.where(seen[:, None], logits, self.emit_logits))
            return
        obs = self._steps(v).to(gamma.dtype)  # (n, T, D)
        g = gamma.reshape(-1, self.states)
        flat = obs.reshape(-1, obs.shape[-1])
        w = weight[:, None].clamp_min(tiny)
        locs = (g.T @ flat) / w
        var = (g.T @ flat.square()) / w - locs.square()
        var = var.clamp_min(self.reg)  # the maximum under the floor: EM stays monotone
        self.locs.copy_(torch.where(seen[:, None], locs, self.locs))
        raw = _inv_softplus((var - self.reg).clamp_min(1e-30).sqrt())
        self.raw_scales.copy_(torch.where(seen[:, None], raw, self.raw_scales))

    # -- samples ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` sequences by ancestral sampling, ``(n,) + event_shape``."""
        check_positive_int("n", n)
        trans = self.log_transitions()
        emit = self._emission_dist()
        z = dist.Categorical(logits=self.log_start()).sample((n,))
        xs = []
        for t in range(self.length):
            if t:
                z = dist.Categorical(logits=trans[z]).sample()
            xs.append(_index(emit, z).sample())
        return torch.stack(xs, 1).reshape(n, *self.event_shape)

    # -- the Pyro program ------------------------------------------------------------------------------------------
    @frozen_unless_trainable
    def as_distribution(self) -> dist.DiscreteHMM:
        """Pyro's ``DiscreteHMM`` of this model, event shape ``event_shape``."""
        s, t = self.states, self.length
        log_a = self.log_transitions()
        # Pyro's initial state emits nothing: a first transition to pi from every state makes z_1 ~ pi
        first = self.log_start().expand(1, s, s)
        trans = torch.cat([first, log_a.expand(t - 1, s, s)])
        init = torch.full((s,), -math.log(s), dtype=log_a.dtype, device=log_a.device)
        emit = self._emission_dist()
        if self.emission == "gaussian" and len(self.event_shape) == 1:  # one coordinate: scalar observations
            emit = dist.Normal(self.locs[:, 0], self.scales()[:, 0])
        return dist.DiscreteHMM(init, trans, emit)

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """``z_t`` (enumerated, ``pyro.markov`` over time) and ``x_t`` observed at ``x[:, t]``; the rows in the
        caller's plate."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        v = None if x is None else self._steps(x)
        log_a, emit = self.log_transitions(), self._emission_dist()
        z: torch.Tensor | None = None
        out = []
        with data_plate(n):
            for t in pyro.markov(range(self.length)):
                logits = self.log_start() if z is None else log_a[z]
                z = pyro.sample(f"z_{t}", dist.Categorical(logits=logits), infer={"enumerate": "parallel"})
                obs = None if v is None else v[:, t]
                out.append(pyro.sample(f"x_{t}", _index(emit, z), obs=obs))
        return torch.stack(out, 1).reshape(n, *self.event_shape) if x is None else x

    def viterbi_pyro(self, x: torch.Tensor) -> torch.Tensor:
        """Viterbi decoding by Pyro: ``infer_discrete`` at temperature 0 on :meth:`model`, ``(n, T)``."""
        v = self.validate(x)
        decoded = infer_discrete(self.model, first_available_dim=-2, temperature=0)
        tr = pyro.poutine.trace(decoded).get_trace(v)
        return torch.stack([tr.nodes[f"z_{t}"]["value"].reshape(len(v)) for t in range(self.length)], 1)

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}, states={self.states}, emission={self.emission!r}"


def _index(emit: dist.TorchDistribution, z: torch.Tensor) -> dist.TorchDistribution:
    """The emission of state ``z`` (any shape), from the per-state emission ``emit``."""
    if isinstance(emit, dist.Categorical):
        return dist.Categorical(logits=emit.logits[z])
    base = emit.base_dist
    return dist.Normal(base.loc[z], base.scale[z]).to_event(1)
