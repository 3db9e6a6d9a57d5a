"""The latent-variable family's numbers: IWAE test NLL, decoders, rate-distortion, semi-supervised accuracy,
uses of the latent space, and the amortization gap with NUTS over latents.

Every model is trained by :func:`pyrogen.inference.fit` (early stopping on the
validation part, best parameters restored) and scored on the test part with
IWAE (k = 1000).

    python benchmarks/latent.py                 # every section (about 15 minutes on 2 cores)
    python benchmarks/latent.py --only nll      # one section: nll, decoders, beta, ssvae, uses, gap
    python benchmarks/latent.py --only nll --models iwae hvae   # some rows of the NLL table
    python benchmarks/latent.py --only ssvae --seeds 3          # M2 against labels-only classifiers, 3 seeds
    python benchmarks/latent.py --only seeds --seeds 3          # the hierarchical and ladder VAEs from 3 seeds
    python benchmarks/latent.py --json          # the rows as JSON
    python benchmarks/latent.py --quick         # a smoke run with few steps
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from typing import Any

import pyro
import torch
from _common import keep, merged_rows, previous_rows, report, section_parser, train_and_score

from pyrogen.data import load
from pyrogen.inference import CrossEntropy, TrainConfig, amortization_gap, fit, training_data
from pyrogen.latent import class_means, impute, latent_arithmetic
from pyrogen.metrics import auroc, linear_probe, outlier_scores
from pyrogen.models import SSVAE, VAE
from pyrogen.nn import MLP

#: The floor on the binarized digits (test NLL, nats): independent pixels, measured by tests/test_data.py.
FLOORS = {"factorized Bernoulli": 25.30}
#: Rows of the NLL table: (row name, registered model, keyword arguments).
NLL_MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("vae", "vae", {}),
    ("vae-conv", "vae", {"arch": "conv"}),
    ("iwae (k=10)", "iwae", {}),
    ("gmvae (10 components)", "gmvae", {}),
    ("hvae (16 + 8 latents)", "hvae", {}),
    ("ladder-vae (16 + 8 latents)", "ladder-vae", {}),
    ("ladder-vae without free bits", "ladder-vae", {"free_bits": 0.0}),
    ("hvae, KL warm-up over 5000 steps", "hvae", {"kl_warmup": 5000}),
    ("ladder-vae, KL warm-up over 5000 steps", "ladder-vae", {"kl_warmup": 5000}),
    ("ladder-vae, KL warm-up over 500 steps", "ladder-vae", {"kl_warmup": 500}),
    ("pro-vae (3 x 4 latents, grown top first)", "pro-vae", {}),
    ("pro-vae without growth (a VLAE)", "pro-vae", {"grow_every": 0}),
    ("vae-flow (IAF posterior)", "vae-flow", {}),
    ("vae-flow (planar posterior)", "vae-flow", {"posterior_flow": "planar", "flow_layers": 8}),
    ("vae (flow prior)", "vae", {"prior": "flow"}),
    ("cvae (log p(x | y))", "cvae", {}),
    ("ssvae (10% labels)", "ssvae", {}),
]
#: Decoders on the other two digit encodings.
DECODERS: list[tuple[str, str, dict[str, Any]]] = [
    ("gaussian, learned variance", "digits", {"likelihood": "gaussian"}),
    ("gaussian, fixed sd 0.1", "digits", {"likelihood": "gaussian", "decoder_scale": 0.1}),
    ("gaussian, learned variance, conv", "digits", {"likelihood": "gaussian", "arch": "conv"}),
    ("categorical (17 levels)", "digits-int", {"likelihood": "categorical"}),
    ("categorical (17 levels), conv", "digits-int", {"likelihood": "categorical", "arch": "conv"}),
]
BETAS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _active(model: Any, data_name: str) -> int:
    data = load(data_name)
    return model.active_units(training_data(model, data, "test"))


def nll(steps: int | None, models: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for name, registered, kwargs in NLL_MODELS:
        if models and registered not in models:
            continue
        model, row = train_and_score(name, "digits-binary", kwargs, steps, registry_name=registered)
        row["active_units"] = _active(model, "digits-binary")
        if registered in ("hvae", "ladder-vae", "pro-vae"):  # and per level
            row["active_units_per_level"] = model.active_units_per_level(load("digits-binary").test)
        rows.append(row)
    return rows


def decoders(steps: int | None) -> list[dict[str, Any]]:
    rows = []
    for name, data_name, kwargs in DECODERS:
        model, row = train_and_score(name, data_name, kwargs, steps, registry_name="vae")
        row["active_units"] = _active(model, data_name)
        if data_name == "digits-int":  # discrete data: bits/dim of the integers themselves
            row["bits_per_dim"] = round(row["nll_nats"] / (64 * math.log(2)), 4)
        rows.append(row)
    return rows


@torch.no_grad()
def _rate_distortion(model: VAE, x: torch.Tensor, samples: int = 100) -> tuple[float, float]:
    """Rate = mean closed-form KL(q || p), distortion = mean -E_q log p(x | z) (``samples`` draws), nats."""
    rec, neg_kl = model.elbo_terms(x, None, samples, analytic=True)
    return float(-neg_kl.mean()), float(-rec.mean())


def beta(steps: int | None) -> list[dict[str, Any]]:
    rows = []
    test = load("digits-binary").test
    for b in BETAS:
        name = f"beta={b}"
        model, row = train_and_score(name, "digits-binary", {"beta": b}, steps, registry_name="beta-vae")
        assert isinstance(model, VAE)
        rate, distortion = _rate_distortion(model, test)
        row.update(
            beta=b,
            rate_nats=round(rate, 3),
            distortion_nats=round(distortion, 3),
            elbo_nats=round(-(rate + distortion), 3),
            active_units=model.active_units(test),
        )
        rows.append(row)
    return rows


class _Classifier(torch.nn.Module):
    def __init__(self, event_shape: Any, classes: int) -> None:
        super().__init__()
        self.net = MLP(math.prod(event_shape), (256, 256), classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x)


def _classifier_on_labels_alone(x: torch.Tensor, y: torch.Tensor, val: Any, steps: int, seed: int = 0) -> _Classifier:
    """The same MLP as the SSVAE's q(y | x), trained on the labelled examples only (early stopping on val)."""
    torch.manual_seed(seed)
    net = _Classifier(x.shape[1:], 10)
    cfg = TrainConfig(steps=steps, batch_size=64, lr=1e-3, val_every=25, patience=20, seed=seed)
    fit(net, (x, y), val, cfg, loss=CrossEntropy())
    return net


def ssvae(steps: int | None, seeds: int = 1) -> dict[str, Any]:
    """M2 with 10% of the labels against the same MLP and a logistic regression on those labels alone.

    With ``seeds > 1`` both networks are trained from that many seeds (the labelled subset stays the same) and the
    accuracies are reported per seed with their mean and standard deviation.
    """
    from sklearn.linear_model import LogisticRegression

    data = load("digits-binary")
    test_y = data.labels["test"]
    val = (data.val, data.labels["val"])
    acc, mlp_acc, nll_nats, train_s = [], [], [], []
    for seed in range(seeds):
        model, row = train_and_score("ssvae", "digits-binary", {}, steps, seed=seed)
        assert isinstance(model, SSVAE)
        x, y = training_data(model, data, "train")
        seen = y >= 0
        acc.append(float((model.predict(data.test) == test_y).float().mean()))
        clf = _classifier_on_labels_alone(x[seen], y[seen], val, steps or 2000, seed=seed)
        with torch.no_grad():
            mlp_acc.append(float((clf.logits(data.test).argmax(-1) == test_y).float().mean()))
        nll_nats.append(row["nll_nats"])
        train_s.append(row["train_s"])
    logreg = LogisticRegression(max_iter=5000).fit(x[seen].flatten(1).numpy(), y[seen].numpy())
    out: dict[str, Any] = {
        "labelled": int(seen.sum()),
        "unlabelled": int((~seen).sum()),
        "seeds": seeds,
        "ssvae_test_accuracy": round(statistics.fmean(acc), 4),
        "mlp_on_labels_alone": round(statistics.fmean(mlp_acc), 4),
        "logistic_regression_on_labels_alone": round(float(logreg.score(data.test.flatten(1).numpy(), test_y)), 4),
        "ssvae_nll_nats": round(statistics.fmean(nll_nats), 4),
        "train_s": round(statistics.fmean(train_s), 1),
    }
    if seeds > 1:
        out["ssvae_per_seed"] = [round(a, 4) for a in acc]
        out["mlp_per_seed"] = [round(a, 4) for a in mlp_acc]
        out["ssvae_sd"] = round(statistics.stdev(acc), 4)
        out["mlp_sd"] = round(statistics.stdev(mlp_acc), 4)
    return out


def uses(steps: int | None) -> dict[str, Any]:
    """Linear probes on the VAE's codes vs pixels; IWAE outlier scores; latent arithmetic judged by a classifier."""
    from sklearn.linear_model import LogisticRegression

    data = load("digits-binary")
    model, _ = train_and_score("vae", "digits-binary", {}, steps)
    assert isinstance(model, VAE)
    ytr, yte = data.labels["train"], data.labels["test"]
    with torch.no_grad():
        ztr, zte = model.encode(data.train)[0], model.encode(data.test)[0]
    g = torch.Generator().manual_seed(0)
    few = torch.randperm(len(ytr), generator=g)[: len(ytr) // 10]
    out: dict[str, Any] = {
        "probe_latent_all_labels": linear_probe(ztr, ytr, zte, yte),
        "probe_pixels_all_labels": linear_probe(data.train, ytr, data.test, yte),
        "probe_latent_10pct_labels": linear_probe(ztr[few], ytr[few], zte, yte),
        "probe_pixels_10pct_labels": linear_probe(data.train[few], ytr[few], data.test, yte),
    }
    pyro.set_rng_seed(0)
    inliers = outlier_scores(model, data.test)
    flipped = data.test.flip(-2)  # upside-down digits
    noise = torch.bernoulli(data.train.mean(0).expand_as(data.test), generator=g)  # the pixel marginals
    corrupted = (data.test + (torch.rand(data.test.shape, generator=g) < 0.1).float()) % 2  # 10% pixels flipped
    for key, x in (("upside_down", flipped), ("pixel_marginal_noise", noise), ("corrupted_10pct", corrupted)):
        out[f"auroc_{key}"] = auroc(inliers, outlier_scores(model, x))
    # latent arithmetic: move every test digit of class a to class b; a pixel classifier judges the result
    clf = LogisticRegression(max_iter=5000).fit(data.train.flatten(1).numpy(), ytr.numpy())
    means = class_means(model, data.train, ytr, classes=10)
    hits, total = 0, 0
    for a in range(10):
        b = (a + 1) % 10
        xa = data.test[yte == a]
        moved = latent_arithmetic(model, xa, means[a], means[b]) > 0.5
        hits += int((torch.as_tensor(clf.predict(moved.flatten(1).float().numpy())) == b).sum())
        total += len(xa)
    out["arithmetic_to_next_class_rate"] = hits / total
    # imputation: the bottom half of every test digit from its top half (pseudo-Gibbs), pixel accuracy
    top = torch.zeros(1, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    torch.manual_seed(0)
    _, mean = impute(model, data.test, top, steps=200, burn_in=50)
    bottom = data.test[:, :, 4:]
    out["impute_bottom_half_pixel_accuracy"] = float(((mean[:, :, 4:] > 0.5).float() == bottom).float().mean())
    marginal = (data.train[:, :, 4:].mean(0) > 0.5).float()  # the best guess that ignores the top half
    out["impute_pixel_marginal_accuracy"] = float((marginal.expand_as(bottom) == bottom).float().mean())
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def gap(steps: int | None, n: int = 20, quick: bool = False) -> dict[str, Any]:
    model, _ = train_and_score("vae", "digits-binary", {}, steps)
    x = load("digits-binary").test[:n]
    t = time.perf_counter()
    out = amortization_gap(
        model, x, k=5000, num_samples=50 if quick else 300, warmup_steps=50 if quick else 300, local_steps=1000
    )
    out.pop("idata")
    out["seconds"] = round(time.perf_counter() - t, 1)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


#: The rows of section ``seeds``: two-level models trained from several seeds.
SEED_MODELS = (
    "hvae (16 + 8 latents)",
    "ladder-vae (16 + 8 latents)",
    "ladder-vae without free bits",
    "ladder-vae, KL warm-up over 500 steps",
)


def seeds_section(steps: int | None, seeds: int, models: list[str] | None = None) -> list[dict[str, Any]]:
    """The hierarchical and ladder VAEs' test NLL and active units per level, each trained from ``seeds`` seeds
    (one row per model and seed)."""
    rows = []
    test = load("digits-binary").test
    for name, registered, kwargs in NLL_MODELS:
        if name not in SEED_MODELS or (models and registered not in models):
            continue
        for seed in range(seeds):
            model, row = train_and_score(name, "digits-binary", kwargs, steps, seed, registry_name=registered)
            row |= {"seed": seed, "active_units_per_level": model.active_units_per_level(test)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


SECTIONS = ("nll", "decoders", "beta", "ssvae", "uses", "gap", "seeds")


def run(quick: bool, only: list[str] | None, models: list[str] | None = None, seeds: int = 1) -> dict[str, Any]:
    steps = 30 if quick else None
    out: dict[str, Any] = {}
    for section in only or SECTIONS:
        if section == "nll":
            rows = nll(steps, models)
            keep(out, "nll", merged_rows(previous_rows("nll"), rows) if models else rows)
        elif section == "decoders":
            keep(out, "decoders", decoders(steps))
        elif section == "beta":
            keep(out, "beta", beta(steps))
        elif section == "ssvae":
            keep(out, "ssvae", ssvae(steps, seeds))
        elif section == "uses":
            keep(out, "uses", uses(steps))
        elif section == "gap":
            keep(out, "gap", gap(steps, quick=quick))
        elif section == "seeds":
            rows = seeds_section(steps, seeds, models)
            keep(out, "seeds", merged_rows(previous_rows("seeds"), rows, ("model", "seed")) if models else rows)
    return out


def _print(out: dict[str, Any]) -> None:
    if "nll" in out:
        print("binarized digits, test NLL in nats (IWAE, k = 1000)")
        for r in out["nll"]:
            print(
                f"  {r['model']:<30}{r['nll_nats']:>8.2f} ± {r['nll_stderr']:.2f}   active units {r['active_units']:>2}"
                f"   best step {r['best_step']}, {r['train_s']} s"
            )
        print("  floors: " + "; ".join(f"{k} {v}" for k, v in FLOORS.items()))
        best = min((r["nll_nats"], r["model"]) for r in out["nll"] if not r["model"].startswith("cvae"))
        print(f"  best model of p(x): {best[1]}, {best[0]:.2f} nats (target: at most 17.0; the CVAE scores p(x | y))")
    if "decoders" in out:
        print("other decoders: test NLL (IWAE-1000), bits/dim (dequantized digits include log2 17)")
        for r in out["decoders"]:
            print(
                f"  {r['model']:<34}{r['data']:<12}{r['nll_nats']:>9.2f} nats {r['bits_per_dim']:>7.3f} bits/dim"
                f"   active units {r['active_units']}"
            )
    if "beta" in out:
        print("rate-distortion on the test digits (nats): rate = KL(q || p), distortion = -E_q log p(x | z)")
        print(f"  {'beta':>6}{'rate':>9}{'distortion':>12}{'ELBO':>9}{'IWAE NLL':>10}{'active':>8}")
        for r in out["beta"]:
            print(
                f"  {r['beta']:>6}{r['rate_nats']:>9.2f}{r['distortion_nats']:>12.2f}{r['elbo_nats']:>9.2f}"
                f"{r['nll_nats']:>10.2f}{r['active_units']:>8}"
            )
    if "ssvae" in out:
        s = out["ssvae"]
        spread = f" (sd {s['ssvae_sd']:.3f} and {s['mlp_sd']:.3f} over {s['seeds']} seeds)" if s["seeds"] > 1 else ""
        print(
            f"semi-supervised, {s['labelled']} labels of {s['labelled'] + s['unlabelled']}: SSVAE test accuracy "
            f"{s['ssvae_test_accuracy']:.3f}; the same MLP on the labels alone {s['mlp_on_labels_alone']:.3f}{spread}; "
            f"logistic regression on them {s['logistic_regression_on_labels_alone']:.3f}"
        )
    if "uses" in out:
        u = out["uses"]
        print(
            f"linear probe, test accuracy: codes {u['probe_latent_all_labels']:.3f} vs pixels "
            f"{u['probe_pixels_all_labels']:.3f} (all labels); codes {u['probe_latent_10pct_labels']:.3f} vs pixels "
            f"{u['probe_pixels_10pct_labels']:.3f} (10% labels)"
        )
        print(
            f"outlier AUROC of the IWAE score: upside-down {u['auroc_upside_down']:.3f}, pixel-marginal noise "
            f"{u['auroc_pixel_marginal_noise']:.3f}, 10% pixels flipped {u['auroc_corrupted_10pct']:.3f}"
        )
        rate = u["arithmetic_to_next_class_rate"]
        print(f"latent arithmetic a -> a+1: a pixel classifier reads the new class {rate:.3f}")
        print(
            f"imputing the bottom half from the top half: pixel accuracy {u['impute_bottom_half_pixel_accuracy']:.3f}"
            f" (per-pixel majority of the training digits {u['impute_pixel_marginal_accuracy']:.3f})"
        )
    if "seeds" in out:
        _print_seeds(out["seeds"])
    if "gap" in out:
        g = out["gap"]
        print(
            f"amortization gap on {g['n']} test digits (nats): log p(x) {g['log_px']:.2f} (IWAE-{g['k']}), "
            f"optimized Gaussian ELBO {g['elbo_optimized']:.2f}, amortized ELBO {g['elbo_amortized']:.2f}: "
            f"approximation gap {g['approximation_gap']:.2f}, amortization gap {g['amortization_gap']:.2f}"
        )
        print(
            f"  NUTS on z (2 chains): max R-hat {g['r_hat_max']:.3f}, min bulk ESS {g['ess_bulk_min']:.0f}, "
            f"{g['divergences']} divergences; posterior-mean distance in posterior sds: amortized "
            f"{g['rms_mean_amortized']:.2f}, optimized {g['rms_mean_optimized']:.2f}; scale / posterior sd: "
            f"amortized {g['scale_ratio_amortized']:.2f}, optimized {g['scale_ratio_optimized']:.2f}; {g['seconds']} s"
        )


def _print_seeds(rows: list[dict[str, Any]]) -> None:
    print("two-level VAEs from several seeds: test NLL (IWAE-1000), active units per level")
    for name in SEED_MODELS:
        mine = [r for r in rows if r["model"] == name]
        if mine:
            nlls = [r["nll_nats"] for r in mine]
            spread = f" (sd {statistics.stdev(nlls):.2f})" if len(nlls) > 1 else ""
            per = ", ".join(f"{r['nll_nats']:.2f} {r['active_units_per_level']}" for r in mine)
            print(f"  {name:<32} mean {statistics.mean(nlls):.2f}{spread}: {per}")


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument(
        "--models", nargs="+", choices=sorted({r for _, r, _ in NLL_MODELS}), help="nll: only rows of these models"
    )
    p.add_argument("--seeds", type=int, default=1, help="ssvae, seeds: train from this many seeds (mean and sd)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be a positive integer; got {args.seeds}")
    out = run(args.quick, args.only, args.models, args.seeds)  # some models' rows again: the others are kept
    return report(out, args.json, _print)


if __name__ == "__main__":
    sys.exit(main())
