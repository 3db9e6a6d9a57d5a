r"""Boltzmann machines over binary vectors: the restricted Boltzmann machine ``rbm`` and the fully visible
``bm``.

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

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pyro
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import constraints

from pyrogen.data import Dataset
from pyrogen.distributions.energy import NumericalDensity
from pyrogen.inference.samplers import AISResult, Chains
from pyrogen.models.base import GenerativeModel, check_positive_int
from pyrogen.models.registry import register

__all__ = ["RBM", "BoltzmannMachine", "rbm_ais"]

#: the RBM training objectives
OBJECTIVES = ("cd", "pcd", "exact")


def _enumerate_bits(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """All ``2**n`` binary vectors of length ``n``, ``(2**n, n)``."""
    idx = torch.arange(2**n, device=device)
    return ((idx[:, None] >> torch.arange(n, device=device)) & 1).to(dtype)


class _Boltzmann(GenerativeModel):
    """What the Boltzmann machines share: binary data, biases started at the data's log-odds, :math:`\\log Z` by
    enumeration where the states are few (:meth:`_enumerable`) and by AIS above, the exact NLL or the
    pseudo-likelihood as the validation monitor, and the Pyro program."""

    family: ClassVar[str] = "boltzmann"
    density: ClassVar[str] = "exact"
    support: ClassVar[str] = "binary"
    default_data: ClassVar[str] = "digits-binary"
    b: nn.Parameter

    @classmethod
    def from_dataset(cls, data: Dataset, **kwargs: Any) -> GenerativeModel:
        """A machine for binary ``data``, its visible biases at the training data's log-odds (Hinton, 2010)."""
        model = super().from_dataset(data, **kwargs)
        p = data.train.flatten(1).float().mean(0).clamp(0.01, 0.99)
        with torch.no_grad():
            model.b.copy_(torch.log(p / (1 - p)))
        return model

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1).to(self.b.dtype)

    def _enumerable(self) -> bool:
        raise NotImplementedError

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(v)` for flat ``v``, unchecked."""
        raise NotImplementedError

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\log p(v)` per example (the AIS estimate's standard error, where it is used, is in
        :meth:`evaluation_metrics`)."""
        return self._log_p(self._flat(self.validate(x)))

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, Any]:
        """How ``pyrogen evaluate``'s NLL was had: ``log_z`` and ``log_z_method`` (and ``log_z_stderr`` by AIS)."""
        with torch.no_grad():
            log_z, se = self.log_normalizer()
        method = "enumeration" if self._enumerable() else "ais"
        return {"log_z": float(log_z), "log_z_method": method, **({"log_z_stderr": se} if method == "ais" else {})}

    def fused_pyro_loss(self, batch: Any) -> torch.Tensor:
        """The exact negative log-likelihood per example (what :meth:`pyro_loss` computes through Pyro)."""
        return -self._log_p(self._flat(self._checked_batch(batch))).mean()

    def validation_loss(self, batch: Any) -> torch.Tensor:
        """The exact NLL where :math:`\\log Z` is enumerable; the negative pseudo-log-likelihood above."""
        with torch.no_grad():
            if self._enumerable():
                return -self.log_prob(batch).mean()
            return -self.pseudo_log_likelihood(batch).mean()

    def as_distribution(self) -> NumericalDensity:
        """:class:`~pyrogen.distributions.NumericalDensity` of :math:`p(v)`: ``log_prob`` with :math:`\\log Z`
        enumerated or by AIS, ``sample`` by Gibbs chains."""
        return NumericalDensity(
            lambda x: self._log_p(self._flat(x)), self.sample, self.event_shape, support=constraints.boolean
        )

    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """A Pyro program: ``x`` observed under :math:`p(v)` (hidden units summed out)."""
        n = 1 if x is None else len(x)
        with pyro.plate("data", n):
            return pyro.sample("x", self.as_distribution(), obs=x)


@register("rbm")
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
        self.exact_max = check_positive_int("exact_max", exact_max)
        if objective == "exact" and self.hidden > self.exact_max:
            raise ValueError(f"objective 'exact' enumerates 2**hidden states: hidden must be <= {self.exact_max}")
        self.objective = objective
        self.k = check_positive_int("k", k)
        self.sample_steps = check_positive_int("sample_steps", sample_steps)
        self.ais_temps = check_positive_int("ais_temps", ais_temps)
        self.ais_chains = check_positive_int("ais_chains", ais_chains)
        d = math.prod(self.event_shape)
        self.W = nn.Parameter(0.01 * torch.randn(d, self.hidden))
        self.b = nn.Parameter(torch.zeros(d))
        self.c = nn.Parameter(torch.zeros(self.hidden))
        self.register_buffer("persistent", torch.bernoulli(torch.full((check_positive_int("chains", chains), d), 0.5)))

    def config(self) -> dict[str, Any]:
        return {
            "event_shape": tuple(self.event_shape),
            "hidden": self.hidden,
            "objective": self.objective,
            "k": self.k,
            "chains": len(self.persistent),
            "sample_steps": self.sample_steps,
            "exact_max": self.exact_max,
            "ais_temps": self.ais_temps,
            "ais_chains": self.ais_chains,
        }

    @classmethod
    def train_defaults_for(cls, data: Dataset) -> dict[str, Any]:
        """6000 steps of batch 64 at lr 0.01, validation every 500 steps (the exact NLL or, above ``exact_max``
        hidden units, the pseudo-log-likelihood)."""
        return {"lr": 0.01, "batch_size": 64, "steps": 6000, "val_every": 500, **cls.train_defaults}

    # -- energies ------------------------------------------------------------------------------------------------
    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + (v^\top W)_j)` per example, for ``v`` flat
        ``(n, D)``."""
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
        parts = []
        for h in _enumerate_bits(self.hidden, self.W.dtype, self.W.device).split(65536):
            parts.append(torch.logsumexp(h @ self.c + F.softplus(self.b + h @ self.W.T).sum(-1), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def log_normalizer(self) -> tuple[torch.Tensor, float]:
        """:math:`\\log Z` and its standard error: exact (0) up to ``exact_max`` hidden units, by AIS above."""
        if self.hidden <= self.exact_max:
            return self.log_normalizer_exact(), 0.0
        res = rbm_ais(self, self.ais_temps, self.ais_chains, generator=torch.Generator().manual_seed(0))
        return torch.tensor(res.log_z, dtype=self.W.dtype, device=self.W.device), res.stderr

    def pseudo_log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        r"""The pseudo-log-likelihood :math:`\sum_i \log p(v_i \mid v_{-i})` per example (Besag, 1975): no
        :math:`Z`, every site flipped in turn."""
        v = self._flat(self.validate(x))
        fe = self.free_energy(v)
        total = torch.zeros(len(v), dtype=v.dtype, device=v.device)
        for i in range(v.shape[1]):
            flipped = v.clone()
            flipped[:, i] = 1 - flipped[:, i]
            total = total - F.softplus(fe - self.free_energy(flipped))
        return total

    # -- training ------------------------------------------------------------------------------------------------
    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        r"""``"exact"``: the negative log-likelihood. ``"cd"`` / ``"pcd"``: :math:`F(v^+) - F(v^-)` averaged, whose
        gradient is the CD / PCD estimate of the log-likelihood's (:math:`v^-` after ``k`` Gibbs sweeps from the
        data or from the persistent chains)."""
        v = self._flat(batch)
        if self.objective == "exact":
            return -(-self.free_energy(v) - self.log_normalizer_exact()).mean()
        if self.objective == "cd":
            neg = self.gibbs(v, self.k)
        else:
            neg = self.gibbs(self.persistent[: len(v)] if len(v) <= len(self.persistent) else self.persistent, self.k)
            with torch.no_grad():
                self.persistent[: len(neg)] = neg
        return self.free_energy(v).mean() - self.free_energy(neg).mean()

    # -- sampling and the Pyro program -----------------------------------------------------------------------------
    def gibbs_chains(self, n: int, steps: int | None = None, record_every: int = 10) -> Chains:
        """``n`` Gibbs chains from uniform random states, recorded every ``record_every`` sweeps, with the free
        energy per draw as ``energy`` (for ``chains.to_inference_data()`` and ArviZ)."""
        check_positive_int("n", n)
        steps = self.sample_steps if steps is None else check_positive_int("steps", steps)
        every = check_positive_int("record_every", record_every)
        v = torch.bernoulli(torch.full((n, math.prod(self.event_shape)), 0.5, dtype=self.W.dtype, device=self.W.device))
        draws, energies = [], []
        with torch.no_grad():
            for i in range(steps):
                v = self.gibbs(v)
                if (i + 1) % every == 0 or i == steps - 1:
                    draws.append(v.reshape(n, *self.event_shape))
                    energies.append(self.free_energy(v))
        return Chains(torch.stack(draws, 1), {"energy": torch.stack(energies, 1)})

    def sample(self, n: int, steps: int | None = None) -> torch.Tensor:
        """``n`` draws after ``steps`` (default ``sample_steps``) Gibbs sweeps from uniform random states."""
        return self.gibbs_chains(n, steps, record_every=10**9).samples[:, -1]

    def _enumerable(self) -> bool:
        return self.hidden <= self.exact_max

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        return -self.free_energy(v) - self.log_normalizer()[0]


def rbm_ais(rbm: RBM, num_temps: int = 2000, chains: int = 200, generator: torch.Generator | None = None) -> AISResult:
    r""":math:`\log Z` of an RBM by annealed importance sampling (Salakhutdinov and Murray, 2008): from the uniform
    distribution on :math:`(v, h)` (:math:`\log Z_0 = (D + H)\log 2`) along :math:`p_\beta \propto e^{-\beta E}`,
    :math:`\beta` linear in ``num_temps`` steps, block Gibbs transitions at each :math:`\beta`, the hidden units
    summed out of the weights. ``log_z`` is the log of the mean weight, ``stderr`` its delta-method standard
    error."""
    check_positive_int("num_temps", num_temps)
    check_positive_int("chains", chains)
    W, b, c = rbm.W.detach(), rbm.b.detach(), rbm.c.detach()
    d, h_dim = W.shape

    def log_star(v: torch.Tensor, beta: float) -> torch.Tensor:
        return beta * (v @ b) + F.softplus(beta * (c + v @ W)).sum(-1)

    def bern(p: torch.Tensor) -> torch.Tensor:
        return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device="cpu").to(p.device) < p).to(p.dtype)

    betas = torch.linspace(0, 1, num_temps + 1).tolist()
    v = bern(torch.full((chains, d), 0.5, dtype=W.dtype, device=W.device))
    log_w = torch.zeros(chains, dtype=torch.float64, device=W.device)
    with torch.no_grad():
        for k in range(1, num_temps + 1):
            log_w += (log_star(v, betas[k]) - log_star(v, betas[k - 1])).double()
            h = bern(torch.sigmoid(betas[k] * (c + v @ W)))
            v = bern(torch.sigmoid(betas[k] * (b + h @ W.T)))
    log_z0 = (d + h_dim) * math.log(2)
    log_mean = float(torch.logsumexp(log_w, 0) - math.log(chains))
    w = (log_w - log_w.max()).exp()
    rel = float(w.std() / (w.mean() * math.sqrt(chains))) if chains > 1 else float("nan")
    return AISResult(
        log_z=log_z0 + log_mean,
        stderr=rel,
        log_weights=log_w,
        samples=v.reshape(chains, *rbm.event_shape),
        acceptance_rate=1.0,  # Gibbs transitions always move
    )


@register("bm")
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
        self.k = check_positive_int("k", k)
        self.sample_steps = check_positive_int("sample_steps", sample_steps)
        self.exact_max = check_positive_int("exact_max", exact_max)
        self.ais_temps = check_positive_int("ais_temps", ais_temps)
        self.ais_chains = check_positive_int("ais_chains", ais_chains)
        d = math.prod(self.event_shape)
        self.raw_W = nn.Parameter(0.01 * torch.randn(d, d))
        self.b = nn.Parameter(torch.zeros(d))
        self.register_buffer("persistent", torch.bernoulli(torch.full((check_positive_int("chains", chains), d), 0.5)))

    def config(self) -> dict[str, Any]:
        return {
            "event_shape": tuple(self.event_shape),
            "objective": self.objective,
            "k": self.k,
            "chains": len(self.persistent),
            "sample_steps": self.sample_steps,
            "exact_max": self.exact_max,
            "ais_temps": self.ais_temps,
            "ais_chains": self.ais_chains,
        }

    @classmethod
    def train_defaults_for(cls, data: Dataset) -> dict[str, Any]:
        """3000 steps of batch 64 at lr 0.01, validation (the pseudo-log-likelihood or exact NLL) every 500."""
        return {"lr": 0.01, "batch_size": 64, "steps": 3000, "val_every": 500, **cls.train_defaults}

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

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \tilde p(v^-) - \log \tilde p(v^+)` averaged: the CD / PCD estimate of the NLL's gradient."""
        v = self._flat(batch)
        start = v if self.objective == "cd" else self.persistent[: len(v)]
        neg = self.gibbs(start, self.k)
        if self.objective == "pcd":
            with torch.no_grad():
                self.persistent[: len(neg)] = neg
        return self.unnormalized_log_prob(neg).mean() - self.unnormalized_log_prob(v).mean()

    def sample(self, n: int, steps: int | None = None) -> torch.Tensor:
        """``n`` draws after ``steps`` Gibbs sweeps from uniform random states."""
        check_positive_int("n", n)
        steps = self.sample_steps if steps is None else check_positive_int("steps", steps)
        v = torch.bernoulli(torch.full((n, math.prod(self.event_shape)), 0.5, dtype=self.b.dtype, device=self.b.device))
        return self.gibbs(v, steps).reshape(n, *self.event_shape)

    def _enumerable(self) -> bool:
        return math.prod(self.event_shape) <= self.exact_max

    def _log_p(self, v: torch.Tensor) -> torch.Tensor:
        return self.unnormalized_log_prob(v) - self.log_normalizer()[0]
