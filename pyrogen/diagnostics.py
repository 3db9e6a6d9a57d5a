"""The ArviZ bridge: every sampler's output as an ``InferenceData``.

The only module of pyrogen that imports ArviZ. It takes a Pyro
:class:`~pyro.infer.MCMC` run (with a model or with only a ``potential_fn``),
a list of single-chain runs (see :func:`pyrogen.inference.run_chains`), a
NumPyro run, or plain arrays of chains (Langevin chains of an EBM, reverse
diffusion trajectories), and gives the usual ``az.summary``, ESS and R-hat.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> idata = from_chains({"mu": rng.normal(size=(2, 500))})
    >>> table = summary(idata)
    >>> abs(table.loc["mu", "mean"]) < 0.2, table.loc["mu", "r_hat"] < 1.01
    (np.True_, np.True_)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

with warnings.catch_warnings():
    # ArviZ 0.x announces its 1.0 refactor with a FutureWarning on import.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
    import arviz as az

__all__ = ["from_chains", "from_numpyro", "from_pyro", "summary"]


def _divergences(mcmc: Any, num_draws: int) -> np.ndarray:
    diag = mcmc.diagnostics().get("divergences", {})
    out = np.zeros((len(diag) or 1, num_draws), dtype=bool)
    for c, (_, idx) in enumerate(sorted(diag.items())):
        out[c, np.asarray(idx, dtype=int)] = True
    return out


def from_pyro(mcmc: Any | Sequence[Any]) -> az.InferenceData:
    """InferenceData from a finished Pyro ``MCMC`` run or a list of single-chain runs.

    A single run goes through ``arviz.from_pyro`` (posterior, divergences and,
    with a model, log-likelihood and observed data); a list of runs (one chain
    each, as :func:`pyrogen.inference.run_chains` returns) is joined along the
    ``chain`` dimension, with their divergences.

    Raises:
        ValueError: an empty list, or runs with different sites or draws.
    """
    if not isinstance(mcmc, Sequence):
        return az.from_pyro(mcmc)
    if len(mcmc) == 0:
        raise ValueError("mcmc is an empty list of runs")
    chains = [m.get_samples(group_by_chain=True) for m in mcmc]
    names = set(chains[0])
    for i, c in enumerate(chains):
        if set(c) != names:
            raise ValueError(f"run {i} has sites {sorted(c)}; run 0 has {sorted(names)}")
    posterior = {k: np.concatenate([c[k].detach().cpu().numpy() for c in chains], axis=0) for k in names}
    draws = next(iter(posterior.values())).shape[1]
    diverging = np.concatenate([_divergences(m, draws) for m in mcmc], axis=0)
    return az.from_dict(posterior=posterior, sample_stats={"diverging": diverging})


def from_numpyro(mcmc: Any) -> az.InferenceData:
    """InferenceData from a finished NumPyro ``MCMC`` run (through ``arviz.from_numpyro``)."""
    return az.from_numpyro(mcmc)


def from_chains(samples: Mapping[str, Any], sample_stats: Mapping[str, Any] | None = None) -> az.InferenceData:
    """InferenceData from arrays of shape ``(chains, draws, *event_shape)``.

    ``sample_stats`` may carry ``energy`` (for ArviZ's energy plot and BFMI,
    which Pyro does not record), ``diverging``, ``acceptance_rate``, ...

    Raises:
        ValueError: an empty mapping, arrays with fewer than two dimensions,
            different chain/draw counts, or non-finite values.
    """
    if not samples:
        raise ValueError("samples is empty: give at least one variable")
    post: dict[str, np.ndarray] = {}
    lead: tuple[int, ...] | None = None
    for k, v in samples.items():
        a = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
        if a.ndim < 2:
            raise ValueError(f"samples[{k!r}] must have shape (chains, draws, ...); got {a.shape}")
        if lead is None:
            lead = a.shape[:2]
        elif a.shape[:2] != lead:
            raise ValueError(f"samples[{k!r}] has (chains, draws) = {a.shape[:2]}; expected {lead}")
        if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
            raise ValueError(f"samples[{k!r}] holds non-finite values")
        post[k] = a
    stats = None
    if sample_stats is not None:
        stats = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in sample_stats.items()}
    with warnings.catch_warnings():
        # the layout is (chains, draws) by contract; many short chains (an EBM's, a reverse
        # diffusion's) are normal here, so ArviZ's guess that the axes are swapped is not
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        return az.from_dict(posterior=post, sample_stats=stats)


def summary(data: Any, **kwargs: Any) -> Any:
    """``arviz.summary`` (mean, sd, HDI, MCSE, ESS, R-hat) of any input this module takes.

    ``data`` may be an InferenceData, a Pyro run or list of runs, a NumPyro
    run, or a mapping of chains; keyword arguments go to ``arviz.summary``.
    """
    return az.summary(_to_idata(data), **kwargs)


def _to_idata(data: Any) -> az.InferenceData:
    if isinstance(data, az.InferenceData):
        return data
    if isinstance(data, Mapping):
        return from_chains(data)
    if isinstance(data, Sequence) or type(data).__module__.startswith("pyro."):
        return from_pyro(data)
    if type(data).__module__.startswith("numpyro."):
        return from_numpyro(data)
    raise TypeError(f"cannot build InferenceData from {type(data).__name__}")
