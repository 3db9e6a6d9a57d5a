r"""The Gaussian mixture ``gmm``, fit three ways: EM, SVI with the assignment enumerated, and NUTS.

:math:`p(x) = \sum_k \pi_k N(x; \mu_k, \Sigma_k)` with full or diagonal covariances. As a Pyro program the
assignment :math:`z` is a discrete site enumerated in parallel, so ``TraceEnum_ELBO`` on the model and an empty
guide is exactly :math:`-\log p(x)` (the Pyro path of
:class:`~pyrogen.inference.objectives.MaximumLikelihood` with ``TraceEnum_ELBO``): gradient training of the
marginal likelihood is SVI. :meth:`GaussianMixture.fit_em` is expectation-maximization (Dempster et al.,
1977), whose log-likelihood never decreases (in exact arithmetic). :meth:`GaussianMixture.nuts` samples the
parameters of a Bayesian mixture (Dirichlet weights, normal means, log-normal scales, diagonal covariances) with the
assignment summed out by enumeration inside Pyro's NUTS. Label switching (the posterior is symmetric under
permutations of the components, so chains and draws visit relabelled copies) is handled by relabelling every
draw to match a reference draw: the permutation that minimizes the squared distance between its means and the
reference's, by the Hungarian algorithm (:func:`relabel`; a simple case of Stephens's 2000 relabelling
algorithms -- an ordering constraint on one coordinate fails when components tie along it, as on the ring
of 8gaussians). The posterior predictive density, averaged over draws, needs no relabelling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import TraceEnum_ELBO, config_enumerate
from torch import nn

from pyrogen.data import Dataset
from pyrogen.inference.objectives import MaximumLikelihood
from pyrogen.inference.program import data_plate
from pyrogen.models.base import GenerativeModel, accepts_unbatched, check_positive_int, frozen_unless_trainable
from pyrogen.models.registry import Recipe, continuous_support, register

__all__ = ["COVARIANCES", "GaussianMixture", "posterior_predictive_log_prob", "relabel"]

#: the covariance structures of :class:`GaussianMixture`
COVARIANCES = ("full", "diag")


def _gmm_choices(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A mixture for continuous ``data`` (its support).

    Raises:
        ValueError: discrete data.
    """
    return continuous_support(recipe, data, kwargs)


def _gmm_prepare(model: GaussianMixture, data: Dataset) -> None:
    """The means at ``components`` training examples drawn at random, the scales at the data's standard
    deviation."""
    x = data.train.flatten(1).to(model.locs.dtype)
    idx = torch.randperm(len(x))[: model.components]
    with torch.no_grad():
        model.locs.copy_(x[idx])
        std = x.std(0).clamp_min(1e-3)
        model.raw_diag.copy_(torch.log(torch.expm1(std)).expand_as(model.raw_diag))


def _gmm_train(data: Dataset) -> dict[str, Any]:
    """3000 steps of batch 256 at lr 0.01, validation every 250 steps."""
    return {"lr": 0.01, "batch_size": 256, "steps": 3000, "val_every": 250}


@register(
    "gmm",
    family="mixture",
    data="8gaussians",
    choices=_gmm_choices,
    prepare=_gmm_prepare,
    train=_gmm_train,
    # by gradient: exact maximum likelihood; Pyro's way enumerates the component (TraceEnum_ELBO, empty guide)
    objective=lambda model: MaximumLikelihood(pyro_elbo=TraceEnum_ELBO(max_plate_nesting=1)),
)
class GaussianMixture(GenerativeModel):
    r"""A mixture of ``components`` Gaussians over flattened examples.

    Args:
        event_shape: the shape of one example (flattened to :math:`D`).
        components: :math:`K`.
        covariance: ``"full"`` (a Cholesky factor per component) or ``"diag"``.
        support: ``"real"`` or ``"unit_interval"`` (dequantized images: a density on :math:`[0, 1)^D` only up to
            the mass outside, as every unconstrained density there).
        reg: added to the covariances' diagonal in EM (scikit-learn's ``reg_covar``) and the floor of the
            scales in gradient training.
    """

    def __init__(
        self,
        event_shape: Sequence[int] = (2,),
        components: int = 8,
        covariance: str = "full",
        support: str = "real",
        reg: float = 1e-6,
    ) -> None:
        super().__init__(event_shape)
        self.components = check_positive_int("components", components)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {', '.join(COVARIANCES)}; got {covariance!r}")
        if support not in ("real", "unit_interval"):
            raise ValueError(f"support must be 'real' or 'unit_interval'; got {support!r}")
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not 0 < reg < 1:
            raise ValueError(f"reg must be a number in (0, 1); got {reg!r}")
        self.covariance, self.reg = covariance, float(reg)
        self.support = support
        d = self.dim = math.prod(self.event_shape)
        k = self.components
        self.logits = nn.Parameter(torch.zeros(k))
        self.locs = nn.Parameter(torch.randn(k, d))
        # the scales' inverse softplus on the diagonal; the strict lower triangle free (full)
        self.raw_diag = nn.Parameter(torch.zeros(k, d))
        self.raw_lower = nn.Parameter(torch.zeros(k, d, d)) if covariance == "full" else None

    # -- the parameters ----------------------------------------------------------------------------------------
    def scale_tril(self) -> torch.Tensor:
        """The components' Cholesky factors, ``(K, D, D)``."""
        diag = F.softplus(self.raw_diag) + math.sqrt(self.reg)
        out = torch.diag_embed(diag)
        if self.raw_lower is not None:
            out = out + torch.tril(self.raw_lower, diagonal=-1)
        return out

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, -1)

    def _components(self) -> dist.TorchDistribution:
        if self.covariance == "diag":
            return dist.Normal(self.locs, F.softplus(self.raw_diag) + math.sqrt(self.reg)).to_event(1)
        return dist.MultivariateNormal(self.locs, scale_tril=self.scale_tril())

    @frozen_unless_trainable
    def as_distribution(self) -> dist.TorchDistribution:
        """Pyro's ``MixtureSameFamily`` of the components, over flattened examples (shape ``(D,)``)."""
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), self._components())

    # -- densities and samples -----------------------------------------------------------------------------------
    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log \pi_k + \log N(x; \mu_k, \Sigma_k)`, ``(n, K)``."""
        v = self._flat(self.validate(x))
        return torch.log_softmax(self.logits, -1) + self._components().log_prob(v[:, None, :])

    @accepts_unbatched()
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self.component_log_probs(x), -1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`p(z = k \\mid x)`, ``(n, K)``."""
        return torch.softmax(self.component_log_probs(x), -1)

    def sample(self, n: int) -> torch.Tensor:
        check_positive_int("n", n)
        with torch.no_grad():
            return self.as_distribution().sample((n,)).reshape(n, *self.event_shape)

    # -- the Pyro program ----------------------------------------------------------------------------------------
    @config_enumerate
    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """``z ~ Categorical(pi)`` (enumerated), ``x ~ N(mu_z, Sigma_z)`` over flattened examples."""
        pyro.module(self._param_store_name(), self)
        n = 1 if x is None else len(x)
        comps = self._components()
        with data_plate(n):
            z = pyro.sample("z", dist.Categorical(logits=self.logits))
            if self.covariance == "diag":
                d = dist.Normal(self.locs[z], comps.base_dist.scale[z]).to_event(1)
            else:
                d = dist.MultivariateNormal(self.locs[z], scale_tril=self.scale_tril()[z])
            return pyro.sample("x", d, obs=None if x is None else self._flat(x))

    # -- EM --------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_em(self, x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> list[float]:
        """Expectation-maximization from the current parameters; stops when the mean log-likelihood gains less
        than ``tol``. Returns the mean log-likelihood before each M step and after the last: non-decreasing in
        float64; in float32 rounding can make it fall near convergence, by less than ``1e-5`` in the tests."""
        v = self._flat(self.validate(x)).to(self.locs.dtype)
        check_positive_int("iters", iters)
        n, d = v.shape
        history: list[float] = []
        for _ in range(iters):
            lp = torch.log_softmax(self.logits, -1) + self._components().log_prob(v[:, None, :])
            ll = torch.logsumexp(lp, -1)
            history.append(float(ll.mean()))
            if len(history) > 1 and history[-1] - history[-2] < tol:
                break
            r = (lp - ll[:, None]).exp()  # (n, K)
            nk = r.sum(0) + 10 * torch.finfo(v.dtype).eps
            locs = (r.T @ v) / nk[:, None]
            diff = v[None] - locs[:, None]  # (K, n, D)
            if self.covariance == "diag":
                var = (r.T[:, :, None] * diff**2).sum(1) / nk[:, None] + self.reg
                self.raw_diag.copy_(_inv_softplus(var.sqrt() - math.sqrt(self.reg)))
            else:
                cov = torch.einsum("kn,kni,knj->kij", r.T, diff, diff) / nk[:, None, None]
                cov = cov + self.reg * torch.eye(d, dtype=v.dtype, device=v.device)
                L = torch.linalg.cholesky(cov)
                diag = torch.diagonal(L, dim1=-2, dim2=-1)
                self.raw_diag.copy_(_inv_softplus((diag - math.sqrt(self.reg)).clamp_min(1e-12)))
                assert self.raw_lower is not None
                self.raw_lower.copy_(torch.tril(L, diagonal=-1))
            self.locs.copy_(locs)
            self.logits.copy_((nk / n).log())
        else:
            history.append(float(self.log_prob(x).mean()))
        return history

    # -- NUTS ------------------------------------------------------------------------------------------------------
    def bayesian_model(self, x: torch.Tensor) -> None:
        r"""The Bayesian mixture NUTS samples: :math:`\pi \sim \mathrm{Dir}(1)`, :math:`\mu_k \sim N(m, (2s)^2)`,
        :math:`\sigma_{kd} \sim \mathrm{LogNormal}(\log s, 1)` (``m``, ``s`` the data's mean and standard
        deviation per coordinate), diagonal covariances, :math:`z` enumerated."""
        v = self._flat(x)
        weights, locs, scales = self._bayesian_parameters(v)
        with data_plate(len(v)):
            z = pyro.sample("z", dist.Categorical(weights), infer={"enumerate": "parallel"})
            pyro.sample("x", dist.Normal(locs[z], scales[z]).to_event(1), obs=v)

    def marginal_model(self, x: torch.Tensor) -> None:
        """:meth:`bayesian_model` with the assignment summed out in closed form (``MixtureSameFamily``): the same
        density over the parameters, which :meth:`nuts` samples without enumeration's bookkeeping
        (``benchmarks/classical.py --only gmm`` times the NUTS row). ``bayesian_model`` keeps the assignment as
        a site, for ``infer_discrete`` and ``TraceEnum_ELBO``."""
        v = self._flat(x)
        weights, locs, scales = self._bayesian_parameters(v)
        mixture = dist.MixtureSameFamily(dist.Categorical(weights), dist.Normal(locs, scales).to_event(1))
        with data_plate(len(v)):
            pyro.sample("x", mixture, obs=v)

    def _bayesian_parameters(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m, s = v.mean(0), v.std(0).clamp_min(1e-3)
        k = self.components
        weights = pyro.sample("weights", dist.Dirichlet(torch.ones(k, dtype=v.dtype, device=v.device)))
        with pyro.plate("components", k):
            locs = pyro.sample("locs", dist.Normal(m, 2 * s).to_event(1))
            scales = pyro.sample("scales", dist.LogNormal(s.log(), torch.ones_like(s)).to_event(1))
        return weights, locs, scales

    def nuts(
        self, x: torch.Tensor, num_samples: int = 500, warmup_steps: int = 500, num_chains: int = 2, seed: int = 0
    ) -> Any:
        """NUTS on :meth:`marginal_model` (the assignment summed out), ``num_chains`` chains one after another;
        returns ArviZ ``InferenceData`` with the components relabelled in every draw (:func:`relabel`;
        ``posterior`` ``weights``, ``locs``, ``scales``; divergences in ``sample_stats``)."""
        import arviz as az
        from pyro.infer import NUTS

        from pyrogen.inference.mcmc import run_chains

        v = self._flat(self.validate(x)).detach()
        runs = run_chains(
            lambda: NUTS(self.marginal_model, max_plate_nesting=1),
            num_chains=num_chains,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            seed=seed,
            model_args=(v,),
        )
        draws = {k: torch.stack([r.get_samples()[k] for r in runs]) for k in ("weights", "locs", "scales")}
        order = relabel(draws["locs"])  # (chains, draws, K)
        post = {
            "weights": draws["weights"].gather(-1, order),
            "locs": draws["locs"].gather(-2, order[..., None].expand_as(draws["locs"])),
            "scales": draws["scales"].gather(-2, order[..., None].expand_as(draws["scales"])),
        }
        diverging = torch.zeros(num_chains, num_samples, dtype=torch.bool)
        for c, r in enumerate(runs):
            idx = torch.as_tensor(r.diagnostics()["divergences"]["chain 0"], dtype=torch.long)
            diverging[c, idx] = True
        return az.from_dict(
            posterior={k: t.detach().cpu().numpy() for k, t in post.items()},
            sample_stats={"diverging": diverging.numpy()},
        )


def relabel(locs: torch.Tensor) -> torch.Tensor:
    """For draws of component means ``(chains, draws, K, D)``, the permutation of each draw ``(chains, draws, K)``
    that matches it to the reference (the first chain's last draw): minimal total squared distance, by
    ``scipy.optimize.linear_sum_assignment``."""
    from scipy.optimize import linear_sum_assignment

    ref = locs[0, -1]
    flat = locs.reshape(-1, *locs.shape[-2:])
    perms = []
    for draw in flat:
        cost = torch.cdist(ref[None].double(), draw[None].double())[0] ** 2  # (K ref, K draw)
        _, cols = linear_sum_assignment(cost.numpy())
        perms.append(torch.as_tensor(cols, dtype=torch.long))
    return torch.stack(perms).reshape(locs.shape[:-1])


def posterior_predictive_log_prob(idata: Any, x: torch.Tensor) -> torch.Tensor:
    r""":math:`\log \frac1S \sum_s p(x \mid \theta_s)` per example over the draws of :meth:`GaussianMixture.nuts`
    (diagonal components): the Bayesian test log-likelihood, invariant to the labelling."""
    post = idata.posterior
    w = torch.tensor(post["weights"].values).flatten(0, 1).double()  # (S, K)
    mu = torch.tensor(post["locs"].values).flatten(0, 1).double()  # (S, K, D)
    sd = torch.tensor(post["scales"].values).flatten(0, 1).double()
    v = x.reshape(len(x), -1).double()[:, None, None, :]  # (n, 1, 1, D)
    comp = torch.distributions.Normal(mu, sd).log_prob(v).sum(-1) + w.log()  # (n, S, K)
    return (torch.logsumexp(torch.logsumexp(comp, -1), -1) - math.log(w.shape[0])).float()


def _inv_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))
