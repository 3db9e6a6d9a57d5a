"""Running several MCMC chains with Pyro's kernels, one after another.

Pyro's :class:`~pyro.infer.MCMC` runs ``num_chains > 1`` in worker processes
when the machine has enough cores and sequentially (with a warning) otherwise.
:func:`run_chains` always runs them in this process, one per seed, so that a
seed fixes the result on any machine; :func:`pyrogen.diagnostics.from_pyro`
turns the list into one ArviZ ``InferenceData``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pyro
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

__all__ = ["run_chains", "nuts"]


def nuts(
    model: Callable[..., object] | None = None,
    potential_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None,
    **kwargs: object,
) -> NUTS:
    """Pyro's NUTS kernel on a model or on a potential (negative log density)."""
    if (model is None) == (potential_fn is None):
        raise ValueError("give exactly one of model and potential_fn")
    return NUTS(model=model, potential_fn=potential_fn, **kwargs)


def run_chains(
    kernel: Callable[[], MCMCKernel],
    *,
    num_chains: int = 2,
    num_samples: int = 500,
    warmup_steps: int = 500,
    initial_params: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
    model_args: tuple = (),
    model_kwargs: Mapping[str, object] | None = None,
    progress: bool = False,
) -> list[MCMC]:
    """Run ``num_chains`` independent chains of a freshly built kernel each.

    Args:
        kernel: builds a new kernel per chain (e.g. ``lambda: NUTS(model)``).
        num_chains: at least 1 (R-hat needs 2).
        num_samples, warmup_steps: per chain.
        initial_params: the same start for every chain (needed with a
            ``potential_fn``), or ``None`` to let Pyro initialise.
        seed: chain ``c`` runs under ``pyro.set_rng_seed(seed + c)``.
        model_args, model_kwargs: passed to ``MCMC.run``.

    Returns:
        One finished single-chain :class:`~pyro.infer.MCMC` per chain.

    Raises:
        ValueError: ``num_chains``, ``num_samples`` or ``warmup_steps`` out of range.
    """
    for name, v, lo in (
        ("num_chains", num_chains, 1),
        ("num_samples", num_samples, 1),
        ("warmup_steps", warmup_steps, 0),
    ):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    runs = []
    for c in range(num_chains):
        pyro.set_rng_seed(seed + c)
        mcmc = MCMC(
            kernel(),
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            initial_params=dict(initial_params) if initial_params is not None else None,
            disable_progbar=not progress,
        )
        mcmc.run(*model_args, **dict(model_kwargs or {}))
        runs.append(mcmc)
    return runs
