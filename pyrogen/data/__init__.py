"""Offline datasets: the 2-D toys, scikit-learn's digits and a character corpus.

Nothing here downloads anything. Every dataset comes with fixed train,
validation and test parts, so that every family reports its test
log-likelihood on the same examples.

Example:
    >>> from pyrogen.data import load
    >>> ds = load("digits-binary")
    >>> ds.train.shape[1:], ds.support, len(ds.test)
    (torch.Size([1, 8, 8]), 'binary', 360)
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import torch

from pyrogen.data.toys import TOY_ENTROPY, TOYS, toy_sample
from pyrogen.data.validation import SUPPORTS, validate

__all__ = [
    "DATASETS",
    "SUPPORTS",
    "TOYS",
    "TOY_ENTROPY",
    "Dataset",
    "load",
    "load_corpus",
    "toy_sample",
    "validate",
]

#: Every name :func:`load` accepts.
DATASETS = TOYS + ("digits", "digits-int", "digits-binary", "digits-rgb", "text")

#: The seven colours of ``digits-rgb``: every non-black on/off combination of (R, G, B).
RGB_COLOURS = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]])

#: Sizes of the generated toy splits.
TOY_SIZES = {"train": 30_000, "val": 5_000, "test": 5_000}
#: Characters per example of the ``text`` dataset.
TEXT_LENGTH = 128


@dataclass(frozen=True)
class Dataset:
    """A dataset with fixed train / validation / test parts.

    Attributes:
        name: the name it was loaded by.
        kind: ``"toy2d"``, ``"image"`` or ``"text"``.
        train, val, test: tensors of shape ``(n,) + event_shape``.
        support: the support of one value (see :data:`SUPPORTS`).
        levels: number of discrete levels behind the data: 2 for binary,
            17 for the integer and dequantized digits, the vocabulary size for
            text, ``None`` for continuous toys.
        dequantized: whether the values are discrete levels plus uniform noise
            scaled to ``[0, 1)`` (bits/dim then carry the ``log2(levels)``
            correction, see :func:`pyrogen.metrics.bits_per_dim`).
        labels: the class of each example for labelled data, per split.
        vocab: the characters of the ``text`` dataset, in id order.
    """

    name: str
    kind: str
    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    support: str
    levels: int | None = None
    dequantized: bool = False
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    vocab: str = ""

    @property
    def event_shape(self) -> torch.Size:
        return self.train.shape[1:]

    def split(self, name: str) -> torch.Tensor:
        """The part called ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test'; got {name!r}")
        return getattr(self, name)


def _digits(name: str, seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_trv, x_test, y_trv, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
    x_train, x_val, y_train, y_val = train_test_split(x_trv, y_trv, test_size=0.1, random_state=0)
    parts = {"train": x_train, "val": x_val, "test": x_test}
    labels = {
        k: torch.as_tensor(v, dtype=torch.long) for k, v in (("train", y_train), ("val", y_val), ("test", y_test))
    }
    out: dict[str, torch.Tensor] = {}
    for i, (k, v) in enumerate(parts.items()):
        v = v.reshape(-1, 1, 8, 8)
        if name == "digits-binary":
            out[k] = torch.as_tensor(v >= 8, dtype=torch.float32)
        elif name == "digits-rgb":  # each binarized digit drawn in one of seven colours, fixed per split
            colour = RGB_COLOURS[torch.as_tensor(np.random.RandomState(seed * 3 + i).randint(0, 7, len(v)))]
            out[k] = torch.as_tensor(v >= 8, dtype=torch.float32) * colour[:, :, None, None].float()
        elif name == "digits-int":
            out[k] = torch.as_tensor(v, dtype=torch.long)
        else:  # uniform dequantization to [0, 1); fixed noise per split
            rng = np.random.RandomState(seed * 3 + i)
            out[k] = torch.as_tensor((v + rng.rand(*v.shape)) / 17.0, dtype=torch.float32)
    support = {"digits-binary": "binary", "digits-rgb": "binary", "digits-int": "integer"}.get(name, "unit_interval")
    levels = 2 if support == "binary" else 17
    return Dataset(
        name,
        "image",
        out["train"],
        out["val"],
        out["test"],
        support,
        levels,
        dequantized=name == "digits",
        labels=labels,
    )


def load_corpus() -> str:
    """The bundled character corpus (CPython standard-library source, PSF license)."""
    blob = resources.files("pyrogen.data").joinpath("corpus/python_stdlib.txt.gz").read_bytes()
    return gzip.decompress(blob).decode("utf-8")


def _text() -> Dataset:
    corpus = load_corpus()
    vocab = "".join(sorted(set(corpus)))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in corpus], dtype=torch.long)
    n = len(ids) // TEXT_LENGTH
    chunks = ids[: n * TEXT_LENGTH].reshape(n, TEXT_LENGTH)
    n_val = n_test = max(1, n // 20)  # contiguous 90 / 5 / 5 split
    n_train = n - n_val - n_test
    return Dataset(
        "text",
        "text",
        chunks[:n_train],
        chunks[n_train : n_train + n_val],
        chunks[n_train + n_val :],
        "integer",
        len(vocab),
        vocab=vocab,
    )


def load(name: str, seed: int = 0) -> Dataset:
    """Load the bundled dataset ``name`` (one of :data:`DATASETS`).

    Args:
        name: the dataset name, e.g. ``"moons"`` or ``"digits-binary"``.
        seed: seeds the generated toys, the dequantization noise and the
            colours of ``digits-rgb``; the digits split itself is always
            ``train_test_split(test_size=0.2, random_state=0)`` with 10% of
            the training part kept for validation.

    Raises:
        ValueError: an unknown name.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in TOYS:
        parts = {k: toy_sample(name, n, seed=seed * 3 + i) for i, (k, n) in enumerate(TOY_SIZES.items())}
        return Dataset(name, "toy2d", parts["train"], parts["val"], parts["test"], "real")
    if name == "text":
        return _text()
    return _digits(name, seed)
