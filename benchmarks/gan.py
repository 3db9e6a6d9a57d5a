"""The GAN family's numbers: every loss on the toys and the digits, cGAN, BiGAN, CycleGAN, completion, speed.

Sections (``--only``):

- ``toys``: every loss variant on 8gaussians, 2spirals and moons (from its registered defaults): MMD², C2ST and,
  on 8gaussians, modes covered and the high-quality rate (VEEGAN's protocol).
- ``digits``: every variant and cGAN on the grey digits (DCGAN networks): FID, KID, precision, recall, IS on
  the shipped feature network, 360 samples against the 360 test digits — the units of ``benchmarks/quality.py``.
- ``uses``: cGAN samples judged by the feature network's classifier (does a sample carry its label?); the
  BiGAN encoder as a representation (linear probe, next to the pixels); CycleGAN digits -> negatives and -> transposes
  (does a classifier of the target domain read the source label; how well does F(G(x)) reconstruct x); the
  bottom half of test digits completed through a trained generator by NUTS (two chains, R-hat) and by SVI.
- ``speed``: one WGAN-GP training step (five critic steps and a generator step, DCGAN networks, batch 64)
  of pyrogen's trainer against a hand-written PyTorch loop of the same networks, losses and optimizers.

    python benchmarks/gan.py --json            # everything (about 25 minutes on 2 cores with --jobs 2)
    python benchmarks/gan.py --only toys --jobs 2
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import keep, report, section_parser  # noqa: E402

from pyrogen import quality  # noqa: E402
from pyrogen.data import load  # noqa: E402
from pyrogen.runs import train_run  # noqa: E402

SECTIONS = ("toys", "digits", "uses", "speed")
#: The loss variants: (label, registered name, options).
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("gan", "gan", {}),
    ("ns-gan", "ns-gan", {}),
    ("kl-gan", "kl-gan", {}),
    ("wgan", "wgan", {}),
    ("wgan-gp", "wgan-gp", {}),
    ("fgan kl", "fgan", {"divergence": "kl"}),
    ("fgan reverse-kl", "fgan", {"divergence": "reverse-kl"}),
    ("fgan hellinger", "fgan", {"divergence": "hellinger"}),
    ("fgan pearson", "fgan", {"divergence": "pearson"}),
]
TOYS = ("8gaussians", "2spirals", "moons")


def _round(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict) and "value" in v:
            out[k] = round(float(v["value"]), 4)
            out[k + "_ci"] = [round(float(c), 4) for c in v["ci"]]
        else:
            out[k] = v
    return out


def train(
    name: str, data_name: str, options: dict[str, Any], steps: int | None, seed: int = 0, evaluate: bool = False
) -> tuple[Any, dict]:
    """Train ``name`` on ``data_name`` from its registered defaults, as ``pyrogen train`` does (the same code,
    :func:`pyrogen.runs.train_run`, so the same seed gives the CLI's model); ``(model, row)`` with the steps,
    the time and, with ``evaluate``, what ``pyrogen evaluate`` prints for the run."""
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        model, _, metrics = train_run(
            name, data_name, out, steps=steps, seed=seed, model_kwargs=options, evaluate=evaluate
        )
        secs = time.perf_counter() - t
        history = json.loads((Path(out) / "history.json").read_text())
    model.eval()
    row = {"steps": history[-1]["step"] if history else 0, "train_s": round(secs, 1)}
    return model, {**row, **metrics}


def _quality_job(
    label: str, name: str, options: dict[str, Any], data_name: str, steps: int | None, seed: int = 0
) -> dict:
    """One row: the model ``pyrogen train NAME --data DATA --seed SEED`` trains, with the sample quality
    ``pyrogen evaluate`` prints for it."""
    torch.set_num_threads(1)
    _, row = train(name, data_name, options, steps, seed, evaluate=True)
    keep = ("steps", "train_s", "modes", "high_quality", "fid", "kid", "precision", "recall")
    keep += ("inception_score", "mmd", "c2st")
    return {"variant": label, "data": data_name, "seed": seed, **_round({k: v for k, v in row.items() if k in keep})}


def _pool(jobs: int, tasks: list[tuple], job: Any = None) -> list[dict]:
    """``job(*task)`` for every task (default: the quality job here), ``jobs`` processes at once."""
    job = job or _quality_job
    if jobs <= 1:
        return [job(*t) for t in tasks]
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(job, *zip(*tasks, strict=True)))


def toys(steps: int | None, jobs: int, seeds: tuple[int, ...] = (0,)) -> list[dict]:
    tasks = [(label, name, opts, d, steps, s) for d in TOYS for label, name, opts in VARIANTS for s in seeds]
    return _pool(jobs, tasks)


def digits(steps: int | None, jobs: int, variants: list[str] | None = None) -> list[dict]:
    tasks = [(label, name, opts, "digits", steps) for label, name, opts in VARIANTS]
    tasks += [
        ("ns-gan without EMA", "ns-gan", {"ema": None}, "digits", steps),
        ("cgan", "cgan", {}, "digits", steps),
        ("bigan", "bigan", {}, "digits", steps),
    ]
    return _pool(jobs, [t for t in tasks if variants is None or t[0] in variants])


def _cgan_use(steps: int | None) -> dict[str, Any]:
    model, row = train("cgan", "digits", {}, steps)
    pyro.set_rng_seed(0)
    per_label = []
    for y in range(10):
        _, probs = quality.image_features(model.sample(100, y=y), "unit_interval")
        per_label.append(float((probs.argmax(-1) == y).float().mean()))
    return {"cgan_label_agreement": round(sum(per_label) / 10, 4), "cgan_per_label": [round(a, 3) for a in per_label]}


def _bigan_use(steps: int | None) -> dict[str, Any]:
    from pyrogen.metrics import linear_probe

    model, _ = train("bigan", "digits", {}, steps)
    data = load("digits")
    ytr, yte = data.labels["train"], data.labels["test"]
    ztr, zte = model.encode(data.train), model.encode(data.test)
    with torch.no_grad():
        z = torch.randn(1000, model.latent_dim)
        rec = model.encode(model.generate(z))
    err = float(((rec - z) ** 2).mean())
    shuffled = float(((rec - z[torch.randperm(1000)]) ** 2).mean())
    return {
        "bigan_probe_codes": round(linear_probe(ztr, ytr, zte, yte), 4),
        "bigan_probe_pixels": round(linear_probe(data.train, ytr, data.test, yte), 4),
        "bigan_inversion_mse": round(err, 4),
        "bigan_inversion_mse_shuffled": round(shuffled, 4),
    }


def _cyclegan_use(steps: int | None, domain_b: str = "invert") -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    model, _ = train("cyclegan", "digits", {"domain_b": domain_b}, steps)
    data = load("digits")
    ytr, yte = data.labels["train"].numpy(), data.labels["test"].numpy()
    target = LogisticRegression(max_iter=5000).fit(model.to_domain_b(data.train).flatten(1).numpy(), ytr)

    def acc(x: torch.Tensor) -> float:
        return round(float((target.predict(x.flatten(1).numpy()) == yte).mean()), 4)

    translated = model.translate(data.test)
    back = model.translate_back(translated)
    key = f"cyclegan_{domain_b}"
    return {
        f"{key}_target_classifier_on_translations": acc(translated),
        f"{key}_target_classifier_on_true_domain_b": acc(model.to_domain_b(data.test)),
        f"{key}_target_classifier_on_untranslated": acc(data.test),
        f"{key}_cycle_l1": round(float((back - data.test).abs().mean()), 4),
        f"{key}_translation_l1_to_true_domain_b": round(
            float((translated - model.to_domain_b(data.test)).abs().mean()), 4
        ),
    }


def _cyclegan_uses(steps: int | None) -> dict[str, Any]:
    """Digits to negatives (the default, an appearance change) and to transposes (a geometric one)."""
    return {**_cyclegan_use(steps, "invert"), **_cyclegan_use(steps, "transpose")}


def _completion_use(steps: int | None, quick: bool) -> dict[str, Any]:
    from pyrogen import diagnostics
    from pyrogen.latent import generator_posterior

    model, _ = train("ns-gan", "digits", {}, steps)
    binary = load("digits-binary")
    top = torch.zeros(1, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    n = 10 if quick else 20
    x = binary.test[:n]
    out: dict[str, Any] = {"completion_digits_nuts": n}
    t = time.perf_counter()
    nuts = generator_posterior(
        model, x, top, "nuts", num_chains=2, num_samples=20 if quick else 150, warmup_steps=20 if quick else 150
    )
    out["completion_nuts_s"] = round(time.perf_counter() - t, 1)
    table = diagnostics.summary(nuts.idata)
    out["completion_nuts_max_rhat"] = round(float(table["r_hat"].max()), 3)
    out["completion_nuts_min_ess_bulk"] = round(float(table["ess_bulk"].min()), 1)
    out["completion_nuts_divergences"] = int(nuts.idata.sample_stats["diverging"].values.sum())

    def accuracy(mean: torch.Tensor, truth: torch.Tensor) -> float:
        return round(float(((mean[:, :, 4:] > 0.5).float() == truth[:, :, 4:]).float().mean()), 4)

    out["completion_nuts_pixel_accuracy"] = accuracy(nuts.mean, x)
    svi = generator_posterior(model, x, top, "svi", svi_steps=100 if quick else 1000, num_samples=100)
    out["completion_svi_pixel_accuracy"] = accuracy(svi.mean, x)
    svi_all = generator_posterior(model, binary.test, top, "svi", svi_steps=100 if quick else 1000, num_samples=100)
    out["completion_svi_pixel_accuracy_all_test"] = accuracy(svi_all.mean, binary.test)
    return out


USES = ("cgan", "bigan", "cyclegan", "completion")


def uses(steps: int | None, quick: bool, which: list[str] | None = None) -> dict[str, Any]:
    parts = {
        "cgan": lambda: _cgan_use(steps),
        "bigan": lambda: _bigan_use(steps),
        "cyclegan": lambda: _cyclegan_uses(steps),
        "completion": lambda: _completion_use(steps, quick),
    }
    out: dict[str, Any] = {}
    for name in which or USES:
        out.update(parts[name]())
        print(f"{name}: {out}", file=sys.stderr, flush=True)  # progress, as each part finishes
    return out


def speed(rounds: int, steps: int) -> dict[str, Any]:
    import run as step_bench  # benchmarks/run.py

    return step_bench.wgan_gp_digits_row(rounds, steps)


def _print(out: dict[str, Any]) -> None:
    """The GAN page's tables (markdown) and the other sections' numbers."""
    from pages import gan_digits, gan_toys  # the tables the GAN page shows, from these rows

    if "toys" in out:
        print(gan_toys({"gan": {"toys": out["toys"]}}))
    if "digits" in out:
        print(gan_digits({"gan": {"digits": out["digits"]}}))
    if "uses" in out:
        print()
        for k, v in out["uses"].items():
            print(f"{k}: {v}")
    if "speed" in out:
        s = out["speed"]
        print(
            f"\nspeed {s['name']}: pyrogen {s['pyrogen_ms']} ms, torch {s['reference_ms']} ms, ratio {s['ratio']}"
            f" (target {s['target']}; for-loop Adam {s['unfused_ratio']})"
        )


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument("--steps", type=int, help="training steps per model (default: the registered defaults)")
    p.add_argument("--jobs", type=int, default=2, help="models trained at once (one thread each)")
    p.add_argument("--uses", nargs="+", choices=USES, help="only these parts of the uses section")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the toys section (spread over them)")
    p.add_argument("--variants", nargs="+", help="only these rows of the digits section (by their label)")
    args = p.parse_args(argv)
    steps = 30 if args.quick else args.steps
    only = args.only or list(SECTIONS)
    out: dict[str, Any] = {}
    if "toys" in only:
        keep(out, "toys", toys(steps, args.jobs, tuple(args.seeds)))
    if "digits" in only:
        keep(out, "digits", digits(steps, args.jobs, args.variants))
    if "uses" in only:
        keep(out, "uses", uses(steps, args.quick, args.uses))
    if "speed" in only:
        keep(out, "speed", speed(3 if args.quick else 15, 5 if args.quick else 20))
    return report(out, args.json, _print)


if __name__ == "__main__":
    raise SystemExit(main())
