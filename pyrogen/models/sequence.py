r"""Sequence latent-variable models: the temporal-difference VAE over frames ``(T, C, H, W)`` and the
variational RNN over real-valued frames ``(T, D)``.

**TD-VAE** (Gregor, Papamakarios, Besse, Buesing and Weber, 2019) learns a state :math:`z_s` whose belief
:math:`b_s` (an LSTM over the frames seen so far) predicts the state a jump :math:`\delta` ahead, without
stepping through the frames between. Belief :math:`s` has read frames :math:`0..s-1` (:math:`b_0` is a learned
belief before any frame); the state :math:`z_s` decodes frame :math:`s-1`. For a pair :math:`s_1 < s_2 = s_1 +
\delta` the bound of the jump is

.. math::
    \log p_D(x_{s_2 - 1} \mid z_{s_2}) + \log p_B(z_{s_1} \mid b_{s_1}) + \log p_T(z_{s_2} \mid z_{s_1}, \delta)
    - \log p_B(z_{s_2} \mid b_{s_2}) - \log q_S(z_{s_1} \mid z_{s_2}, b_{s_1}, \delta),

:math:`z_{s_2} \sim p_B(\cdot \mid b_{s_2})` and :math:`z_{s_1} \sim q_S(\cdot \mid z_{s_2}, b_{s_1}, \delta)`: the
belief :math:`p_B` is both the prior at :math:`s_1` and the posterior at :math:`s_2`, the smoothing
distribution :math:`q_S` infers the earlier state from the later one, and the transition :math:`p_T` jumps. It
is the ELBO of a Pyro program (:meth:`TDVAE.model`: :math:`z_{s_1} \sim p_B`, :math:`z_{s_2} \sim p_T`,
:math:`x \sim p_D`; :meth:`TDVAE.guide`: :math:`z_{s_2} \sim p_B`, :math:`z_{s_1} \sim q_S`), and
:class:`JumpyELBO` trains it on one random pair per sequence, :math:`s_1` uniform and :math:`\delta` uniform in
``1..max_jump``. One latent layer (the paper stacks two); the transition and smoothing networks read
:math:`\delta` one-hot.

Uses: :meth:`TDVAE.rollout` (from the belief after the observed frames, jumps of the transition, each state
decoded), :meth:`TDVAE.sample` (the same from :math:`b_0`).

**VRNN** (Chung, Kastner, Dinh, Goel, Courville and Bengio, 2015): an LSTM whose every step has a latent
:math:`z_t` with a learned prior :math:`p(z_t \mid h_{t-1})`, a decoder :math:`p(x_t \mid z_t, h_{t-1})` and an
encoder :math:`q(z_t \mid x_t, h_{t-1})`, the state updated from both, :math:`h_t = f(h_{t-1}, \varphi_x(x_t),
\varphi_z(z_t))`: a Pyro model/guide over ``pyro.markov`` steps, trained by the ELBO with each step's KL in
closed form (given the sampled past), as Pyro's ``TraceMeanField_ELBO`` computes it.
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

from pyrogen.data import Dataset
from pyrogen.inference.hooks import StepClock
from pyrogen.inference.objectives import JumpyELBO, use_objective
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, check_hidden, check_positive_int
from pyrogen.models.registry import Recipe, register
from pyrogen.models.vae import LatentVariableModel
from pyrogen.nn import MLP

__all__ = ["TDVAE", "VRNN", "JumpyELBO", "centre_of_mass", "track_rollouts"]

_MIN_SCALE = 1e-3


def _diag_normal(params: tuple[torch.Tensor, torch.Tensor]) -> dist.Normal:
    """A diagonal normal from a network's two halves: the mean, and a raw scale through softplus (floored)."""
    loc, raw = params
    return dist.Normal(loc, F.softplus(raw) + _MIN_SCALE)


def centre_of_mass(frames: torch.Tensor) -> torch.Tensor:
    """``(..., 1, H, W)`` non-negative frames to the (row, column) of their centre of mass, ``(..., 2)``."""
    f = frames[..., 0, :, :].double()
    mass = f.sum((-2, -1)).clamp_min(1e-12)
    rows = torch.arange(f.shape[-2], dtype=f.dtype, device=f.device)
    cols = torch.arange(f.shape[-1], dtype=f.dtype, device=f.device)
    return torch.stack([(f.sum(-1) * rows).sum(-1) / mass, (f.sum(-2) * cols).sum(-1) / mass], -1)


def track_rollouts(
    model: TDVAE, frames: torch.Tensor, observed: int, jumps: int, mean: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll ``model`` out from the first ``observed`` of ``frames`` ``(n, T, 1, H, W)`` for ``jumps`` one-frame
    jumps; the distance in pixels (the larger of the two axes) between the centre of mass of each predicted
    frame's pixel probabilities and the true frame's, ``(n, jumps)``, and the predictions."""
    pred = model.rollout(frames[:, :observed], steps=jumps, mean=mean)
    truth = frames[:, observed : observed + jumps]
    return (centre_of_mass(pred) - centre_of_mass(truth)).abs().amax(-1), pred


def _td_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Binary frames ``(T, C, H, W)``.

    Raises:
        ValueError: data that are not sequences of binary frames.
    """
    if data.kind != "sequence" or data.support != "binary":
        raise ValueError(
            f"{recipe.name} models sequences of binary frames (T, C, H, W) such as 'moving-digits'; dataset "
            f"{data.name!r} is {data.kind} data of support {data.support}"
        )
    return kwargs


#: 6000 steps of batch 64 at lr 1e-3, validation every 200 steps with patience 10.
_TD_TRAIN = {"lr": 1e-3, "batch_size": 64, "steps": 6000, "val_every": 200, "patience": 10, "grad_clip": 10.0}


@register("td-vae", family="sequence", data="moving-digits", choices=_td_choices, train=_TD_TRAIN)
class TDVAE(GenerativeModel):
    r"""Temporal-difference VAE over sequences of binary frames: beliefs, jumpy state predictions, rollouts.

    See the module's docstring for the bound. The frames are encoded by an MLP, the beliefs are an LSTM over the
    encodings (:math:`b_0` learned), and :math:`p_B`, :math:`q_S`, :math:`p_T` are diagonal normals from MLPs
    (the transition's mean a residual update of :math:`z_{s_1}`); :math:`p_D` is a Bernoulli per pixel.

    Args:
        event_shape: ``(T, C, H, W)``.
        latent_dim: the state's size.
        belief_dim: the LSTM's state size.
        hidden: hidden widths of every MLP.
        max_jump: the longest jump :math:`\delta` trained (and the one-hot size of :math:`\delta`).
        kl_warmup: steps over which the weight of the four latent terms rises linearly from 0 to 1 while training
            (Bowman et al., 2016), so that the beliefs first learn to encode the frames; 0: none. Evaluation uses
            weight 1.

    Raises:
        ValueError: a bad argument, named with its value.

    References: Gregor, Papamakarios, Besse, Buesing and Weber, 2019, arXiv:1806.03107.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = TDVAE(event_shape=(5, 1, 4, 4), latent_dim=2, belief_dim=8, hidden=(16,), max_jump=2)
        >>> m.sample(3).shape, m.rollout(m.sample(3)[:, :2], steps=4).shape
        (torch.Size([3, 5, 1, 4, 4]), torch.Size([3, 4, 1, 4, 4]))
    """

    support = "binary"

    def __init__(
        self,
        event_shape: Sequence[int] = (16, 1, 16, 16),
        latent_dim: int = 8,
        belief_dim: int = 128,
        hidden: Sequence[int] = (256,),
        max_jump: int = 4,
        kl_warmup: int = 2000,
    ) -> None:
        super().__init__(event_shape)
        if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be a non-negative integer; got {kl_warmup!r}")
        self.kl_warmup = kl_warmup
        self.clock = StepClock()  # the warm-up's step, set by the trainer
        if len(self.event_shape) != 4:
            raise ValueError(f"TDVAE models frames: event_shape=(T, C, H, W); got {tuple(event_shape)}")
        self.frames = self.event_shape[0]
        if self.frames < 2:
            raise ValueError(f"a sequence needs at least 2 frames; got event_shape {tuple(event_shape)}")
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.belief_dim = check_positive_int("belief_dim", belief_dim)
        self.hidden = check_hidden(hidden)
        self.max_jump = check_positive_int("max_jump", max_jump)
        if self.max_jump >= self.frames + 1:
            raise ValueError(f"max_jump must be at most the {self.frames} frames; got {max_jump}")
        pixels, h, z = math.prod(self.event_shape[1:]), list(self.hidden), self.latent_dim
        self.encoder = MLP(pixels, h, self.belief_dim)
        self.lstm = nn.LSTM(self.belief_dim, self.belief_dim, batch_first=True)
        self.initial_belief = nn.Parameter(torch.zeros(self.belief_dim))
        self.belief_net = MLP(self.belief_dim, h, 2 * z, chunks=2)
        self.smoothing_net = MLP(self.belief_dim + z + self.max_jump, h, 2 * z, chunks=2)
        self.transition_net = MLP(z + self.max_jump, h, 2 * z, chunks=2)
        self.decoder = MLP(z, h, pixels)

    # -- the parts -----------------------------------------------------------------------------------
    def beliefs(self, x: torch.Tensor) -> torch.Tensor:
        """The beliefs ``(n, T' + 1, belief_dim)`` after ``0..T'`` of the frames ``x`` ``(n, T', C, H, W)``."""
        n, t = x.shape[:2]
        codes = self.encoder(x.reshape(n, t, -1).to(self.initial_belief.dtype))
        out, _ = self.lstm(codes)
        return torch.cat([self.initial_belief.expand(n, 1, -1), out], dim=1)

    def _jump(self, delta: torch.Tensor) -> torch.Tensor:
        return F.one_hot(delta - 1, self.max_jump).to(self.initial_belief.dtype)

    def belief(self, b: torch.Tensor) -> dist.Normal:
        """:math:`p_B(z \\mid b)`, batch ``b.shape[:-1]``."""
        return _diag_normal(self.belief_net(b))

    def transition(self, z: torch.Tensor, delta: torch.Tensor) -> dist.Normal:
        """:math:`p_T(z' \\mid z, \\delta)`: a residual jump from ``z``."""
        loc, raw = self.transition_net(torch.cat([z, self._jump(delta)], -1))
        return _diag_normal((z + loc, raw))

    def smoothing(self, z2: torch.Tensor, b1: torch.Tensor, delta: torch.Tensor) -> dist.Normal:
        """:math:`q_S(z_{s_1} \\mid z_{s_2}, b_{s_1}, \\delta)`."""
        return _diag_normal(self.smoothing_net(torch.cat([b1, z2, self._jump(delta)], -1)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The Bernoulli logits of the frame of state ``z``, ``z.shape[:-1] + (C, H, W)``."""
        return self.decoder(z).reshape(*z.shape[:-1], *self.event_shape[1:])

    def _pairs(self, x: torch.Tensor, s1: torch.Tensor, delta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s1, delta = torch.as_tensor(s1, device=x.device).long(), torch.as_tensor(delta, device=x.device).long()
        if s1.shape != (len(x),) or delta.shape != (len(x),):
            raise ValueError(f"s1 and delta must hold one index per sequence, shape ({len(x)},)")
        if bool((s1 < 0).any() | (delta < 1).any() | (delta > self.max_jump).any() | (s1 + delta > self.frames).any()):
            raise ValueError(f"pairs need 0 <= s1, 1 <= delta <= {self.max_jump} and s1 + delta <= {self.frames}")
        b = self.beliefs(x)
        rows = torch.arange(len(x), device=x.device)
        return b[rows, s1], b[rows, s1 + delta], x[rows, s1 + delta - 1], delta

    @property
    def kl_weight(self) -> float:
        """The weight of the latent terms: the warm-up's :math:`\\min(1, (t + 1) / T)` while training, else 1."""
        if not self.training or self.kl_warmup == 0:
            return 1.0
        return min(1.0, (self.clock.step + 1) / self.kl_warmup)

    # -- the bound ------------------------------------------------------------------------------------
    def jump_bound(self, x: torch.Tensor, s1: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The bound of the jump ``s1 -> s1 + delta`` of each sequence, one sample, shape ``(n,)`` (the module's
        docstring); the fused form of the ELBO of :meth:`model` and :meth:`guide`."""
        b1, b2, target, delta = self._pairs(self.validate(x), s1, delta)
        p_b2 = self.belief(b2)
        z2 = p_b2.rsample()
        q_s = self.smoothing(z2, b1, delta)
        z1 = q_s.rsample()
        logits = self.decode(z2)
        log_px = dist.Bernoulli(logits=logits).log_prob(target.to(logits.dtype)).flatten(1).sum(-1)
        return log_px + self.kl_weight * (
            self.belief(b1).log_prob(z1).sum(-1)
            + self.transition(z1, delta).log_prob(z2).sum(-1)
            - p_b2.log_prob(z2).sum(-1)
            - q_s.log_prob(z1).sum(-1)
        )

    # -- the Pyro program ------------------------------------------------------------------------------
    def model(
        self, x: torch.Tensor | None = None, s1: torch.Tensor | None = None, delta: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:math:`z_{s_1} \\sim p_B(\\cdot \\mid b_{s_1})`, :math:`z_{s_2} \\sim p_T`, the frame :math:`s_2 - 1`
        observed under :math:`p_D`, for the pairs ``(s1, delta)`` of the sequences ``x``."""
        pyro.module(self._param_store_name(), self)
        if x is None or s1 is None or delta is None:
            raise ValueError("TDVAE.model scores jumps of observed sequences: pass x, s1 and delta")
        b1, _, target, delta = self._pairs(x, s1, delta)
        with data_plate(len(x)):
            with poutine.scale(scale=self.kl_weight):
                z1 = pyro.sample("z1", self.belief(b1).to_event(1))
                z2 = pyro.sample("z2", self.transition(z1, delta).to_event(1))
            logits = self.decode(z2)
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(3), obs=target.to(logits.dtype))

    def guide(
        self, x: torch.Tensor | None = None, s1: torch.Tensor | None = None, delta: torch.Tensor | None = None
    ) -> None:
        """:math:`z_{s_2} \\sim p_B(\\cdot \\mid b_{s_2})`, then :math:`z_{s_1} \\sim q_S(\\cdot \\mid z_{s_2}, b_{s_1},
        \\delta)`."""
        pyro.module(self._param_store_name(), self)
        if x is None or s1 is None or delta is None:
            raise ValueError("TDVAE.guide scores jumps of observed sequences: pass x, s1 and delta")
        b1, b2, _, delta = self._pairs(x, s1, delta)
        with data_plate(len(x)):
            with poutine.scale(scale=self.kl_weight):
                z2 = pyro.sample("z2", self.belief(b2).to_event(1))
                pyro.sample("z1", self.smoothing(z2, b1, delta).to_event(1))

    # -- uses ------------------------------------------------------------------------------------------
    def _roll(self, z: torch.Tensor, steps: int, jump: int, mean: bool = False) -> torch.Tensor:
        delta = torch.full((len(z),), jump, dtype=torch.long, device=z.device)
        out = []
        for _ in range(steps):
            step = self.transition(z, delta)
            z = step.loc if mean else step.sample()
            out.append(torch.sigmoid(self.decode(z)))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def rollout(self, observed: torch.Tensor, steps: int, jump: int = 1, mean: bool = False) -> torch.Tensor:
        """Predicted frames after the ``k`` observed frames ``(n, k, C, H, W)``: the state drawn from the belief
        after them, then ``steps`` jumps of ``jump`` frames, each state decoded: pixel probabilities
        ``(n, steps, C, H, W)`` of frames ``k - 1 + jump, k - 1 + 2 jump, ...``. With ``mean`` every state is
        its distribution's mean instead of a draw (one deterministic trajectory).

        Raises:
            ValueError: frames of the wrong shape or values, no frame, a bad ``steps`` or ``jump``.
        """
        check_positive_int("steps", steps)
        if isinstance(jump, bool) or not isinstance(jump, int) or not 1 <= jump <= self.max_jump:
            raise ValueError(f"jump must be an integer in 1..{self.max_jump}; got {jump!r}")
        if not isinstance(observed, torch.Tensor) or observed.dim() != 5 or observed.shape[2:] != self.event_shape[1:]:
            shape = tuple(observed.shape) if isinstance(observed, torch.Tensor) else type(observed).__name__
            frame = ", ".join(map(str, self.event_shape[1:]))
            raise ValueError(f"observed must have shape (n, k, {frame}); got {shape}")
        if observed.shape[1] < 1 or len(observed) < 1:
            raise ValueError("observed must hold at least one sequence of at least one frame")
        if not bool(torch.isfinite(observed).all()) or not bool(((observed == 0) | (observed == 1)).all()):
            raise ValueError("observed must hold only 0 and 1")
        if not isinstance(mean, bool):
            raise ValueError(f"mean must be True or False; got {mean!r}")
        start = self.belief(self.beliefs(observed)[:, -1])
        return self._roll(start.loc if mean else start.sample(), steps, jump, mean)

    @torch.no_grad()
    def evaluation_metrics(self, x: torch.Tensor) -> dict[str, float]:
        """For ``pyrogen evaluate``: the bound per jump averaged over every pair, and the share of sequences whose
        rollouts from their first quarter of frames (jumps of one frame, the states' means) keep the centre of
        mass within one pixel of the true frame's for 3 jumps (:func:`track_rollouts`)."""
        x = self.validate(x)
        out = {"bound_per_jump": -float(JumpyELBO().validation(self, x))}
        observed = max(1, self.frames // 4)
        jumps = min(3, self.frames - observed)
        if jumps > 0:
            dist_px, _ = track_rollouts(self, x, observed, jumps, mean=True)
            out[f"on_track_{jumps}_jumps"] = float((dist_px <= 1.0).all(1).double().mean())
        return out

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` sequences ``(n,) + event_shape``: the state from :math:`b_0`, jumps of one frame, each frame a
        Bernoulli draw of its decoded probabilities."""
        check_positive_int("n", n)
        z = self.belief(self.initial_belief.expand(n, -1)).sample()
        return torch.bernoulli(self._roll(z, self.frames, 1))


use_objective(TDVAE, lambda model: JumpyELBO())


def _vrnn_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Real-valued frames ``(T, D)``.

    Raises:
        ValueError: data that are not sequences of real-valued vectors.
    """
    if data.support != "real" or len(data.event_shape) != 2:
        raise ValueError(
            f"{recipe.name} models sequences of real-valued frames (T, D) such as 'spoken-digits'; dataset "
            f"{data.name!r} has examples of shape {tuple(data.event_shape)} and support {data.support}"
        )
    return kwargs


@register(
    "vrnn",
    family="sequence",
    data="spoken-digits",
    choices=_vrnn_choices,
    train={"lr": 1e-3, "batch_size": 64, "steps": 4000, "val_every": 100, "patience": 10, "grad_clip": 10.0},
)
class VRNN(LatentVariableModel):
    r"""Variational RNN over sequences of real-valued frames ``(T, D)`` (the module's docstring).

    Per step: the prior :math:`\mathcal N(\mu_p(h), \sigma_p(h))`, the encoder :math:`\mathcal N(\mu_q(h,
    \varphi_x(x_t)), \sigma_q(\cdot))`, the decoder :math:`\mathcal N(\mu_x(h, \varphi_z(z_t)), \sigma_x(\cdot))`
    with diagonal covariances (scales by softplus), and an LSTM cell for :math:`f`; the state before the first
    frame is learned.

    Args:
        event_shape: ``(T, D)``.
        latent_dim: the size of each step's :math:`z_t`.
        state_dim: the LSTM's state size.
        hidden: hidden widths of every MLP (:math:`\varphi_x`, :math:`\varphi_z`, prior, encoder, decoder).
        features: the width of :math:`\varphi_x(x_t)` and :math:`\varphi_z(z_t)`.
        kl_warmup: steps of KL warm-up (0: none).

    Raises:
        ValueError: a bad argument, named with its value.

    References: Chung, Kastner, Dinh, Goel, Courville and Bengio, 2015, arXiv:1506.02216.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> m = VRNN(event_shape=(5, 3), latent_dim=2, state_dim=8, hidden=(8,), features=4)
        >>> m.elbo(torch.randn(4, 5, 3)).shape, m.sample(2).shape
        (torch.Size([4]), torch.Size([2, 5, 3]))
    """

    support = "real"

    def __init__(
        self,
        event_shape: Sequence[int] = (40, 20),
        latent_dim: int = 8,
        state_dim: int = 128,
        hidden: Sequence[int] = (128,),
        features: int = 64,
        kl_warmup: int = 0,
    ) -> None:
        super().__init__(event_shape)
        if len(self.event_shape) != 2:
            raise ValueError(f"VRNN models sequences of frames: event_shape=(T, D); got {tuple(event_shape)}")
        self.frames, self.frame_dim = self.event_shape
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.state_dim = check_positive_int("state_dim", state_dim)
        self.hidden = check_hidden(hidden)
        self.features = check_positive_int("features", features)
        self.kl_warmup = check_positive_int("kl_warmup", kl_warmup) if kl_warmup else 0

        self.clock = StepClock()
        d, z, h, f, hid = self.frame_dim, self.latent_dim, self.state_dim, self.features, list(self.hidden)
        self.phi_x = MLP(d, hid, f)
        self.phi_z = MLP(z, hid, f)
        self.prior_net = MLP(h, hid, 2 * z, chunks=2)
        self.encoder_net = MLP(h + f, hid, 2 * z, chunks=2)
        self.decoder_net = MLP(h + f, hid, 2 * d, chunks=2)
        self.cell = nn.LSTMCell(2 * f, h)
        self.initial_state = nn.Parameter(torch.zeros(2, h))

    def _start(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        h0, c0 = self.initial_state
        return h0.expand(n, -1), c0.expand(n, -1)

    def elbo_terms(
        self, x: torch.Tensor, y: torch.Tensor | None, particles: int | None, analytic: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum_t log p(x_t | z_t, h_{t-1}), sum_t [log p(z_t | h_{t-1}) - log q(z_t | x_t, h_{t-1})])`` per
        sequence (each step's KL in closed form with ``analytic``), ``(n,)`` or ``(particles, n)``."""
        n = len(x)
        xs = x if particles is None else x.expand(particles, *x.shape).reshape(particles * n, *x.shape[1:])
        h, c = self._start(len(xs))
        rec = xs.new_zeros(len(xs))
        log_r = xs.new_zeros(len(xs))
        fxs = self.phi_x(xs)  # every frame's features at once
        for t in range(self.frames):
            prior = _diag_normal(self.prior_net(h))
            q = _diag_normal(self.encoder_net(torch.cat([h, fxs[:, t]], -1)))
            z = q.rsample()
            fz = self.phi_z(z)
            rec = rec + _diag_normal(self.decoder_net(torch.cat([h, fz], -1))).log_prob(xs[:, t]).sum(-1)
            if analytic:
                log_r = log_r - torch.distributions.kl_divergence(q, prior).sum(-1)
            else:
                log_r = log_r + (prior.log_prob(z) - q.log_prob(z)).sum(-1)
            h, c = self.cell(torch.cat([fxs[:, t], fz], -1), (h, c))
        if particles is None:
            return rec, log_r
        return rec.view(particles, n), log_r.view(particles, n)

    # -- the Pyro program ------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, y: object = None, num_samples: int | None = None) -> torch.Tensor:
        """:math:`z_t \\sim p(z_t \\mid h_{t-1})`, :math:`x_t \\sim p(x_t \\mid z_t, h_{t-1})` over ``pyro.markov``
        steps; the frames ``x`` observed (or ``num_samples`` sequences drawn)."""
        pyro.module(self._param_store_name(), self)
        n = len(x) if x is not None else (num_samples or 1)
        h, c = self._start(n)
        out = []
        with data_plate(n):
            for t in pyro.markov(range(self.frames)):
                with poutine.scale(scale=self.kl_weight):
                    z = pyro.sample(f"z_{t}", _diag_normal(self.prior_net(h)).to_event(1))
                fz = self.phi_z(z)
                px = _diag_normal(self.decoder_net(torch.cat([h, fz], -1))).to_event(1)
                xt = pyro.sample(f"x_{t}", px, obs=None if x is None else x[:, t])
                out.append(xt)
                h, c = self.cell(torch.cat([self.phi_x(xt), fz], -1), (h, c))
        return torch.stack(out, 1)

    def guide(self, x: torch.Tensor | None = None, y: object = None, num_samples: int | None = None) -> None:
        """:math:`z_t \\sim q(z_t \\mid x_t, h_{t-1})`, the state carried forward as in the model."""
        pyro.module(self._param_store_name(), self)
        if x is None:
            raise ValueError("VRNN.guide infers the latents of observed frames: pass x")
        h, c = self._start(len(x))
        fxs = self.phi_x(x)
        with data_plate(len(x)):
            for t in pyro.markov(range(self.frames)):
                with poutine.scale(scale=self.kl_weight):
                    q = _diag_normal(self.encoder_net(torch.cat([h, fxs[:, t]], -1))).to_event(1)
                    z = pyro.sample(f"z_{t}", q)
                h, c = self.cell(torch.cat([fxs[:, t], self.phi_z(z)], -1), (h, c))

    # -- samples -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` sequences ``(n, T, D)``, ancestral: each step's latent from its prior, the frame from the decoder."""
        check_positive_int("n", n)
        h, c = self._start(n)
        out = []
        for _ in range(self.frames):
            z = _diag_normal(self.prior_net(h)).sample()
            fz = self.phi_z(z)
            xt = _diag_normal(self.decoder_net(torch.cat([h, fz], -1))).sample()
            out.append(xt)
            h, c = self.cell(torch.cat([self.phi_x(xt), fz], -1), (h, c))
        return torch.stack(out, 1)
