"""Latent-variable models: the variational autoencoder and its estimators."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import TraceMeanField_ELBO
from torch.distributions.utils import _standard_normal

from pyrogen.inference.objectives import gaussian_kl, log_mean_exp
from pyrogen.models.base import GenerativeModel, check_hidden, check_positive_int
from pyrogen.models.registry import register
from pyrogen.nn import MLP

__all__ = ["VAE"]


@register("vae")
class VAE(GenerativeModel):
    r"""Variational autoencoder with a Bernoulli decoder and a Gaussian encoder.

    .. math::
        p(z) = \mathcal N(0, I_L),\quad p(x \mid z) = \prod_j \mathrm{Bernoulli}(x_j;
        \sigma(f_\theta(z)_j)),\quad q(z \mid x) = \mathcal N(\mu_\phi(x),
        \mathrm{diag}\,\sigma_\phi(x)^2)

    trained on :math:`\mathcal L = \mathbb E_q[\log p(x \mid z)] - \beta_t\,
    \mathrm{KL}(q \,\|\, p(z))` with the closed-form KL and a linear KL warm-up
    :math:`\beta_t = \min(1, t / T_{\text{warmup}})` (Bowman et al., 2016), which
    keeps the latent units active on small data. :meth:`loss` is the fused form
    of that objective; :meth:`pyro_loss` is Pyro's ``TraceMeanField_ELBO`` on
    :meth:`model` and :meth:`guide` (the warm-up applied with ``poutine.scale``
    on ``z``) and gives the same number on the same seed.

    Args:
        event_shape: shape of one binary example, e.g. ``(1, 8, 8)``.
        latent_dim: :math:`L`.
        hidden: hidden sizes of the encoder MLP (the decoder mirrors them).
        kl_warmup: :math:`T_{\text{warmup}}` in steps (0: no warm-up).

    Raises:
        ValueError: bad sizes; at run time, non-binary data.

    References: Kingma and Welling, 2014, arXiv:1312.6114; Rezende et al., 2014,
    arXiv:1401.4082; Burda et al., 2016 (IWAE), arXiv:1509.00519.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> vae = VAE(event_shape=(1, 8, 8), latent_dim=4, hidden=(32,))
        >>> x = vae.sample(3)
        >>> x.shape, vae.elbo(x).shape, bool((vae.iwae(x, k=10) > -1e9).all())
        (torch.Size([3, 1, 8, 8]), torch.Size([3]), True)
    """

    family = "latent"
    density = "lower_bound"
    support = "binary"
    default_data = "digits-binary"
    train_defaults = {
        "batch_size": 128,
        "lr": 1e-3,
        "steps": 4000,
        "val_every": 100,
        "patience": 10,
    }

    def __init__(
        self,
        event_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden: Sequence[int] = (256, 256),
        kl_warmup: int = 1000,
    ) -> None:
        super().__init__(event_shape)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.hidden = check_hidden(hidden)
        if not isinstance(kl_warmup, int) or kl_warmup < 0:
            raise ValueError(f"kl_warmup must be a non-negative integer; got {kl_warmup!r}")
        self.kl_warmup = kl_warmup
        self.data_dim = math.prod(self.event_shape)
        self.encoder = MLP(self.data_dim, self.hidden, 2 * self.latent_dim)
        self.decoder = MLP(self.latent_dim, self.hidden[::-1], self.data_dim)

    def config(self) -> dict[str, Any]:
        return {
            "event_shape": list(self.event_shape),
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "kl_warmup": self.kl_warmup,
        }

    @property
    def kl_weight(self) -> float:
        """:math:`\\beta_t`: the warm-up weight while training, 1 otherwise."""
        if not self.training or self.kl_warmup == 0:
            return 1.0
        return min(1.0, (self._train_step + 1) / self.kl_warmup)

    # -- networks -------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:math:`(\\mu_\\phi(x), \\sigma_\\phi(x))`, each of shape ``(n, L)``."""
        h = self.encoder(x.reshape(x.shape[0], self.data_dim))
        loc, raw = h.chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits :math:`f_\\theta(z)`, shape ``z.shape[:-1] + event_shape``."""
        return self.decoder(z).reshape(z.shape[:-1] + self.event_shape)

    # -- the Pyro program -----------------------------------------------------
    def model(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> torch.Tensor:
        pyro.module("decoder", self.decoder)
        n = len(x) if x is not None else (num_samples or 1)
        zeros = torch.zeros(self.latent_dim, device=self._device())
        with pyro.plate("data", n):
            with poutine.scale(scale=self.kl_weight):
                z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
            logits = self.decode(z)
            return pyro.sample("x", dist.Bernoulli(logits=logits).to_event(len(self.event_shape)), obs=x)

    def guide(self, x: torch.Tensor | None = None, num_samples: int | None = None) -> None:
        if x is None:  # nothing observed: the model's prior is the posterior
            return
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", len(x)):
            loc, scale = self.encode(x)
            with poutine.scale(scale=self.kl_weight):
                pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def pyro_loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Pyro's ``TraceMeanField_ELBO`` (analytic KL) on model and guide, per example."""
        return TraceMeanField_ELBO().differentiable_loss(self.model, self.guide, batch) / len(batch)

    # -- fused objective and estimators ---------------------------------------
    def _terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-sample reconstruction log-likelihood and closed-form KL, per example."""
        loc, scale = self.encode(x)
        z = loc + _standard_normal(loc.shape, dtype=loc.dtype, device=loc.device) * scale
        logits = self.decoder(z)
        rec = -F.binary_cross_entropy_with_logits(logits, x.reshape(len(x), -1), reduction="none").sum(-1)
        return rec, gaussian_kl(loc, scale)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Fused negative ELBO per example, with the warm-up weight on the KL."""
        rec, kl = self._terms(batch)
        return (self.kl_weight * kl - rec).mean()

    def validation_loss(self, batch: torch.Tensor) -> torch.Tensor:
        return -self.elbo(batch).mean()

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Single-sample ELBO per example (closed-form KL), in nats, shape ``(n,)``."""
        self.validate(x)
        rec, kl = self._terms(x)
        return rec - kl

    def iwae(self, x: torch.Tensor, k: int = 1000, chunk: int = 100) -> torch.Tensor:
        r"""Importance-weighted bound :math:`\log \frac1k \sum_i p(x, z_i) / q(z_i \mid x)`, per example.

        With ``k = 1`` it is an unbiased estimate of the ELBO; it increases with
        ``k`` towards :math:`\log p(x)` (Burda et al., 2016). Samples are drawn in
        chunks of ``chunk`` to bound memory.

        Raises:
            ValueError: ``k`` or ``chunk`` not a positive integer; bad ``x``.
        """
        check_positive_int("k", k)
        check_positive_int("chunk", chunk)
        self.validate(x)
        xf = x.reshape(len(x), -1)
        loc, scale = self.encode(x)
        q = dist.Normal(loc, scale).to_event(1)
        prior = dist.Normal(torch.zeros_like(loc), 1.0).to_event(1)
        parts = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            z = q.rsample((m,))
            logits = self.decoder(z)
            rec = -F.binary_cross_entropy_with_logits(logits, xf.expand(m, -1, -1), reduction="none").sum(-1)
            parts.append(rec + prior.log_prob(z) - q.log_prob(z))
        return log_mean_exp(torch.cat(parts), dim=0)

    @torch.no_grad()
    def active_units(self, x: torch.Tensor, threshold: float = 0.01) -> int:
        r"""Number of latent units with :math:`\mathrm{Cov}_x(\mathbb E_q[z_u]) > 0.01` (Burda et al., 2016)."""
        loc, _ = self.encode(self.validate(x))
        return int((loc.var(0) > threshold).sum())

    @torch.no_grad()
    def sample(self, n: int, mean: bool = False) -> torch.Tensor:
        """``n`` draws from :math:`p(x)` (or the pixel probabilities if ``mean``)."""
        check_positive_int("n", n)
        z = torch.randn(n, self.latent_dim, device=self._device())
        probs = torch.sigmoid(self.decode(z))
        return probs if mean else torch.bernoulli(probs)

    def _device(self) -> torch.device:
        return next(self.decoder.parameters()).device
