"""The benchmark pages' tables, written from the results files the benchmark scripts save.

A table on a page of ``docs/`` that stands between

    <!-- results: NAME -->
    ...
    <!-- end results -->

is rendered by ``TABLES[NAME]`` from ``results/*.json`` (what ``benchmarks/<script>.py`` writes, with the command,
the seed, the versions and the machine beside each section). ``tests/test_benchmarks.py`` renders every such table
again and fails where a page and its results file disagree — so a number is changed by measuring it again (the
script rewrites its results file), then

    python benchmarks/pages.py            # rewrite the tables of docs/*.md and the figures of docs/figures/
    python benchmarks/pages.py --check    # exit 1, naming the tables, where a page is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
MARKER = re.compile(r"(<!-- results: ([\w-]+) -->\n)(.*?)(<!-- end results -->)", re.S)

Results = dict[str, dict[str, Any]]


def load_results(root: Path = RESULTS) -> Results:
    """``{benchmark: {section: rows}}`` of every results file under ``root``."""
    return {
        p.stem: {section: entry["results"] for section, entry in json.loads(p.read_text()).items()}
        for p in sorted(root.glob("*.json"))
    }


def _row(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise KeyError(f"{len(found)} rows match {match}")
    return found[0]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _minus(x: float, digits: int = 2) -> str:
    """``x`` with a typographic minus sign."""
    return f"{x:.{digits}f}".replace("-", "−")


def _signed(x: float, digits: int = 3) -> str:
    return ("+" if x >= 0 else "") + _minus(x, digits)


def _bold_best(values: list[float], better: Callable[[float, float], bool]) -> int:
    best = 0
    for i, v in enumerate(values):
        if better(v, values[best]):
            best = i
    return best


def _nll_cells(rows: list[dict[str, Any]]) -> list[str]:
    """Each row's ``nll ± stderr`` (nats), the lowest in bold."""
    best = _bold_best([r["nll_nats"] for r in rows], lambda a, b: a < b)
    cells = [f"{r['nll_nats']:.2f} ± {r['nll_stderr']:.2f}" for r in rows]
    return [f"**{c}**" if i == best else c for i, c in enumerate(cells)]


# -- the tables --------------------------------------------------------------------------------------------------
def vrnn(results: Results) -> str:
    rows = results["sequence"]["vrnn"]
    v, lstm = _row(rows, model="vrnn"), _row(rows, model="lstm-gaussian")
    return _table(
        ["model", "test NLL per frame"],
        [
            [
                "VRNN, IWAE bound (k = 100)",
                f"**{_minus(v['iwae100_per_frame'])} ± {v['stderr_per_frame']:.2f}** "
                f"(its ELBO {_minus(v['elbo_per_frame'])})",
            ],
            [
                "LSTM with a Gaussian output (exact)",
                f"{_minus(lstm['nll_per_frame'])} ± {lstm['stderr_per_frame']:.2f}",
            ],
        ],
    )


def td_vae(results: Results) -> str:
    drawn = results["sequence"]["td_vae"]
    mean = drawn["mean_rollouts"]

    def cells(r: dict[str, Any], bold: bool) -> list[str]:
        share = f"{100 * r['share_on_track_3_jumps']:.1f}%"
        per = r["share_on_track_per_jump"]
        dist = r["mean_distance_per_jump"]
        return [
            f"**{share}**" if bold else share,
            ", ".join(f"{100 * per[j]:.1f}%" for j in (0, 1, 2, 3, 7)),
            ", ".join(f"{dist[j]:.2f}" for j in (0, 2, 7)),
        ]

    return _table(
        [
            "rollout",
            "on track for 3 jumps",
            "on track at jumps 1, 2, 3, 4, 8",
            "mean distance at jumps 1, 3, 8 (pixels)",
        ],
        [
            ["the states' means (`rollout(..., mean=True)`)", *cells(mean, True)],
            ["drawn states (`rollout(...)`)", *cells(drawn, False)],
        ],
    )


def fresh_densities(results: Results) -> str:
    rows = results["flows"]["fresh"]
    models = [("nsf", "pyrogen `nsf`"), ("zuko-nsf", "zuko `NSF`"), ("maf", "pyrogen `maf`")]
    out = []
    for data in ("funnel", "banana-units", "three-scales", "copula-8d"):
        found = [_row(rows, model=m, data=data) for m, _ in models]
        best = _bold_best([r["nll_nats"] for r in found], lambda a, b: a < b)
        cells = []
        for i, r in enumerate(found):
            cell = f"{r['nll_nats']:.3f} ({_signed(r['gap'])}; standard error {r['nll_stderr']:.3f})"
            cells.append(f"**{cell}**" if i == best else cell)
        out.append([data, f"{found[0]['best_possible']:.3f}", *cells])
    return _table(["density", "best possible", *(name for _, name in models)], out)


def flows_three_scales(results: Results) -> str:
    """Every flow measured on the three-scale mixture, from its registered defaults: test NLL and the gap to the
    best possible, or that it diverged."""
    rows = [r for r in results["flows"]["fresh"] if r["data"] == "three-scales"]
    out = []
    for r in sorted(rows, key=lambda r: r.get("nll_nats", float("inf"))):
        if "gap" not in r:
            out.append([f"`{r['model']}`", "diverged", r.get("diverged", "")[:120]])
            continue
        out.append(
            [
                f"`{r['model']}`",
                f"{r['nll_nats']:.3f} ({_signed(r['gap'])}; standard error {r['nll_stderr']:.3f})",
                f"best step {r['best_step']} of {r['steps']}" if "best_step" in r else "",
            ]
        )
    return _table(["flow (three-scale mixture)", "test NLL (gap to the best possible)", "training"], out)


#: The toy table's columns: the script's flow name, the page's label.
FLOWS_TOYS = {
    "realnvp": "RealNVP",
    "nice": "NICE",
    "maf": "MAF",
    "iaf": "IAF",
    "gaussianization": "Gaussianization",
    "maf-large": "MAF 8 x 128-128, 6000 steps",
    "nsf": "NSF",
    "flow-matching": "flow matching",
    "ffjord": "FFJORD",
    "zuko-nsf": "zuko NSF (same steps, batch, schedule)",
}


def flows_toys(results: Results) -> str:
    """Every flow on the eight 2-D toys: test NLL and, in brackets, the gap to the best possible; the best of each
    toy in bold. A flow not run (or diverged) on a toy shows a dash (or "diverged")."""
    rows = results["flows"]["toys"]
    names = [n for n in FLOWS_TOYS if any(r["model"] == n for r in rows)]
    out = []
    for toy in dict.fromkeys(r["data"] for r in rows):
        found = {r["model"]: r for r in rows if r["data"] == toy}
        scored = [found[n]["nll_nats"] if "gap" in found.get(n, {}) else float("inf") for n in names]
        best = _bold_best(scored, lambda a, b: a < b)
        cells = []
        for i, n in enumerate(names):
            r = found.get(n)
            if r is None:
                cells.append("–")
            elif "gap" not in r:
                cells.append("diverged")
            else:
                cell = f"{r['nll_nats']:.3f} ({_signed(r['gap'], 2)})"
                cells.append(f"**{cell}**" if i == best else cell)
        best_possible = next(r["best_possible"] for r in found.values() if "best_possible" in r)
        out.append([toy, f"{best_possible:.3f}", *cells])
    return _table(["toy", "best possible NLL", *(FLOWS_TOYS[n] for n in names)], out)


#: The dequantized digits rows: the script's flow name, the page's label.
FLOWS_DIGITS = {
    "realnvp": "RealNVP (8 couplings of 256-256, flattened)",
    "nice": "NICE (4 additive couplings of 256-256 + scaling)",
    "maf": "MAF (5 MADE layers of 128)",
    "gaussianization": "Gaussianization flow (4 layers, 8 components, 2 reflections)",
    "glow-permute": 'multi-scale RealNVP (`Glow(mixing="permute")`, 2 scales x 4 steps)',
    "glow": "Glow (ActNorm + LU 1x1 conv + coupling, 2 scales x 4 steps)",
    "planar": "planar (16 layers over a learned diagonal Gaussian)",
    "mintnet": "MintNet-style (`mintnet`: 6 masked-convolution layers of 32 channels + ActNorm)",
    "nsf": "NSF (`nsf`: 5 rational-quadratic autoregressive layers, 8 bins, 64-64)",
    "zuko-nsf": "zuko `NSF` (5 rational-quadratic autoregressive transforms, 8 bins, 64-64; the same loop settings)",
}


def flows_digits(results: Results) -> str:
    """The flows on the dequantized digits: test bits/dim (the best in bold) and the step early stopping kept; the
    IAF student of the distillation section beside them."""
    rows = {r["model"]: r for r in results["flows"]["digits"]}
    names = [n for n in FLOWS_DIGITS if n in rows]
    best = _bold_best([rows[n]["bits_per_dim"] for n in names], lambda a, b: a < b)
    out = []
    for i, n in enumerate(names):
        r = rows[n]
        cell = f"{r['bits_per_dim']:.3f}"
        out.append([FLOWS_DIGITS[n], f"**{cell}**" if i == best else cell, f"{r['best_step']} of {r['steps']}"])
    if "distill" in results["flows"]:
        d = results["flows"]["distill"]
        out.append(
            ["IAF (5 layers), distilled from the MAF, scored in D passes", f"{d['student_bits_per_dim']:.3f}", ""]
        )
    return _table(["flow", "bits/dim", "best step"], out)


#: The seeds the ``seeds`` section of flows.py runs.
SEEDS = (0, 1, 2)


def seed_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per density of the ``seeds`` section: each NSF's mean over the seeds and the mean paired difference pyrogen
    - zuko with its standard error (bits/dim on the digits, nats on the toys)."""
    out = []
    for name in dict.fromkeys(r["data"] for r in rows):
        unit = "bits_per_dim" if name == "digits" else "nll_nats"
        by = {(r["model"], r["seed"]): r[unit] for r in rows if r["data"] == name}
        both = [s for s in SEEDS if ("nsf", s) in by and ("zuko-nsf", s) in by]
        if not both:
            continue
        paired = [by["nsf", s] - by["zuko-nsf", s] for s in both]
        se = statistics.stdev(paired) / len(paired) ** 0.5 if len(paired) > 1 else float("nan")
        out.append(
            {
                "data": name,
                "unit": unit,
                "seeds": len(both),
                "nsf": statistics.mean(by["nsf", s] for s in both),
                "zuko-nsf": statistics.mean(by["zuko-nsf", s] for s in both),
                "nsf_values": [by["nsf", s] for s in both],
                "zuko_values": [by["zuko-nsf", s] for s in both],
                "difference": statistics.mean(paired),
                "difference_stderr": se,
            }
        )
    return out


def flows_seeds(results: Results) -> str:
    """pyrogen's NSF against zuko's NSF from three seeds where they were closest."""
    out = []
    for t in seed_table(results["flows"]["seeds"]):
        unit = "bits/dim" if t["unit"] == "bits_per_dim" else "nats"
        out.append(
            [
                f"{t['data']} ({unit})",
                f"{t['nsf']:.4f} ({', '.join(f'{v:.4f}' for v in t['nsf_values'])})",
                f"{t['zuko-nsf']:.4f} ({', '.join(f'{v:.4f}' for v in t['zuko_values'])})",
                f"{_signed(t['difference'], 4)} ± {t['difference_stderr']:.4f}",
            ]
        )
    return _table(
        ["test NLL", "pyrogen `nsf`: mean (seeds 0, 1, 2)", "zuko `NSF`", "pyrogen − zuko, paired by seed"], out
    )


def flows_other(results: Results) -> str:
    """The autoregressive layer's sequential direction against Pyro's, and IAF distillation on the digits."""
    dp, di = results["flows"]["dpass"], results["flows"]["distill"]
    return _table(
        ["other (flows)", "value", "target"],
        [
            [
                f"D-pass direction of one autoregressive layer (batch {dp['batch']}, D = {dp['dim']}, MADE "
                f"{'-'.join(map(str, dp['hidden']))}), `--only dpass`",
                f"pyrogen: {dp['pyrogen_cost_in_passes']:.2f} x D forward passes; Pyro's `AffineAutoregressive` "
                f"inverse: {dp['pyro_cost_in_passes']:.2f} x D",
                "pyrogen ≤ 1.5 x D",
            ],
            [
                "distillation on the digits: IAF student from the MAF teacher, 3000 steps, `--only distill`",
                f"KL(student ‖ teacher) {di['kl_nats']:.2f} ± {di['kl_stderr']:.2f} nats; the teacher's NLL of "
                f"student samples {_minus(di['teacher_nll_of_student_samples'])} nats, median "
                f"{_minus(di['teacher_nll_of_student_samples_median'])} (of the test digits "
                f"{_minus(di['teacher_test_nll_nats'])}; of its own samples median "
                f"{_minus(di['teacher_nll_of_own_samples_median'])}); sampling {di['sampling_speedup']:.1f}x faster "
                f"(1024 samples: {di['teacher_sample_ms']:.0f} ms → {di['student_sample_ms']:.1f} ms)",
                "student sampling in one pass",
            ],
        ],
    )


def autoencoders(results: Results) -> str:
    rows = results["representation"]["autoencoders"]
    names = {
        "autoencoder": "`autoencoder`",
        "denoising-ae": "`denoising-ae` (inputs zeroed with probability 0.3)",
        "sparse-ae": "`sparse-ae` (target 0.05)",
        "contractive-ae": "`contractive-ae` (λ = 0.1)",
        "stacked-ae": "`stacked-ae` (128-64-32, 1000 pre-training steps per layer)",
    }
    aes = [_row(rows, model=m) for m in names]
    columns: list[tuple[str, str, Callable[[float, float], bool]]] = [
        ("reconstruction_above_floor", "{:.2f}", lambda a, b: a < b),
        ("zeroed_half_above_floor", "{:.2f}", lambda a, b: a < b),
        ("linear_probe", "{:.3f}", lambda a, b: a > b),
        ("knn_accuracy", "{:.3f}", lambda a, b: a > b),
        ("outlier_auroc_upside_down", "{:.3f}", lambda a, b: a > b),
    ]
    best = {key: _bold_best([r[key] for r in aes], better) for key, _, better in columns}
    out = []
    for i, (r, name) in enumerate(zip(aes, names.values(), strict=True)):
        cells = []
        for key, fmt, _ in columns:
            cell = fmt.format(r[key])
            cells.append(f"**{cell}**" if best[key] == i else cell)
        out.append([name, str(r["code_dim"]), *cells, f"{r['mean_code_activation']:.4f}"])
    baselines = (("pca (32 components)", "PCA, 32 components"), ("vae (posterior means)", "VAE posterior means"))
    for model, name in baselines:
        r = _row(rows, model=model)
        out.append(
            [name, str(r["code_dim"]), "–", "–", f"{r['linear_probe']:.3f}", f"{r['knn_accuracy']:.3f}", "–", "–"]
        )
    header = [
        "model",
        "code",
        "reconstruction (nats above floor)",
        "half the pixels zeroed",
        "linear probe",
        "5-NN",
        "outlier AUROC",
        "mean code activation",
    ]
    return _table(header, out)


def flow_matching(results: Results) -> str:
    rows = results["diffusion"]["flow-matching"]
    nll = _row(rows, variant="flow matching, ODE likelihood (Hutchinson, 1 probe)")
    out = [
        [
            "bits/dim through the ODE (Hutchinson, 1 probe)",
            f"{nll['bits_per_dim']:.3f} ± {nll['bits_per_dim_stderr']:.3f}",
            "–",
        ]
    ]
    for nfe in (10, 50):
        fm = _row(rows, variant=f"flow matching, midpoint, {nfe} evaluations")
        ddpm = _row(rows, variant=f"ddpm, ddim, {nfe} evaluations")
        cells = [f"{r['fid']:.3f} [{r['fid_ci'][0]:.3f}, {r['fid_ci'][1]:.3f}]" for r in (fm, ddpm)]
        best = 0 if fm["fid"] <= ddpm["fid"] else 1
        cells[best] = f"**{cells[best]}**"
        out.append([f"FID at {nfe} network evaluations, one draw of 360 (95% interval)", *cells])
        if "fid_mean" in fm:
            cells = [f"{r['fid_mean']:.3f} ± {r['fid_sd']:.3f}" for r in (fm, ddpm)]
            best = 0 if fm["fid_mean"] <= ddpm["fid_mean"] else 1
            cells[best] = f"**{cells[best]}**"
            out.append([f"the same, mean ± sd over {len(fm['fid_draws'])} draws of 360", *cells])
    floor = _row(results["quality"]["references"], model="training digits (best possible)", data="digits")
    out.append(
        [
            "the floor of both: FID of 360 training digits against the test digits (`quality.py --references`)",
            *[f"{floor['fid']:.3f} [{floor['fid_ci'][0]:.3f}, {floor['fid_ci'][1]:.3f}]"] * 2,
        ]
    )
    return _table(["dequantized digits", "`flow-matching` (midpoint steps)", "`ddpm` (DDIM)"], out)


#: The diffusion toy rows: the script's variant, the page's label.
DIFFUSION_TOYS = {
    "ddpm ancestral (1000 steps)": "DDPM, ancestral (1000 steps)",
    "ddim 10 steps": "DDIM 10 steps (the same network)",
    "ddim 50 steps": "DDIM 50 steps",
    "ddim 100 steps": "DDIM 100 steps",
    "ncsn annealed Langevin": "NCSN, annealed Langevin (20 levels × 100 steps)",
    "vp-sde probability flow": "VP-SDE, probability-flow ODE",
}


def diffusion_toys(results: Results) -> str:
    """DDPM (ancestral, DDIM), NCSN and the VP SDE on 8gaussians and moons: sample metrics, and the test NLL where
    the model has one (DDPM's variational bound, the SDE's probability-flow likelihood)."""
    rows = results["diffusion"]["toys"]
    out = []
    for variant, label in DIFFUSION_TOYS.items():
        g, m = _row(rows, variant=variant, data="8gaussians"), _row(rows, variant=variant, data="moons")
        nll = [
            f"{r['nll_nats']:.3f}" + (f" ± {r['nll_stderr']:.3f}" if "nll_stderr" in r else " (bound)")
            if "nll_nats" in r
            else "–"
            for r in (g, m)
        ]
        out.append(
            [
                label,
                _minus(g["mmd"], 4),
                f"{g['c2st']:.3f}",
                f"{g['modes']:.0f} / {g['high_quality']:.3f}",
                _minus(m["mmd"], 4),
                f"{m['c2st']:.3f}",
                nll[0],
                nll[1],
                f"{g['sample_s']:.1f}",
            ]
        )
    header = ["toys, 1000 samples (MMD² and C2ST: 0.5 is indistinguishable)", "8gaussians MMD²", "C2ST"]
    header += ["modes / high quality", "moons MMD²", "C2ST", "test NLL 8gaussians (best 2.838)"]
    return _table([*header, "moons (best 2.391)", "sample s (8g)"], out)


#: The diffusion digit rows: the script's variant, the page's label.
DIFFUSION_DIGITS = {
    "vp-sde probability flow": "VP-SDE, probability-flow ODE (Hutchinson, 1 probe; samples by the ODE)",
    "ddpm ancestral (1000 steps)": "DDPM, ancestral (1000 steps); its variational bound",
    "ddim 10 steps": "DDIM 10 steps (the same DDPM)",
    "ddim 50 steps": "DDIM 50 steps",
    "ddim 100 steps": "DDIM 100 steps",
    "ncsn annealed Langevin": "NCSN, annealed Langevin",
}


def _seconds(s: float) -> str:
    return f"{s:.0f}" if s >= 10 else f"{s:.1f}"


def diffusion_digits(results: Results) -> str:
    """DDPM (ancestral, DDIM), NCSN, the VP SDE and latent diffusion on the dequantized digits: bits/dim where
    the model has them (the lowest in bold), FID with its interval, KID, precision, recall, sampling seconds."""
    rows, latent = results["diffusion"]["digits"], results["diffusion"]["latent"]
    entries = [(label, _row(rows, variant=v)) for v, label in DIFFUSION_DIGITS.items()]
    entries += [
        ("latent diffusion (DDPM over an 8-latent Gaussian VAE's codes)", latent["latent_diffusion"]),
        ("its VAE alone, prior samples decoded (mean images)", latent["its_vae_prior_samples"]),
    ]
    best = min(r["bits_per_dim"] for _, r in entries if "bits_per_dim" in r)
    out = []
    for label, r in entries:
        bpd = "–"
        if "bits_per_dim" in r:
            bpd = f"{r['bits_per_dim']:.3f} ± {r['bits_per_dim_stderr']:.3f}"
            bpd = f"**{bpd}**" if r["bits_per_dim"] == best else bpd
            bpd += " (bound)" if r["nll_method"] == "variational bound" else ""
        out.append(
            [
                label,
                bpd,
                f"{r['fid']:.2f} {_interval(r['fid_ci'], 2)}",
                _minus(r["kid"], 3),
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                _seconds(r["sample_s"]) if "sample_s" in r else "–",
            ]
        )
    header = ["dequantized digits (360 test images)", "bits/dim", "FID [95% CI]", "KID", "precision", "recall"]
    return _table([*header, "sample s (360)"], out)


def diffusion_guidance(results: Results) -> str:
    """Classifier-free guidance of the class-conditional DDPM, and inpainting beside the VAE and the EBM."""
    out = [
        [
            f"guidance w = {r['guidance']:g}: share read as the asked-for label; FID of the 360",
            f"{r['label_agreement']:.3f}",
            f"{r['fid']:.2f} {_interval(r['fid_ci'], 2)}",
        ]
        for r in results["diffusion"]["guidance"]
    ]
    inp = results["diffusion"]["inpainting"]
    for method, label in (("repaint", "RePaint (5 rounds per step)"), ("replace", "replacement")):
        out.append(
            [
                f"inpainting the bottom half of {inp['n']} test digits, {label}: pixel accuracy; seconds",
                f"{inp[f'{method}_pixel_accuracy']:.3f}",
                _seconds(inp[f"{method}_s"]),
            ]
        )
    vae = results["latent"]["uses"]["impute_bottom_half_pixel_accuracy"]
    ebm = results["ebm"]["uses"]["completion_nuts_pixel_accuracy"]
    out.append(["the same completion by the VAE ([latent](latent.md)) and under the EBM prior by NUTS ([EBM](ebm.md))"])
    out[-1] += [f"{vae:.3f} / {ebm:.3f}", "–"]
    return _table(["digits", "share or accuracy", "FID [95% CI] or seconds"], out)


def diffusion_text(results: Results) -> str:
    """Text-to-image latent diffusion: agreement of the samples with their prompts, and FID, per guidance."""
    out = []
    for r in results["diffusion"]["text"]:
        cells = [f"{r[k]:.3f}" for k in ("label_agreement", "thickness_agreement", "size_agreement", "slant_agreement")]
        out.append([f"{r['guidance']:g}", *cells, f"{r['fid']:.2f} {_interval(r['fid_ci'], 2)}"])
    header = ["guidance w", "label read as the prompt's digit", "thickness on the asked side", "size", "slant"]
    return _table([*header, "FID (samples for the 360 test captions)"], out)


#: The published binarized-MNIST test NLLs (nats; 60,000 training digits) beside pyrogen's rows.
PUBLISHED_MNIST = {
    "fvsbn": "97.5 (Larochelle and Murray, 2011)",
    "nade": "88.9 (Larochelle and Murray, 2011)",
    "made": "86.6 (Germain et al., 2015; 32 orderings, one hidden layer)",
    "iwae": "84.8 (Burda et al., 2016; k = 5000)",
    "vae": "86.8 (Burda et al., 2016; one stochastic layer, IWAE k = 5000)",
    "pixelcnn": "81.3 (van den Oord et al., 2016)",
    "gated-pixelcnn": "79.2 (the Diagonal BiLSTM PixelRNN, van den Oord et al., 2016)",
}


#: The flags of the benchmark's variants of a registered model.
VARIANT_FLAGS = {
    "vae-conv": "arch=conv",
    "iwae-conv": "arch=conv --set k=5",
    "ebm-persistent": "reinit=0.05 --set sample_steps=200",
}
#: The registered model of each variant row of the MNIST-28 tables.
VARIANT_OF = {"vae-conv": "vae", "iwae-conv": "iwae", "ebm-persistent": "ebm", "pixelcnn-256": "pixelcnn"}


def _variant(name: str) -> str:
    """A row's model as a command line names it: the registered model and the flags of a variant."""
    flags = f" `--set {VARIANT_FLAGS[name]}`" if name in VARIANT_FLAGS else ""
    return f"`{VARIANT_OF.get(name, name)}`{flags}"


def mnist_binarized(results: Results) -> str:
    order = ["fvsbn", "nade", "made", "vae", "vae-conv", "iwae", "iwae-conv", "pixelcnn", "gated-pixelcnn"]
    rows = sorted(results["mnist"]["binarized"], key=lambda r: order.index(r["model"]))
    out = []
    for r in rows:
        fid = f"{r['fid']:.2f} [{r['fid_ci'][0]:.2f}, {r['fid_ci'][1]:.2f}]" if "fid" in r else "–"
        bound = " (IWAE-1000 bound)" if r["model"].split("-")[0] in ("vae", "iwae") else ""
        out.append(
            [
                _variant(r["model"]),
                f"{r['nll_nats']:.2f} ± {r['nll_stderr']:.2f}{bound}",
                fid,
                f"{r['precision']:.3f} / {r['recall']:.3f}" if "precision" in r else "–",
                f"{r['steps']} ({r['train_s'] / 60:.0f} min)",
                PUBLISHED_MNIST.get(r["model"], "–"),
            ]
        )
    header = ["model", "test NLL (nats)", "FID (95% interval)", "precision / recall", "steps (time)", "published"]
    return _table(header, out)


PUBLISHED_DEQUANTIZED = {
    "realnvp": "1.06 (Dinh et al., 2017)",
    "glow": "1.05 (Kingma and Dhariwal, 2018)",
    "nsf": "–",
}


def _quality_cells(r: dict[str, Any]) -> list[str]:
    fid = f"{r['fid']:.2f} [{r['fid_ci'][0]:.2f}, {r['fid_ci'][1]:.2f}]" if "fid" in r else "–"
    pr = f"{r['precision']:.3f} / {r['recall']:.3f}" if "precision" in r else "–"
    return [fid, pr, f"{r['steps']} ({r['train_s'] / 60:.0f} min)"]


def mnist_dequantized(results: Results) -> str:
    rows = sorted(results["mnist"]["dequantized"], key=lambda r: r["bits_per_dim"])
    out = [
        [
            _variant(r["model"]) + (f" on `{r['data']}`" if r["data"] != "mnist" else ""),
            f"{r['bits_per_dim']:.3f}",
            *_quality_cells(r),
            PUBLISHED_DEQUANTIZED.get(r["model"], "–"),
        ]
        for r in rows
    ]
    header = ["model", "test bits/dim", "FID (95% interval)", "precision / recall", "steps (time)", "published"]
    return _table(header, out)


def mnist_samples(results: Results) -> str:
    rows = sorted(results["mnist"]["samples"], key=lambda r: r["fid"])
    out = [[_variant(r["model"]), r["data"], *_quality_cells(r)] for r in rows]
    return _table(["model", "data", "FID (95% interval)", "precision / recall", "steps (time)"], out)


def samplers(results: Results) -> str:
    rows = results["mcmc"]["samplers"]
    names = {"energy2d": "the 2-D tanh energy", "banana": "banana", "funnel": "funnel (10-D)"}
    names["gauss100"] = "Gaussian (100-D, condition 1000)"
    names["logistic"] = "logistic regression (31-D)"
    order = ["pyrogen MALA", "pyrogen ChEES", "NumPyro NUTS (vectorized)"]
    out = []
    for target in names:
        for chains in sorted({r["chains"] for r in rows if r["target"] == target}):
            found = {r["sampler"]: r for r in rows if r["target"] == target and r["chains"] == chains}
            cells = [
                f"{found[k]['ess_per_s']:,.0f} ({found[k]['max_mean_error_sd']:.2f}, {found[k]['max_sd_error']:.2f})"
                if k in found
                else "not measured"
                for k in order
            ]
            ratio = (
                f"{found[order[1]]['ess_per_s'] / found[order[2]]['ess_per_s']:.2f}x"
                if order[1] in found and order[2] in found
                else "–"
            )
            out.append([names[target], str(chains), *cells, ratio])
    header = ["target", "chains", "MALA", "ChEES", "NumPyro NUTS (vectorized)", "ChEES / NumPyro"]
    return _table(header, out)


def patches(results: Results) -> str:
    names = {
        "maf": "pyrogen `maf`",
        "realnvp": "pyrogen `realnvp`",
        "nsf": "pyrogen `nsf`",
        "zuko-maf": "zuko `MAF`",
        "zuko-nsf": "zuko `NSF`",
    }
    rows = sorted(results["patches"]["patches"], key=lambda r: list(names).index(r["model"]))
    out = [
        [
            names[r["model"]],
            f"{_minus(-r['nll_nats'])} ± {r['nll_stderr']:.2f}",
            f"{r['steps']} (best {r['best_step']})",
            f"{r['train_s'] / 60:.0f} min",
        ]
        for r in rows
    ]
    return _table(["flow", "test log-likelihood (nats)", "steps", "training"], out)


def latent_hierarchical(results: Results) -> str:
    rows = results["latent"]["nll"]
    names = {
        "hvae (16 + 8 latents)": "hierarchical VAE (z1: 16, z2: 8)",
        "ladder-vae (16 + 8 latents)": "ladder VAE (z1: 16, z2: 8; free bits 0.25 / 0.5 nats per unit)",
        "ladder-vae without free bits": "ladder VAE without free bits (`--set free_bits=0.0`)",
        "hvae, KL warm-up over 5000 steps": "hierarchical VAE, KL warm-up over 5000 steps (`--set kl_warmup=5000`)",
        "ladder-vae, KL warm-up over 5000 steps": "ladder VAE, KL warm-up over 5000 steps",
        "ladder-vae, KL warm-up over 500 steps": "ladder VAE, KL warm-up over 500 steps (`--set kl_warmup=500`)",
        "pro-vae (3 x 4 latents, grown top first)": "progressive ladder, pro-VLAE (3 levels of 4, grown top first)",
        "pro-vae without growth (a VLAE)": "the same network without growth, a VLAE (`--set grow_every=0`)",
    }
    out = []
    for key, label in names.items():
        found = [r for r in rows if r["model"] == key]
        if not found:
            continue
        r = found[0]
        levels = ", ".join(f"{k} {v}" for k, v in r["active_units_per_level"].items())
        out.append(
            [
                label,
                f"{r['nll_nats']:.2f} ± {r['nll_stderr']:.2f}",
                f"{r['active_units']} ({levels})",
                str(r["best_step"]),
            ]
        )
    return _table(["binarized digits, test NLL (IWAE-1000)", "nats", "active units (per level)", "best step"], out)


def _cell(r: dict[str, Any], key: str, digits: int) -> str:
    """``r[key]`` to ``digits`` decimals with a typographic minus, or a dash where the row has no such number."""
    v = r.get(key)
    if v is None:
        return "–"
    return _minus(v, digits)


def _quality_rows(results: Results, digits_data: bool) -> list[dict[str, Any]]:
    """The reference rows (in italics) and then the model rows of ``results/quality.json``, of the digits or the
    toys."""
    q = results["quality"]
    refs = [{**r, "model": f"*{r['model']}*"} for r in q["references"]]
    models = [{**r, "model": f"`{r['model']}`"} for r in q.get("models", [])]
    return [r for r in refs + models if r["data"].startswith("digits") == digits_data]


def quality_digits(results: Results) -> str:
    """Every model scored on the digits by ``benchmarks/quality.py``: NLL where there is one, and sample quality."""
    out = [
        [
            r["model"],
            r["data"],
            _cell(r, "nll_nats", 2),
            _cell(r, "bits_per_dim", 3),
            _cell(r, "fid", 3),
            _cell(r, "kid", 3),
            _cell(r, "precision", 3),
            _cell(r, "recall", 3),
            _cell(r, "inception_score", 2),
        ]
        for r in _quality_rows(results, digits_data=True)
    ]
    header = ["model", "data", "test NLL (nats)", "bits/dim", "FID", "KID", "precision", "recall", "IS"]
    return _table(header, out)


def quality_toys(results: Results) -> str:
    """The same on the 2-D toys: NLL, MMD², C2ST, and on ``8gaussians`` the modes and the high-quality share."""
    out = [
        [
            r["model"],
            r["data"],
            _cell(r, "nll_nats", 3),
            _cell(r, "mmd", 4),
            _cell(r, "c2st", 3),
            "–" if r.get("modes") is None else f"{r['modes']:.0f}",
            _cell(r, "high_quality", 3),
        ]
        for r in _quality_rows(results, digits_data=False)
    ]
    return _table(["model", "data", "test NLL (nats)", "MMD²", "C2ST", "modes of 8", "high quality"], out)


def latent_seeds(results: Results) -> str:
    """The two-level VAEs from several seeds: each seed's test NLL and active units per level, and the mean."""
    rows = results["latent"]["seeds"]
    names = {
        "hvae (16 + 8 latents)": "hierarchical VAE",
        "ladder-vae (16 + 8 latents)": "ladder VAE (registered: free bits 0.25 / 0.5)",
        "ladder-vae without free bits": "ladder VAE without free bits (`--set free_bits=0.0`)",
        "ladder-vae, KL warm-up over 500 steps": "ladder VAE, KL warm-up over 500 steps (registered: 1000)",
    }
    out = []
    for key, label in names.items():
        mine = sorted((r for r in rows if r["model"] == key), key=lambda r: r["seed"])
        if not mine:
            continue
        nlls = [r["nll_nats"] for r in mine]
        spread = f" (sd {statistics.stdev(nlls):.2f})" if len(nlls) > 1 else ""
        out.append(
            [
                label,
                ", ".join(f"{v:.2f}" for v in nlls),
                f"{statistics.mean(nlls):.2f}{spread}",
                ", ".join(str(r["active_units_per_level"]["z2"]) for r in mine),
                ", ".join(str(r["active_units_per_level"]["z1"]) for r in mine),
            ]
        )
    header = [
        "binarized digits, IWAE-1000",
        "test NLL per seed (nats)",
        "mean",
        "active z2 (of 8)",
        "active z1 (of 16)",
    ]
    return _table(header, out)


def _interval(ci: list[float], digits: int) -> str:
    return f"[{_minus(ci[0], digits)}, {_minus(ci[1], digits)}]"


def results_demo(results: Results) -> str:
    """``pyrogen demo``'s numbers (the AVX2 run of ``benchmarks/demo.py`` where there is one)."""
    rows = results["demo"]["capabilities"]
    d = next((r for r in rows if r["data"] == "avx2"), rows[0])
    return _table(
        ["what", "value", "script"],
        [
            [
                "RealNVP (8 couplings, 64x64, gradient norm clipped at 10) on moons, 3000 steps, test NLL",
                f"{d['realnvp_nll_nats']:.3f} ± {d['realnvp_nll_stderr']:.3f} nats (best possible 2.391)",
                "`pyrogen demo`",
            ],
            [
                f"VAE on binarized digits, IWAE k={d['vae_k']} test NLL",
                f"{d['vae_nll_nats']:.2f} ± {d['vae_nll_stderr']:.2f} nats ({d['vae_bits_per_dim']:.3f} bits/dim)",
                "`pyrogen demo`",
            ],
            [
                "same VAE, test ELBO",
                f"{_minus(d['vae_elbo_nats'])} nats; {d['vae_active_units']} of 16 latent units active",
                "`pyrogen demo`",
            ],
            [
                f"same VAE, sample quality ({d['vae_samples']} samples against the 360 test digits; 95% bootstrap "
                "intervals)",
                f"FID {d['vae_fid']:.2f} {_interval(d['vae_fid_ci'], 2)}; KID {_minus(d['vae_kid'], 3)} "
                f"{_interval(d['vae_kid_ci'], 3)}; precision {d['vae_precision']:.3f} "
                f"{_interval(d['vae_precision_ci'], 3)}; recall {d['vae_recall']:.3f} "
                f"{_interval(d['vae_recall_ci'], 3)}",
                "`pyrogen demo`, `pyrogen evaluate RUN --json`",
            ],
            [
                "RealNVP on moons, sample quality (1000 samples)",
                f"MMD² {_minus(d['realnvp_mmd'], 4)} {_interval(d['realnvp_mmd_ci'], 4)}; C2ST {d['realnvp_c2st']:.3f} "
                f"{_interval(d['realnvp_c2st_ci'], 3)} (0.5: indistinguishable)",
                "`pyrogen demo`",
            ],
        ],
    )


def results_kernels(results: Results) -> str:
    """The demo under each of PyTorch's CPU capabilities, on one machine (``benchmarks/demo.py``)."""
    out = [
        [
            f"`{r['data']}`" + (f" (ran {r['kernels']})" if r["kernels"].lower() != r["data"] else ""),
            f"{r['realnvp_nll_nats']:.3f}",
            _minus(r["vae_elbo_nats"]),
            f"{r['vae_nll_nats']:.2f} ± {r['vae_nll_stderr']:.2f}",
            str(r["vae_active_units"]),
            f"{r['vae_fid']:.2f}",
            f"{r['seconds']:.0f}",
        ]
        for r in results["demo"]["capabilities"]
    ]
    header = ["CPU kernels", "RealNVP test NLL", "VAE test ELBO", "IWAE (k=1000) NLL", "active units", "FID"]
    return _table([*header, "demo seconds"], out)


def results_threads(results: Results) -> str:
    """``pyrogen demo``'s wall time with the CLI's thread choice, idle and with one core kept busy
    (``benchmarks/threads.py``)."""
    d = results["threads"]["demo"]
    out = [
        [
            f"{r['case']} ({d['cores']} cores)",
            f"`{r['threads']}`" if r["threads"].startswith("--") else r["threads"],
            f"{r['load_before']:.2f}",
            f"{r['seconds']:.0f}",
        ]
        for r in d["runs"]
    ]
    return _table(["machine", "threads", "1-minute load before", "demo seconds"], out)


#: The training-step rows of ``benchmarks/run.py``: the script's name, the page's label.
SPEED_STEPS = {
    "vae-784-400-20-b128": "VAE 784-400-20, batch 128",
    "vae-digits-b128": "VAE digits 64-256-256-16, batch 128",
    "realnvp-2d-b512": "RealNVP 2-D, 8 couplings, batch 512",
    "maf-64d-b128": "MAF 64-D, 5 MADE layers of 128, batch 128",
    "wgan-gp-2d-b256": "two groups: WGAN-GP 2-D, 5 critic + 1 generator updates, EMA, batch 256",
    "wgan-gp-dcgan-digits-b64": "the registered `wgan-gp` (DCGAN networks) on the grey digits, batch 64",
}


def speed_steps(results: Results) -> str:
    """pyrogen's training step against a hand-written PyTorch loop of the same model and loss."""
    rows = {r["name"]: r for r in results["run"]["steps"]}
    out = []
    for name, label in SPEED_STEPS.items():
        if name not in rows:
            continue
        r = rows[name]
        out.append(
            [
                label,
                f"{r['pyrogen_ms']:.2f}",
                f"{r['reference_ms']:.2f}",
                f"{r['ratio']:.2f}",
                f"≤ {r['target']:.2f}",
                f"{r['unfused_ratio']:.2f}x" if "unfused_ratio" in r else "–",
                f"{r['pyro_svi_ratio']:.2f}x" if "pyro_svi_ratio" in r else "–",
                f"{r['zuko_ratio']:.2f}x" if "zuko_ratio" in r else "–",
            ]
        )
    header = ["benchmark", "pyrogen ms", "PyTorch ms", "ratio", "target", "pyrogen, for-loop Adam"]
    return _table([*header, "Pyro `SVI(Trace_ELBO)`", "zuko"], out)


#: The latent NLL table's rows: the script's row name, the page's label.
LATENT_NLL = {
    "vae": "VAE (MLP 256-256, 16 latents)",
    "vae-conv": "VAE, convolutional encoder and decoder (`vae --set arch=conv`)",
    "iwae (k=10)": "IWAE (trained on the k = 10 bound, early-stopped on it)",
    "gmvae (10 components)": "mixture-of-Gaussians prior (10 components, `gmvae`)",
    "vae-flow (IAF posterior)": "IAF posterior (2 pyrogen autoregressive layers reading the encoder, `vae-flow`)",
    "vae-flow (planar posterior)": "planar posterior (8 of Pyro's planar layers)",
    "vae (flow prior)": "flow prior (4 RealNVP couplings, `vae --set prior=flow`)",
    "ssvae (10% labels)": "semi-supervised M2 (10% labels), label summed out (`ssvae`)",
    "cvae (log p(x | y))": "conditional VAE, log p(x \\| y) (not comparable: it is given the label)",
}


def latent_nll(results: Results) -> str:
    rows = [_row(results["latent"]["nll"], model=m) for m in LATENT_NLL]
    unconditional = [r["nll_nats"] if not r["model"].startswith("cvae") else float("inf") for r in rows]
    best = _bold_best(unconditional, lambda a, b: a < b)
    out = []
    for i, (r, label) in enumerate(zip(rows, LATENT_NLL.values(), strict=True)):
        cell = f"{r['nll_nats']:.2f} ± {r['nll_stderr']:.2f}"
        out.append([label, f"**{cell}**" if i == best else cell, str(r["active_units"]), str(r["best_step"])])
    out.append(["floor: factorized Bernoulli 25.30 (`tests/test_data.py`)", "", "", ""])
    return _table(["binarized digits, test NLL (IWAE-1000)", "nats", "active units (of 16)", "best step"], out)


LATENT_DECODERS = {
    "gaussian, learned variance": ("Gaussian, learned variance per pixel, MLP", "dequantized digits"),
    "gaussian, fixed sd 0.1": ("Gaussian, fixed sd 0.1, MLP", "dequantized digits"),
    "gaussian, learned variance, conv": ("Gaussian, learned variance, conv", "dequantized digits"),
    "categorical (17 levels)": ("categorical over 17 levels, MLP", "integer digits"),
    "categorical (17 levels), conv": ("categorical over 17 levels, conv", "integer digits"),
}


def latent_decoders(results: Results) -> str:
    out = []
    for key, (label, data) in LATENT_DECODERS.items():
        r = _row(results["latent"]["decoders"], model=key)
        note = " (discrete)" if key.startswith("categorical") else " (log2 17 correction included)"
        out.append([label, data, f"{_minus(r['nll_nats'])} nats", f"{r['bits_per_dim']:.3f}{note}"])
    return _table(["decoder", "data", "NLL", "bits/dim"], out)


def latent_beta(results: Results) -> str:
    out = [
        [
            f"{r['beta']:g}",
            f"{r['rate_nats']:.2f}",
            f"{r['distortion_nats']:.2f}",
            _minus(r["elbo_nats"]),
            f"{r['nll_nats']:.2f}",
            str(r["active_units"]),
        ]
        for r in sorted(results["latent"]["beta"], key=lambda r: r["beta"])
    ]
    return _table(["β", "rate (nats)", "distortion (nats)", "ELBO", "IWAE-1000 NLL", "active units"], out)


def latent_other(results: Results) -> str:
    lat = results["latent"]
    ss, u, g = lat["ssvae"], lat["uses"], lat["gap"]
    if ss["seeds"] > 1:
        per = ", ".join(f"{a:.3f}" for a in ss["ssvae_per_seed"])
        mlp = ", ".join(f"{a:.3f}" for a in ss["mlp_per_seed"])
        ssvae = (
            f"{ss['ssvae_test_accuracy']:.3f} (sd {ss['ssvae_sd']:.3f}; per seed {per}) against the same MLP as its "
            f"q(y \\| x) trained on the {ss['labelled']} labels alone, early-stopped on the labelled validation "
            f"digits: {ss['mlp_on_labels_alone']:.3f} (sd {ss['mlp_sd']:.3f}; {mlp})"
        )
    else:
        ssvae = (
            f"{ss['ssvae_test_accuracy']:.3f} against the same MLP on the labels alone {ss['mlp_on_labels_alone']:.3f}"
        )
    ssvae += f"; logistic regression on the {ss['labelled']} labels {ss['logistic_regression_on_labels_alone']:.3f}"
    out = [
        [
            f"semi-supervised M2 with {ss['labelled']} of the {ss['labelled'] + ss['unlabelled']} training labels "
            f"(early stopping uses no labels), test accuracy over {ss['seeds']} training seeds",
            ssvae,
            f"`--only ssvae --seeds {ss['seeds']}`",
        ],
        [
            "linear probe (logistic regression) on the VAE's codes vs on the pixels",
            f"all labels: codes {u['probe_latent_all_labels']:.3f}, pixels {u['probe_pixels_all_labels']:.3f}; "
            f"10% of the labels: codes {u['probe_latent_10pct_labels']:.3f}, pixels "
            f"{u['probe_pixels_10pct_labels']:.3f}",
            "`--only uses`",
        ],
        [
            "IWAE outlier score, AUROC against the test digits",
            f"upside-down digits {u['auroc_upside_down']:.3f}; noise from the pixel marginals "
            f"{u['auroc_pixel_marginal_noise']:.3f}; test digits with 10% of the pixels flipped "
            f"{u['auroc_corrupted_10pct']:.3f}",
            "`--only uses`",
        ],
        [
            "latent arithmetic: each test digit of class a plus (mean of a+1 − mean of a)",
            f"a pixel classifier reads class a+1 in {100 * u['arithmetic_to_next_class_rate']:.1f}%",
            "`--only uses`",
        ],
        [
            "imputation: bottom half of every test digit from its top half (pseudo-Gibbs, 200 sweeps, mean "
            "thresholded at 0.5)",
            f"pixel accuracy {u['impute_bottom_half_pixel_accuracy']:.3f}; the per-pixel majority of the training "
            f"digits, which ignores the top half, {u['impute_pixel_marginal_accuracy']:.3f}",
            "`--only uses`",
        ],
        [
            f"amortization gap, {g['n']} test digits",
            f"log p(x) {_minus(g['log_px'])} (IWAE-{g['k']}); per-example optimized Gaussian ELBO "
            f"{_minus(g['elbo_optimized'])}; amortized ELBO {_minus(g['elbo_amortized'])}: approximation gap "
            f"{g['approximation_gap']:.2f}, amortization gap {g['amortization_gap']:.2f} nats",
            "`--only gap`",
        ],
        [
            "NUTS on z given the trained decoder (2 chains x 300 draws after 300 warm-up)",
            f"max R-hat {g['r_hat_max']:.2f}, min bulk ESS {g['ess_bulk_min']:.0f}, {g['divergences']} divergences; "
            f"the amortized mean is {g['rms_mean_amortized']:.2f} posterior sds from the NUTS mean, the optimized "
            f"one {g['rms_mean_optimized']:.2f}; the scales are {g['scale_ratio_amortized']:.2f} (amortized) and "
            f"{g['scale_ratio_optimized']:.2f} (optimized) of the NUTS sds",
            "`--only gap`",
        ],
    ]
    return _table(["other (latent)", "value", "script"], out)


def _ais(a: dict[str, Any]) -> str:
    return f"{_minus(a['log_z'])} ± {a['stderr']:.2f}"


def ebm_uses(results: Results) -> str:
    """``ebm-sm`` on the grey digits (AIS, outliers, Langevin samples, completion under the EBM prior) and the
    contrastive-divergence ``ebm`` on the same digits, from ``benchmarks/ebm.py --only uses digits-cd``."""
    import inspect

    from pyrogen.models.ebm import EnergyModel

    u = results["ebm"]["uses"]
    ais = {int(k.split("_")[1]): v for k, v in u.items() if k.startswith("ais_") and k.endswith("_temperatures")}
    default = inspect.signature(EnergyModel.log_normalizer_ais).parameters["num_temps"].default  # the test NLL's
    ais[default] = {"log_z": u["test_log_z"], "stderr": u["test_log_z_stderr"]}
    tightest = max(a["log_z"] for a in ais.values())
    bound = u["test_nll_nats"] - u["test_log_z"] + tightest  # -mean f(x) + the largest lower bound on log Z
    runs = ", ".join(f"{_ais(ais[t])} with {t}{' (the default)' if t == default else ''}" for t in sorted(ais))
    c = {
        m: {k: u[f"completion_{m}_{k}"] for k in ("pixel_accuracy", "max_rhat", "divergences", "s")}
        for m in ("nuts", "batched-mala", "mala")
    }
    nuts, batched, mala = c["nuts"], c["batched-mala"], c["mala"]
    completion = (
        f"NUTS {nuts['pixel_accuracy']:.3f} pixel accuracy (R-hat ≤ {nuts['max_rhat']:.2f}, {nuts['divergences']} "
        f"divergences, {nuts['s']:.0f} s); pyrogen's batched MALA, a chain per digit with its own step size, "
        f"{batched['pixel_accuracy']:.3f} in {batched['s']:.0f} s (R-hat up to {batched['max_rhat']:.2f}); MALA "
        f"through Pyro's MCMC {mala['pixel_accuracy']:.3f} (R-hat {mala['max_rhat']:.2f}, {mala['s']:.0f} s); the "
        f"VAE's imputation {results['latent']['uses']['impute_bottom_half_pixel_accuracy']:.3f}"
    )
    out = [
        [
            "test NLL with log Z by AIS (256 chains from the uniform cube; MALA transitions, each chain's step adapted "
            f"along the path; mean acceptance {u['test_ais_acceptance']:.2f} with the default {default} temperatures)",
            f"log Z {runs} temperatures. AIS is a stochastic lower bound on log Z, so the test NLL of this continuous "
            f"grey-level density on [0, 1]⁶⁴ is at least **{_minus(bound)} nats** (the largest of these bounds); "
            "while the estimate still moves with the number of temperatures, its standard errors (the spread of the "
            "weights) say nothing about its bias",
        ],
        [
            "outlier AUROC of the energy against the test digits",
            f"upside-down digits {u['outlier_auroc_upside_down']:.3f} (the VAE's IWAE score: "
            f"{results['latent']['uses']['auroc_upside_down']:.3f}); uniform noise "
            f"{u['outlier_auroc_uniform_noise']:.3f}; 10% of pixels replaced {u['outlier_auroc_corrupted_10pct']:.3f}",
        ],
        [
            "Langevin samples (500 steps from uniform noise, clamped to [0, 1]), 360 against the test digits",
            f"FID {u['langevin_samples_fid']:.2f} [{u['langevin_samples_fid_ci'][0]:.2f}, "
            f"{u['langevin_samples_fid_ci'][1]:.2f}], KID {u['langevin_samples_kid']:.3f}, precision "
            f"{u['langevin_samples_precision']:.3f}, recall {u['langevin_samples_recall']:.3f}",
        ],
        [
            "bottom half of 20 test digits completed under the EBM prior (top half observed, noise 0.05), two chains",
            completion,
        ],
    ]
    if "digits-cd" in results["ebm"]:
        d = results["ebm"]["digits-cd"]
        cd_ais = {int(k.split("_")[1]): v for k, v in d.items() if k.startswith("ais_") and k.endswith("_temperatures")}
        out.append(
            [
                f"`ebm` (contrastive divergence, replay buffer) on the same digits, {d['train']['steps']} steps "
                f"({d['train']['train_s']:.0f} s; `--only digits-cd`)",
                "log Z by AIS "
                + " and ".join(f"{_ais(cd_ais[t])} with {t} temperatures" for t in sorted(cd_ais))
                + f"; test NLL {_minus(d['test_nll_nats'])} nats (with the last); Langevin samples FID "
                f"{d['fid']:.2f}, precision {d['precision']:.3f}, recall {d['recall']:.3f}",
            ]
        )
    return _table(["use", "result"], out)


#: The EBM speed rows: the script's sampler name, the page's label.
EBM_SPEED = {
    "pyrogen MALA": "pyrogen MALA (batched)",
    "pyrogen HMC (10 steps)": "pyrogen HMC, 10 leapfrog steps (batched)",
    "Pyro NUTS": "Pyro NUTS (2 chains, one after another, 125 warm-up + 500 draws each)",
    "NumPyro NUTS (vectorized)": 'NumPyro NUTS, `chain_method="vectorized"`, compiled',
}


def _thousands(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def ebm_speed(results: Results) -> str:
    """Effective samples per second on the 2-D tanh energy (``benchmarks/ebm.py --only speed``), the best bold."""
    rows = {r["sampler"]: r for r in results["ebm"]["speed"]}
    names = [n for n in EBM_SPEED if n in rows]
    best = _bold_best([rows[n]["ess_per_s"] for n in names], lambda a, b: a > b)
    out = []
    for i, n in enumerate(names):
        r = rows[n]
        label = EBM_SPEED[n] + (f" (first run with compiling {r['first_run_s']:.2f} s)" if "first_run_s" in r else "")
        rate = _thousands(r["ess_per_s"])
        out.append(
            [label, str(r["chains"]), _thousands(r["ess"]), f"{r['s']:.2f}", f"**{rate}**" if i == best else rate]
        )
    return _table(["sampler", "chains", "ESS (bulk, worse coordinate)", "seconds", "ESS/s"], out)


def ebm_toys(results: Results) -> str:
    out = []
    for r in results["ebm"]["toys"]:
        if "error" in r:
            out.append([f"`{r['variant']}`", r["data"], f"diverged: {r['error']}", "", "", "", "", "", ""])
            continue
        modes = f"{r['modes']:.0f}" if "modes" in r else "–"
        hq = f"{r['high_quality']:.3f}" if "high_quality" in r else "–"
        out.append(
            [
                f"`{r['variant']}`",
                r["data"],
                f"{r['nll_nats']:.3f} ± {r['nll_stderr']:.3f}",
                f"{r['best_nll']:.3f}",
                modes,
                hq,
                _minus(r["mmd"], 4),
                f"{r['c2st']:.3f}",
                f"{r['train_s']:.0f}",
            ]
        )
    header = ["variant", "data", "test NLL (quadrature)", "best possible", "modes", "high quality", "MMD²", "C2ST"]
    return _table([*header, "training (s)"], out)


#: The autoregressive digits rows, each with the settings the script trains it with.
AUTOREGRESSIVE_DIGITS = {
    "fvsbn": "FVSBN",
    "nade": "NADE (H = 128)",
    "made": "MADE (256-256, 8 orderings ensembled, ≤ 6000 steps)",
    "pixelcnn": "PixelCNN (64 features, 4 layers, position bias, dropout 0.5)",
    "gated-pixelcnn": "gated PixelCNN (32 features, 5 layers, dropout 0.5, ≤ 1500 steps)",
    "pixelrnn": "PixelRNN, Diagonal BiLSTM (32 features, 2 layers, dropout 0.5)",
    "pixelrnn-row": "PixelRNN, Row LSTM (`--set cell=row-lstm`)",
    "transformer": "transformer (64 wide, 2 blocks, ≤ 1500 steps)",
}


def autoregressive_digits(results: Results) -> str:
    ar = results["autoregressive"]
    rows = [_row(ar["digits_binary"], model=m) for m in AUTOREGRESSIVE_DIGITS]
    out = [
        [label, cell, f"{r['best_step']} of {r['steps']}"]
        for r, label, cell in zip(rows, AUTOREGRESSIVE_DIGITS.values(), _nll_cells(rows), strict=True)
    ]
    for name, floor in ar["floors"].items():
        out.append([f"floor: {name} (`tests/test_data.py`)", f"{floor:.2f}", "–"])
    return _table(["binarized digits, test NLL", "nats", "best step"], out)


def autoregressive_other(results: Results) -> str:
    ar = results["autoregressive"]
    rgb, rnade, base = ar["rgb"], ar["rnade"], ar["text_baselines"]
    text = {r["model"]: r for r in ar["text"]}
    gmm = [r for r in results.get("classical", {}).get("gmm", []) if r.get("data") == "digits" and "method" in r]
    em = [r for r in gmm if r["method"] == "em"]
    speed = ", ".join(f"{s['speedup']}x at batch {s['batch']}" for s in ar["nade_speed"])
    return _table(
        ["other", "value", "reference"],
        [
            [
                "PixelCNN (48 features, R → G → B masks) on `digits-rgb`",
                f"{rgb['nll_nats']:.2f} ± {rgb['nll_stderr']:.2f} nats; "
                f"{100 * rgb['single_colour_samples']:.1f}% of 500 samples in one colour",
                f"binary PixelCNN + log 7 = {rgb['binary_nll_plus_log7']:.2f} (colour learned perfectly)",
            ],
            [
                "RNADE (10 Gaussians) on dequantized digits",
                f"{rnade['bits_per_dim']:.3f} bits/dim (log2 17 correction included)",
                f"10-component GMM (EM) {em[0]['bits_per_dim']:.3f}" if em else "–",
            ],
            [
                "char-RNN (LSTM 128), Python source, test",
                f"{text['char-rnn']['bits_per_char']:.3f} bits/char",
                f"unigram {base['unigram']:.3f}, bigram {base['bigram']:.3f} (add-one, same text)",
            ],
            [
                "transformer (64 wide, 2 blocks, ≤ 600 steps), same text",
                f"{text['transformer']['bits_per_char']:.3f} bits/char",
                "–",
            ],
            ["NADE one-pass `log_prob` vs d passes, d = 64, H = 128", speed, "the d-pass reference"],
        ],
    )


#: The Boltzmann machines' rows: the script's variant, the page's label.
BOLTZMANN = {
    "rbm 16 hidden, CD-1 (exact log Z)": "RBM, 16 hidden units, CD-1",
    "rbm 16 hidden, PCD-1 (exact log Z)": "RBM, 16 hidden units, PCD-1",
    "rbm 64 hidden, CD-1 (log Z by AIS)": "RBM, 64 hidden units, CD-1",
    "bm fully visible, CD-1 (log Z by AIS)": "BM, fully visible, CD-1",
    "dbm 64-16, layer-wise pre-training only (4000 steps)": "DBM 64-16, layer-wise pre-training only (4000 steps)",
    "dbm 64-16, pre-trained, mean field + PCD-1 (log Z by AIS)": "DBM 64-16, pre-trained, then mean field + PCD-1",
}


def classical_boltzmann(results: Results) -> str:
    rows = [_row(results["classical"]["rbm"], variant=v) for v in BOLTZMANN]
    out = []
    for r, label, cell in zip(rows, BOLTZMANN.values(), _nll_cells(rows), strict=True):
        z = f"{r['log_z']:.2f}"
        if r["log_z_method"] == "ais":
            z += f" ± {r['log_z_stderr']:.2f}, by AIS"
        else:
            z += f", by {r['log_z_method']} (exact)"
        if "unnormalized_method" in r:
            z += f"; p*(v) by {r['unnormalized_method']} (exact)"
        out.append([label, cell, z, f"{r['steps']} ({r['train_s']:.0f} s)"])
    return _table(["binarized digits, test NLL", "nats", "log Z", "steps (training)"], out)


#: The mixtures' data sets, as the page names them.
GMM_DATA = {
    "digits": "digits (dequantized), full covariance",
    "wine": "wine (scikit-learn, 13 standardized features, a 70/30 split)",
}


def classical_gmm(results: Results) -> str:
    rows = [r for r in results["classical"]["gmm"] if "method" in r]
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        by = {r["method"]: r for r in rows if r["data"] == data}
        first = next(iter(by.values()))
        label = f"{GMM_DATA.get(data, data)}, {first['components']} components"
        if "best_possible_nats" in first:
            label += f" (best possible {_minus(first['best_possible_nats'], 3)})"
        best = max(by, key=lambda m: by[m]["test_loglik_nats"])
        cells = []
        for method in ("em", "svi", "nuts"):
            if method not in by:
                cells.append("–")
                continue
            r = by[method]
            cell = _minus(r["test_loglik_nats"], 3)
            if "bits_per_dim" in r:
                cell += f" = {r['bits_per_dim']:.3f} bits/dim"
            cell = f"**{cell}**" if method == best else cell
            cells.append(f"{cell} ({r['fit_s']:.1f} s)")
        out.append([label, *cells])
    header = ["Gaussian mixtures, test log-likelihood (nats)", "EM", "SVI (z enumerated)"]
    header.append("NUTS (posterior predictive)")
    sweep = next(r for r in results["classical"]["gmm"] if "reg_sweep_val_loglik" in r)
    chosen = max(sweep["reg_sweep_val_loglik"], key=sweep["reg_sweep_val_loglik"].__getitem__)
    ordered = sorted(sweep["reg_sweep_val_loglik"].items(), key=lambda kv: float(kv[0]))
    values = ", ".join(f"**{_minus(v, 1)}**" if reg == chosen else _minus(v, 1) for reg, v in ordered)
    regs = ", ".join(f"{float(reg):g}" for reg, _ in ordered)
    note = (
        f"\nOn the digits the covariance regularization is chosen on the validation split (validation "
        f"log-likelihood {values} for `reg` = {regs}).\n"
    )
    return _table(header, out) + note


def classical_bayes_net(results: Results) -> str:
    b = results["classical"]["bayes-net"]
    out = [
        ["counts, every row complete", f"{b['counts_max_table_error']:.3f}", "–"],
        [
            f"EM (`fit_em`), a third of the grades missing ({b['missing_grades_em_iterations']} iterations)",
            f"{b['missing_grades_em_max_table_error']:.3f}",
            "0",
        ],
        [
            "gradient on the marginal likelihood, the same rows (400 steps)",
            f"{b['missing_grades_max_table_error']:.3f}",
            f"{b['missing_grades_gradient_gap_to_em']:.3f}",
        ],
    ]
    return _table(["student network learned back from its 2000 rows", "largest table error", "from EM's tables"], out)


def classical_hmm(results: Results) -> str:
    h = results["classical"]["hmm"]
    ar = results.get("autoregressive", {})
    out = [["unigram (add-one)", f"{h['unigram']:.3f}"], ["bigram (add-one)", f"{h['bigram']:.3f}"]]
    best = min(r["test_bits_per_char"] for r in h["hmm"])
    for r in h["hmm"]:
        cell = f"{r['test_bits_per_char']:.3f}"
        cell = f"**{cell}**" if r["test_bits_per_char"] == best else cell
        out.append(
            [
                f"HMM, {r['states']} states",
                f"{cell} ({r['em_iterations']} EM iterations, {r['seconds_per_iteration']} s each)",
            ]
        )
    if "text" in ar:
        rnn = _row(ar["text"], model="char-rnn")
        out.append(["char-RNN (LSTM 128, the autoregressive page)", f"{rnn['bits_per_char']:.3f}"])
    return _table(["text, test bits per character", ""], out)


def classical_kde(results: Results) -> str:
    rows = results["classical"]["kde"]
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        by = {r["bandwidth"]: r for r in rows if r["data"] == data}
        cv = by["cross-validated"]
        if data == "digits":
            per = by["cross-validated, per pixel"]
            out.append(
                [
                    "digits (dequantized, 64 pixels), bits/dim",
                    f"{by['scott']['bits_per_dim']:.3f} / {by['silverman']['bits_per_dim']:.3f}",
                    f"{cv['bits_per_dim']:.3f} (one h); **{per['bits_per_dim']:.3f}** (one h per pixel)",
                    "–",
                ]
            )
            continue
        rules = {f"{by[k]['test_nll_nats']:.3f}" for k in ("scott", "silverman")}
        out.append(
            [
                data,
                " / ".join(sorted(rules)),
                f"**{cv['test_nll_nats']:.3f}** ({cv['h'][0]:.3f})",
                f"{cv['best_possible_nll']:.3f}",
            ]
        )
    return _table(["test NLL (nats)", "Scott / Silverman", "cross-validated (h)", "best possible"], out)


def classical_naive_bayes_size(results: Results) -> str:
    rows = results["classical"]["naive-bayes"]["by_training_size"]
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        for key, name in (("naive_bayes", "naive Bayes"), ("logistic_regression", "logistic regression")):
            cells = []
            for i, r in enumerate(mine):
                if i + 1 < len(mine) and r["n_train"] == mine[-1]["n_train"]:
                    cells.append("–")  # the task has fewer examples than this column: see "all"
                elif i + 1 == len(mine):
                    cells.append(f"{r[key]:.3f} ({r['n_train']})")
                else:
                    cells.append(f"{r[key]:.3f}")
            out.append([f"{task}: {name}", *cells])
    return _table(["training examples", "20", "50", "100", "200", "500", "all (how many)"], out)


def classical_naive_bayes_missing(results: Results) -> str:
    rows = results["classical"]["naive-bayes"]["by_missing_fraction"]
    out = [
        ["naive Bayes, missing pixels marginalized", *(f"{r['naive_bayes_marginalized']:.3f}" for r in rows)],
        ["logistic regression, mean-imputed", *(f"{r['logistic_regression_mean_imputed']:.3f}" for r in rows)],
    ]
    return _table(["pixels missing in each test digit", *(f"{100 * r['missing']:.0f}%" for r in rows)], out)


def _spread(values: list[float], digits: int) -> str:
    """``mean ± sd`` over seeds (the value alone for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


def gan_toys(results: Results) -> str:
    """Every loss on the toys, mean ± standard deviation over the seeds run (modes: their range)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results["gan"]["toys"]:
        groups.setdefault((r["variant"], r["data"]), []).append(r)
    out = []
    for (variant, data), rs in groups.items():
        modes, hq = "–", "–"
        if "modes" in rs[0]:
            lo, hi = min(r["modes"] for r in rs), max(r["modes"] for r in rs)
            modes = f"{lo:.0f}" if lo == hi else f"{lo:.0f}–{hi:.0f}"
            hq = _spread([r["high_quality"] for r in rs], 3)
        mmd, c2st = _spread([r["mmd"] for r in rs], 4), _spread([r["c2st"] for r in rs], 3)
        out.append([f"`{variant}`", data, mmd.replace("-", "−"), c2st, modes, hq])
    seeds = sorted({r["seed"] for r in results["gan"]["toys"]})
    header = ["variant", "data", "MMD²", "C2ST", "modes of 8", "high quality"]
    return _table(header, out) + f"\nSeeds {', '.join(map(str, seeds))}.\n"


def gan_digits(results: Results) -> str:
    rows = results["gan"]["digits"]
    best = _bold_best([r["fid"] for r in rows], lambda a, b: a < b)
    out = []
    for i, r in enumerate(rows):
        fid = f"{r['fid']:.3f} [{r['fid_ci'][0]:.3f}, {r['fid_ci'][1]:.3f}]"
        out.append(
            [
                f"`{r['variant']}`",
                f"**{fid}**" if i == best else fid,
                _minus(r["kid"], 3),
                f"{r['precision']:.3f}",
                f"{r['recall']:.3f}",
                f"{r['inception_score']:.2f}",
                f"{r['train_s']:.0f}",
            ]
        )
    header = ["variant", "FID (95% interval)", "KID", "precision", "recall", "IS", "training (s)"]
    return _table(header, out)


def gan_uses(results: Results) -> str:
    u = results["gan"]["uses"]
    per = u["cgan_per_label"]
    inv, tr = "cyclegan_invert", "cyclegan_transpose"
    out = [
        [
            "cGAN: 100 samples per label, read by the feature network's classifier",
            f"{100 * u['cgan_label_agreement']:.1f}% carry the requested label (per label "
            f"{min(per):.2f}–{max(per):.2f})",
            "`--uses cgan`",
        ],
        [
            "BiGAN encoder as a representation, linear probe test accuracy",
            f"codes {u['bigan_probe_codes']:.3f} against the grey pixels {u['bigan_probe_pixels']:.3f}; "
            f"E(G(z)) against z: MSE {u['bigan_inversion_mse']:.2f} (a shuffled z: "
            f"{u['bigan_inversion_mse_shuffled']:.2f})",
            "`--uses bigan`",
        ],
        [
            "CycleGAN digits → negatives (the default; never paired)",
            f"a classifier of negatives ({u[inv + '_target_classifier_on_true_domain_b']:.3f} on true negatives) "
            f"reads the source label on **{u[inv + '_target_classifier_on_translations']:.3f}** of the "
            f"translations; cycle error ‖F(G(x)) − x‖₁ {u[inv + '_cycle_l1']:.3f} per pixel, translation error "
            f"against the true negative {u[inv + '_translation_l1_to_true_domain_b']:.3f}",
            "`--uses cyclegan`",
        ],
        [
            "CycleGAN digits → transposed digits (`domain_b=transpose`)",
            f"label kept on {u[tr + '_target_classifier_on_translations']:.3f} "
            f"({u[tr + '_target_classifier_on_true_domain_b']:.3f} on true transposes), cycle error "
            f"{u[tr + '_cycle_l1']:.3f}",
            "`--uses cyclegan`",
        ],
        [
            "bottom half of test digits completed through the `ns-gan` generator (z ~ N(0, I), top half ~ "
            "Bernoulli(G(z)), posterior mean thresholded at 0.5)",
            f"NUTS on {u['completion_digits_nuts']} digits (2 chains x 150 draws after 150 warm-up, "
            f"{u['completion_nuts_s']:.0f} s): pixel accuracy {u['completion_nuts_pixel_accuracy']:.3f}, max R-hat "
            f"{u['completion_nuts_max_rhat']:.2f}, min bulk ESS {u['completion_nuts_min_ess_bulk']:.0f}, "
            f"{u['completion_nuts_divergences']} divergences; SVI (AutoNormal, 1000 steps) on the same digits: "
            f"{u['completion_svi_pixel_accuracy']:.3f}, on all the test digits: "
            f"{u['completion_svi_pixel_accuracy_all_test']:.3f}",
            "`--uses completion`",
        ],
    ]
    return _table(["use", "measured", "script"], out)


def headline(results: Results) -> str:
    """The README's rows that come from results files (the front page's other rows name their pages)."""
    demo = results["demo"]["capabilities"]
    d = next((r for r in demo if r["data"] == "avx2"), demo[0])
    vae = [r["vae_nll_nats"] for r in demo]
    out = [
        [
            "`pyrogen demo`: RealNVP on moons, test NLL; a VAE on the binarized 8 × 8 digits, IWAE "
            f"(k = {d['vae_k']}) test NLL, and FID of its samples",
            f"{d['realnvp_nll_nats']:.3f} ± {d['realnvp_nll_stderr']:.3f} nats (best possible 2.391); "
            f"{d['vae_nll_nats']:.2f} ± {d['vae_nll_stderr']:.2f} nats ({min(vae):.2f} to {max(vae):.2f} over "
            f"{len(demo)} CPU kernel sets), FID {d['vae_fid']:.2f} {_interval(d['vae_fid_ci'], 2)}",
            "[results](docs/results.md)",
        ]
    ]
    binarized = sorted(results["mnist"]["binarized"], key=lambda r: r["nll_nats"])
    best, rest = binarized[0], binarized[1:]
    others = ", ".join(f"{r['model']} {r['nll_nats']:.2f}" for r in rest)
    out.append(
        [
            "MNIST at 28 × 28, binarized (4,000 training digits): the best test NLL",
            f"{best['model']} {best['nll_nats']:.2f} ± {best['nll_stderr']:.2f} nats; {others}",
            "[real images](docs/images.md)",
        ]
    )
    if "dequantized" in results["mnist"]:
        deq = sorted(results["mnist"]["dequantized"], key=lambda r: r["bits_per_dim"])
        flow = next(r for r in deq if r["data"] == "mnist")
        cell = f"{VARIANT_OF.get(deq[0]['model'], deq[0]['model'])} {deq[0]['bits_per_dim']:.3f}"
        if deq[0] is not flow:
            cell += (
                f" (on the integer levels, 256-way softmax); the best flow, {flow['model']}, {flow['bits_per_dim']:.3f}"
            )
        out.append(["MNIST at 28 × 28, dequantized: the best test bits/dim", cell, "[real images](docs/images.md)"])
        scored = sorted((r for rows in results["mnist"].values() for r in rows if "fid" in r), key=lambda r: r["fid"])
        lo, hi = scored[0]["fid_ci"]
        out.append(
            [
                "MNIST at 28 × 28, sample quality: the best FID of 500 samples against the test digits (95% interval)",
                f"{_variant(scored[0]['model'])} {scored[0]['fid']:.2f} [{lo:.2f}, {hi:.2f}]; "
                + ", ".join(f"{_variant(r['model'])} {r['fid']:.2f}" for r in scored[1:6]),
                "[real images](docs/images.md)",
            ]
        )
    if "autoregressive" in results:
        nll = {r["model"]: r for r in results["autoregressive"]["digits_binary"]}
        rnn, cnn = nll["pixelrnn"], nll["pixelcnn"]
        out.append(
            [
                "PixelRNN (Diagonal BiLSTM) on the binarized 8 × 8 digits, test NLL",
                f"{rnn['nll_nats']:.2f} ± {rnn['nll_stderr']:.2f} nats; PixelCNN {cnn['nll_nats']:.2f}",
                "[autoregressive](docs/autoregressive.md)",
            ]
        )
    if "latent" in results:
        p_of_x = (r for r in results["latent"]["nll"] if not r["model"].startswith("cvae"))
        latent = sorted(p_of_x, key=lambda r: r["nll_nats"])
        out.append(
            [
                "latent-variable models of p(x) on the binarized 8 × 8 digits, IWAE (k = 1000) test NLL: the best",
                f"{latent[0]['model']} {latent[0]['nll_nats']:.2f} ± {latent[0]['nll_stderr']:.2f} nats; "
                + ", ".join(f"{r['model']} {r['nll_nats']:.2f}" for r in latent[1:5]),
                "[latent](docs/latent.md)",
            ]
        )
    if "run" in results:
        ratios = [r["ratio"] for r in results["run"]["steps"]]
        out.append(
            [
                "training step against a hand-written PyTorch loop (VAE, RealNVP, MAF, WGAN-GP)",
                f"{min(ratios):.2f}x–{max(ratios):.2f}x its time",
                "[results](docs/results.md)",
            ]
        )
    if "classical" in results:
        dbm = _row(results["classical"]["rbm"], variant=next(v for v in BOLTZMANN if v.startswith("dbm 64-16, pre")))
        out.append(
            [
                "DBM 64-16 on the binarized 8 × 8 digits, test NLL (log Z by AIS)",
                f"{dbm['nll_nats']:.2f} ± {dbm['nll_stderr']:.2f} nats",
                "[classical](docs/classical.md)",
            ]
        )
    if "gan" in results:
        digits = sorted(results["gan"]["digits"], key=lambda r: r["fid"])
        best = digits[0]
        out.append(
            [
                "GANs on the grey 8 × 8 digits, the best FID (95% interval)",
                f"{best['variant']} {best['fid']:.3f} [{best['fid_ci'][0]:.3f}, {best['fid_ci'][1]:.3f}]; "
                + ", ".join(f"{r['variant']} {r['fid']:.3f}" for r in digits[1:4]),
                "[GAN](docs/gan.md)",
            ]
        )
    if "digits" in results.get("diffusion", {}):
        sde = _row(results["diffusion"]["digits"], variant="vp-sde probability flow")
        ours = (r for r in results["flows"]["digits"] if not r["model"].startswith("zuko-"))
        flow = min(ours, key=lambda r: r["bits_per_dim"])
        out.append(
            [
                "VP score SDE on the dequantized 8 × 8 digits, through the probability-flow ODE",
                f"{sde['bits_per_dim']:.2f} ± {sde['bits_per_dim_stderr']:.2f} bits/dim (the best flow, "
                f"{flow['model']}, {flow['bits_per_dim']:.2f})",
                "[diffusion](docs/diffusion.md)",
            ]
        )
    if "text" in results.get("diffusion", {}):
        top = max(results["diffusion"]["text"], key=lambda r: r["guidance"])
        attributes = min(top[f"{a}_agreement"] for a in ("thickness", "size", "slant"))
        out.append(
            [
                f"text-to-image diffusion at guidance {top['guidance']:g}: label / attributes (the lowest) as prompted",
                f"{top['label_agreement']:.3f} / {attributes:.3f}",
                "[diffusion](docs/diffusion.md)",
            ]
        )
    if "sequence" in results:
        td = results["sequence"]["td_vae"]["mean_rollouts"]
        out.append(
            [
                "TD-VAE on moving digits: test sequences whose rollouts (mean states) stay within one pixel for 3 "
                "jumps",
                f"{100 * td['share_on_track_3_jumps']:.1f}%",
                "[sequences](docs/sequence.md)",
            ]
        )
        vrnn = {r["model"]: r for r in results["sequence"]["vrnn"]}
        bound, lstm = vrnn["vrnn"]["iwae100_per_frame"], vrnn["lstm-gaussian"]["nll_per_frame"]
        out.append(
            [
                "VRNN on spoken digits (held-out voices), test NLL bound per frame (IWAE, k = 100)",
                f"{_minus(bound)} nats; an LSTM {_minus(lstm)}",
                "[sequences](docs/sequence.md)",
            ]
        )
    mcmc = results["mcmc"]["samplers"]
    ratios = []
    for target, label in (
        ("energy2d", "the 2-D tanh energy"),
        ("banana", "a banana"),
        ("funnel", "a 10-D funnel"),
        ("gauss100", "a 100-D Gaussian"),
        ("logistic", "a Bayesian logistic regression"),
    ):
        found = {r["sampler"]: r for r in mcmc if r["target"] == target and r["chains"] == 512}
        if "pyrogen ChEES" in found and "NumPyro NUTS (vectorized)" in found:
            ratio = found["pyrogen ChEES"]["ess_per_s"] / found["NumPyro NUTS (vectorized)"]["ess_per_s"]
            ratios.append(f"{ratio:.2f}x on {label}")
    out.append(
        [
            "ChEES-HMC against NumPyro's vectorized NUTS, effective samples per second at 512 chains, warm-up included",
            "; ".join(ratios),
            "[energy-based](docs/ebm.md)",
        ]
    )
    fresh = results["flows"]["fresh"]
    mine = [r["gap"] for r in fresh if r["model"] == "nsf"]
    zuko = [r["gap"] for r in fresh if r["model"] == "zuko-nsf"]
    out.append(
        [
            "NSF on four densities never tuned on (funnel, banana, three scales, 8-D copula): gap to the best possible",
            f"{_minus(min(mine), 3)} to {_signed(max(mine))} nats; zuko's NSF {_signed(min(zuko), 2)} to "
            f"{_signed(max(zuko), 1)}",
            "[flows](docs/flows.md)",
        ]
    )
    return _table(["what (from `results/`)", "number", "page"], out)


TABLES: dict[str, Callable[[Results], str]] = {
    "sequence-vrnn": vrnn,
    "sequence-td-vae": td_vae,
    "flows-fresh": fresh_densities,
    "representation-autoencoders": autoencoders,
    "diffusion-flow-matching": flow_matching,
    "mnist-binarized": mnist_binarized,
    "mnist-dequantized": mnist_dequantized,
    "mnist-samples": mnist_samples,
    "samplers": samplers,
    "patches": patches,
    "latent-hierarchical": latent_hierarchical,
    "latent-nll": latent_nll,
    "latent-decoders": latent_decoders,
    "latent-beta": latent_beta,
    "latent-other": latent_other,
    "latent-seeds": latent_seeds,
    "ebm-toys": ebm_toys,
    "flows-toys": flows_toys,
    "quality-digits": quality_digits,
    "quality-toys": quality_toys,
    "diffusion-toys": diffusion_toys,
    "diffusion-digits": diffusion_digits,
    "diffusion-guidance": diffusion_guidance,
    "diffusion-text": diffusion_text,
    "flows-three-scales": flows_three_scales,
    "flows-digits": flows_digits,
    "flows-seeds": flows_seeds,
    "flows-other": flows_other,
    "results-demo": results_demo,
    "results-kernels": results_kernels,
    "results-threads": results_threads,
    "ebm-uses": ebm_uses,
    "speed-steps": speed_steps,
    "ebm-speed": ebm_speed,
    "headline": headline,
    "autoregressive-digits": autoregressive_digits,
    "autoregressive-other": autoregressive_other,
    "classical-boltzmann": classical_boltzmann,
    "classical-gmm": classical_gmm,
    "classical-hmm": classical_hmm,
    "classical-kde": classical_kde,
    "classical-naive-bayes-size": classical_naive_bayes_size,
    "classical-naive-bayes-missing": classical_naive_bayes_missing,
    "classical-bayes-net": classical_bayes_net,
    "gan-toys": gan_toys,
    "gan-digits": gan_digits,
    "gan-uses": gan_uses,
}


# -- the figures -------------------------------------------------------------------------------------------------
#: Each figure's points come from a function of the results (what a test compares with the results files) and its
#: picture from a second one that draws those points; ``python benchmarks/pages.py`` writes ``docs/figures/NAME.png``.
FIGURES_DIR = ROOT / "docs" / "figures"


def mnist_quality_points(results: Results) -> list[dict[str, Any]]:
    """Every MNIST-28 model with a FID: its section, FID and interval, and its test NLL where it has one."""
    out = []
    for section, rows in results.get("mnist", {}).items():
        for r in rows:
            if "fid" not in r:
                continue
            point = {"model": r["model"], "section": section, "fid": r["fid"], "fid_ci": r["fid_ci"]}
            if section == "binarized":
                point |= {"nll": r["nll_nats"], "nll_stderr": r["nll_stderr"]}
            elif section == "dequantized":
                point |= {"bits_per_dim": r["bits_per_dim"]}
            out.append(point)
    return out


def draw_mnist_quality(points: list[dict[str, Any]], path: Path) -> None:
    """Left: test NLL against FID for the binarized models; right: every model's FID, best at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1, 1.2]})
    for p in (p for p in points if "nll" in p):
        lo, hi = p["fid_ci"]
        a.errorbar(p["fid"], p["nll"], xerr=[[p["fid"] - lo], [hi - p["fid"]]], yerr=p["nll_stderr"], fmt="o")
        a.annotate(p["model"], (p["fid"], p["nll"]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    a.set(xlabel="FID of 500 samples (lower is better)", ylabel="test NLL, nats (lower is better)")
    a.set_title("binarized MNIST-28: likelihood against sample quality", fontsize=10)
    ordered = sorted(points, key=lambda p: -p["fid"])
    colours = {"binarized": "C0", "dequantized": "C2", "samples": "C3"}
    y = range(len(ordered))
    b.barh(
        list(y),
        [p["fid"] for p in ordered],
        xerr=[[p["fid"] - p["fid_ci"][0] for p in ordered], [p["fid_ci"][1] - p["fid"] for p in ordered]],
        color=[colours[p["section"]] for p in ordered],
    )
    b.set_yticks(list(y), [p["model"] for p in ordered], fontsize=8)
    b.set(xlabel="FID (95% bootstrap interval)")
    b.set_title("every MNIST-28 model: binarized (blue), dequantized (green), no likelihood (red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


#: The moment error (in the target's standard deviations) above which the speed chart hatches a bar.
BIASED = 0.25


def sampler_speed_points(results: Results) -> list[dict[str, Any]]:
    """ESS per second of each pyrogen sampler over NumPyro's vectorized NUTS, per target and number of chains."""
    rows = results.get("mcmc", {}).get("samplers", [])
    out = []
    for r in rows:
        if r["sampler"].startswith("pyrogen"):
            ref = [
                q
                for q in rows
                if q["target"] == r["target"] and q["chains"] == r["chains"] and "NumPyro" in q["sampler"]
            ]
            if ref:
                ratio = r["ess_per_s"] / ref[0]["ess_per_s"]
                error = max(r["max_mean_error_sd"], r["max_sd_error"])
                point = {"target": r["target"], "chains": r["chains"], "sampler": r["sampler"], "ratio": ratio}
                out.append(point | {"error": error})
    return out


def draw_sampler_speed(points: list[dict[str, Any]], path: Path) -> None:
    """Bars of the speed ratio on a log axis, one group per target and number of chains; 1 is NumPyro's speed; a
    sampler whose draws' moments are off by more than :data:`BIASED` is hatched (fast and wrong)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(p["target"], p["chains"]) for p in points})
    samplers = sorted({p["sampler"] for p in points})
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(len(samplers), 1)
    for k, name in enumerate(samplers):
        xs, hs, hatches = [], [], []
        for i, g in enumerate(groups):
            found = [p for p in points if (p["target"], p["chains"]) == g and p["sampler"] == name]
            if found:
                xs.append(i + (k - (len(samplers) - 1) / 2) * width)
                hs.append(found[0]["ratio"])
                hatches.append("//" if found[0]["error"] > BIASED else "")
        bars = ax.bar(xs, hs, width, label=name, color=f"C{k}")
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), [f"{t}\n{c} chains" for t, c in groups], fontsize=8)
    ax.set_ylabel("ESS/s over NumPyro NUTS (vectorized)")
    ax.set_title(f"hatched: a mean or standard deviation off by more than {BIASED} of the target's sd", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


FIGURES: dict[str, tuple[Callable[[Results], list[dict[str, Any]]], Callable[[list[dict[str, Any]], Path], None]]] = {
    "mnist_quality": (mnist_quality_points, draw_mnist_quality),
    "sampler_speed": (sampler_speed_points, draw_sampler_speed),
}


def write_figures(results: Results, out: Path = FIGURES_DIR) -> list[Path]:
    """Draw every figure of :data:`FIGURES` from ``results`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (points, draw) in FIGURES.items():
        path = out / f"{name}.png"
        draw(points(results), path)
        written.append(path)
    return written


def render(page: str, results: Results) -> str:
    """``page`` with each marked table rendered from ``results``.

    Raises:
        KeyError: a marker names no table of :data:`TABLES`.
    """

    def one(m: re.Match[str]) -> str:
        if m.group(2) not in TABLES:
            raise KeyError(f"no table {m.group(2)!r}; the tables are {sorted(TABLES)}")
        return m.group(1) + TABLES[m.group(2)](results) + m.group(4)

    return MARKER.sub(one, page)


def pages(root: Path = ROOT) -> list[Path]:
    """The pages with generated tables: the README and ``docs/*.md``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page is out of date")
    args = p.parse_args(argv)
    results = load_results()
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text, results)
        if new != text:
            stale.append(page.relative_to(ROOT).as_posix())
            if not args.check:
                page.write_text(new)
    if not args.check:
        write_figures(results)
    if stale:
        print(("out of date: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
