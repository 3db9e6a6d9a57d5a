r"""The progressive, fade-in variational ladder autoencoder (pro-VLAE).

A variational ladder autoencoder (Zhao, Song and Ermon, 2017) puts its latent levels at different depths of
one network instead of in a chain: bottom-up features :math:`h_1 = e_1(x)`, :math:`h_l = e_l(h_{l-1})`, each
level's posterior :math:`q(z_l \mid h_l)`; top-down, :math:`g_L = u_L(z_L)` and :math:`g_l = u_l(g_{l+1} +
\alpha_l\, v_l(z_l))`, the data's likelihood from :math:`g_1`; every :math:`p(z_l)` is a standard normal, so the
deepest level can only hold what the longest path abstracts. Progressive learning (Li, Murkute, Gyawali and
Wang, 2020) trains the deepest level first and brings the others in one at a time, each faded in by
:math:`\alpha_l` rising linearly from 0 to 1 over ``fade_steps``, so that the abstract levels take the abstract
factors before the detailed ones can. A level not yet in has no latent site at all.

Level :math:`j` counted from the top (:math:`j = 0` the deepest) enters at step :math:`j \cdot` ``grow_every``.
The growth is a buffer the trainer's step sets (through a :class:`~pyrogen.inference.hooks.StepClock`), saved
with the parameters, so a model loaded or evaluated after training is the grown model it was trained into.

References: Li, Murkute, Gyawali and Wang, 2020, arXiv:2002.10549 (pro-VLAE); Zhao, Song and Ermon, 2017,
arXiv:1702.08396 (VLAE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from torch import nn
from torch.distributions.utils import _standard_normal

from pyrogen.inference.hooks import StepClock
from pyrogen.inference.program import data_plate
from pyrogen.models.base import check_positive_int
from pyrogen.models.registry import register
from pyrogen.models.vae import LatentVariableModel, _vae_choices

__all__ = ["ProVAE"]


class _GrowthClock(StepClock):
    """The trainer's step, also kept in a buffer (``progress``) so that the growth is saved with the parameters."""

    progress: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("progress", torch.zeros((), dtype=torch.long))

    def before_step(self, step: int) -> None:
        super().before_step(step)
        self.progress.fill_(step)


@register(
    "pro-vae",
    family="latent",
    data="digits-binary",
    choices=_vae_choices,
    # patience beyond the growth: a new level's fade-in costs the bound for a while before it pays
    train={"batch_size": 128, "lr": 1e-3, "steps": 8000, "val_every": 100, "patience": 30},
)
class ProVAE(LatentVariableModel):
    r"""Progressive variational ladder autoencoder over binary data (the module's docstring).

    Args:
        event_shape: shape of one example (flattened for the networks).
        latent_levels: latent levels :math:`L`.
        latent_dim: the size of each level's :math:`z_l`.
        width: the width of every bottom-up and top-down layer.
        grow_every: steps between one level's entry and the next's (0: every level from the start, a VLAE).
        fade_steps: steps over which a new level's :math:`\alpha` rises from 0 to 1.
        kl_warmup: steps over which the KL terms' weight rises from 0 to 1 (Bowman et al., 2016); 0: none.
        likelihood: ``"bernoulli"`` (the only one).

    Raises:
        ValueError: a bad argument, named with its value.

    References: Li, Murkute, Gyawali and Wang, 2020, arXiv:2002.10549; Zhao, Song and Ermon, 2017,
    arXiv:1702.08396.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = ProVAE(event_shape=(1, 4, 4), latent_levels=2, latent_dim=2, width=16)
        >>> m.elbo(torch.zeros(3, 1, 4, 4)).shape, m.sample(2).shape
        (torch.Size([3]), torch.Size([2, 1, 4, 4]))
    """

    support = "binary"

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_levels: int = 3,
        latent_dim: int = 4,
        width: int = 256,
        grow_every: int = 1000,
        fade_steps: int = 500,
        kl_warmup: int = 1000,
        likelihood: str = "bernoulli",
    ) -> None:
        super().__init__(event_shape)
        if likelihood != "bernoulli":
            raise ValueError(f"ProVAE models binary data: likelihood='bernoulli'; got {likelihood!r}")
        self.latent_levels = check_positive_int("latent_levels", latent_levels)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.width = check_positive_int("width", width)
        for name, value in (("grow_every", grow_every), ("fade_steps", fade_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
        self.grow_every, self.fade_steps = grow_every, fade_steps
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be a non-negative integer; got {kl_warmup!r}")
        self.kl_warmup = kl_warmup
        d, w, z = math.prod(self.event_shape), self.width, self.latent_dim
        self.bottom_up = nn.ModuleList(nn.Linear(d if i == 0 else w, w) for i in range(self.latent_levels))
        self.posteriors = nn.ModuleList(nn.Linear(w, 2 * z) for _ in range(self.latent_levels))
        self.inject = nn.ModuleList(nn.Linear(z, w) for _ in range(self.latent_levels))
        self.top_down = nn.ModuleList(nn.Linear(w, w) for _ in range(self.latent_levels))
        self.out = nn.Linear(w, d)
        self.clock = _GrowthClock()  # the trainer's step, kept with the parameters

    # -- growth ------------------------------------------------------------------------------------------
    def alphas(self) -> list[float]:
        """The fade-in weight of every level, bottom (``z_1``) to top (``z_L``) at the current growth (0: not in)."""
        step = int(self.clock.progress)
        out = []
        for level in range(self.latent_levels):
            start = (self.latent_levels - 1 - level) * self.grow_every
            if step < start:
                out.append(0.0)
            elif self.fade_steps == 0 or start == 0:
                out.append(1.0)
            else:
                out.append(min(1.0, (step - start + 1) / self.fade_steps))
        return out

    # -- networks ----------------------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, out = x.flatten(1).to(self.out.weight.dtype), []
        for layer in self.bottom_up:
            h = F.relu(layer(h))
            out.append(h)
        return out

    def _posterior(self, level: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, raw = self.posteriors[level](h).chunk(2, -1)
        return loc, F.softplus(raw) + 1e-4

    def _decode(self, zs: dict[int, torch.Tensor], alphas: list[float], batch: torch.Size) -> torch.Tensor:
        """Bernoulli logits ``batch + event_shape`` from the latents of the levels that are in."""
        g = torch.zeros(*batch, self.width, dtype=self.out.weight.dtype, device=self.out.weight.device)
        for level in reversed(range(self.latent_levels)):
            if level in zs:
                g = g + alphas[level] * self.inject[level](zs[level])
            g = F.relu(self.top_down[level](g))
        return self.out(g).reshape(*batch, *self.event_shape)

    def _active(self) -> tuple[list[float], list[int]]:
        alphas = self.alphas()
        return alphas, [level for level in reversed(range(self.latent_levels)) if alphas[level] > 0]

    # -- the bound ---------------------------------------------------------------------------------------
    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        alphas, active = self._active()
        feats = self._features(x)
        zs: dict[int, torch.Tensor] = {}
        log_r: torch.Tensor | float = 0.0
        for level in active:  # top first, as the guide draws them
            loc, scale = self._posterior(level, feats[level])
            shape = loc.shape if particles is None else (particles, *loc.shape)
            z = loc + _standard_normal(shape, dtype=loc.dtype, device=loc.device) * scale
            q, p = dist.Normal(loc, scale), dist.Normal(torch.zeros_like(loc), torch.ones_like(scale))
            if analytic:
                log_r = log_r - torch.distributions.kl_divergence(q, p).sum(-1)
            else:
                log_r = log_r + (p.log_prob(z) - q.log_prob(z)).sum(-1)
            zs[level] = z
        batch = x.shape[:1] if particles is None else torch.Size((particles, len(x)))
        logits = self._decode(zs, alphas, batch)
        rec = dist.Bernoulli(logits=logits).log_prob(x.to(logits.dtype).expand_as(logits)).flatten(len(batch)).sum(-1)
        return rec, log_r + torch.zeros_like(rec)

    # -- the Pyro program --------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, y: object = None, num_samples: int | None = None) -> torch.Tensor:
        """Each level that is in drawn from its standard normal, the data from the top-down pass."""
        pyro.module(self._param_store_name(), self)
        alphas, active = self._active()
        n = len(x) if x is not None else (num_samples or 1)
        ref = self.out.weight
        with data_plate(n):
            zs = {}
            with poutine.scale(scale=self.kl_weight):
                for level in active:
                    prior = dist.Normal(ref.new_zeros(n, self.latent_dim), ref.new_ones(n, self.latent_dim))
                    zs[level] = pyro.sample(f"z{level + 1}", prior.to_event(1))
            logits = self._decode(zs, alphas, torch.Size((n,)))
            obs = None if x is None else x.to(logits.dtype)
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(len(self.event_shape)), obs=obs)

    def guide(self, x: torch.Tensor | None = None, y: object = None, num_samples: int | None = None) -> None:
        """Each level that is in from its bottom-up features, the deepest first."""
        if x is None:
            return
        pyro.module(self._param_store_name(), self)
        _, active = self._active()
        feats = self._features(x)
        with data_plate(len(x)), poutine.scale(scale=self.kl_weight):
            for level in active:
                pyro.sample(f"z{level + 1}", dist.Normal(*self._posterior(level, feats[level])).to_event(1))

    # -- uses ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws: every level that is in from its prior, then the pixels."""
        check_positive_int("n", n)
        alphas, active = self._active()
        ref = self.out.weight
        zs = {level: torch.randn(n, self.latent_dim, dtype=ref.dtype, device=ref.device) for level in active}
        return torch.bernoulli(torch.sigmoid(self._decode(zs, alphas, torch.Size((n,)))))

    @torch.no_grad()
    def active_units_per_level(self, x: Any, threshold: float = 0.01) -> dict[str, int]:
        r"""Per level, the units whose posterior mean varies over ``x`` by more than ``threshold`` (Burda et al.,
        2016); a level not yet grown has none."""
        feats = self._features(self.validate(x))
        alphas = self.alphas()
        return {
            f"z{level + 1}": int((self._posterior(level, feats[level])[0].var(0) > threshold).sum())
            if alphas[level] > 0
            else 0
            for level in range(self.latent_levels)
        }

    def active_units(self, x: Any, threshold: float = 0.01) -> int:
        """The active units of every level together (:meth:`active_units_per_level`)."""
        return sum(self.active_units_per_level(x, threshold).values())

    @torch.no_grad()
    def encode(self, x: Any) -> torch.Tensor:
        """The posterior means of every level, bottom to top, concatenated ``(n, levels * latent_dim)``."""
        feats = self._features(self.validate(x))
        return torch.cat([self._posterior(level, feats[level])[0] for level in range(self.latent_levels)], -1)
