"""MNIST at 28 x 28: every family's registered defaults on the bundled 5,000 digits (4,000 for training).

Sections (``--only``):

- ``binarized``: on ``mnist-binary`` (a fixed binarization): the test NLL in nats of the autoregressive models
  (exact) and of the VAE and IWAE (the IWAE bound at k = 1000), with the FID, KID, precision and recall of 500
  samples against the 500 test digits (the 28 x 28 feature network, ``pyrogen.quality.mnist_features``), and the
  training time. The literature's order on binarized MNIST is FVSBN > NADE > VAE > IWAE > PixelCNN in NLL
  (published, on 60,000 training digits: NADE 88.9, IWAE 84.8 (k = 5000), PixelCNN 81.3, Gated PixelCNN and
  PixelRNN 79.2 nats).

- ``dequantized``: on ``mnist`` (grey levels dequantized uniformly): the flows' test NLL in bits/dim (published,
  on 60,000 digits: RealNVP 1.06, Glow 1.05, FFJORD 0.99) with the same sample metrics; beside them PixelCNN
  with a 256-way softmax per pixel on ``mnist-int`` (``pixelcnn-256``), whose discrete NLL in bits/dim is the
  dequantized NLL of the piecewise-constant density it defines (each grey level's probability spread uniformly
  over its bin), so the two are one scale (as in Dinh et al., 2017, and Kingma and Dhariwal, 2018).
- ``samples``: the families without an exact likelihood (GANs, diffusion, the EBM; the RBM, whose likelihood
  needs AIS, on ``mnist-binary``): the sample metrics and the training time, against which the literature expects
  the best GAN or diffusion FID below every likelihood model's.

Each row also keeps its first 16 samples as grey levels (``results/mnist_samples/MODEL.npy``, 12.5 kB), from which
every run draws the sample grids of the three sections again (``docs/figures/mnist_samples_SECTION.png``, a row per
model measured so far, the test digits last).

One model at a time, so that a long table is measured over several sittings; each row is printed to stderr as it
comes and merged into ``results/mnist.json`` (rows measured again replace their own):

    python benchmarks/mnist.py --models fvsbn nade vae iwae
    python benchmarks/mnist.py --models pixelcnn --steps 1500
    python benchmarks/mnist.py --only dequantized --models realnvp glow
    python benchmarks/mnist.py --only samples --models ns-gan ddpm
    python benchmarks/mnist.py --quick                       # a smoke run: 30 steps each
    python benchmarks/mnist.py --record run.log              # file the rows a stopped run printed to its log
    python benchmarks/mnist.py --step-times --models ddpm ebm # seconds per training step, before a full run
    python benchmarks/mnist.py --sample-times                # the pixel models' sampler against whole-image passes
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from _common import RESULTS, logged_rows, merged_rows, previous_rows, report, section_parser, train_and_score

from pyrogen import quality
from pyrogen.data import load
from pyrogen.figures import image_rows
from pyrogen.models import registry

SECTIONS = ("binarized", "dequantized", "samples")
BINARIZED = ("fvsbn", "nade", "made", "vae", "vae-conv", "iwae", "iwae-conv", "pixelcnn", "gated-pixelcnn")
#: Rows that are a registered model with other arguments: (registered name, arguments).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "vae-conv": ("vae", {"arch": "conv"}),
    "iwae-conv": ("iwae", {"arch": "conv", "k": 5}),  # k = 10 costs 2.5 s a step at 28 x 28 on one thread
    "pixelcnn-256": ("pixelcnn", {}),
    # the EBM with persistent chains (Du and Mordatch, 2019): 95% of chain starts from the replay buffer, and
    # samples by 200 steps from noise, where the registered short-run recipe restarts every chain from noise
    "ebm-persistent": ("ebm", {"reinit": 0.05, "sample_steps": 200}),
}
#: Rows on other data than their section's.
DATA_OF = {"rbm": "mnist-binary", "pixelcnn-256": "mnist-int"}
DEQUANTIZED = ("realnvp", "glow", "nsf", "pixelcnn-256")
SAMPLES = ("ns-gan", "wgan-gp", "ddpm", "score-sde", "flow-matching", "ebm", "ebm-persistent", "rbm")
MODELS = {"binarized": BINARIZED, "dequantized": DEQUANTIZED, "samples": SAMPLES}
DATA = {"binarized": "mnist-binary", "dequantized": "mnist", "samples": "mnist"}


def measure(section: str, models: list[str], steps: int | None, keep: bool = True) -> list[dict[str, Any]]:
    """Train each model of ``section`` on its data from the registered defaults, then score it (and, with
    ``keep``, keep its first samples for the grids)."""
    rows = []
    for name in models:
        data = load(DATA_OF.get(name, DATA[section]))
        registered, kwargs = VARIANTS.get(name, (name, {}))
        model, row = train_and_score(name, data, kwargs, steps, registry_name=registered, score=section != "samples")
        if "nll_nats" in row and "bits_per_dim" not in row:  # binary or integer data: the discrete NLL in bits/pixel
            row["bits_per_dim"] = round(row["nll_nats"] / (math.prod(data.event_shape) * math.log(2)), 4)
        print(json.dumps(row), file=sys.stderr, flush=True)  # the NLL before the (slow) samples: a stopped run keeps it
        pyro.set_rng_seed(0)
        t = time.perf_counter()
        with torch.no_grad():
            fake = model.sample(len(data.test))
        fake = fake[0] if isinstance(fake, tuple) else fake
        row["sample_s"] = round(time.perf_counter() - t, 1)
        # what quality.sample_quality(model, data, n=len(data.test)) computes, from the samples kept for the grids
        q = quality.compare(data.test, fake, data.kind, data.support, data.name)
        if keep:
            keep_samples(name, fake, data.support)
        for key in ("fid", "kid", "precision", "recall"):
            if key in q:
                row[key] = round(q[key]["value"], 4)
                row[f"{key}_ci"] = [round(v, 4) for v in q[key]["ci"]]
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


KEPT = RESULTS / "mnist_samples"
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
COLUMNS = 16


def keep_samples(name: str, x: torch.Tensor, support: str, folder: Path = KEPT) -> Path:
    """Save the first :data:`COLUMNS` samples of a row as grey levels ``(16, 28, 28)`` uint8."""
    grey = quality.to_unit_grey(x[:COLUMNS].reshape(-1, 1, 28, 28), support)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npy"
    np.save(path, (grey[:, 0] * 255).round().to(torch.uint8).numpy())
    return path


def draw_grids(folder: Path = KEPT, out: Path = FIGURES) -> list[Path]:
    """One figure per section with kept samples: a row per model (in the section's order), the test digits last."""
    written = []
    for section, models in MODELS.items():
        kept = [m for m in models if (folder / f"{m}.npy").exists()]
        if not kept:
            continue
        rows = [(m, torch.from_numpy(np.load(folder / f"{m}.npy")).float()[:, None] / 255) for m in kept]
        data = load(DATA[section])
        rows.append(("test digits", quality.to_unit_grey(data.test[:COLUMNS], data.support)))
        path = out / f"mnist_samples_{section}.png"
        image_rows(rows, path)
        written.append(path)
    return written


def step_times(models: list[str], steps: int = 6) -> None:
    """Seconds per training step of each model from its recipe at 28 x 28 (one thread, ``steps`` steps of the
    recipe's batch after one to warm up): what a full run will cost, before it is started."""
    from pyrogen.inference import fit, training_data

    for name in models:
        section = next(sec for sec, ms in MODELS.items() if name in ms)
        data = load(DATA_OF.get(name, DATA[section]))
        registered, kwargs = VARIANTS.get(name, (name, {}))
        cls = registry.get(registered)
        model = cls.from_dataset(data, **kwargs)
        batch = cls.train_defaults_for(data).get("batch_size", 128)
        train = training_data(model, data, "train")
        fit(model, train, None, steps=1, batch_size=batch, progress=False)
        t = time.perf_counter()
        fit(model, train, None, steps=steps, batch_size=batch, progress=False)
        print(f"{name:16s} {(time.perf_counter() - t) / steps:.3f} s a step of batch {batch}")


def pixel_sample_times(models: list[str], n: int = 16) -> None:
    """Seconds to draw ``n`` samples of each pixel model at 28 x 28 (one thread; the cost does not depend on the
    weights): its sampler, which runs the network on the rows a pixel's output reads, against one pass over the
    whole image per pixel (the generic autoregressive route)."""
    from pyrogen.models.autoregressive import AutoregressiveModel

    data = load("mnist-binary")
    for name in models:
        model = registry.get(name).from_dataset(data).eval()
        routes = {
            "rows read": lambda m=model: m._fill(m._empty(n), m.ordering(), None, 1.0),
            "whole image": lambda m=model: AutoregressiveModel._fill(m, m._empty(n), m.ordering(), None, 1.0),
        }
        times = {}
        with torch.no_grad():
            for route, draw in routes.items():
                pyro.set_rng_seed(0)
                t = time.perf_counter()
                draw()
                times[route] = round(time.perf_counter() - t, 1)
        print(f"{name:16s} {n} samples, seconds: {times}")


def printer(out: dict[str, Any]) -> None:
    for section, rows in out.items():
        print(f"## {section}")
        for r in rows:
            fid = f"FID {r['fid']:.2f}" if "fid" in r else ""
            if section == "dequantized":
                nll = f"{r['bits_per_dim']:.3f} bits/dim"
            else:
                nll = f"NLL {r['nll_nats']:8.2f} ± {r['nll_stderr']:.2f} nats" if "nll_nats" in r else ""
            print(f"{r['model']:16s} {nll} {fid}  {r['train_s']} s")


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument(
        "--models", nargs="+", choices=sorted({m for ms in MODELS.values() for m in ms}), help="of the sections run"
    )
    p.add_argument("--steps", type=int, help="training steps (default: each recipe's)")
    p.add_argument("--record", metavar="LOG", help="file the rows a stopped run printed to its log (stderr)")
    p.add_argument("--step-times", action="store_true", help="only time a few training steps of each of --models")
    p.add_argument(
        "--sample-times", action="store_true", help="only time 16 samples of pixelcnn and gated-pixelcnn, both routes"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.sample_times:
        pixel_sample_times(["pixelcnn", "gated-pixelcnn"])
        return 0
    if args.step_times:
        step_times(list(args.models or [m for ms in MODELS.values() for m in ms]))
        return 0
    steps = 30 if args.quick else args.steps
    only = set(args.only or SECTIONS)
    out: dict[str, Any] = {}
    if args.record:
        logged = logged_rows(args.record)
        for section in SECTIONS:
            mine = [r for r in logged if r["model"] in MODELS[section]]
            if mine:
                out[section] = merged_rows(previous_rows(section), mine)
        return report(out, args.json, printer)
    for section in SECTIONS:
        models = [m for m in (args.models or MODELS[section]) if m in MODELS[section]]
        if section not in only or not models:
            continue
        rows = measure(section, models, steps, keep=not args.quick)
        out[section] = rows if args.quick else merged_rows(previous_rows(section), rows)
    if not args.quick:
        for path in draw_grids():
            print(f"wrote {path}", file=sys.stderr, flush=True)
    return report(out, args.json, printer)


if __name__ == "__main__":
    sys.exit(main())
