"""Figures the CLI and the demo write: sample grids, 2-D scatters, loss curves."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["image_grid", "image_rows", "loss_curves", "scatter_2d"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: torch.Tensor, path: str | os.PathLike[str], title: str = "", cols: int | None = None) -> None:
    """Save ``(n, C, H, W)`` images with values in ``[0, 1]`` as one PNG grid (``cols`` per row; square by default)."""
    if images.dim() != 4:
        raise ValueError(f"images must have shape (n, C, H, W); got {tuple(images.shape)}")
    if cols is not None and (not isinstance(cols, int) or cols < 1):
        raise ValueError(f"cols must be a positive integer; got {cols!r}")
    plt = _plt()
    n = images.shape[0]
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8 + (0.4 if title else 0)))
    for i, ax in enumerate(getattr(axes, "flat", [axes])):
        ax.axis("off")
        if i < n:
            img = images[i].detach().float().cpu()
            pixels = img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)
            ax.imshow(pixels.numpy(), cmap="gray", vmin=0, vmax=1)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def image_rows(rows: Sequence[tuple[str, torch.Tensor]], path: str | os.PathLike[str]) -> None:
    """Save one row of images per ``(label, images)`` pair as one PNG, the label on the left of its row: every
    ``images`` is ``(n, 1, H, W)`` (or ``(n, 3, H, W)``) with values in ``[0, 1]`` and the same ``n`` (the sample
    grids of several models side by side, the test data in the last row).

    Raises:
        ValueError: no rows, or a row whose images are not ``(n, C, H, W)`` with the first row's ``n``.
    """
    if not rows:
        raise ValueError("rows must hold at least one (label, images) pair; got none")
    n = rows[0][1].shape[0] if rows[0][1].dim() == 4 else -1
    for label, images in rows:
        if images.dim() != 4 or images.shape[0] != n or n < 1:
            raise ValueError(
                f"every row's images must have shape (n, C, H, W) with the first row's n; row {label!r} has "
                f"{tuple(images.shape)}"
            )
    plt = _plt()
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.55, len(rows) * 0.6), squeeze=False)
    for (label, images), line in zip(rows, axes, strict=True):
        for j, ax in enumerate(line):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            img = images[j].detach().float().cpu()
            ax.imshow((img[0] if img.shape[0] == 1 else img.permute(1, 2, 0)).numpy(), cmap="gray", vmin=0, vmax=1)
        line[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def scatter_2d(
    samples: torch.Tensor,
    path: str | os.PathLike[str],
    reference: torch.Tensor | None = None,
    title: str = "",
) -> None:
    """Save a scatter plot of ``(n, 2)`` samples, beside reference data if given."""
    if samples.dim() != 2 or samples.shape[1] != 2:
        raise ValueError(f"samples must have shape (n, 2); got {tuple(samples.shape)}")
    plt = _plt()
    panels = [("model samples", samples)] + ([("data", reference)] if reference is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (name, pts) in zip(axes[0], panels, strict=True):
        p = pts.detach().cpu().numpy()
        ax.scatter(p[:, 0], p[:, 1], s=1, alpha=0.5)
        ax.set_title(name)
        ax.set_aspect("equal")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def loss_curves(histories: dict[str, Sequence[dict[str, float]]], path: str | os.PathLike[str]) -> None:
    """Save training and validation loss curves, one panel per run."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.5), squeeze=False)
    for ax, (name, hist) in zip(axes[0], histories.items(), strict=True):
        tr = [(h["step"], h["loss"]) for h in hist if "loss" in h]
        va = [(h["step"], h["val"]) for h in hist if "val" in h]
        if tr:
            ax.plot(*zip(*tr, strict=True), label="train loss")
        if va:
            ax.plot(*zip(*va, strict=True), label="validation loss")
        ax.set_xlabel("step")
        ax.set_ylabel("nats per example")
        ax.set_title(name)
        ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
