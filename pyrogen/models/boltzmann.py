r"""Boltzmann machines over binary vectors: the restricted Boltzmann machine ``rbm``, the fully visible ``bm`` and
the two-layer deep Boltzmann machine ``dbm`` (:class:`DBM`).

An RBM (Smolensky, 1986; Hinton, 2002) has visible units :math:`v \in \{0,1\}^D`, hidden units
:math:`h \in \{0,1\}^H` and the energy :math:`E(v, h) = -b^\top v - c^\top h - v^\top W h`. Summing out
:math:`h` leaves the free energy

.. math:: F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (v^\top W)_j), \qquad
          p(v) = e^{-F(v)} / Z,

and both conditionals factorize, so block Gibbs sampling alternates :math:`h \sim p(h \mid v)` and
:math:`v \sim p(v \mid h)`. :math:`\log Z` is exact by enumerating the :math:`2^H` hidden states (up to
``exact_max`` hidden units, 20 by default), and estimated by annealed importance sampling above
(Salakhutdinov and Murray, 2008) with its standard error. Training: contrastive divergence (CD-k, Hinton,
2002), persistent CD (Tieleman, 2008), or exact maximum likelihood where :math:`\log Z` is enumerable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from pyrogen.data import Dataset
from pyrogen.distributions.energy import NumericalDensity
from pyrogen.inference import energy as E
from pyrogen.inference.objectives import MaximumLikelihood, Objective, Phases
from pyrogen.inference.program import data_plate
from pyrogen.inference.samplers import AISResult, Chains, Gibbs, sample_chains
from pyrogen.models.base import (
    GenerativeModel,
    accepts_unbatched,
    check_hidden,
    check_positive_int,
    frozen_unless_trainable,
)
from pyrogen.models.registry import register

__all__ = ["DBM", "RBM", "BoltzmannMachine", "rbm_ais"]

#: the RBM training objectives
OBJECTIVES = ("cd", "pcd", "exact")


def _enumerate_bits(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """All ``2**n`` binary vectors of length ``n``, ``(2**n, n)``."""
    idx = torch.arange(2**n, device=device)
    return ((idx[:, None] >> torch.arange(n, device=device)) & 1).to(dtype)


def _boltzmann_prepare(model: Any, data: Dataset) -> None:
    """The visible biases at the training data's log-odds (Hinton, 2010)."""
    p = data.train.flatten(1).float().mean(0).clamp(0.01, 0.99)
    with torch.no_grad():
        model.b.copy_(torch.log(p / (1 - p)))


#: What the family's recipes share.
_RECIPE: dict[str, Any] = {"family": "boltzmann", "data": "digits-binary", "prepare": _boltzmann_prepare}


def _gibbs_objective(model: Any) -> Objective:
    r"""A machine's ``objective`` setting: CD-k, PCD-k, or exact maximum likelihood (:math:`\log Z` enumerated)."""
    if model.objective == "exact":
        return MaximumLikelihood()
    return E.GibbsContrastiveDivergence(persistent=model.objective == "pcd")


def _dbm_objective(model: Any) -> Objective:
    """The DBM's curriculum: each RBM pre-trained for ``pretrain_steps``, then the joint mean-field / PCD phase."""
    steps = model.pretrain_steps
    return Phases(
        (steps, E.DBMPretraining("layer1")),
        (steps, E.DBMPretraining("layer2")),
        (None, E.MeanFieldPCD(lr=model.joint_lr)),
    )


class _Boltzmann(GenerativeModel):
    """What the Boltzmann machines share: binary data, biases started at the data's log-odds, :math:`\\log Z` by
    enumeration where the states are few (:meth:`_enumerable`) and by AIS above, the exact NLL or the
    pseudo-likelihood as the validation monitor, and the Pyro program."""

    support = "binary"
    b: nn.Parameter

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).to(self.b.dtype)

    def _chain_settings(self, k: int, sample_steps: int, exact_max: int, ais_temps: int, ais_chains: int) -> None:
        """The settings every machine checks and keeps: Gibbs sweeps per update, sampling, enumeration, AIS."""
        self.k = check_positive_int("k", k)
        self.sample_steps = check_positive_int("sample_steps", sample_steps)
        self.exact_max = check_positive_int("exact_max", exact_max)
        self.ais_temps = check_positive_int("ais_temps", ais_temps)
        self.ais_chains = check_positive_int("ais_chains", ais_chains)

    # -- Gibbs chains (the machines with a block sweep: ``gibbs`` on a state of ``_state_size`` units) -------------
    _state_size: int

    def gibbs(self, state: torch.Tensor, steps: int = 1) -> torch.Tensor:
        raise NotImplementedError

    def _record(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The visible units of a chain state and the energy recorded with them."""
        raise NotImplementedError

    def gibbs_chains(self, n: int, steps: int | None = None, record_every: int = 10) -> Chains:
        """``n`` Gibbs chains from uniform random states, the visible units recorded every ``record_every`` sweeps
        with an energy per draw as ``energy`` (for ``chains.to_inference_data()`` and ArviZ)."""
        check_positive_int("n", n)
        steps = self.sample_steps if steps is None else check_positive_int("steps", steps)
        every = check_positive_int("record_every", record_every)
        state = torch.bernoulli(torch.full((n, self._state_size), 0.5, dtype=self.b.dtype, device=self.b.device))
        thin = min(every, steps)  # every ``every``-th sweep and the last one
        with torch.no_grad():
            chains = sample_chains(
                Gibbs(self.gibbs),
                state,
                steps // thin,
                warmup_steps=steps % thin,
                thin=thin,
                record=lambda st: {"energy": self._record(st.position)[1]},
            )
        draws = chains.samples.flatten(0, 1)
        visible = self._record(draws)[0].reshape(n, -1, *self.event_shape)
        return Chains(visible, {"energy": chains.stats["energy"]}, chains.state)

    def sample(self, n: int, steps: int | None = None) -> torch.Tensor:
        """``n`` draws of the visible units after ``steps`` (default ``sample_steps``) Gibbs sweeps from uniform
        random states."""
        return self.gibbs_chains(n, steps, record_every=10**9).samples[:, -1]

    def _enumerable(self) -> bool:
        raise NotImplementedError

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(v)` for flat ``v``, unchecked."""
        raise NotImplementedError

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def _seeded(self, estimate: Callable[[], tuple[torch.Tensor, float]]) -> tuple[torch.Tensor, float]:
        """``estimate()`` (a seeded AIS estimate: the same parameters give the same number), kept until a parameter
        or the AIS settings change, so that scoring one model several times runs AIS once."""
        state = torch.cat([p.detach().flatten() for p in self.parameters()])
        key = (self.ais_temps, self.ais_chains, state.dtype, state.device)
        cached = self.__dict__.get("_ais_cache")
        if cached is not None and cached[0] == key and torch.equal(cached[1], state):
            return cached[2]
        out = estimate()
        self.__dict__["_ais_cache"] = (key, state.clone(), out)
        return out

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(v)` per example (the AIS estimate's standard error, where it is used, is in
        :meth:`evaluation_metrics`)."""
        return self._log_p(self._flat(self.validate(x)))

    @property
    def density(self) -> str:
        r"""What :meth:`log_prob` is: ``"exact"`` while :math:`\log Z` (and a DBM's sum over its hidden states) is
        enumerated, ``"estimated"`` above (:math:`\log Z` by AIS; a DBM's :math:`\log p^*(v)` by its mean-field
        bound): see :meth:`log_prob_estimate`."""
        return "exact" if self._enumerable() else "estimated"

    @property
    def estimate_method(self) -> str:
        return "enumeration" if self._enumerable() else "ais"

    def log_prob_estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        r""":meth:`log_prob` and the standard error of its :math:`\log Z` (0 by enumeration)."""
        with torch.no_grad():
            _, se = self.log_normalizer()
        return self.log_prob(x), float(se) if not self._enumerable() else 0.0

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, Any]:
        """How ``pyrogen evaluate``'s NLL was had: ``log_z`` and ``log_z_method`` (and ``log_z_stderr`` by AIS)."""
        with torch.no_grad():
            log_z, se = self.log_normalizer()
        method = "enumeration" if self._enumerable() else "ais"
        return {"log_z": float(log_z), "log_z_method": method, **({"log_z_stderr": se} if method == "ais" else {})}

    @frozen_unless_trainable
    def as_distribution(self) -> NumericalDensity:
        """:class:`~pyrogen.distributions.NumericalDensity` of :math:`p(v)`: ``log_prob`` with :math:`\\log Z`
        enumerated or by AIS, ``sample`` by Gibbs chains."""
        return NumericalDensity(
            lambda x: self._log_p(self._flat(x)), self.sample, self.event_shape, support=constraints.boolean
        )

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """A Pyro program: ``x`` observed under :math:`p(v)` (hidden units summed out)."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        with data_plate(n):
            return pyro.sample("x", self.as_distribution(), obs=x)


def _rbm_train(data: Dataset) -> dict[str, Any]:
    """6000 steps of batch 64 at lr 0.01, validation every 500 steps (the exact NLL or, above ``exact_max``
    hidden units, the pseudo-log-likelihood)."""
    return {"lr": 0.01, "batch_size": 64, "steps": 6000, "val_every": 500}


@register("rbm", train=_rbm_train, objective=_gibbs_objective, **_RECIPE)
class RBM(_Boltzmann):
    r"""A restricted Boltzmann machine over binary vectors or images (flattened).

    Args:
        event_shape: the shape of one example.
        hidden: :math:`H`, the hidden units.
        objective: ``"cd"`` (CD-k from the data), ``"pcd"`` (persistent chains, one per example of a batch,
            kept across steps and in the checkpoint) or ``"exact"`` (the exact negative log-likelihood, for
            :math:`H \le` ``exact_max``).
        k: Gibbs steps per update (CD-k / PCD-k).
        chains: the persistent chains' number.
        sample_steps: Gibbs steps of :meth:`sample` from uniform random states.
        exact_max: the largest :math:`H` whose :math:`\log Z` is computed by enumeration.
        ais_temps, ais_chains: annealed importance sampling above ``exact_max``.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        hidden: int = 16,
        objective: str = "cd",
        k: int = 1,
        chains: int = 128,
        sample_steps: int = 1000,
        exact_max: int = 20,
        ais_temps: int = 2000,
        ais_chains: int = 200,
    ) -> None:
        super().__init__(event_shape)
        self.hidden = check_positive_int("hidden", hidden)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
        self._chain_settings(k, sample_steps, exact_max, ais_temps, ais_chains)
        if objective == "exact" and self.hidden > self.exact_max:
            raise ValueError(f"objective 'exact' enumerates 2**hidden states: hidden must be <= {self.exact_max}")
        self.objective = objective
        d = self._state_size = math.prod(self.event_shape)
        self.W = nn.Parameter(0.01 * torch.randn(d, self.hidden))
        self.b = nn.Parameter(torch.zeros(d))
        self.c = nn.Parameter(torch.zeros(self.hidden))
        self.register_buffer("persistent", torch.bernoulli(torch.full((check_positive_int("chains", chains), d), 0.5)))

    # -- energies ------------------------------------------------------------------------------------------------
    @accepts_unbatched()
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (v^\top W)_j)` per example, for binary
        ``v`` of the model's event shape ``(n, *event_shape)`` (or flat ``(n, D)``).

        Raises:
            ValueError: ``v`` of another shape, or values other than 0 and 1.
        """
        if isinstance(v, torch.Tensor) and v.dim() == 2 and v.shape[1] == self.W.shape[0] != self.event_shape[0]:
            v = v.reshape(len(v), *self.event_shape)
        return self._free_energy(self._flat(self.validate(v, name="v")))

    def _free_energy(self, v: torch.Tensor) -> torch.Tensor:
        return -(v @ self.b) - F.softplus(self.c + v @ self.W).sum(-1)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r""":math:`E(v, h) = -b^\top v - c^\top h - v^\top W h`, ``v`` ``(n, D)``, ``h`` ``(n, H)``."""
        return -(v @ self.b) - (h @ self.c) - ((v @ self.W) * h).sum(-1)

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`p(h_j = 1 \\mid v)`, ``(n, H)``."""
        return torch.sigmoid(self.c + v @ self.W)

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`p(v_i = 1 \\mid h)`, ``(n, D)``."""
        return torch.sigmoid(self.b + h @ self.W.T)

    def gibbs(self, v: torch.Tensor, steps: int = 1) -> torch.Tensor:
        """``steps`` sweeps of block Gibbs sampling from ``v`` ``(n, D)``: :math:`h \\sim p(h|v)`, then
        :math:`v \\sim p(v|h)`."""
        with torch.no_grad():
            for _ in range(steps):
                h = torch.bernoulli(self.hidden_probs(v))
                v = torch.bernoulli(self.visible_probs(h))
        return v

    # -- the normalizer ------------------------------------------------------------------------------------------
    def log_normalizer_exact(self) -> torch.Tensor:
        r""":math:`\log Z = \log \sum_h e^{c^\top h} \prod_i (1 + e^{b_i + (W h)_i})` by enumerating the :math:`2^H`
        hidden states (differentiable).

        Raises:
            ValueError: :math:`H` above ``exact_max``.
        """
        if self.hidden > self.exact_max:
            raise ValueError(f"log Z by enumeration needs hidden <= {self.exact_max}; this RBM has {self.hidden}")
        return _bipartite_log_z(self.W, self.b, self.c)

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        """:math:`\\log Z` and its standard error: exact (0) up to ``exact_max`` hidden units, by AIS above."""
        if self.hidden <= self.exact_max:
            return self.log_normalizer_exact(), 0.0

        def estimate() -> tuple[torch.Tensor, float]:
            res = rbm_ais(self, self.ais_temps, self.ais_chains, generator=torch.Generator().manual_seed(0))
            return torch.tensor(res.log_z, dtype=self.W.dtype, device=self.W.device), res.stderr

        return self._seeded(estimate)

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        r"""The pseudo-log-likelihood :math:`\sum_i \log p(v_i \mid v_{-i})` per example (Besag, 1975): no
        :math:`Z`, every site flipped in turn."""
        v = self._flat(self.validate(x))
        fe = self._free_energy(v)
        total = torch.zeros(len(v), dtype=v.dtype, device=v.device)
        for i in range(v.shape[1]):
            flipped = v.clone()
            flipped[:, i] = 1 - flipped[:, i]
            total = total - F.softplus(fe - self._free_energy(flipped))
        return total

    def _record(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return state, self._free_energy(state)  # the free energy: h summed out

    def _enumerable(self) -> bool:
        return self.hidden <= self.exact_max

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        return -self._free_energy(v) - self.log_normalizer()[0]


def _bipartite_log_z(W: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \sum_{u,h} e^{b^\top u + c^\top h + u^\top W h}` over binary :math:`u` (``len(b)``) and
    :math:`h` (``len(c)``), :math:`u` summed out in closed form and the :math:`2^H` states of :math:`h` enumerated
    (differentiable)."""
    parts = []
    for h in _enumerate_bits(len(c), W.dtype, W.device).split(65536):
        parts.append(torch.logsumexp(h @ c + F.softplus(b + h @ W.T).sum(-1), 0))
    return torch.logsumexp(torch.stack(parts), 0)


def _bipartite_ais(
    W: torch.Tensor, b: torch.Tensor, c: torch.Tensor, num_temps: int, chains: int, generator: torch.Generator | None
) -> tuple[AISResult, torch.Tensor]:
    r"""AIS for the bipartite machine :math:`e^{b^\top u + c^\top h + u^\top W h}` (see :func:`rbm_ais`); also
    returns the chains' final :math:`u`."""
    check_positive_int("num_temps", num_temps)
    check_positive_int("chains", chains)
    W, b, c = W.detach(), b.detach(), c.detach()
    d, h_dim = W.shape

    def log_star(u: torch.Tensor, beta: float) -> torch.Tensor:
        return beta * (u @ b) + F.softplus(beta * (c + u @ W)).sum(-1)

    def bern(p: torch.Tensor) -> torch.Tensor:
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device="cpu").to(p.device) < p).to(p.dtype)

    betas = torch.linspace(0, 1, num_temps + 1).tolist()
    u = bern(torch.full((chains, d), 0.5, dtype=W.dtype, device=W.device))
    log_w = torch.zeros(chains, dtype=torch.float64, device=W.device)
    with torch.no_grad():
        for k in range(1, num_temps + 1):
            log_w += (log_star(u, betas[k]) - log_star(u, betas[k - 1])).double()
            h = bern(torch.sigmoid(betas[k] * (c + u @ W)))
            u = bern(torch.sigmoid(betas[k] * (b + h @ W.T)))
    log_z0 = (d + h_dim) * math.log(2)
    log_mean = float(torch.logsumexp(log_w, 0) - math.log(chains))
    w = (log_w - log_w.max()).exp()
    rel = float(w.std() / (w.mean() * math.sqrt(chains))) if chains > 1 else float("nan")
    res = AISResult(
        log_z=log_z0 + log_mean,
        stderr=rel,
        log_weights=log_w,
        samples=u,
        acceptance_rate=1.0,  # Gibbs transitions always move
    )
    return res, u


def rbm_ais(rbm: RBM, num_temps: int = 2000, chains: int = 200, generator: torch.Generator | None = None) -> AISResult:
    r""":math:`\log Z` of an RBM by annealed importance sampling (Salakhutdinov and Murray, 2008): from the uniform
    distribution on :math:`(v, h)` (:math:`\log Z_0 = (D + H)\log 2`) along :math:`p_\beta \propto e^{-\beta E}`,
    :math:`\beta` linear in ``num_temps`` steps, block Gibbs transitions at each :math:`\beta`, the hidden units
    summed out of the weights. ``log_z`` is the log of the mean weight, ``stderr`` its delta-method standard
    error."""
    res, v = _bipartite_ais(rbm.W, rbm.b, rbm.c, num_temps, chains, generator)
    return dataclasses.replace(res, samples=v.reshape(chains, *rbm.event_shape))


def _bm_train(data: Dataset) -> dict[str, Any]:
    """3000 steps of batch 64 at lr 0.01, validation (the pseudo-log-likelihood or exact NLL) every 500."""
    return {"lr": 0.01, "batch_size": 64, "steps": 3000, "val_every": 500}


@register("bm", train=_bm_train, objective=_gibbs_objective, **_RECIPE)
class BoltzmannMachine(_Boltzmann):
    r"""A fully visible Boltzmann machine: :math:`p(v) \propto \exp(b^\top v + \tfrac12 v^\top W v)` with
    :math:`W` symmetric and zero on the diagonal (an Ising model with learned couplings; Ackley, Hinton and
    Sejnowski, 1985). Sampled by single-site Gibbs sweeps (:math:`p(v_i = 1 \mid v_{-i}) = \sigma(b_i + W_i v)`);
    trained by CD-k or persistent CD; :math:`\log Z` by enumerating the :math:`2^D` states up to ``exact_max``
    units, by AIS (Gibbs transitions) above.

    Args:
        event_shape: the shape of one example (flattened to :math:`D` units).
        objective: ``"cd"`` or ``"pcd"``; k: Gibbs sweeps per update; chains: the persistent chains.
        sample_steps: sweeps of :meth:`sample`; exact_max, ais_temps, ais_chains: as :class:`RBM`.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        objective: str = "cd",
        k: int = 1,
        chains: int = 128,
        sample_steps: int = 200,
        exact_max: int = 20,
        ais_temps: int = 500,
        ais_chains: int = 200,
    ) -> None:
        super().__init__(event_shape)
        if objective not in ("cd", "pcd"):
            raise ValueError(f"objective must be 'cd' or 'pcd'; got {objective!r}")
        self.objective = objective
        self._chain_settings(k, sample_steps, exact_max, ais_temps, ais_chains)
        d = self._state_size = math.prod(self.event_shape)
        self.raw_W = nn.Parameter(0.01 * torch.randn(d, d))
        self.b = nn.Parameter(torch.zeros(d))
        self.register_buffer("persistent", torch.bernoulli(torch.full((check_positive_int("chains", chains), d), 0.5)))

    def W(self) -> torch.Tensor:
        """The couplings: symmetric, zero diagonal."""
        w = self.raw_W + self.raw_W.T
        return w - torch.diag_embed(torch.diagonal(w))

    def unnormalized_log_prob(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`b^\top v + \tfrac12 v^\top W v` for flat ``v`` ``(n, D)``."""
        return v @ self.b + 0.5 * ((v @ self.W()) * v).sum(-1)

    def gibbs(self, v: torch.Tensor, sweeps: int = 1, beta: float = 1.0) -> torch.Tensor:
        """``sweeps`` single-site Gibbs sweeps (sites in order) at inverse temperature ``beta``."""
        W = self.W().detach()
        b = self.b.detach()
        v = v.clone()
        with torch.no_grad():
            for _ in range(sweeps):
                for i in range(v.shape[1]):
                    v[:, i] = torch.bernoulli(torch.sigmoid(beta * (b[i] + v @ W[:, i])))
        return v

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        """:math:`\\log Z` (differentiable) by enumeration up to ``exact_max`` units, or by AIS with its stderr
        (seeded: the same parameters give the same estimate)."""
        d = math.prod(self.event_shape)
        if d <= self.exact_max:
            parts = [
                torch.logsumexp(self.unnormalized_log_prob(v), 0)
                for v in _enumerate_bits(d, self.b.dtype, self.b.device).split(65536)
            ]
            return torch.logsumexp(torch.stack(parts), 0), 0.0
        betas = torch.linspace(0, 1, self.ais_temps + 1).tolist()
        # seeded (the global RNG left as it was): the same parameters give the same estimate
        with torch.random.fork_rng(devices=[self.b.device] if self.b.is_cuda else []), torch.no_grad():
            torch.manual_seed(0)
            v = torch.bernoulli(torch.full((self.ais_chains, d), 0.5, dtype=self.b.dtype, device=self.b.device))
            log_w = torch.zeros(self.ais_chains, dtype=torch.float64, device=v.device)
            for k in range(1, len(betas)):
                log_w += ((betas[k] - betas[k - 1]) * self.unnormalized_log_prob(v)).double()
                v = self.gibbs(v, 1, betas[k])
        log_mean = float(torch.logsumexp(log_w, 0) - math.log(len(log_w)))
        w = (log_w - log_w.max()).exp()
        se = float(w.std() / (w.mean() * math.sqrt(len(w))))
        return torch.tensor(d * math.log(2) + log_mean, dtype=self.b.dtype, device=self.b.device), se

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\sum_i \log p(v_i \mid v_{-i})` per example (no :math:`Z`)."""
        v = self._flat(self.validate(x))
        logits = self.b + v @ self.W()
        return -F.binary_cross_entropy_with_logits(logits, v, reduction="none").sum(-1)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`-\log \tilde p(v)` for flat ``v`` ``(n, D)`` (the energy: a fully visible machine has no hidden
        units to sum out)."""
        return -self.unnormalized_log_prob(v)

    def _record(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return state, -self.unnormalized_log_prob(state)  # the energy -b'v - v'Wv/2

    def _enumerable(self) -> bool:
        return math.prod(self.event_shape) <= self.exact_max

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        return self.unnormalized_log_prob(v) - self.log_normalizer()[0]


def _dbm_train(data: Dataset) -> dict[str, Any]:
    """10000 steps of batch 64 at lr 0.005 (two pre-training phases of ``pretrain_steps``, then the joint
    phase), validation every 500 steps on the DBM's NLL."""
    return {"lr": 0.005, "batch_size": 64, "steps": 10000, "val_every": 500}


@register("dbm", train=_dbm_train, objective=_dbm_objective, **_RECIPE)
class DBM(_Boltzmann):
    r"""A deep Boltzmann machine with two hidden layers (Salakhutdinov and Hinton, 2009):

    .. math:: E(v, h^1, h^2) = -b^\top v - c_1^\top h^1 - c_2^\top h^2 - v^\top W_1 h^1 - h^{1\top} W_2 h^2.

    Given :math:`h^1`, the visible units and :math:`h^2` are independent, so the DBM is an RBM between
    :math:`h^1` and :math:`u = (v, h^2)` with weights :math:`(W_1; W_2^\top)`: block Gibbs alternates
    :math:`h^1 \mid (v, h^2)` and :math:`(v, h^2) \mid h^1`, and :math:`\log Z` sums :math:`v` and :math:`h^2` out
    in closed form, enumerating the :math:`2^{H_1}` states of :math:`h^1` (up to ``exact_max`` units) or by AIS
    over :math:`h^1` above. The unnormalized :math:`\log \tilde p(v)` sums :math:`h^1` out and enumerates
    :math:`h^2` (up to ``exact_max`` units); above, :meth:`log_prob` is the mean-field lower bound, and
    :meth:`evaluation_metrics` says which was used.

    Training, in three phases of ``pretrain_steps``, ``pretrain_steps`` and the rest of the run (the parameter
    groups ``"layer1"``, ``"layer2"``, ``"dbm"``):

    1. **layer-wise pre-training** (Salakhutdinov and Hinton, 2009, §3.1): CD-``k`` on an RBM over :math:`v`
       whose visible layer is doubled (two copies tied to :math:`W_1`, so :math:`p(h^1 \mid v) =
       \sigma(c_1 + 2 v^\top W_1)`), then on an RBM over :math:`h^1 \sim p(h^1 \mid v)` whose hidden layer is
       doubled (:math:`p(h^1 \mid h^2) = \sigma(c_1 + 2 W_2 h^2)`; :math:`c_1` kept from the first). The doubling
       stands for the input :math:`h^1` receives from the other side once the two are joined;
    2. **joint training**: the data term by **mean-field inference** (:meth:`mean_field`: fixed-point updates of
       :math:`q(h^1) q(h^2)`, started by the doubled bottom-up pass), the model term by persistent chains
       (``chains`` of them, started at training examples with their hidden units drawn from the mean field, ``k``
       Gibbs sweeps per update; Tieleman, 2008).

    Args:
        event_shape: the shape of one example (flattened to :math:`D` units).
        hidden: :math:`(H_1, H_2)`.
        pretrain_steps: steps of each pre-training phase (0: train the DBM from its initialization).
        k: Gibbs sweeps per update (CD-k in pre-training, PCD-k after).
        chains: the persistent chains.
        mean_field_steps: fixed-point updates of :meth:`mean_field`.
        sample_steps: Gibbs sweeps of :meth:`sample` from uniform random states.
        exact_max: the largest layer enumerated (:math:`H_1` for :math:`\log Z`, :math:`H_2` for
            :math:`\tilde p(v)`).
        ais_temps, ais_chains: annealed importance sampling of :math:`\log Z` above ``exact_max``.
        joint_lr: the joint phase's learning rate (``None``: the run's ``lr``, which the pre-training phases use).
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        hidden: Sequence[int] = (64, 16),
        pretrain_steps: int = 2000,
        k: int = 1,
        chains: int = 128,
        mean_field_steps: int = 10,
        sample_steps: int = 1000,
        exact_max: int = 20,
        ais_temps: int = 2000,
        ais_chains: int = 200,
        joint_lr: float | None = 1e-4,
    ) -> None:
        super().__init__(event_shape)
        if joint_lr is not None and (
            isinstance(joint_lr, bool) or not isinstance(joint_lr, (int, float)) or not 0 < joint_lr < math.inf
        ):
            raise ValueError(f"joint_lr must be a positive number or None; got {joint_lr!r}")
        self.joint_lr = joint_lr
        layers = check_hidden(hidden)
        if len(layers) != 2:
            raise ValueError(f"hidden must give the two hidden layers' sizes (H1, H2); got {hidden!r}")
        self.hidden = layers
        if isinstance(pretrain_steps, bool) or not isinstance(pretrain_steps, int) or pretrain_steps < 0:
            raise ValueError(f"pretrain_steps must be a non-negative integer; got {pretrain_steps!r}")
        self.pretrain_steps = pretrain_steps
        self._chain_settings(k, sample_steps, exact_max, ais_temps, ais_chains)
        self.mean_field_steps = check_positive_int("mean_field_steps", mean_field_steps)
        d = math.prod(self.event_shape)
        h1, h2 = layers
        self._state_size = d + h1 + h2
        self.W1 = nn.Parameter(0.01 * torch.randn(d, h1))
        self.W2 = nn.Parameter(0.01 * torch.randn(h1, h2))
        self.b = nn.Parameter(torch.zeros(d))
        self.c1 = nn.Parameter(torch.zeros(h1))
        self.c2 = nn.Parameter(torch.zeros(h2))
        n = check_positive_int("chains", chains)
        self.register_buffer("persistent", torch.bernoulli(torch.full((n, d + h1 + h2), 0.5)))
        self.register_buffer("chains_started", torch.zeros((), dtype=torch.bool))

    def split_state(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, h1 = self.W1.shape
        return state[:, :d], state[:, d : d + h1], state[:, d + h1 :]

    def energy(self, v: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
        r""":math:`E(v, h^1, h^2)` per example (flat ``v`` ``(n, D)``; the same expression with means in place of
        binary states is the mean-field expectation of the energy)."""
        return (
            -(v @ self.b)
            - (h1 @ self.c1)
            - (h2 @ self.c2)
            - ((v @ self.W1) * h1).sum(-1)
            - ((h1 @ self.W2) * h2).sum(-1)
        )

    def _bipartite(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The DBM as an RBM between :math:`u = (v, h^2)` and :math:`h^1`: its weights and biases."""
        return torch.cat([self.W1, self.W2.T], 0), torch.cat([self.b, self.c2]), self.c1

    def gibbs(self, state: torch.Tensor, steps: int = 1) -> torch.Tensor:
        """``steps`` block Gibbs sweeps of the full state ``(n, D + H1 + H2)``: :math:`h^1 \\mid (v, h^2)`, then
        :math:`v \\mid h^1` and :math:`h^2 \\mid h^1`."""
        with torch.no_grad():
            v, h1, h2 = self.split_state(state)
            for _ in range(steps):
                h1 = torch.bernoulli(torch.sigmoid(self.c1 + v @ self.W1 + h2 @ self.W2.T))
                v = torch.bernoulli(torch.sigmoid(self.b + h1 @ self.W1.T))
                h2 = torch.bernoulli(torch.sigmoid(self.c2 + h1 @ self.W2))
            return torch.cat([v, h1, h2], 1)

    def mean_field(self, v: torch.Tensor, steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The factorized :math:`q(h^1) q(h^2)` closest in KL to :math:`p(h^1, h^2 \mid v)`: the doubled bottom-up
        pass :math:`\mu_1 = \sigma(c_1 + 2 v^\top W_1)`, :math:`\mu_2 = \sigma(c_2 + \mu_1^\top W_2)`, then ``steps``
        (default ``mean_field_steps``) coordinate-ascent updates :math:`\mu_1 = \sigma(c_1 + v^\top W_1 +
        W_2 \mu_2)`, :math:`\mu_2 = \sigma(c_2 + \mu_1^\top W_2)`, each of which raises :meth:`mean_field_bound`."""
        steps = self.mean_field_steps if steps is None else steps
        mu1 = torch.sigmoid(self.c1 + 2 * (v @ self.W1))
        mu2 = torch.sigmoid(self.c2 + mu1 @ self.W2)
        for _ in range(steps):
            mu1 = torch.sigmoid(self.c1 + v @ self.W1 + mu2 @ self.W2.T)
            mu2 = torch.sigmoid(self.c2 + mu1 @ self.W2)
        return mu1, mu2

    def mean_field_bound(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        r""":math:`\log \tilde p(v) \ge -\mathbb E_q[E(v, h^1, h^2)] + \mathcal H(q)` per example, at the
        mean-field :math:`q` (:meth:`mean_field`); minus :math:`\log Z`, a lower bound on :math:`\log p(v)`."""
        v = self._flat(self.validate(x))
        mu1, mu2 = self.mean_field(v, steps)

        def entropy(p: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy(p, p, reduction="none").sum(-1)

        return -self.energy(v, mu1, mu2) + entropy(mu1) + entropy(mu2)

    # -- the normalizer and the likelihood ---------------------------------------------------------------------
    def unnormalized_log_prob(self, v: torch.Tensor, route: str | None = None) -> torch.Tensor:
        r""":math:`\log \tilde p(v)` for flat ``v``, exact and differentiable, by summing out the smaller hidden
        layer that ``exact_max`` allows (``route`` ``"h1"`` or ``"h2"`` forces one):

        - ``"h1"``: :math:`b^\top v + \log \sum_{h^1} e^{(c_1 + W_1^\top v)^\top h^1 + \sum_k
          \mathrm{softplus}(c_2 + W_2^\top h^1)_k}`, :math:`h^2` summed in closed form; the :math:`2^{H_1}`
          state terms do not depend on :math:`v`, so the data enter by one matrix product;
        - ``"h2"``: :math:`b^\top v + \log \sum_{h^2} e^{c_2^\top h^2} \prod_j (1 + e^{c_{1j} + (v^\top W_1)_j
          + (W_2 h^2)_j})`, :math:`2^{H_2}` states, a softplus per state, unit and example.

        Raises:
            ValueError: both layers above ``exact_max`` (or the forced route's).
        """
        h1_dim, h2_dim = self.hidden
        if route is None:
            route = "h1" if h1_dim <= self.exact_max and (h1_dim <= h2_dim or h2_dim > self.exact_max) else "h2"
        if route not in ("h1", "h2"):
            raise ValueError(f"route must be 'h1', 'h2' or None; got {route!r}")
        size = h1_dim if route == "h1" else h2_dim
        if size > self.exact_max:
            raise ValueError(
                f"log p*(v) by enumeration needs hidden[{0 if route == 'h1' else 1}] <= {self.exact_max}; "
                f"this DBM has {size}"
            )
        # each chunk of states holds at most 2**22 values; with gradients on, a chunk is recomputed in the backward
        # pass instead of kept, so the peak memory does not grow with the number of rows times states
        if route == "h1":
            vw = v @ self.W1  # (n, H1)
            states = _enumerate_bits(h1_dim, v.dtype, v.device)
            chunks = states.split(max(1, min(2**16, 2**22 // max(1, len(v)))))
            parts = [_chunked(_h1_term, h1, vw, self.c1, self.c2, self.W2) for h1 in chunks]
            return v @ self.b + torch.logsumexp(torch.stack(parts, 1), 1)
        bottom = self.c1 + v @ self.W1  # (n, H1)
        chunks = _enumerate_bits(h2_dim, v.dtype, v.device).split(max(1, 2**22 // max(1, len(v) * h1_dim)))
        parts = [_chunked(_h2_term, h2, bottom, self.c2, self.W2) for h2 in chunks]
        return v @ self.b + torch.logsumexp(torch.stack(parts, 1), 1)

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        """:math:`\\log Z` and its standard error: :math:`v` and :math:`h^2` summed out, :math:`h^1` enumerated
        (exact, differentiable, 0) up to ``exact_max`` units, by AIS over :math:`h^1` above (seeded: the same
        parameters give the same estimate)."""
        W, b, c = self._bipartite()
        if self.hidden[0] <= self.exact_max:
            return _bipartite_log_z(W, b, c), 0.0

        def estimate() -> tuple[torch.Tensor, float]:
            res, _ = _bipartite_ais(W, b, c, self.ais_temps, self.ais_chains, torch.Generator().manual_seed(0))
            return torch.tensor(res.log_z, dtype=W.dtype, device=W.device), res.stderr

        return self._seeded(estimate)

    def _enumerable(self) -> bool:
        return self.hidden[0] <= self.exact_max

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        if min(self.hidden) <= self.exact_max:
            star = self.unnormalized_log_prob(v)
        else:
            star = self.mean_field_bound(v)
        return star - self.log_normalizer()[0]

    @property
    def density(self) -> str:
        r"""``"exact"`` while :math:`H_1 \le` ``exact_max`` (:math:`\log Z` and :math:`\log p^*(v)` both by
        enumerating :math:`h^1`); ``"estimated"`` above: :math:`\log Z` by AIS, and :math:`\log p^*(v)` by
        enumerating :math:`h^2` or, with both layers above ``exact_max``, by its mean-field bound."""
        return "exact" if self._enumerable() else "estimated"

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, Any]:
        """As the other machines, plus ``unnormalized_method``: ``"enumeration"`` (exact) or ``"mean-field
        bound"`` (:math:`H_2` above ``exact_max``: the NLL is an upper bound)."""
        out = super().evaluation_metrics(x)
        out["unnormalized_method"] = "enumeration" if min(self.hidden) <= self.exact_max else "mean-field bound"
        return out

    # -- sampling ----------------------------------------------------------------------------------------------
    def _record(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, h1, h2 = self.split_state(state)
        return v, self.energy(v, h1, h2)  # the joint energy of the recorded state


def _h1_term(h1: torch.Tensor, vw: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The DBM's log-sum over a chunk of h1 states, h2 summed in closed form, ``(n,)``."""
    state = h1 @ c1 + F.softplus(c2 + h1 @ w2).sum(-1)  # (S,), free of v
    return torch.logsumexp(state + vw @ h1.T, 1)


def _h2_term(h2: torch.Tensor, bottom: torch.Tensor, c2: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """The DBM's log-sum over a chunk of h2 states, v and h1 summed in closed form, ``(n,)``."""
    return torch.logsumexp(h2 @ c2 + F.softplus(bottom[:, None] + h2 @ w2.T).sum(-1), 1)


def _chunked(fn: Any, *args: torch.Tensor) -> torch.Tensor:
    """``fn(*args)``, recomputed in the backward pass (not kept) when a gradient will flow through it."""
    if torch.is_grad_enabled() and any(a.requires_grad for a in args):
        from torch.utils.checkpoint import checkpoint

        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
