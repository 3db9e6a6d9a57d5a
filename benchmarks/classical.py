"""The classical models' numbers: RBMs on the binarized digits, naive Bayes against logistic regression, Gaussian
mixtures by EM, SVI and NUTS, and the student network's tables learned back.

Sections (``--only``):

- ``rbm``: test NLL (nats) on the binarized digits of RBMs from the registered defaults (6000 steps, early
  stopping on the validation NLL / pseudo-likelihood): 16 hidden units with log Z by enumeration, trained by CD-1
  and by PCD-1; 64 hidden units (CD-1) with log Z by AIS (2000 temperatures, 200
  chains) and its standard error; the fully visible BM (CD-1, 3000 steps) with log Z by AIS (500 temperatures);
  the two-layer DBM (64 and 16 hidden units; two layer-wise pre-training phases, then mean-field + PCD jointly)
  with log Z by AIS over its first layer and log p*(v) exact (the second layer enumerated).
- ``dbm-cost``: what scoring the default 64-16 DBM costs on one thread (independent of its weights): seconds
  per test digit of the exact log p*(v) (2^16 states of h2 enumerated, h1 summed out: 2^16 x 64 softplus terms a
  digit; no cheaper exact route exists, since either layer must be enumerated and h2 is the smaller), with and
  without gradients, and the seconds of one AIS estimate of log Z (2000 temperatures, 200 chains) and of
  ``evaluate_nll`` on the 360 test digits.
- ``naive-bayes``: test accuracy of Bernoulli naive Bayes (counts, Laplace smoothing) and of logistic regression
  (scikit-learn, L2, C = 1) on the binarized digits -- all ten classes, and the two-class 3-against-8 subset --
  against the number of training examples (Ng and Jordan, 2002); and on all ten classes with a random fraction
  of each test digit's pixels missing: naive Bayes sums them out, logistic regression sees them imputed by the
  training mean.
- ``gmm``: Gaussian mixtures fit by EM (``fit_em``), by gradient on the exact likelihood (SVI with the assignment
  enumerated; the trainer's defaults) and, on 8gaussians, by NUTS (diagonal covariances, 1000 points, 200 + 200
  draws in 2 chains; the posterior predictive test log-likelihood): on 8gaussians (8 components), on the other
  seven toys (16 components, EM and SVI; next to the best possible value, minus the entropy), on the
  dequantized digits (10 components, full covariance, bits/dim; the covariance
  regularization ``reg`` chosen on the validation split from 1e-6, 1e-4, 1e-3, 1e-2, the sweep printed) and on
  scikit-learn's wine data (13 standardized features, 3 components, a 70/30 split): test log-likelihood and
  seconds to fit.
- ``kde``: Gaussian kernel density estimates on the eight toys (30,000 training points each) and the dequantized
  digits: the held-out (validation) and test log-likelihood with the bandwidth of Scott's rule, Silverman's rule,
  and trained by ``fit`` (the leave-one-out likelihood, the registered defaults, the best validation point kept),
  next to the best possible value on the toys (minus the entropy); on the digits also with one bandwidth per
  pixel, and in bits/dim with the log2 17 dequantization correction.
- ``hmm``: character HMMs on the bundled text (128-character examples, 160 symbols) with 32 and 128 hidden
  states, trained by Baum-Welch (150 iterations from the symbols' frequencies and random transitions, seed 0):
  test bits per character, next to the add-one unigram and bigram on the same text, and seconds per EM
  iteration.
- ``bayes-net``: the student network's tables learned from the 2000 ``student`` rows by counts, and with a
  third of the grades missing by EM and by gradient steps on the marginal likelihood: the largest error against
  the generating tables, and the gradient route's distance to EM's tables.

    python benchmarks/classical.py --json        # everything (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import keep, report, section_parser  # noqa: E402
from gan import train  # noqa: E402

from pyrogen.data import load  # noqa: E402
from pyrogen.metrics import evaluate_nll  # noqa: E402
from pyrogen.models import registry

SECTIONS = ("rbm", "dbm-cost", "naive-bayes", "gmm", "kde", "hmm", "bayes-net")


def rbm(steps: int | None) -> list[dict[str, Any]]:
    data = load("digits-binary")
    rows = []
    for label, opts in (
        ("rbm 16 hidden, CD-1 (exact log Z)", {"hidden": 16, "objective": "cd"}),
        ("rbm 16 hidden, PCD-1 (exact log Z)", {"hidden": 16, "objective": "pcd"}),
        ("rbm 64 hidden, CD-1 (log Z by AIS)", {"hidden": 64, "objective": "cd"}),
        ("bm fully visible, CD-1 (log Z by AIS)", {"name": "bm"}),
        ("dbm 64-16, layer-wise pre-training only (4000 steps)", {"name": "dbm", "steps": 4000}),
        ("dbm 64-16, pre-trained, mean field + PCD-1 (log Z by AIS)", {"name": "dbm"}),
    ):
        opts = dict(opts)
        run_steps = steps if steps is not None else opts.pop("steps", None)
        opts.pop("steps", None)
        model, row = train(opts.pop("name", "rbm"), "digits-binary", opts, run_steps)
        pyro.set_rng_seed(0)
        t = time.perf_counter()
        nll = evaluate_nll(model, data.test)
        extra = model.evaluation_metrics(data.test)
        rows.append(
            {
                "variant": label,
                **row,
                "nll_nats": round(nll.nll_nats, 3),
                "nll_stderr": round(nll.nll_stderr, 3),
                **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in extra.items()},
                "eval_s": round(time.perf_counter() - t, 1),
            }
        )
    return rows


def dbm_cost(quick: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    model = registry.from_dataset("dbm", load("digits-binary"))
    v = model._flat(load("digits-binary").test[: 8 if quick else 64].float())
    out: dict[str, Any] = {"digits": len(v), "states": 2 ** model.hidden[1], "units": model.hidden[0]}
    with torch.no_grad():
        t = time.perf_counter()
        model.unnormalized_log_prob(v)
        out["log_p_star_s_per_digit"] = round((time.perf_counter() - t) / len(v), 4)
    t = time.perf_counter()
    model.unnormalized_log_prob(v).sum().backward()
    out["log_p_star_with_gradient_s_per_digit"] = round((time.perf_counter() - t) / len(v), 4)
    if quick:
        model.ais_temps = 50
    t = time.perf_counter()
    with torch.no_grad():
        model.log_normalizer()
    out["ais_log_z_s"] = round(time.perf_counter() - t, 2)
    out["ais_temps"], out["ais_chains"] = model.ais_temps, model.ais_chains
    test = load("digits-binary").test[: 8 if quick else None]
    t = time.perf_counter()
    evaluate_nll(model, test)  # what `pyrogen evaluate` pays for the test NLL (log Z is cached by then)
    out["evaluate_nll_s"], out["evaluate_nll_digits"] = round(time.perf_counter() - t, 2), len(test)
    return out


def naive_bayes() -> dict[str, Any]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from pyrogen.models import NaiveBayes

    data = load("digits-binary")
    xtr, ytr = data.train.flatten(1), data.labels["train"]
    xte, yte = data.test.flatten(1), data.labels["test"]

    def both(x, y, xt, yt, classes):
        nb = NaiveBayes((64,), classes=classes).fit_counts(x, y)
        nb_acc = float((nb.predict(xt) == yt).float().mean())
        lr = LogisticRegression(max_iter=5000).fit(x.numpy(), y.numpy())
        return nb_acc, float(lr.score(xt.numpy(), yt.numpy()))

    out: dict[str, Any] = {"by_training_size": [], "by_missing_fraction": []}
    g = torch.Generator().manual_seed(0)
    two = ((ytr == 3) | (ytr == 8)), ((yte == 3) | (yte == 8))
    for task, (x, y, xt, yt, k) in (
        ("ten classes", (xtr, ytr, xte, yte, 10)),
        ("3 against 8", (xtr[two[0]], (ytr[two[0]] == 8).long(), xte[two[1]], (yte[two[1]] == 8).long(), 2)),
    ):
        for n in (20, 50, 100, 200, 500, len(x)):
            n = min(n, len(x))
            accs = []
            for _rep in range(5):  # five random training subsets each (every class present)
                while True:
                    idx = torch.randperm(len(x), generator=g)[:n]
                    if len(torch.unique(y[idx])) == k:
                        break
                accs.append(both(x[idx], y[idx], xt, yt, k))
            nb_m, lr_m = np.mean([a[0] for a in accs]), np.mean([a[1] for a in accs])
            out["by_training_size"].append(
                {
                    "task": task,
                    "n_train": n,
                    "naive_bayes": round(float(nb_m), 4),
                    "logistic_regression": round(float(lr_m), 4),
                }
            )
    nb = NaiveBayes((64,), classes=10).fit_counts(xtr, ytr)
    lr = LogisticRegression(max_iter=5000).fit(xtr.numpy(), ytr.numpy())
    mean = xtr.mean(0)
    for frac in (0.0, 0.25, 0.5, 0.75, 0.9):
        observed = torch.rand(xte.shape, generator=g) >= frac
        nb_acc = float((nb.predict(xte, observed) == yte).float().mean())
        imputed = torch.where(observed, xte, mean)
        out["by_missing_fraction"].append(
            {
                "missing": frac,
                "naive_bayes_marginalized": round(nb_acc, 4),
                "logistic_regression_mean_imputed": round(float(lr.score(imputed.numpy(), yte.numpy())), 4),
            }
        )
    return out


def gmm(steps: int | None, quick: bool) -> list[dict[str, Any]]:
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    from pyrogen.data import Dataset
    from pyrogen.inference import TrainConfig, fit
    from pyrogen.models import GaussianMixture
    from pyrogen.models.mixture import posterior_predictive_log_prob

    x, _ = load_wine(return_X_y=True)
    xtr, xte = train_test_split(x, test_size=0.3, random_state=0)
    mu, sd = xtr.mean(0), xtr.std(0)
    wine = Dataset(
        "wine",
        "vector",
        torch.tensor((xtr - mu) / sd, dtype=torch.float32),
        torch.tensor((xte - mu) / sd, dtype=torch.float32),
        torch.tensor((xte - mu) / sd, dtype=torch.float32),
        "real",
    )
    rows: list[dict[str, Any]] = []
    digits = load("digits")
    sweep = {}
    for reg in (1e-6, 1e-4, 1e-3, 1e-2):  # the covariance regularization, chosen on the validation split
        torch.manual_seed(0)
        m = registry.from_dataset(GaussianMixture, digits, components=10, reg=reg)
        m.fit_em(digits.train, iters=5 if quick else 300, tol=1e-7)
        with torch.no_grad():
            sweep[reg] = float(m.log_prob(digits.val).mean())
    best_reg = max(sweep, key=sweep.__getitem__)
    rows.append(
        {"data": "digits", "reg_sweep_val_loglik": {str(k): round(v, 3) for k, v in sweep.items()}, "reg": best_reg}
    )
    from pyrogen.data.toys import TOY_ENTROPY, TOYS

    others = [(load(t), 16, "full") for t in TOYS if t != "8gaussians"]
    for data, k, cov in [(load("8gaussians"), 8, "full"), *others, (digits, 10, "full"), (wine, 3, "full")]:
        d = math.prod(data.event_shape)
        for method in ("em", "svi") + (("nuts",) if data.name == "8gaussians" else ()):
            torch.manual_seed(0)
            pyro.set_rng_seed(0)
            reg = best_reg if data.name == "digits" else 1e-6
            model = registry.from_dataset(
                GaussianMixture, data, components=k, covariance=cov if method != "nuts" else "diag", reg=reg
            )
            t = time.perf_counter()
            if method == "em":
                model.fit_em(data.train, iters=5 if quick else 300, tol=1e-7)
            elif method == "svi":
                cfg = {**registry.recipe_of(GaussianMixture).train_defaults_for(data), "seed": 0}
                if steps is not None:
                    cfg["steps"] = steps
                fit(model, data.train, data.val, TrainConfig(**cfg))
            else:
                n = 200 if quick else 1000
                idata = model.nuts(data.train[:n], num_samples=20 if quick else 200, warmup_steps=20 if quick else 200)
            seconds = time.perf_counter() - t
            with torch.no_grad():
                if method == "nuts":  # the posterior predictive density (no relabelling needed)
                    ll = float(posterior_predictive_log_prob(idata, data.test).mean())
                else:
                    ll = float(model.log_prob(data.test).mean())
            row = {
                "data": data.name,
                "components": k,
                "method": method,
                "test_loglik_nats": round(ll, 3),
                "fit_s": round(seconds, 1),
            }
            if data.name in TOYS:
                row["best_possible_nats"] = -TOY_ENTROPY[data.name]
            if data.name == "digits":
                row["bits_per_dim"] = round(-ll / (d * math.log(2)) + math.log2(17), 4)
            rows.append(row)
    return rows


def bayes_net(steps: int | None) -> dict[str, Any]:
    from pyrogen.data.networks import STUDENT
    from pyrogen.inference import fit
    from pyrogen.models import BayesNet

    data = load("student")
    truth = [torch.tensor(nd["table"]) for nd in STUDENT]
    counts = registry.from_dataset(BayesNet, data).fit_counts(data.train)
    x = data.train.clone()
    g = torch.Generator().manual_seed(0)
    x[torch.rand(len(x), generator=g) < 1 / 3, 2] = -1
    pyro.set_rng_seed(0)
    incomplete = registry.from_dataset(BayesNet, data)
    fit(incomplete, x, None, steps=steps or 400, batch_size=500, lr=0.05)

    em = registry.from_dataset(BayesNet, data).double()
    history = em.fit_em(x, iters=500, tol=1e-10)

    def err(m: Any) -> float:
        return round(max(float((a - b).abs().max()) for a, b in zip(m.tables(), truth, strict=True)), 4)

    def gap(m: Any) -> float:  # to EM's tables (the maximum of the marginal likelihood EM climbs to)
        return round(max(float((a - b).abs().max()) for a, b in zip(m.tables(), em.tables(), strict=True)), 4)

    with torch.no_grad():
        ll = float(counts.log_prob(data.test).mean())
    return {
        "counts_max_table_error": err(counts),
        "missing_grades_max_table_error": err(incomplete),
        "missing_grades_em_max_table_error": err(em),
        "missing_grades_gradient_gap_to_em": gap(incomplete),
        "missing_grades_em_iterations": len(history) - 1,
        "test_loglik_nats": round(ll, 4),
        "intelligence_given_bad_grade": round(float(counts.query("intelligence", {"grade": 2})[1]), 4),
    }


def kde(steps: int | None) -> list[dict[str, Any]]:
    from pyrogen.data.toys import TOY_ENTROPY, TOYS
    from pyrogen.inference import fit
    from pyrogen.models import KernelDensity

    rows = []
    for name in (*TOYS, "digits"):
        data = load(name)
        variants: list[tuple[str, dict[str, Any], bool]] = [
            ("scott", {"bandwidth": "scott"}, False),
            ("silverman", {"bandwidth": "silverman"}, False),
            ("cross-validated", {"bandwidth": "scott"}, True),
        ]
        if name == "digits":
            variants.append(("cross-validated, per pixel", {"bandwidth": "scott", "per_dimension": True}, True))
        for label, opts, trained in variants:
            torch.manual_seed(0)
            m = registry.from_dataset(KernelDensity, data, **opts)
            t = time.perf_counter()
            if trained:
                fit(m, data, **({"steps": steps} if steps is not None else {}))
            seconds = time.perf_counter() - t
            with torch.no_grad():
                val = float(m.log_prob(data.val).mean())
            res = evaluate_nll(m, data.test, levels=17 if name == "digits" else None)
            row = {
                "data": name,
                "bandwidth": label,
                "h": [round(v, 4) for v in m.bandwidth().tolist()][:4],
                "val_loglik_nats": round(val, 4),
                "test_nll_nats": round(res.nll_nats, 4),
                "test_nll_stderr": round(res.nll_stderr, 4),
                "seconds_to_fit": round(seconds, 1),
            }
            if name in TOY_ENTROPY:
                row["best_possible_nll"] = TOY_ENTROPY[name]
            if res.bits_per_dim is not None:
                row["bits_per_dim"] = round(res.bits_per_dim, 4)
            rows.append(row)
    return rows


def hmm(quick: bool) -> dict[str, Any]:
    from autoregressive import ngram_bits_per_char

    text = load("text")
    rows = []
    for states in (32, 128):
        torch.manual_seed(0)
        m = registry.from_dataset("hmm", text, states=states)
        with torch.no_grad():
            m.trans_logits.normal_()  # random transitions: EM cannot leave a symmetric start
        t = time.perf_counter()
        history = m.fit_em(text.train, iters=3 if quick else 150, tol=1e-4)
        seconds = time.perf_counter() - t
        with torch.no_grad():
            nll = float(-m.log_prob(text.test).mean())
        rows.append(
            {
                "states": states,
                "em_iterations": len(history) - 1,
                "test_bits_per_char": round(nll / (text.event_shape[0] * math.log(2)), 4),
                "seconds_per_iteration": round(seconds / max(len(history) - 1, 1), 2),
            }
        )
    return {"hmm": rows, "unigram": round(ngram_bits_per_char(1), 4), "bigram": round(ngram_bits_per_char(2), 4)}


def _print(out: dict[str, Any]) -> None:
    for r in out.get("rbm", []):
        z = f"log Z {r.get('log_z')} ({r.get('log_z_method')})"
        print(f"{r['variant']:<36} NLL {r['nll_nats']} ± {r['nll_stderr']}  {z}")
    if "dbm-cost" in out:
        print("dbm-cost", out["dbm-cost"])
    nb = out.get("naive-bayes")
    if nb:
        for r in nb["by_training_size"]:
            print(f"{r['task']:<12} n={r['n_train']:<5} NB {r['naive_bayes']:.3f}  LR {r['logistic_regression']:.3f}")
        for r in nb["by_missing_fraction"]:
            nb_acc, lr_acc = r["naive_bayes_marginalized"], r["logistic_regression_mean_imputed"]
            print(f"missing {r['missing']:.2f}: NB {nb_acc:.3f}  LR {lr_acc:.3f}")
    for r in out.get("gmm", []):
        print(r)
    for r in out.get("kde", []):
        print(r)
    if "hmm" in out:
        print(out["hmm"])
    if "bayes-net" in out:
        print(out["bayes-net"])


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    args = p.parse_args(argv)
    steps = 30 if args.quick else None
    only = set(args.only or SECTIONS)
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    if "rbm" in only:
        keep(out, "rbm", rbm(steps))
    if "dbm-cost" in only:
        keep(out, "dbm-cost", dbm_cost(args.quick))
    if "naive-bayes" in only:
        keep(out, "naive-bayes", naive_bayes())
    if "gmm" in only:
        keep(out, "gmm", gmm(steps, args.quick))
    if "kde" in only:
        keep(out, "kde", kde(steps))
    if "hmm" in only:
        keep(out, "hmm", hmm(args.quick))
    if "bayes-net" in only:
        keep(out, "bayes-net", bayes_net(steps))
    return report(out, args.json, _print)


if __name__ == "__main__":
    raise SystemExit(main())
