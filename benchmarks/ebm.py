"""The energy-based family's numbers: every training method on the toys, normalization, and a digit completed
under an EBM prior.

Sections (``--only``):

- ``toys``: ebm (contrastive divergence), ebm-sm (exact, sliced-vr, denoising), ebm-nce, ebm-fce and ebm-adv on
  8gaussians, 2spirals and moons from their registered defaults: the test NLL with log Z by quadrature, next
  to the best possible value (minus the entropy, ``pyrogen.data.TOY_ENTROPY``); and of samples drawn by 500
  Langevin steps from the model's chain starts, MMD², C2ST and, on 8gaussians, modes covered and the
  high-quality rate (the GANs' protocol, ``benchmarks/gan.py``).
- ``digits-cd``: ``ebm`` (contrastive divergence with the replay buffer) on the grey digits, 300 steps: log Z by AIS
  at 200 and 1000 temperatures (does it move?), the test NLL, the sample quality of its Langevin samples.
- ``normalization``: the models with a learned log Z (ebm-nce, ebm-fce): the mass of
  exp(f - log Z) on a grid (1 when log Z is right), on 8gaussians.
- ``uses``: ebm-sm trained on the grey digits (conv energy, denoising score matching): its test NLL with log Z by
  annealed importance sampling from the unit cube (2000 temperatures, each chain's MALA step adapted towards an
  acceptance of 0.57; the estimate's standard error; and log Z again with 500 and 8000 temperatures, to see
  whether the estimate still moves); outlier AUROC of its energy
  (upside-down digits, uniform noise, 10% of pixels replaced), the sample quality of its Langevin samples
  (FID, KID, precision, recall); the bottom half of 20 test
  digits completed under it as the prior (top half observed with noise 0.05), by MALA through Pyro's MCMC
  (``PyroKernel``: all 20 digits one chain), by pyrogen's batched MALA (a chain per digit) and by NUTS, two
  chains each: pixel accuracy against the binarized digits, next to the VAE
  imputation's 0.833, and the largest R-hat.

- ``implicit-vae``: the VAE with an implicit posterior (entropy gradient from a score network) on the binarized
  digits from its registered defaults: IWAE-1000 test NLL under its fitted importance proposal, next to the
  VAE's 17.23 (benchmarks/latent.py), and the sample quality of its samples.
- ``speed``: sampling the 2-D energy E(x) = MLP(x) + x·x/8 (tanh 2-32-32-1, fixed random weights): effective
  samples per second (ArviZ bulk ESS, the smaller coordinate, over the wall time of warm-up and sampling) of
  pyrogen's batched MALA and HMC, Pyro's NUTS (chains one after another) and NumPyro's NUTS on the same
  network written in JAX with the same weights, its chains vectorized (``chain_method="vectorized"``; JIT
  compilation timed apart), the same number of chains for the batched samplers and NumPyro.

    python benchmarks/ebm.py --json            # everything (about 25 minutes on 2 cores with --jobs 2)
    python benchmarks/ebm.py --only toys --jobs 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import keep, report, section_parser, tanh_energy  # noqa: E402
from gan import _pool, _round, train  # noqa: E402

from pyrogen import quality  # noqa: E402
from pyrogen.data import load  # noqa: E402

SECTIONS = ("toys", "normalization", "uses", "digits-cd", "speed", "implicit-vae")
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("ebm (CD, replay buffer)", "ebm", {}),
    ("ebm-sm exact", "ebm-sm", {"method": "exact"}),
    ("ebm-sm sliced-vr", "ebm-sm", {"method": "sliced-vr"}),
    ("ebm-sm denoising", "ebm-sm", {"method": "denoising"}),
    ("ebm-nce", "ebm-nce", {}),
    ("ebm-fce", "ebm-fce", {}),
    ("ebm-adv", "ebm-adv", {}),
]
TOYS = ("8gaussians", "2spirals", "moons")
#: minus the entropy of each toy density, the best possible test NLL
BEST_NLL = {"8gaussians": 2.838, "2spirals": 2.644, "moons": 2.391}


def _quality_job(label: str, name: str, options: dict[str, Any], data_name: str, steps: int | None) -> dict:
    torch.set_num_threads(1)
    try:
        model, row = train(name, data_name, options, steps)
    except Exception as e:  # a diverged run is a result, not a crash of the table
        return {"variant": label, "data": data_name, "error": str(e)[:200]}
    pyro.set_rng_seed(0)
    data = load(data_name)
    q = quality.sample_quality(model, data)
    nll = model.evaluation_metrics(data.test)  # log Z by quadrature
    return {
        "variant": label,
        "data": data_name,
        **row,
        "nll_nats": round(nll["nll_nats"], 4),
        "nll_stderr": round(nll["nll_stderr"], 4),
        "best_nll": BEST_NLL[data_name],
        **_round(q),
    }


def toys(steps: int | None, jobs: int) -> list[dict]:
    return _pool(jobs, [(label, name, opts, d, steps) for d in TOYS for label, name, opts in VARIANTS], _quality_job)


def _mass_job(name: str, steps: int | None) -> dict:
    torch.set_num_threads(1)
    model, row = train(name, "8gaussians", {}, steps)
    s = torch.linspace(-8, 8, 641)
    grid = torch.stack(torch.meshgrid(s, s, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = float(model.normalized_log_prob(grid).exp().sum() * (s[1] - s[0]) ** 2)
    return {"model": name, "mass": round(mass, 4), "log_z": round(model.log_z.item(), 4), **row}


def normalization(steps: int | None, jobs: int) -> list[dict]:
    return _pool(jobs, [(name, steps) for name in ("ebm-nce", "ebm-fce")], _mass_job)


def uses(steps: int | None, quick: bool) -> dict[str, Any]:
    import arviz as az

    from pyrogen.latent import energy_posterior

    torch.set_num_threads(2)
    model, row = train("ebm-sm", "digits", {}, steps)
    grey, binary = load("digits"), load("digits-binary")
    n = 4 if quick else 20
    y = grey.test[:n]
    observed = torch.zeros_like(y, dtype=torch.bool)
    observed[:, :, :4] = True
    truth = binary.test[:n]
    out: dict[str, Any] = {"train": row}
    from pyrogen.metrics import auroc, outlier_scores

    g = torch.Generator().manual_seed(0)
    inliers = outlier_scores(model, grey.test)
    noise = torch.rand(grey.test.shape, generator=g)  # uniform grey levels
    mask = torch.rand(grey.test.shape, generator=g) < 0.1
    corrupted = torch.where(mask, torch.rand(grey.test.shape, generator=g), grey.test)  # 10% of pixels replaced
    for key, xo in (("upside_down", grey.test.flip(-2)), ("uniform_noise", noise), ("corrupted_10pct", corrupted)):
        out[f"outlier_auroc_{key}"] = round(auroc(inliers, outlier_scores(model, xo)), 4)
    torch.manual_seed(0)
    nll = model.evaluation_metrics(grey.test)  # log Z by AIS from the unit cube
    out.update({f"test_{k}": (round(v, 4) if isinstance(v, float) else v) for k, v in nll.items()})
    for temps in (500, 8000) if not quick else (50,):  # does the estimate still move with more temperatures?
        torch.manual_seed(0)
        t = time.perf_counter()
        ais = model.log_normalizer_ais(num_temps=temps)
        out[f"ais_{temps}_temperatures"] = {
            "log_z": round(ais.log_z, 3),
            "stderr": round(ais.stderr, 3),
            "acceptance": round(ais.acceptance_rate, 3),
            "s": round(time.perf_counter() - t, 1),
        }
    pyro.set_rng_seed(0)
    q = quality.sample_quality(model, grey)  # Langevin samples of the digits
    out.update({f"langevin_samples_{k}": v for k, v in _round(q).items()})
    for method in ("mala", "batched-mala", "nuts"):
        t = time.perf_counter()
        kw = {"num_samples": 20, "warmup_steps": 20} if quick else {"num_samples": 300, "warmup_steps": 300}
        if method == "nuts" and not quick:
            kw = {"num_samples": 150, "warmup_steps": 150}
        post = energy_posterior(model, y, observed, method, **kw)
        bottom = (post.mean[:, :, 4:] > 0.5).float()
        out[f"completion_{method}_pixel_accuracy"] = round(float((bottom == truth[:, :, 4:]).float().mean()), 4)
        out[f"completion_{method}_max_rhat"] = round(float(az.rhat(post.idata)["x"].max()), 3)
        out[f"completion_{method}_divergences"] = int(post.idata.sample_stats["diverging"].sum())
        out[f"completion_{method}_s"] = round(time.perf_counter() - t, 1)
    return out


def digits_cd(steps: int | None) -> dict[str, Any]:
    """``ebm`` (contrastive divergence, replay buffer) on the grey digits for a short budget (300 steps): log Z by
    AIS at 200 and 1000 temperatures, its test NLL, and its Langevin samples' quality."""
    torch.set_num_threads(2)
    model, row = train("ebm", "digits", {}, steps or 300)
    grey = load("digits")
    out: dict[str, Any] = {"train": row}
    for temps in (200, 1000):
        torch.manual_seed(0)
        ais = model.log_normalizer_ais(num_temps=temps)
        out[f"ais_{temps}_temperatures"] = {"log_z": round(ais.log_z, 3), "stderr": round(ais.stderr, 3)}
    with torch.no_grad():
        out["test_nll_nats"] = round(float(-(model.f(grey.test).mean() - ais.log_z)), 3)
    pyro.set_rng_seed(0)
    q = _round(quality.sample_quality(model, grey))
    out.update({k: q[k] for k in ("fid", "precision", "recall")})
    return out


def speed(chains: int, draws: int, warmup: int) -> list[dict[str, Any]]:
    import arviz as az
    import numpy as np

    from pyrogen.inference.mcmc import run_chains
    from pyrogen.inference.samplers import HMC, MALA, sample_chains

    torch.set_num_threads(1)
    log_prob, potential = tanh_energy()

    def ess(samples: np.ndarray) -> float:  # (chains, draws, 2)
        e = az.ess(az.convert_to_dataset({"x": samples}))["x"].values
        return float(np.min(e))

    rows = []
    x0 = torch.randn(chains, 2, dtype=torch.float64)
    for name, kernel in (("pyrogen MALA", MALA(log_prob, 0.3)), ("pyrogen HMC (10 steps)", HMC(log_prob, 0.3, 10))):
        t = time.perf_counter()
        ch = sample_chains(kernel, x0, draws, warmup_steps=warmup)
        secs = time.perf_counter() - t
        e = ess(ch.samples.numpy())
        rows.append(
            {
                "sampler": name,
                "chains": chains,
                "ess": round(e, 1),
                "s": round(secs, 2),
                "ess_per_s": round(e / secs, 1),
            }
        )

    pyro_chains, pyro_draws = 2, max(draws // 4, 50)
    t = time.perf_counter()
    runs = run_chains(
        lambda: pyro.infer.NUTS(potential_fn=lambda p: -log_prob(p["x"][None])[0]),
        num_chains=pyro_chains,
        num_samples=pyro_draws,
        warmup_steps=max(warmup // 4, 50),
        initial_params={"x": torch.zeros(2, dtype=torch.float64)},
    )
    secs = time.perf_counter() - t
    e = ess(np.stack([r.get_samples()["x"].numpy() for r in runs]))
    rows.append(
        {
            "sampler": "Pyro NUTS",
            "chains": pyro_chains,
            "ess": round(e, 1),
            "s": round(secs, 2),
            "ess_per_s": round(e / secs, 1),
        }
    )

    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    jax.config.update("jax_enable_x64", True)

    mcmc = MCMC(
        NUTS(potential_fn=potential),
        num_warmup=warmup,
        num_samples=draws,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    init = jnp.asarray(x0.numpy())
    t = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(0), init_params=init)
    first = time.perf_counter() - t  # compiling included
    t = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(1), init_params=init)
    secs = time.perf_counter() - t
    e = ess(np.asarray(mcmc.get_samples(group_by_chain=True)))
    rows.append(
        {
            "sampler": "NumPyro NUTS (vectorized)",
            "chains": chains,
            "ess": round(e, 1),
            "s": round(secs, 2),
            "ess_per_s": round(e / secs, 1),
            "first_run_s": round(first, 2),
        }
    )
    return rows


def implicit_vae(steps: int | None) -> dict[str, Any]:
    torch.set_num_threads(2)
    model, row = train("implicit-vae", "digits-binary", {}, steps)
    data = load("digits-binary")
    torch.manual_seed(0)
    nll = -model.iwae(data.test, k=1000)
    pyro.set_rng_seed(0)
    q = _round(quality.sample_quality(model, data))
    return {
        **row,
        "iwae1000_nll": round(float(nll.mean()), 3),
        "iwae1000_stderr": round(float(nll.std() / len(nll) ** 0.5), 3),
        **{k: q[k] for k in ("fid", "kid", "precision", "recall")},
    }


def _print(out: dict[str, Any]) -> None:
    if "toys" in out:
        head = "| variant | data | test NLL (quadrature) | best possible | modes | high quality | MMD² | C2ST"
        print(head + " | train s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in out["toys"]:
            if "error" in r:
                print(f"| `{r['variant']}` | {r['data']} | diverged: {r['error']} | | | | | | |")
                continue
            modes = f"{r['modes']:.0f}" if "modes" in r else "—"
            hq = f"{r['high_quality']:.3f}" if "high_quality" in r else "—"
            nll = f"{r['nll_nats']:.3f} ± {r['nll_stderr']:.3f}"
            cells = [f"`{r['variant']}`", r["data"], nll, r["best_nll"], modes, hq]
            cells += [f"{r['mmd']:.4f}", f"{r['c2st']:.3f}", r["train_s"]]
            print("| " + " | ".join(str(c) for c in cells) + " |")
    if "normalization" in out:
        print()
        for r in out["normalization"]:
            print(f"{r['model']}: mass of exp(f - log Z) on [-8, 8]^2 = {r['mass']} (log Z {r['log_z']})")
    if "uses" in out:
        print()
        for k, v in out["uses"].items():
            print(f"{k}: {v}")
    if "digits-cd" in out:
        print(f"\ndigits-cd: {out['digits-cd']}")
    if "implicit-vae" in out:
        print(f"\nimplicit-vae: {out['implicit-vae']}")
    if "speed" in out:
        print("\n| sampler | chains | ESS | seconds | ESS/s |")
        print("|---|---|---|---|---|")
        for r in out["speed"]:
            extra = f" (first run, compiling: {r['first_run_s']} s)" if "first_run_s" in r else ""
            print(f"| {r['sampler']} | {r['chains']} | {r['ess']} | {r['s']}{extra} | {r['ess_per_s']} |")


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument("--steps", type=int, help="training steps per model (default: the registered defaults)")
    p.add_argument("--jobs", type=int, default=2, help="models trained at once (one thread each)")
    args = p.parse_args(argv)
    steps = 30 if args.quick else args.steps
    only = args.only or list(SECTIONS)
    out: dict[str, Any] = {}
    if "toys" in only:
        keep(out, "toys", toys(steps, args.jobs))
    if "normalization" in only:
        keep(out, "normalization", normalization(steps, args.jobs))
    if "uses" in only:
        keep(out, "uses", uses(steps, args.quick))
    if "digits-cd" in only:
        keep(out, "digits-cd", digits_cd(steps))
    if "implicit-vae" in only:
        keep(out, "implicit-vae", implicit_vae(steps))
    if "speed" in only:
        keep(out, "speed", speed(64, 100 if args.quick else 2000, 50 if args.quick else 500))
    return report(out, args.json, _print)


if __name__ == "__main__":
    raise SystemExit(main())
