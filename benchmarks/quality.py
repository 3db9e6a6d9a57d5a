"""One table for every family: test NLL where the density kind allows it, next to sample-quality metrics.

Every registered model is trained on its default data through the run layer (with its registered
defaults, or ``--steps``), then scored by ``pyrogen.runs.evaluate_run``: NLL for exact and
lower-bound densities, and for every model that samples FID / KID / precision / recall / IS on the
digits or MMD / C2ST (and modes on ``8gaussians``) on the toys. Families registered later appear
without a change here. Reference rows on the same sample sizes bracket the numbers: held-out data
against data (the best a model can score) and simple baselines (what a bad model scores); and the warning
of Theis, van den Oord and Bethge (2016): 0.01 p_data + 0.99 noise keeps a log-likelihood within log 100 of
p_data while its samples are mostly noise.

    python benchmarks/quality.py --references            # the reference rows only (a minute)
    python benchmarks/quality.py --only vae realnvp      # these models, registered defaults
    python benchmarks/quality.py --steps 300 --json      # every model, 300 steps each
    python benchmarks/quality.py --steps 500 --record run.log   # file the rows a stopped run printed to its log

The rows go to ``results/quality.json`` (``--only`` keeps the other models' rows), from which
``python benchmarks/pages.py`` writes the quality tables of the results page.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyro.distributions as dist
import torch
from _common import logged_rows, merged_rows, previous_rows, save_results

from pyrogen import quality
from pyrogen.data import load
from pyrogen.models import registry
from pyrogen.runs import train_run


def _flat(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("nll_nats", "bits_per_dim", "fid", "kid", "precision", "recall", "inception_score", "mmd", "c2st")
    row = {k: (v["value"] if isinstance(v, dict) else v) for k, v in metrics.items() if k in keep}
    for k in ("modes", "high_quality"):
        if k in metrics:
            row[k] = metrics[k]["value"]
    if isinstance(metrics.get("fid"), dict) and "ci" in metrics["fid"]:
        row["fid_ci"] = [round(v, 4) for v in metrics["fid"]["ci"]]
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}


def reference_rows(seed: int = 0) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    d = load("digits-binary")
    real = d.test
    candidates = {
        "training digits (best possible)": d.train[: len(real)],
        "factorized Bernoulli": torch.bernoulli(d.train.mean(0).expand(len(real), -1, -1, -1), generator=g),
        "uniform noise": torch.bernoulli(torch.full_like(real, 0.5), generator=g),
    }
    for name, fake in candidates.items():
        rows.append({"model": name, "data": d.name, **_flat(quality.compare(real, fake, "image", d.support, d.name))})
    grey = load("digits")  # the floor of the models of the grey (dequantized) digits
    held_out = _flat(quality.compare(grey.test, grey.train[: len(grey.test)], "image", grey.support, grey.name))
    rows.append({"model": "training digits (best possible)", "data": grey.name, **held_out})
    for toy in ("moons", "8gaussians"):
        t = load(toy)
        real = t.test[:1000]
        lo, hi = t.train.min(0).values, t.train.max(0).values
        gauss = t.train.mean(0) + torch.randn(1000, 2, generator=g) @ torch.linalg.cholesky(t.train.T.cov()).T
        toys = {
            "training points (best possible)": t.train[:1000],
            "Gaussian fit": gauss,
            "uniform on the bounding box": lo + (hi - lo) * torch.rand(1000, 2, generator=g),
        }
        for name, fake in toys.items():
            rows.append({"model": name, "data": toy, **_flat(quality.compare(real, fake, "toy2d", "real", toy))})
    return rows


def warning_row(seed: int = 0) -> dict[str, Any]:
    """0.01 p_data + 0.99 noise on 8gaussians, p_data the exact density of the generator."""
    torch.manual_seed(seed)
    centres, std = quality.eight_gaussian_modes()
    p_data = dist.MixtureSameFamily(dist.Categorical(torch.ones(8)), dist.Normal(centres.float(), std).to_event(1))
    noise = dist.Normal(torch.zeros(2), torch.full((2,), 6.0)).to_event(1)
    test = load("8gaussians").test
    lp = p_data.log_prob(test)
    lp_mix = torch.logaddexp(math.log(0.01) + lp, math.log(0.99) + noise.log_prob(test))
    good = p_data.sample((1000,))
    bad = torch.where((torch.rand(1000) < 0.01)[:, None], good, noise.sample((1000,)))
    q_good = _flat(quality.compare(test[:1000], good, "toy2d", "real", "8gaussians"))
    q_bad = _flat(quality.compare(test[:1000], bad, "toy2d", "real", "8gaussians"))
    return {
        "p_data": {"nll_nats": round(float(-lp.mean()), 4), **q_good},
        "0.01 p_data + 0.99 noise": {"nll_nats": round(float(-lp_mix.mean()), 4), **q_bad},
        "log 100": round(math.log(100), 4),
    }


def model_rows(names: list[str], steps: int | None, seed: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cls = registry.get(name)
            _, _, m = train_run(name, None, Path(tmp) / name, steps=steps, seed=seed)
            density = m.get("density", cls.density)  # the instance's kind: "estimated" where log Z is by AIS
            row = {"model": name, "data": cls.default_data, "density": density, "steps": steps, **_flat(m)}
            rows.append(row)
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--references", action="store_true", help="only the reference and warning rows")
    p.add_argument("--only", nargs="+", choices=registry.names(), help="train and score only these models")
    p.add_argument("--steps", type=int, help="training steps per model (default: each model's registered default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", metavar="LOG", help="file the model rows a stopped run printed to its log (stderr)")
    args = p.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be a positive integer; got {args.steps}")
    torch.set_num_threads(1)
    if args.record:
        out: dict[str, Any] = {"models": logged_rows(args.record)}
    else:
        out = {"references": reference_rows(args.seed), "warning": warning_row(args.seed)}
        if not args.references:
            out["models"] = model_rows(args.only or registry.names(), args.steps, args.seed)
    if "models" in out and (args.only or args.record):  # some models again: the others' rows are kept
        out["models"] = merged_rows(previous_rows("models"), out["models"])
    save_results(out)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    cols = ["nll_nats", "fid", "kid", "precision", "recall", "inception_score", "mmd", "c2st", "modes", "high_quality"]
    print(f"{'model':<34}{'data':<15}" + "".join(f"{c[:9]:>10}" for c in cols))
    for r in out.get("references", []) + out.get("models", []):
        cells = "".join(f"{r[c]:>10.4g}" if isinstance(r.get(c), (int, float)) else f"{'-':>10}" for c in cols)
        print(f"{r['model']:<34}{r['data']:<15}{cells}")
    if "warning" in out:
        print(json.dumps(out["warning"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
