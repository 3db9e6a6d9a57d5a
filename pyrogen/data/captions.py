r"""Captions for the bundled 8x8 digits, made from their labels and from three attributes measured on each
image, and the word tokenizer of text-conditioned models.

The attributes of a grey image :math:`x` in :math:`[0, 1]` (values below :data:`BACKGROUND` set to zero,
so that the integer, dequantized and sampled digits are measured alike; intensities as weights over the
pixel grid, rows :math:`r` growing downwards, columns :math:`c`):

- **thickness**: the ink, :math:`\sum x` (thicker strokes lay down more of it);
- **size**: the ink's radius of gyration, :math:`\sqrt{\operatorname{Var} r + \operatorname{Var} c}`;
- **slant**: the shear :math:`-\operatorname{Cov}(r, c) / \operatorname{Var} r` (positive when the top of
  the digit lies to the right of its bottom: leaning right).

Each attribute is cut at the terciles of the training digits *of the same class* (a one is thinner than
an eight; "thick" means thick for its digit): the lower third is named (``thin``, ``small``, ``leaning
left``), the upper third too (``thick``, ``large``, ``leaning right``) and the middle third is left
unsaid. A caption reads ``"a thick small seven leaning right"``; the words of every caption make
:data:`VOCAB`, and :func:`tokenize` refuses any other word by name.

Example:
    >>> from pyrogen.data import load
    >>> d = load("digits")
    >>> captions(d.test[:2], d.labels["test"][:2])
    ['a thick large two', 'a thin small eight']
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

__all__ = [
    "ATTRIBUTES",
    "DIGIT_WORDS",
    "MAX_TOKENS",
    "VOCAB",
    "attribute_words",
    "captions",
    "matches",
    "measure",
    "parse",
    "tokenize",
]

#: the attributes, each with the words for its lower and upper third
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "thickness": ("thin", "thick"),
    "size": ("small", "large"),
    "slant": ("leaning left", "leaning right"),
}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: token 0 pads, token 1 starts every caption (and alone is the empty caption of classifier-free guidance)
PAD, BOS = 0, 1
VOCAB: tuple[str, ...] = (
    "<pad>",
    "<bos>",
    "a",
    "thin",
    "thick",
    "small",
    "large",
    *DIGIT_WORDS,
    "leaning",
    "left",
    "right",
)
#: tokens of the longest caption, "<bos> a thick large seven leaning right", rounded up
MAX_TOKENS = 8
#: grey values below this count as background (the dequantization noise of a blank pixel is below 1/17)
BACKGROUND = 0.1
_INDEX = {w: i for i, w in enumerate(VOCAB)}


def _grey(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1:] != (1, 8, 8):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of 8x8 grey digits (n, 1, 8, 8); got {shape}")
    x = images.detach().double().cpu()[:, 0]
    if x.numel() and x.max() > 1:  # integer grey levels 0..16
        x = x / 16.0
    if not torch.isfinite(x).all():
        raise ValueError("images must be finite")
    x = x.clamp(0, 1)
    return torch.where(x < BACKGROUND, torch.zeros_like(x), x)


def measure(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"thickness", "size", "slant"}`` of each image ``(n, 1, 8, 8)`` (values in ``[0, 1]``, or integer
    grey levels 0..16), each ``(n,)`` in float64; see the module's docstring for the definitions."""
    x = _grey(images)
    grid = torch.arange(8, dtype=torch.float64)
    rows, cols = grid[:, None].expand(8, 8), grid[None, :].expand(8, 8)
    ink = x.sum((1, 2))
    w = x / ink.clamp_min(1e-9)[:, None, None]
    dr = rows - (w * rows).sum((1, 2))[:, None, None]
    dc = cols - (w * cols).sum((1, 2))[:, None, None]
    var_r, var_c, cov = (w * dr**2).sum((1, 2)), (w * dc**2).sum((1, 2)), (w * dr * dc).sum((1, 2))
    return {"thickness": ink, "size": (var_r + var_c).sqrt(), "slant": -cov / var_r.clamp_min(1e-9)}


@functools.cache
def _training_quantiles() -> dict[str, torch.Tensor]:
    """Per attribute, the training digits' terciles and median per class, ``(10, 3)``: lower cut, median,
    upper cut."""
    from pyrogen.data import load

    d = load("digits-int")
    values, labels = measure(d.train), d.labels["train"]
    q = torch.tensor([1 / 3, 0.5, 2 / 3], dtype=torch.float64)
    return {a: torch.stack([v[labels == k].quantile(q) for k in range(10)]) for a, v in values.items()}


def attribute_words(images: torch.Tensor, labels: torch.Tensor) -> dict[str, list[int]]:
    """Per attribute, ``-1`` (lower third of the image's class), ``0`` (middle) or ``1`` (upper) per image."""
    labels = _labels(labels, len(images))
    cuts = _training_quantiles()
    out = {}
    for a, v in measure(images).items():
        lo, hi = cuts[a][labels, 0], cuts[a][labels, 2]
        out[a] = ((v > hi).long() - (v < lo).long()).tolist()
    return out


def _labels(labels: object, n: int) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"labels must be an integer tensor of shape ({n},); got {labels!r}")
    if n and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"labels must be digits 0..9; got {labels.tolist()}")
    return labels.long().cpu()


def captions(images: torch.Tensor, labels: torch.Tensor) -> list[str]:
    """A caption per image, from its label and its attributes' thirds (see the module's docstring)."""
    words = attribute_words(images, labels)
    out = []
    for i, k in enumerate(_labels(labels, len(images)).tolist()):
        pre = [ATTRIBUTES[a][(words[a][i] + 1) // 2] for a in ("thickness", "size") if words[a][i]]
        post = [ATTRIBUTES["slant"][(words["slant"][i] + 1) // 2]] if words["slant"][i] else []
        out.append(" ".join(["a", *pre, DIGIT_WORDS[k], *post]))
    return out


def _words(prompt: object) -> list[str]:
    if not isinstance(prompt, str):
        raise ValueError(f"a prompt must be a string; got {prompt!r}")
    words = prompt.lower().split()
    unknown = [w for w in words if w not in _INDEX or w in ("<pad>", "<bos>")]
    if unknown:
        known = ", ".join(VOCAB[2:])
        raise ValueError(f"unknown word {unknown[0]!r} in prompt {prompt!r}; the vocabulary is: {known}")
    if len(words) + 1 > MAX_TOKENS:
        raise ValueError(f"prompt {prompt!r} has {len(words)} words; at most {MAX_TOKENS - 1} fit")
    return words


def tokenize(prompts: str | Sequence[str]) -> torch.Tensor:
    """Token ids ``(n, MAX_TOKENS)`` of one prompt or a list: ``<bos>``, the words, then ``<pad>``.

    Raises:
        ValueError: a word outside :data:`VOCAB` (named, with the vocabulary), or a prompt too long.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, Sequence) or not prompts:
        raise ValueError(f"prompts must be a string or a non-empty list of strings; got {prompts!r}")
    out = torch.full((len(prompts), MAX_TOKENS), PAD, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids = [BOS, *(_INDEX[w] for w in _words(p))]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def parse(prompt: str) -> tuple[int | None, dict[str, int]]:
    """What a prompt asks for: its digit (``None`` if it names none) and, per attribute it names, ``-1`` or
    ``1`` (the lower or upper third).

    Raises:
        ValueError: an unknown word, or two digits or both ends of an attribute in one prompt.
    """
    text = " ".join(_words(prompt))
    digits = [k for k, w in enumerate(DIGIT_WORDS) if w in text.split()]
    if len(digits) > 1:
        raise ValueError(f"prompt {prompt!r} names {len(digits)} digits; name one")
    asked: dict[str, int] = {}
    for a, (low, high) in ATTRIBUTES.items():
        has = [f" {low} " in f" {text} ", f" {high} " in f" {text} "]
        if all(has):
            raise ValueError(f"prompt {prompt!r} asks for both {low!r} and {high!r}")
        if any(has):
            asked[a] = 1 if has[1] else -1
    return (digits[0] if digits else None), asked


def matches(images: torch.Tensor, prompt: str) -> dict[str, float]:
    """For samples of ``prompt``: per attribute it names, the share of images on the side of their digit's
    training median that it asks for (``"thick"``: above the median thickness of that digit)."""
    digit, asked = parse(prompt)
    if digit is None:
        raise ValueError(f"prompt {prompt!r} names no digit; the attributes are measured against a digit's median")
    values, q = measure(images), _training_quantiles()
    return {a: float(((values[a] - q[a][digit, 1]) * side > 0).double().mean()) for a, side in asked.items()}
