"""A tiny two-group model (a 2-D WGAN-GP) trained by pyrogen's unchanged trainer, and its hand-written twin.

:class:`TinyWGANGP` is what the trainer's multi-group tests and the two-group
row of ``benchmarks/run.py`` train: a critic and a generator (MLPs), the
critic with its own Adam settings (lr 1e-4, betas (0, 0.9) by default, as
Gulrajani et al. 2017), ``n_critic`` critic updates per generator update, an
EMA of the generator for sampling and, optionally, a replay buffer of past
samples that the critic also sees (Shrivastava et al., 2017).
:func:`plain_loop` is the same networks, losses and two Adam optimizers
written as a PyTorch user would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pyrogen.inference import EMA, Objective, ReplayBuffer
from pyrogen.inference.adversarial import gradient_penalty, wgan_critic_loss, wgan_generator_loss
from pyrogen.inference.objectives import use_objective
from pyrogen.models import GenerativeModel


def _mlp(a: int, hidden: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, b))


class TinyWGANGP(GenerativeModel):
    """A 2-D WGAN-GP with two parameter groups, an EMA generator and an optional replay buffer."""

    family = "test"
    density = "none"

    def __init__(
        self,
        event_shape: tuple[int, ...] = (2,),
        hidden: int = 64,
        latent: int = 2,
        n_critic: int = 5,
        ema: float | None = 0.999,
        replay: int = 0,
    ) -> None:
        super().__init__(event_shape)
        self.hidden, self.latent, self.n_critic, self.ema_decay, self.replay_size = (
            hidden,
            latent,
            n_critic,
            ema,
            replay,
        )
        d = self.event_shape[0]
        self.generator = _mlp(latent, hidden, d)
        self.critic = _mlp(d, hidden, 1)
        self.ema = EMA(self.generator, ema) if ema is not None else None
        self.replay = ReplayBuffer(replay, (d,), reinit=0.0) if replay else None

    def fake(self, n: int, like: torch.Tensor) -> torch.Tensor:
        return self.generator(torch.randn(n, self.latent, dtype=like.dtype, device=like.device))

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        ref = next(self.parameters())
        if self.ema is None:
            return self.fake(n, ref)
        with self.ema.averaged():
            return self.fake(n, ref)


class TinyWGANGPObjective(Objective):
    """:class:`TinyWGANGP`'s training: ``n_critic`` WGAN-GP critic updates (on the replay buffer's past samples
    too, where it has one) per generator update, both groups at lr 1e-4, betas (0, 0.9); no validation."""

    monitor = None

    def groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        m: Any = model
        return {"critic": list(m.critic.parameters()), "generator": list(m.generator.parameters())}

    def schedule(self, model: nn.Module, step: int) -> tuple[str, ...]:
        return ("critic",) * model.n_critic + ("generator",)  # type: ignore[operator]

    def settings(self, model: nn.Module) -> dict[str, dict[str, Any]]:
        return {"critic": {"lr": 1e-4, "betas": (0.0, 0.9)}, "generator": {"lr": 1e-4, "betas": (0.0, 0.9)}}

    def loss(self, model: nn.Module, batch: torch.Tensor, group: str = "critic") -> torch.Tensor:
        m: Any = model
        fake = m.fake(len(batch), batch)
        if group == "generator":
            return wgan_generator_loss(m.critic(fake))
        if m.replay is not None:  # the critic also sees past samples; this step's go back to the buffer
            past = m.replay.sample(len(batch) // 2, lambda n: fake[:n].detach())
            m.replay.push(fake[: len(batch) // 2])
            fake = torch.cat([fake[len(past) :], past])
        return wgan_critic_loss(m.critic(batch), m.critic(fake)) + gradient_penalty(m.critic, batch, fake)


use_objective(TinyWGANGP, lambda model: TinyWGANGPObjective())


def plain_loop(model: TinyWGANGP, data: torch.Tensor, batch_size: int) -> Callable[[int], None]:
    """The same training written by hand: two Adam optimizers, ``n_critic`` critic steps, a generator step, EMA."""
    g, d = model.generator, model.critic
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    shadow = [p.detach().clone() for p in g.parameters()]
    perm = torch.randperm(len(data))
    per_epoch = len(data) // batch_size

    def step(i: int) -> None:
        j = i % per_epoch
        x = data[perm[j * batch_size : (j + 1) * batch_size]]
        for _ in range(model.n_critic):
            fake = g(torch.randn(len(x), model.latent)).detach()
            loss_d = d(fake).mean() - d(x).mean() + gradient_penalty(d, x, fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = -d(g(torch.randn(len(x), model.latent))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            beta = min(0.999, (1 + i) / (10 + i))
            torch._foreach_lerp_(shadow, list(g.parameters()), 1.0 - beta)

    return step
