"""The demo behind ``pyrogen demo`` (and ``make demo``): the whole path on bundled data.

1. RealNVP on the moons toy: test NLL next to the best possible value (the
   density's entropy, 2.391 nats), and MMD² and C2ST of its samples.
2. A Bernoulli VAE on the binarized digits with KL warm-up and early stopping:
   ELBO and IWAE (k = 1000) test NLL next to the factorized Bernoulli floor, the
   number of active latent units, and FID / KID / precision / recall of its
   samples (:mod:`pyrogen.quality`).
3. NUTS (Pyro, two chains) over the latent ``z`` of one test digit given the
   trained decoder, summarised by ArviZ.

It writes figures (samples, loss curves) and ``metrics.json`` to ``out``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from pyrogen.data import TOY_ENTROPY
from pyrogen.figures import image_grid, loss_curves, scatter_2d
from pyrogen.inference.mcmc import nuts, run_chains
from pyrogen.models import VAE
from pyrogen.runs import json_safe, train_run

__all__ = ["factorized_bernoulli_nll", "run_demo"]

log = logging.getLogger("pyrogen")


def factorized_bernoulli_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """The floor every model of the binarized digits must beat: the test NLL (nats) of independent pixels with
    the training part's frequencies (plus a half pseudo-count)."""
    tr, te = train.flatten(1).double(), test.flatten(1).double()
    p = (tr.sum(0) + 0.5) / (len(tr) + 1.0)
    return float(-(te * p.log() + (1 - te) * (1 - p).log()).sum(1).mean())


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _quality_line(m: dict[str, Any]) -> str:
    names = {"mmd": "MMD²", "c2st": "C2ST", "fid": "FID", "kid": "KID", "precision": "precision", "recall": "recall"}
    parts = []
    for key, label in names.items():
        if key in m:
            v, (lo, hi) = m[key]["value"], m[key]["ci"]
            parts.append(f"{label} {v:.4g} [{lo:.4g}, {hi:.4g}]")
    return "; ".join(parts)


def run_demo(
    out: str | Path = "demo-output",
    *,
    fast: bool = False,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the demo; return (and write to ``out/metrics.json``) its numbers."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for run in ("realnvp-moons", "vae-digits"):  # the demo always starts afresh
        shutil.rmtree(out / run, ignore_errors=True)
    t0 = time.perf_counter()
    metrics: dict[str, Any] = {"fast": fast}

    _say("== 1. RealNVP on moons (exact likelihood) ==")
    flow_steps = 60 if fast else 3000
    flow, moons, m_flow = train_run(
        "realnvp",
        "moons",
        out / "realnvp-moons",
        steps=flow_steps,
        device=device,
        progress=progress,
    )
    best = TOY_ENTROPY["moons"]
    _say(
        f"test NLL {m_flow['nll_nats']:.3f} ± {m_flow['nll_stderr']:.3f} nats "
        f"(best possible: the entropy {best:.3f}; gap {m_flow['nll_nats'] - best:+.3f})"
    )
    _say(f"sample quality: {_quality_line(m_flow)}")
    metrics["realnvp_moons"] = m_flow
    torch.manual_seed(0)
    scatter_2d(
        flow.sample(5000).cpu(),
        out / "realnvp_moons_samples.png",
        reference=moons.test,
        title="RealNVP on moons",
    )

    _say("\n== 2. Bernoulli VAE on binarized digits (KL warm-up, early stopping) ==")
    vae_steps = 60 if fast else None
    vae, digits, m_vae = train_run(
        "vae",
        "digits-binary",
        out / "vae-digits",
        steps=vae_steps,
        device=device,
        progress=progress,
    )
    assert isinstance(vae, VAE)
    x_test = digits.test.to(next(vae.parameters()).device)
    active = vae.active_units(x_test)
    m_vae["active_units"] = active
    _say(
        f"test ELBO {m_vae['elbo_nats']:.2f} nats; IWAE (k={m_vae['k']}) NLL {m_vae['nll_nats']:.2f} ± "
        f"{m_vae['nll_stderr']:.2f} nats ({m_vae['bits_per_dim']:.3f} bits/dim); "
        f"active latent units {active} of {vae.latent_dim}"
    )
    _say(f"sample quality ({m_vae['samples']} samples against the test digits): {_quality_line(m_vae)}")
    floor = factorized_bernoulli_nll(torch.cat([digits.train, digits.val]), digits.test)
    _say(f"the factorized Bernoulli floor on the same test digits: {floor:.2f} nats")
    metrics["vae_digits"] = m_vae
    torch.manual_seed(0)
    image_grid(
        vae.sample(64, mean=True).cpu(),
        out / "vae_digits_samples.png",
        title="VAE samples (pixel means)",
    )
    hist = {
        "RealNVP on moons": json.loads((out / "realnvp-moons" / "history.json").read_text()),
        "VAE on binarized digits": json.loads((out / "vae-digits" / "history.json").read_text()),
    }
    loss_curves(hist, out / "loss_curves.png")

    _say("\n== 3. NUTS over the latent z of one test digit (2 chains), ArviZ summary ==")
    from pyrogen import diagnostics

    x_one = x_test[:1]
    n_draws = 20 if fast else 300
    runs = run_chains(
        lambda: nuts(vae.model, max_tree_depth=6),
        num_chains=2,
        num_samples=n_draws,
        warmup_steps=n_draws,
        seed=0,
        model_args=(x_one,),
    )
    idata = diagnostics.from_pyro(runs)
    table = diagnostics.summary(idata, var_names=["z"])
    with_pd_options = table.to_string(float_format=lambda v: f"{v:.2f}")
    _say(with_pd_options)
    metrics["nuts_latent"] = {
        "chains": 2,
        "draws": n_draws,
        "max_r_hat": float(table["r_hat"].max()),
        "min_ess_bulk": float(table["ess_bulk"].min()),
    }
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2, allow_nan=False) + "\n")
    _say(f"\nwrote figures and metrics.json to {out}/ in {metrics['seconds']:.0f} s")
    return metrics
