"""MCMC for many chains: effective samples per second against NumPyro's vectorized NUTS, with moment errors.

For each target and each number of chains (64 and 512), every sampler starts from the same N(0, I) draws, runs
``--warmup`` adapted transitions and keeps ``--draws``; the row reports the bulk ESS of the worst coordinate
(ArviZ), the wall time with warm-up included (NumPyro's compile time excluded: the second of two runs is timed),
their ratio, and how far the draws' means and standard deviations are from the target's, in units of the target's
standard deviation (the largest over coordinates), so that a fast wrong sampler cannot win.

Targets (``--only``):

- ``energy2d``: the EBM page's 2-D energy E(x) = MLP(x) + x·x/8 (tanh 2-32-32-1, the weights of
  ``torch.manual_seed(0)``, as ``benchmarks/ebm.py --only speed`` builds it); reference moments from a long NumPyro
  NUTS run.
- ``banana``: x1 ~ N(0, 1), x2 ~ N(x1² − 1, 0.3²); exact moments (0, 0), sds (1, 2.09^½).
- ``funnel``: Neal's funnel in 10 dimensions, v ~ N(0, 3²), x_i ~ N(0, e^v); the moments of v are exact
  (the x_i's sd, e^{9/4} = 9.5, is dominated by rare draws and left out of the error).
- ``gauss100``: a 100-D Gaussian with independent coordinates whose variances run log-uniformly over three
  decades (condition number 1000); exact moments.
- ``logistic``: Bayesian logistic regression on scikit-learn's breast-cancer data (30 standardized features and
  an intercept, N(0, 1) priors); reference moments from a long NumPyro NUTS run (4 chains x 4000 draws).

Samplers: pyrogen's ``MALA`` (per-chain step sizes adapted to 0.57) and ``ChEES`` (trajectory length, one step
size and a diagonal mass matrix adapted across chains), and NumPyro's NUTS with ``chain_method="vectorized"``
(diagonal mass matrix adapted).

    python benchmarks/mcmc.py                       # every target (about 20 minutes on 2 cores)
    python benchmarks/mcmc.py --only banana --chains 64
    python benchmarks/mcmc.py --record run.log      # file the rows a stopped run printed to its log
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from _common import merged_rows, previous_rows, save_results, tanh_energy

from pyrogen.inference.samplers import MALA, ChEES, sample_chains

TARGETS = ("energy2d", "banana", "funnel", "gauss100", "logistic")


def _logistic_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    return np.concatenate([np.ones((len(x), 1)), x], 1), y.astype(np.float64)


def target(name: str) -> tuple[int, Callable[[torch.Tensor], torch.Tensor], Callable[[Any], Any]]:
    """``(dimension, torch log density of (chains, D), JAX potential of (D,))``."""
    import jax.numpy as jnp

    if name == "energy2d":
        lp, pot = tanh_energy()
        return 2, lp, pot
    if name == "banana":

        def lp(x: torch.Tensor) -> torch.Tensor:
            return -0.5 * x[..., 0] ** 2 - 0.5 * ((x[..., 1] - x[..., 0] ** 2 + 1) / 0.3) ** 2

        def pot(x: Any) -> Any:
            return 0.5 * x[0] ** 2 + 0.5 * ((x[1] - x[0] ** 2 + 1) / 0.3) ** 2

        return 2, lp, pot
    if name == "funnel":

        def lp(x: torch.Tensor) -> torch.Tensor:
            v, rest = x[..., 0], x[..., 1:]
            return -(v**2) / 18 - 0.5 * (rest**2).sum(-1) * torch.exp(-v) - 0.5 * rest.shape[-1] * v

        def pot(x: Any) -> Any:
            v, rest = x[0], x[1:]
            return v**2 / 18 + 0.5 * (rest**2).sum() * jnp.exp(-v) + 0.5 * rest.shape[0] * v

        return 10, lp, pot
    if name == "gauss100":
        var = torch.logspace(0, 3, 100, dtype=torch.float64) / 30.0

        def lp(x: torch.Tensor) -> torch.Tensor:
            return -0.5 * (x**2 / var).sum(-1)

        jvar = jnp.asarray(var.numpy())

        def pot(x: Any) -> Any:
            return 0.5 * (x**2 / jvar).sum()

        return 100, lp, pot
    if name == "logistic":
        xs, ys = _logistic_data()
        tx, ty = torch.as_tensor(xs), torch.as_tensor(ys)
        jx, jy = jnp.asarray(xs), jnp.asarray(ys)

        def lp(w: torch.Tensor) -> torch.Tensor:
            logits = w @ tx.T  # (chains, n)
            return (ty * logits - torch.nn.functional.softplus(logits)).sum(-1) - 0.5 * (w**2).sum(-1)

        def pot(w: Any) -> Any:
            import jax

            logits = jx @ w
            return -(jy * logits - jax.nn.softplus(logits)).sum() + 0.5 * (w**2).sum()

        return xs.shape[1], lp, pot
    raise ValueError(f"unknown target {name!r}")


def reference(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, sd, which coordinates count)`` of the target."""
    if name == "banana":
        return np.zeros(2), np.sqrt([1.0, 2.09]), np.array([True, True])
    if name == "funnel":
        mask = np.zeros(10, dtype=bool)
        mask[0] = True
        return np.zeros(10), np.concatenate([[3.0], np.full(9, math.exp(9 / 4))]), mask
    if name == "gauss100":
        var = np.logspace(0, 3, 100) / 30.0
        return np.zeros(100), np.sqrt(var), np.ones(100, dtype=bool)
    draws = _numpyro(name, 4, 4000, 2000, seed=123)[0].reshape(-1, target(name)[0])
    return draws.mean(0), draws.std(0), np.ones(draws.shape[1], dtype=bool)


def _ess(samples: np.ndarray) -> float:
    import arviz as az

    e = az.ess(az.convert_to_dataset({"x": samples}), method="bulk")["x"].values
    return float(np.min(e))


def _numpyro(name: str, chains: int, draws: int, warmup: int, seed: int = 0) -> tuple[np.ndarray, float]:
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)
    d, _, pot = target(name)
    init = jnp.asarray(np.random.RandomState(seed).randn(chains, d))
    mcmc = MCMC(
        NUTS(potential_fn=pot),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(seed), init_params=init)  # compiles
    t = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed + 1), init_params=init)
    secs = time.perf_counter() - t
    return np.asarray(mcmc.get_samples(group_by_chain=True)), secs


def row(name: str, sampler: str, chains: int, samples: np.ndarray, secs: float, ref: tuple) -> dict[str, Any]:
    mean, sd, mask = ref
    flat = samples.reshape(-1, samples.shape[-1])
    mean_err = np.abs(flat.mean(0) - mean)[mask] / sd[mask]
    sd_err = np.abs(flat.std(0) - sd)[mask] / sd[mask]
    ess = _ess(samples)
    out = {
        "target": name,
        "sampler": sampler,
        "chains": chains,
        "ess_bulk_min": round(ess, 1),
        "seconds": round(secs, 2),
        "ess_per_s": round(ess / secs, 1),
        "max_mean_error_sd": round(float(mean_err.max()), 4),
        "max_sd_error": round(float(sd_err.max()), 4),
    }
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def run(name: str, chains_list: list[int], draws: int, warmup: int) -> list[dict[str, Any]]:
    torch.set_default_dtype(torch.float64)
    d, lp, _ = target(name)
    ref = reference(name)
    rows = []
    for chains in chains_list:
        x0 = torch.as_tensor(np.random.RandomState(0).randn(chains, d))
        for sampler, kernel in (("pyrogen MALA", MALA(lp, step_size=0.1)), ("pyrogen ChEES", ChEES(lp, step_size=0.1))):
            torch.manual_seed(0)
            t = time.perf_counter()
            ch = sample_chains(kernel, x0, draws, warmup_steps=warmup)
            rows.append(row(name, sampler, chains, ch.samples.numpy(), time.perf_counter() - t, ref))
        samples, secs = _numpyro(name, chains, draws, warmup)
        rows.append(row(name, "NumPyro NUTS (vectorized)", chains, samples, secs, ref))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=TARGETS)
    p.add_argument("--chains", nargs="+", type=int, default=[64, 512])
    p.add_argument("--draws", type=int, default=500)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a smoke run: 8 chains, 30 + 30 transitions")
    p.add_argument("--record", metavar="LOG", help="file the rows a stopped run printed to its log (stderr)")
    args = p.parse_args(argv)
    if args.record:
        rows = [json.loads(line) for line in open(args.record) if line.startswith('{"target"')]
        if not rows:
            raise SystemExit(f"no rows in {args.record}")
        save_results({"samplers": merged_rows(previous_rows("samplers"), rows, key=("target", "sampler", "chains"))})
        return 0
    torch.set_num_threads(args.threads)
    chains, draws, warmup = ([8], 30, 30) if args.quick else (args.chains, args.draws, args.warmup)
    rows = [r for name in args.only or TARGETS for r in run(name, chains, draws, warmup)]
    if not args.quick:
        save_results({"samplers": merged_rows(previous_rows("samplers"), rows, key=("target", "sampler", "chains"))})
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
