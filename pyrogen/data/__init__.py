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
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyrogen.data.batch import Batch, as_batch
from pyrogen.data.toys import TOY_ENTROPY, TOYS, toy_sample
from pyrogen.data.validation import SUPPORTS, validate

__all__ = [
    "Batch",
    "as_batch",
    "DATASETS",
    "SUPPORTS",
    "TOYS",
    "TOY_ENTROPY",
    "FILE_SUFFIXES",
    "MAX_DIMENSIONS",
    "MAX_LEVELS",
    "Dataset",
    "from_array",
    "load",
    "load_file",
    "load_corpus",
    "toy_sample",
    "validate",
]

#: The most levels integer data may have (16-bit grey levels): beyond, values are not modelled as discrete.
MAX_LEVELS = 2**16

#: The most values one example may hold: every family here would build hundreds of millions of parameters
#: (or hours of training) beyond.
MAX_DIMENSIONS = 2**18

#: The parts of every dataset, in order.
SPLITS = ("train", "val", "test")

#: Every name :func:`load` accepts.
DATASETS = TOYS + (
    "digits",
    "digits-int",
    "digits-binary",
    "digits-rgb",
    "mnist",
    "mnist-int",
    "mnist-binary",
    "patches",
    "moving-digits",
    "spoken-digits",
    "text",
    "student",
)

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
        kind: ``"toy2d"``, ``"image"``, ``"sequence"`` (frames ``(T, C, H, W)``, ``moving-digits``), ``"text"``,
            ``"table"`` (discrete variables, ``student``) or ``"vector"`` (user vectors of other dimensions).
        train, val, test: tensors of shape ``(n,) + event_shape``.
        support: the support of one value (see :data:`SUPPORTS`).
        levels: number of discrete levels behind the data: 2 for binary,
            17 for the integer and dequantized digits (256 for MNIST), the vocabulary size for
            text, ``None`` for continuous toys.
        dequantized: whether the values are discrete levels plus uniform noise
            scaled to ``[0, 1)`` (bits/dim then carry the ``log2(levels)``
            correction, see :func:`pyrogen.metrics.bits_per_dim`).
        labels: the class of each example for labelled data, per split.
        vocab: the characters of the ``text`` dataset, in id order.
        positions: per split, where the object of each sequence is in every frame (``moving-digits``: the digit's
            top-left corner, ``(n, T, 2)`` row and column).
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
    positions: dict[str, torch.Tensor] = field(default_factory=dict)

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


#: File types :func:`load_file` reads (never a pickle).
FILE_SUFFIXES = (".npy", ".npz", ".csv", ".safetensors")


def from_array(
    x: object,
    labels: object = None,
    *,
    name: str = "array",
    support: str | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    sizes: Sequence[int] | None = None,
) -> Dataset:
    """A :class:`Dataset` from your own examples, split into train / validation / test parts by ``seed``.

    Args:
        x: examples ``(n, ...)`` as a tensor or NumPy array: vectors ``(n, D)`` or images ``(n, C, H, W)``.
        labels: optional integer class labels ``(n,)``.
        name: what the dataset is called in runs and messages.
        support: one of :data:`SUPPORTS`; by default integers are ``"integer"`` (levels: the largest
            value + 1), floats holding only 0 and 1 ``"binary"``, other floats ``"real"``.
        seed: seeds the split (a random permutation).
        val_fraction, test_fraction: shares of the examples held out (at least two examples each, and two
            are left for training).
        sizes: fixed parts instead: the first ``sizes[0]`` examples train, the next ``sizes[1]`` validate, the
            last ``sizes[2]`` test, in order (no shuffling; the fractions and the seed are not used).

    Raises:
        TypeError: ``x`` is not an array of numbers.
        ValueError: too few examples for three parts of at least two, a bad shape, non-finite values, values
            outside ``support``, integers above :data:`MAX_LEVELS` levels, labels of another length, bad
            fractions or a bad seed.

    Example:
        >>> ds = from_array(torch.randn(100, 3), name="mine")
        >>> len(ds.train), len(ds.val), len(ds.test), ds.support, ds.kind
        (80, 10, 10, 'real', 'vector')
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name}: examples must be numbers; got an object array")
        if x.dtype.kind not in "biuf":  # complex, strings, bytes, dates, structured records
            raise TypeError(f"{name}: examples must be real numbers (bool, int or float); got dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: examples must be a tensor or a NumPy array; got {type(x).__name__}")
    if x.dim() not in (2, 4) or len(x) < 3:
        raise ValueError(
            f"{name}: examples must be (n, D) vectors or (n, C, H, W) images, n >= 3; got {tuple(x.shape)}"
        )
    if x[0].numel() > MAX_DIMENSIONS:
        raise ValueError(
            f"{name}: examples of shape {tuple(x.shape[1:])} hold {x[0].numel():,} values each; at most "
            f"{MAX_DIMENSIONS:,} (3 x 296 x 296 images) are taken"
        )
    for frac, arg in ((val_fraction, "val_fraction"), (test_fraction, "test_fraction")):
        if not isinstance(frac, (int, float)) or not 0 < frac < 0.5:
            raise ValueError(f"{arg} must be a number in (0, 0.5); got {frac!r}")
    if x.dtype == torch.bool:
        x = x.float()
    if support is None:
        if not x.dtype.is_floating_point:
            support = "integer"
        elif bool(((x == 0) | (x == 1)).all()):
            support = "binary"
        else:
            support = "real"
    if x.dtype.is_floating_point:
        x = x.float()
    elif support != "integer":
        x = x.float()
    else:
        x = x.long()
    levels = int(x.max()) + 1 if support == "integer" else (2 if support == "binary" else None)
    if levels is not None and levels > MAX_LEVELS:
        raise ValueError(
            f"{name}: integer examples go up to {levels - 1}; at most {MAX_LEVELS} levels (0..{MAX_LEVELS - 1}) "
            "are modelled as discrete values: rescale them, or give float data for a continuous model"
        )
    validate(x, support=support, levels=levels, name=name)
    y = None
    if labels is not None:
        y = torch.as_tensor(np.asarray(labels) if not isinstance(labels, torch.Tensor) else labels)
        if y.dtype.is_floating_point or y.shape != (len(x),) or bool((y < 0).any()):
            raise ValueError(f"{name}: labels must be {len(x)} non-negative integers; got {tuple(y.shape)} {y.dtype}")
        y = y.long()
    n = len(x)
    if sizes is not None:
        n_fixed = tuple(sizes)
        if len(n_fixed) != 3 or sum(n_fixed) != n or min(n_fixed) < 2:
            raise ValueError(f"{name}: sizes must be three parts of at least 2 examples summing to {n}; got {sizes!r}")
    n_test, n_val = max(2, round(n * test_fraction)), max(2, round(n * val_fraction))
    if sizes is not None:
        n_train, n_val, n_test = n_fixed
    if n - n_test - n_val < 2:
        raise ValueError(
            f"{name}: {n} examples split into {max(n - n_test - n_val, 0)} for training, {n_val} for validation "
            f"and {n_test} for testing; each part needs at least 2 (give at least {n_test + n_val + 2} examples)"
        )
    if sizes is None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        idx = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    else:
        order = torch.arange(n)
        idx = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    parts = {k: x[v] for k, v in idx.items()}
    kind = "image" if x.dim() == 4 else ("toy2d" if x.shape[1] == 2 else "vector")
    return Dataset(
        name,
        kind,
        parts["train"],
        parts["val"],
        parts["test"],
        support,
        levels,
        labels={k: y[v] for k, v in idx.items()} if y is not None else {},
    )


def load_file(
    path: str | os.PathLike[str],
    seed: int = 0,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
) -> Dataset:
    """A :class:`Dataset` from a file of examples (see :func:`from_array`); never unpickles.

    ``.npy`` (one array), ``.npz`` and ``.safetensors`` (the array ``x``, or the only one, and optional
    labels ``y``; or fixed parts ``train``, ``val``, ``test`` with optional labels ``y_train``, ``y_val``,
    ``y_test``, kept as they are), ``.csv`` (numbers separated by commas, one example per row; a header row is
    skipped). A file without fixed parts is split at random from ``seed``: ``val_fraction`` and
    ``test_fraction`` of the examples held out (0.1 each unless given).

    Raises:
        ValueError: a missing or unreadable file, another suffix, fractions for a file with fixed parts, or
            data :func:`from_array` refuses.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValueError(f"data file {str(p)!r} must end in {', '.join(FILE_SUFFIXES)}")
    if not p.is_file():
        raise ValueError(f"data file {str(p)!r} does not exist")
    from safetensors import SafetensorError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's warnings (an empty csv) are errors about the file here
            x, y = _read_arrays(p, suffix)
    except (OSError, ValueError, KeyError, EOFError, SafetensorError, UserWarning) as e:
        msg = str(e).splitlines()[0] if str(e) else repr(e)
        if "pickled" in msg:
            msg = "not a NumPy file of numbers (pickled objects are never loaded)"
        raise ValueError(f"data file {str(p)!r} cannot be read: {msg}") from None
    sizes = None
    if isinstance(x, dict):  # fixed train / val / test parts
        given = [f for f, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)) if v is not None]
        if given:
            raise ValueError(f"data file {str(p)!r} holds its own train / val / test parts; {given[0]} does not apply")
        sizes = [len(x[k]) for k in SPLITS]
        x, y = np.concatenate([x[k] for k in SPLITS]), (None if y is None else np.concatenate(y))
    if isinstance(x, np.ndarray) and x.size == 0:
        raise ValueError(f"data file {str(p)!r} holds no examples")
    try:
        return from_array(
            x,
            y,
            name=str(p.resolve()),
            seed=seed,
            sizes=sizes,
            val_fraction=0.1 if val_fraction is None else val_fraction,
            test_fraction=0.1 if test_fraction is None else test_fraction,
        )
    except TypeError as e:
        raise ValueError(str(e)) from None


def _read_arrays(p: Path, suffix: str) -> tuple[Any, Any]:
    if suffix == ".npy":
        return np.load(p, allow_pickle=False), None
    if suffix == ".csv":
        with open(p, encoding="utf-8") as f:
            first = f.readline()
        skip = 0 if all(_is_number(v) for v in first.strip().split(",")) else 1
        return np.loadtxt(p, delimiter=",", skiprows=skip, ndmin=2), None
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        from safetensors.numpy import load_file as st_load_file

        arrays = st_load_file(str(p))
    if set(SPLITS) <= set(arrays):
        labels = [f"y_{k}" for k in SPLITS]
        if any(k in arrays for k in labels) and not all(k in arrays for k in labels):
            raise ValueError(f"holds labels for some parts only; give all of {', '.join(labels)} or none")
        ys = [arrays[k] for k in labels] if labels[0] in arrays else None
        return {k: arrays[k] for k in SPLITS}, ys
    if "x" in arrays:
        return arrays["x"], arrays.get("y")
    if len(arrays) == 1:
        return next(iter(arrays.values())), None
    raise ValueError(f"holds arrays {sorted(arrays)}; name the examples 'x' (and the labels 'y')")


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def load(name: str, seed: int = 0, val_fraction: float | None = None, test_fraction: float | None = None) -> Dataset:
    """Load the bundled dataset ``name`` (one of :data:`DATASETS`), or a data file (see :func:`load_file`).

    Args:
        name: the dataset name, e.g. ``"moons"`` or ``"digits-binary"``, or a path ending in one of
            :data:`FILE_SUFFIXES`.
        seed: seeds the generated toys, the dequantization noise and the
            colours of ``digits-rgb``; the digits split itself is always
            ``train_test_split(test_size=0.2, random_state=0)`` with 10% of
            the training part kept for validation.
        val_fraction, test_fraction: how a data file without fixed parts is split (see :func:`load_file`);
            the bundled datasets have fixed parts.

    Raises:
        ValueError: an unknown name, a seed that is not an integer in ``[0, 2**32)``, or fractions for a bundled
            dataset.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    if isinstance(name, (str, os.PathLike)) and str(name).lower().endswith(FILE_SUFFIXES):
        return load_file(name, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
    given = [f for f, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)) if v is not None]
    if given:
        raise ValueError(f"{given[0]} splits a data file; the bundled dataset {name!r} has fixed parts")
    if not isinstance(name, str) or name not in DATASETS:
        files = ", ".join(FILE_SUFFIXES)
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, or a file ending in {files}")
    if name in TOYS:
        parts = {k: toy_sample(name, n, seed=seed * 3 + i) for i, (k, n) in enumerate(TOY_SIZES.items())}
        return Dataset(name, "toy2d", parts["train"], parts["val"], parts["test"], "real")
    if name == "text":
        return _text()
    if name == "student":
        return _student(seed)
    if name == "moving-digits":
        return _moving_digits(seed)
    if name == "spoken-digits":
        return _spoken_digits()
    if name.startswith("mnist"):
        return _mnist(name, seed)
    if name == "patches":
        return _patches(seed)
    return _digits(name, seed)


def _mnist(name: str, seed: int) -> Dataset:
    """MNIST at 28 x 28 (:mod:`pyrogen.data.images`): 4,000 / 500 / 500 digits, dequantized (``mnist``), integer
    grey levels (``mnist-int``) or binarized at 128 (``mnist-binary``), with labels."""
    from pyrogen.data.images import load_mnist

    out, labels = {}, {}
    for i, (split, (grey, y)) in enumerate(load_mnist().items()):
        v = grey.reshape(-1, 1, 28, 28).astype(np.int64)
        labels[split] = torch.as_tensor(y, dtype=torch.long)
        if name == "mnist-binary":
            out[split] = torch.as_tensor(v >= 128, dtype=torch.float32)
        elif name == "mnist-int":
            out[split] = torch.as_tensor(v, dtype=torch.long)
        else:  # uniform dequantization to [0, 1); fixed noise per split
            rng = np.random.RandomState(seed * 3 + i)
            x = ((v + rng.rand(*v.shape)) / 256.0).astype(np.float32)
            # kept below the next level where float32 rounds a value up to it (floor(256 x) is the grey level)
            top = np.nextafter(((v + 1) / 256.0).astype(np.float32), np.float32(0))
            out[split] = torch.as_tensor(np.minimum(x, top))
    support = {"mnist-binary": "binary", "mnist-int": "integer"}.get(name, "unit_interval")
    return Dataset(
        name,
        "image",
        out["train"],
        out["val"],
        out["test"],
        support,
        2 if support == "binary" else 256,
        dequantized=name == "mnist",
        labels=labels,
    )


def _patches(seed: int) -> Dataset:
    """8 x 8 grey patches of two photographs, dequantized, mean removed, 63 coordinates
    (:mod:`pyrogen.data.images`): 30,000 / 5,000 / 5,000."""
    from pyrogen.data.images import patches

    parts = {k: torch.as_tensor(v) for k, v in patches(seed).items()}
    return Dataset("patches", "vector", parts["train"], parts["val"], parts["test"], "real")


def _moving_digits(seed: int) -> Dataset:
    """The binarized digits moving in a 16 x 16 frame (:mod:`pyrogen.data.moving`), one sequence per digit image of
    each part, the motion drawn with ``seed``."""
    from pyrogen.data.moving import moving_sequences

    digits = _digits("digits-binary", seed)
    parts, positions = {}, {}
    for i, split in enumerate(SPLITS):
        parts[split], positions[split] = moving_sequences(digits.split(split), seed * 3 + i)
    return Dataset(
        "moving-digits",
        "sequence",
        parts["train"],
        parts["val"],
        parts["test"],
        "binary",
        2,
        labels=digits.labels,
        positions=positions,
    )


def _spoken_digits() -> Dataset:
    """The spoken digits (:mod:`pyrogen.data.speech`): log-mel frames ``(40, 20)`` of the words zero to nine,
    each band standardized by the training part's mean and standard deviation over frames; parts by speaker."""
    from pyrogen.data.speech import load_spoken_digits

    arrays = load_spoken_digits()
    x, y, part = torch.as_tensor(arrays["x"]), torch.as_tensor(arrays["y"]), torch.as_tensor(arrays["part"])
    train = x[part == 0]
    mean, std = train.mean((0, 1)), train.std((0, 1))
    x = (x - mean) / std
    parts = {split: x[part == i] for i, split in enumerate(SPLITS)}
    labels = {split: y[part == i] for i, split in enumerate(SPLITS)}
    return Dataset("spoken-digits", "sequence", parts["train"], parts["val"], parts["test"], "real", labels=labels)


def _student(seed: int) -> Dataset:
    """Joint draws of the bundled student network (:mod:`pyrogen.data.networks`): 2000 / 500 / 500 rows of
    (difficulty, intelligence, grade, sat, letter), integers."""
    from pyrogen.data.networks import STUDENT, ancestral_sample

    g = torch.Generator().manual_seed(seed)
    parts = [ancestral_sample(STUDENT, n, generator=g) for n in (2000, 500, 500)]
    return Dataset("student", "table", parts[0], parts[1], parts[2], "integer", levels=3)
