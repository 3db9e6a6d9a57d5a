r"""The amortization gap, and MCMC over the latents of a trained VAE.

For one example, three posteriors over :math:`z` given the trained decoder
(Cremer, Li and Duvenaud, 2018, arXiv:1801.03558):

- the amortized :math:`q_\phi(z \mid x)` of the encoder;
- the best Gaussian :math:`q^*` for that example alone, found by optimizing
  the ELBO over its mean and scale (:func:`optimize_local_posterior`);
- the exact posterior, sampled by Pyro's NUTS on the VAE's own ``model``
  (:func:`latent_nuts`), diagnosed with ArviZ through :mod:`pyrogen.diagnostics`.

With :math:`\log p(x)` estimated by IWAE, the gap :math:`\log p(x) -
\mathrm{ELBO}(q_\phi)` splits into the *approximation gap*
:math:`\log p(x) - \mathrm{ELBO}(q^*)` (the Gaussian family) and the
*amortization gap* :math:`\mathrm{ELBO}(q^*) - \mathrm{ELBO}(q_\phi)` (one
encoder for all examples).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import NUTS

from pyrogen.inference.mcmc import run_chains
from pyrogen.inference.protocol import AmortizedGaussian

__all__ = ["LocalPosterior", "amortization_gap", "latent_nuts", "optimize_local_posterior"]


@dataclass
class LocalPosterior:
    """A Gaussian posterior fitted to each example alone.

    Attributes:
        loc, scale: shape ``(n, L)``.
        elbo: its ELBO per example, estimated with ``eval_samples`` draws, shape ``(n,)``.
        amortized_elbo: the encoder's ELBO with the same number of draws, shape ``(n,)``.
    """

    loc: torch.Tensor
    scale: torch.Tensor
    elbo: torch.Tensor
    amortized_elbo: torch.Tensor


def _gaussian_elbo(model: Any, x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, samples: int) -> torch.Tensor:
    """Monte Carlo ELBO of :math:`\\mathcal N(loc, scale^2)` per example, from ``samples`` draws."""
    z = loc + torch.randn(samples, *loc.shape, dtype=loc.dtype, device=loc.device) * scale
    log_q = dist.Normal(loc, scale).log_prob(z).sum(-1)
    log_joint = model._log_lik(model._decoder_out(z, None), x) + model._prior().log_prob(z)
    return (log_joint - log_q).mean(0)


def _check_vae(model: Any) -> None:
    if not (isinstance(model, AmortizedGaussian) and model.gaussian_posterior):
        raise ValueError(
            "the amortization gap needs an unconditional VAE with one stochastic layer and a Gaussian posterior; "
            f"got {type(model).__name__}"
        )


def optimize_local_posterior(
    model: Any,
    x: torch.Tensor,
    steps: int = 1000,
    lr: float = 0.02,
    samples: int = 16,
    eval_samples: int = 2000,
    seed: int = 0,
) -> LocalPosterior:
    """Fit a diagonal Gaussian :math:`q^*(z)` to each example's ELBO, the decoder held fixed.

    Starts from the encoder's output and runs Adam on the mean and log-scale of every example together (their
    ELBOs are independent), the step size decaying linearly to zero. ``samples`` reparameterized draws per step;
    the final ELBOs of :math:`q^*` and of the
    encoder use ``eval_samples`` common draws.

    Args:
        model: a trained :class:`~pyrogen.models.VAE` (Gaussian posterior, unconditional).
        x: examples, ``(n,) + event_shape``.

    Raises:
        ValueError: a model with posterior layers, labels or two stochastic layers; bad ``x``.
    """
    _check_vae(model)
    for name, v in (("steps", steps), ("samples", samples), ("eval_samples", eval_samples)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    x = model.validate(x)
    model.eval()
    with torch.no_grad():
        loc0, scale0 = model.encode(x)
    loc = loc0.clone().requires_grad_(True)
    log_scale = scale0.log().clone().requires_grad_(True)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            opt = torch.optim.Adam([loc, log_scale], lr=lr)
            # the step size decays linearly to zero so that the noisy gradients settle at the optimum
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)
            for _ in range(steps):
                opt.zero_grad()
                (-_gaussian_elbo(model, x, loc, log_scale.exp(), samples).sum()).backward()
                opt.step()
                sched.step()
            with torch.no_grad():
                torch.manual_seed(seed + 1)
                elbo = _gaussian_elbo(model, x, loc, log_scale.exp(), eval_samples)
                torch.manual_seed(seed + 1)
                amortized = _gaussian_elbo(model, x, loc0, scale0, eval_samples)
    finally:
        for p in params:
            p.requires_grad_(True)
    return LocalPosterior(loc.detach(), log_scale.detach().exp(), elbo, amortized)


def latent_nuts(
    model: Any,
    x: torch.Tensor,
    num_chains: int = 2,
    num_samples: int = 300,
    warmup_steps: int = 300,
    seed: int = 0,
    **nuts_kwargs: Any,
) -> list[Any]:
    """Pyro NUTS on the latents of ``x`` under the trained model: the VAE's own ``model`` with ``x`` observed.

    The decoder's weights are constants (``pyro.module`` only registers them); each chain starts from Pyro's
    default random initialisation. Turn the runs into ArviZ data with
    :func:`pyrogen.diagnostics.from_pyro` (R-hat needs ``num_chains >= 2``).

    Returns:
        One single-chain :class:`~pyro.infer.MCMC` per chain (see :func:`~pyrogen.inference.run_chains`).

    Raises:
        ValueError: bad ``x`` or chain settings.
    """
    x = model.validate(x)
    model.eval()

    def program(x: torch.Tensor) -> Any:
        return model.model(x)

    return run_chains(
        lambda: NUTS(program, **nuts_kwargs),
        num_chains=num_chains,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        seed=seed,
        model_args=(x,),
    )


def amortization_gap(
    model: Any,
    x: torch.Tensor,
    k: int = 5000,
    nuts: bool = True,
    num_chains: int = 2,
    num_samples: int = 300,
    warmup_steps: int = 300,
    local_steps: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The gap decomposition on examples ``x``, and the NUTS posterior against both Gaussians.

    Returns:
        A dict of means over the examples: ``log_px`` (IWAE-``k``), ``elbo_amortized``, ``elbo_optimized``,
        ``approximation_gap``, ``amortization_gap``; with ``nuts``, ``r_hat_max``, ``ess_bulk_min``,
        ``divergences``, and the root-mean-square distance of each Gaussian's mean from the NUTS posterior mean
        (``rms_mean_amortized``, ``rms_mean_optimized``, in posterior standard deviations) with the ratio of
        their scales to the NUTS standard deviations (``scale_ratio_amortized``, ``scale_ratio_optimized``).
        ``idata`` holds the ArviZ InferenceData.
    """
    from pyrogen.diagnostics import from_pyro, summary

    local = optimize_local_posterior(model, x, steps=local_steps, seed=seed)
    with torch.no_grad():
        pyro.set_rng_seed(seed)
        log_px = model.iwae(x, k=k)
    out: dict[str, Any] = {
        "n": len(x),
        "k": k,
        "log_px": float(log_px.mean()),
        "elbo_amortized": float(local.amortized_elbo.mean()),
        "elbo_optimized": float(local.elbo.mean()),
        "approximation_gap": float((log_px - local.elbo).mean()),
        "amortization_gap": float((local.elbo - local.amortized_elbo).mean()),
    }
    if not nuts:
        return out
    runs = latent_nuts(model, x, num_chains=num_chains, num_samples=num_samples, warmup_steps=warmup_steps, seed=seed)
    idata = from_pyro(runs)
    table = summary(idata)
    z = torch.from_numpy(np.array(idata["posterior"]["z"].values))  # (chains, draws, n, L), a writable copy
    z = z.reshape(-1, *z.shape[2:]).to(local.loc)
    mean, std = z.mean(0), z.std(0)
    with torch.no_grad():
        loc_a, scale_a = model.encode(model.validate(x))
    out.update(
        {
            "r_hat_max": float(table["r_hat"].max()),
            "ess_bulk_min": float(table["ess_bulk"].min()),
            "divergences": int(idata["sample_stats"]["diverging"].values.sum()),
            "rms_mean_amortized": float(((loc_a - mean) / std).pow(2).mean().sqrt()),
            "rms_mean_optimized": float(((local.loc - mean) / std).pow(2).mean().sqrt()),
            "scale_ratio_amortized": float((scale_a / std).mean()),
            "scale_ratio_optimized": float((local.scale / std).mean()),
            "idata": idata,
        }
    )
    return out
