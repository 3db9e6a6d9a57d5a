r"""A VAE whose posterior has no density: :math:`z = f_\phi(x, \epsilon)`, :math:`\epsilon \sim N(0, I)`.

The ELBO :math:`\mathbb E_q[\log p(x \mid z) + \log p(z)] + H(q(z \mid x))` needs the entropy of an implicit
:math:`q`. Its gradient does not: with :math:`z = f_\phi(x, \epsilon)`,

.. math::
    \nabla_\phi H(q) = -\mathbb E_\epsilon\big[\nabla_z \log q(z \mid x)^\top\,
    \partial_\phi f_\phi(x, \epsilon)\big],

(the other term, :math:`\mathbb E_q[\nabla_\phi \log q]`, is zero), and the score :math:`\nabla_z \log q(z \mid x)`
is learned by a second network :math:`s_\psi(z, x)` trained by denoising score matching on :math:`q`'s own
samples. :func:`entropy_gradient_surrogate` turns a score into a term whose gradient is that estimate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyrogen.data import Dataset
from pyrogen.inference.objectives import ImplicitELBO, entropy_gradient_surrogate
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_hidden, check_positive_int
from pyrogen.models.registry import Recipe, register
from pyrogen.nn.mlp import MLP

__all__ = ["ImplicitVAE", "entropy_gradient_surrogate"]


def _implicit_vae_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    if data.support != "binary":
        raise ValueError(f"implicit-vae has a Bernoulli decoder; dataset {data.name!r} is {data.support}")
    return kwargs


@register(
    "implicit-vae",
    family="vae",
    data="digits-binary",
    choices=_implicit_vae_choices,
    train={"batch_size": 128, "lr": 1e-3, "steps": 6000, "val_every": 500},
    objective=lambda model: ImplicitELBO(model.score_method, model.score_sigma, model.score_steps),
)
class ImplicitVAE(GenerativeModel):
    r"""The implicit-posterior VAE on binary data: Bernoulli decoder, :math:`N(0, I)` prior, an encoder fed
    :math:`x` and ``noise_dim`` standard normal inputs, and a score network; two parameter groups,
    ``"model"`` (encoder and decoder, the ELBO with the entropy gradient of :func:`entropy_gradient_surrogate`)
    and ``"score"`` (score matching on :math:`q(z \mid x)`'s samples: sliced, variance reduced, by default;
    ``score_method="denoising"`` at noise ``score_sigma`` blurs the score of a posterior narrower than the
    noise, underestimates the entropy gradient, and lets the posterior collapse), ``score_steps`` score
    updates per model update (5: a score network that lags behind :math:`q` also underestimates the
    entropy gradient, with the same collapse).

    No density of :math:`q` exists, so the likelihood bounds use an importance proposal fitted to it:
    :meth:`iwae` draws 32 posterior samples per example, takes a diagonal Gaussian of their moments (the
    standard deviation widened by ``proposal_scale``) and importance-samples :math:`p(x)` under it -- a
    valid lower bound for any proposal, tight where the proposal is good.
    """

    support = "binary"

    def __init__(
        self,
        event_shape: Sequence[int],
        latent_dim: int = 16,
        noise_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        score_hidden: Sequence[int] = (256, 256),
        score_sigma: float = 0.05,
        proposal_scale: float = 1.5,
        score_method: str = "sliced-vr",
        score_steps: int = 5,
    ) -> None:
        super().__init__(event_shape)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.noise_dim = check_positive_int("noise_dim", noise_dim)
        self.hidden, self.score_hidden = check_hidden(hidden), check_hidden(score_hidden)
        for name, v in (("score_sigma", score_sigma), ("proposal_scale", proposal_scale)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
                raise ValueError(f"{name} must be a positive number; got {v!r}")
        self.score_sigma, self.proposal_scale = float(score_sigma), float(proposal_scale)
        if score_method not in ("sliced-vr", "denoising"):
            raise ValueError(f"score_method must be 'sliced-vr' or 'denoising'; got {score_method!r}")
        self.score_method = score_method
        self.score_steps = check_positive_int("score_steps", score_steps)
        d = math.prod(self.event_shape)
        self.encoder = MLP(d + self.noise_dim, list(self.hidden), self.latent_dim)
        self.decoder = MLP(self.latent_dim, list(reversed(self.hidden)), d)
        self.score_net = MLP(self.latent_dim + d, list(self.score_hidden), self.latent_dim, activation=nn.SiLU)

    # -- the pieces ------------------------------------------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(next(self.encoder.parameters()).dtype)

    def encode(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        r"""A draw :math:`z = f_\phi(x, \epsilon)` per example (fresh :math:`\epsilon` unless given)."""
        h = self._flat(x)
        if eps is None:
            eps = torch.randn(len(h), self.noise_dim, dtype=h.dtype, device=h.device)
        return self.encoder(torch.cat([h, eps], -1))

    def score(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        r""":math:`s_\psi(z, x) \approx \nabla_z \log q(z \mid x)`."""
        return self.score_net(torch.cat([z, self._flat(x)], -1))

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p(x \mid z) + \log p(z)` per example."""
        logits = self.decoder(z)
        log_lik = dist.Bernoulli(logits=logits).log_prob(self._flat(x)).sum(-1)
        return log_lik + dist.Normal(0.0, 1.0).log_prob(z).sum(-1)

    # -- the Pyro program --------------------------------------------------------------------------------------
    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        pyro.module("implicit_vae", self)
        n = 1 if x is None else len(x)
        ref = next(self.decoder.parameters())
        with data_plate(n):
            z = pyro.sample("z", dist.Normal(torch.zeros(self.latent_dim, dtype=ref.dtype), 1.0).to_event(1))
            obs = None if x is None else self._flat(x)
            return pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=obs)

    def guide(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        pyro.module("implicit_vae", self)
        if x is None:
            raise ValueError("the guide needs the data x")
        with data_plate(len(x)):
            z = self.encode(x)
            surrogate = -entropy_gradient_surrogate(z, self.score(z, x))  # log q := s.z, see ImplicitELBO
            pyro.sample("z", dist.Delta(z, log_density=surrogate, event_dim=1))

    # -- likelihood bounds -------------------------------------------------------------------------------------
    def _log_weights(self, x: torch.Tensor, k: int, chunk: int = 100) -> torch.Tensor:
        r"""``(k, n)`` log importance weights :math:`\log p(x, z) - \log r(z \mid x)` under the proposal fitted to
        32 posterior draws per example."""
        with torch.no_grad():
            draws = torch.stack([self.encode(x) for _ in range(32)])  # (32, n, L)
            loc, scale = draws.mean(0), draws.std(0) * self.proposal_scale + 1e-3
            proposal = dist.Normal(loc, scale).to_event(1)
            parts = []
            for i in range(0, k, chunk):
                z = proposal.sample((min(chunk, k - i),))  # (c, n, L)
                lw = dist.Bernoulli(logits=self.decoder(z)).log_prob(x.expand(len(z), *x.shape)).sum(-1)
                parts.append(lw + dist.Normal(0.0, 1.0).log_prob(z).sum(-1) - proposal.log_prob(z))
            return torch.cat(parts)

    def _iwae(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return torch.logsumexp(self._log_weights(x, k), 0) - math.log(k)

    @accepts_unbatched()
    def iwae(self, x: torch.Tensor, k: int = 1000) -> torch.Tensor:
        r"""The importance-weighted lower bound on :math:`\log p(x)` per example, ``k`` draws of the fitted proposal."""
        check_positive_int("k", k)
        return self._iwae(self._flat(self.validate(x)), k)

    @accepts_unbatched()
    def elbo(self, x: torch.Tensor, k: int = 100) -> torch.Tensor:
        """The ELBO under the fitted proposal (the mean log weight over ``k`` draws): a lower bound."""
        check_positive_int("k", k)
        return self._log_weights(self._flat(self.validate(x)), k).mean(0)

    def sample(self, n: int) -> torch.Tensor:
        check_positive_int("n", n)
        ref = next(self.decoder.parameters())
        with torch.no_grad():
            z = torch.randn(n, self.latent_dim, dtype=ref.dtype, device=ref.device)
            return torch.bernoulli(torch.sigmoid(self.decoder(z))).reshape(n, *self.event_shape)
