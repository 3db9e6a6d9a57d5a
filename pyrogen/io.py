"""Checkpoints: tensors in safetensors, everything else in JSON, written atomically.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's
``state_dict`` plus any other tensor state (optimizer moments, RNG states);
its header metadata holds one JSON document with the configuration and the
non-tensor trainer state, and a SHA-256 digest of that document and of all
tensor bytes, so that a corrupt or edited file is detected on load. Nothing is ever unpickled: safetensors
holds raw bytes and JSON only.

Files are written to a temporary file in the same directory, flushed,
``fsync``-ed and moved into place with :func:`os.replace`, so a crash during
a write never leaves a half-written checkpoint under the final name.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "ckpt.safetensors"
    >>> save_checkpoint(path, {"w": torch.ones(2)}, {"step": 3})
    >>> tensors, meta = load_checkpoint(path)
    >>> tensors["w"], meta["step"]
    (tensor([1., 1.]), 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

__all__ = ["CheckpointError", "atomic_write_bytes", "load_checkpoint", "save_checkpoint"]

FORMAT = "pyrogen-checkpoint-2"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or not a pyrogen checkpoint."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _digest(tensors: Mapping[str, torch.Tensor], doc: str) -> str:
    """SHA-256 of the JSON document and every tensor's name, dtype, shape and bytes: of all that is read back."""
    h = hashlib.sha256()
    h.update(doc.encode())
    for name in sorted(tensors):
        t = tensors[name]
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> None:
    """Save ``tensors`` and the JSON-serialisable ``metadata`` to ``path`` atomically.

    Raises:
        TypeError: a value in ``tensors`` is not a tensor, or ``metadata`` is not
            JSON-serialisable.
        ValueError: a floating-point tensor holds NaN or +inf (a checkpoint to resume from must not be
            poisoned; -inf, the log of a probability 0, is kept).
    """
    clean: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"tensors[{k!r}] must be a torch.Tensor; got {type(v).__name__}")
        clean[k] = v.detach().cpu().contiguous().clone()
    bad = _non_finite(clean)
    if bad:
        raise ValueError(f"tensors {bad[:3]} hold NaN or +inf values; a checkpoint is not written with them")
    try:
        doc = json.dumps(dict(metadata), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serialisable: {e}") from e
    header = {"format": FORMAT, "json": doc, "sha256": _digest(clean, doc)}
    atomic_write_bytes(path, st_save(clean, metadata=header))


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns:
        ``(tensors, metadata)``.

    Raises:
        CheckpointError: the file does not exist, is truncated or corrupt (its
            digest does not match), is not a pyrogen checkpoint, or holds NaN or
            +inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    blob = path.read_bytes()
    try:
        tensors = st_load(blob)
        header = _read_header(blob)
    except (SafetensorError, ValueError, OverflowError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or corrupt: {e}") from None
    if header.get("format") == "pyrogen-checkpoint-1":
        raise CheckpointError(f"{str(path)!r} was written by an older pyrogen (format 1); retrain the run")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a pyrogen checkpoint (format {header.get('format')!r})")
    if _digest(tensors, str(header.get("json", ""))) != header.get("sha256"):
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: its tensors or metadata fail the SHA-256 check")
    try:
        meta = json.loads(header["json"])
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} has unreadable metadata: {e}") from None
    bad = _non_finite(tensors)
    if bad:
        raise CheckpointError(f"checkpoint {str(path)!r} holds NaN or +inf values in {bad[:3]}")
    if device is not None:
        tensors = {k: v.to(device) for k, v in tensors.items()}
    return tensors, meta


def _non_finite(tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """The floating tensors holding NaN or +inf (-inf is a log-probability of zero, a value like any other)."""
    return [k for k, t in tensors.items() if t.is_floating_point() and bool((torch.isnan(t) | torch.isposinf(t)).any())]


def _read_header(blob: bytes) -> dict[str, str]:
    if len(blob) < 8:
        raise ValueError("file shorter than the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise ValueError("header length exceeds file size")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict):
        raise ValueError("malformed __metadata__")
    return meta
