"""Sample grids for the family pages: what each family's models draw on the bundled 8 x 8 digits.

Every model is trained by :func:`pyrogen.inference.fit` from its registered defaults (the settings
``pyrogen train NAME --data DATA`` uses; early stopping on the validation part, best parameters restored), seed
0, then draws 16 samples from seed 0; one figure per family, a row per model, the test digits in the last row:
``docs/figures/samples_<family>.png``.

    python benchmarks/grids.py                      # every family (about 50 minutes on one core)
    python benchmarks/grids.py --only gan ebm       # some families
    python benchmarks/grids.py --quick              # 30 training steps per model (a smoke run)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import pyro
import torch
from _common import train_and_score

from pyrogen import quality
from pyrogen.data import load
from pyrogen.figures import image_rows

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
#: Each family's rows: (label, registered name, data, model options).
FAMILIES: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {
    "autoregressive": [
        ("fvsbn", "fvsbn", "digits-binary", {}),
        ("nade", "nade", "digits-binary", {"hidden": 128}),
        ("made", "made", "digits-binary", {}),
        ("pixelcnn", "pixelcnn", "digits-binary", {"features": 64, "layers": 4, "dropout": 0.5}),
    ],
    "latent": [
        ("vae", "vae", "digits-binary", {}),
        ("iwae", "iwae", "digits-binary", {}),
        ("hvae", "hvae", "digits-binary", {}),
        ("vae-flow", "vae-flow", "digits-binary", {}),
    ],
    "flows": [
        ("realnvp", "realnvp", "digits", {}),
        ("maf", "maf", "digits", {}),
        ("glow", "glow", "digits", {}),
        ("nsf", "nsf", "digits", {}),
    ],
    "gan": [
        ("ns-gan", "ns-gan", "digits", {}),
        ("wgan", "wgan", "digits", {}),
        ("cgan", "cgan", "digits", {}),
        ("bigan", "bigan", "digits", {}),
    ],
    "ebm": [("ebm", "ebm", "digits", {})],
    "diffusion": [
        ("ddpm", "ddpm", "digits", {}),
        ("flow-matching", "flow-matching", "digits", {}),
    ],
    "classical": [
        ("rbm (16 hidden)", "rbm", "digits-binary", {}),
        ("gmm (10 components)", "gmm", "digits", {"components": 10}),
        ("kde", "kde", "digits", {}),
    ],
}
COLUMNS = 16


def samples(name: str, data_name: str, options: dict[str, Any], steps: int | None) -> tuple[torch.Tensor, float]:
    """``COLUMNS`` samples of ``name`` trained on ``data_name`` as grey ``(n, 1, 8, 8)`` in [0, 1], and the
    seconds its training took."""
    data = load(data_name)
    model, row = train_and_score(name, data, options, steps, score=False)
    pyro.set_rng_seed(0)
    with torch.no_grad():
        x = model.sample(COLUMNS)
    if isinstance(x, tuple):  # labelled models draw (examples, labels)
        x = x[0]
    return quality.to_unit_grey(x.reshape(COLUMNS, -1, 8, 8), data.support), row["train_s"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=sorted(FAMILIES), help="only these families")
    p.add_argument("--quick", action="store_true", help="30 training steps per model (a smoke run)")
    p.add_argument("--out", type=Path, default=FIGURES, help="the folder of the figures (default: docs/figures)")
    args = p.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out must be a folder; {str(args.out)!r} is a file")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for family in args.only or FAMILIES:
        rows = []
        for label, name, data_name, options in FAMILIES[family]:
            t = time.perf_counter()
            images, train_s = samples(name, data_name, options, 30 if args.quick else None)
            rows.append((label, images))
            took = time.perf_counter() - t
            print(f"{family}: {label} trained in {train_s:.0f} s, {took:.0f} s in all", file=sys.stderr, flush=True)
        data = load(FAMILIES[family][0][2])
        test = data.test[:COLUMNS].reshape(COLUMNS, -1, 8, 8)
        rows.append(("test digits", quality.to_unit_grey(test, data.support)))
        path = args.out / f"samples_{family}.png"
        image_rows(rows, path)
        print(f"wrote {path}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
