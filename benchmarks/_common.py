"""What the family benchmarks share: train a registered model on a bundled dataset and score it."""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from pyrogen.data import load
from pyrogen.inference import TrainConfig, fit
from pyrogen.metrics import evaluate_nll
from pyrogen.models import registry


def train_and_score(
    name: str,
    data_name: str,
    model_kwargs: dict[str, Any],
    steps: int | None,
    seed: int = 0,
    registry_name: str | None = None,
    **settings: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train ``registry_name`` (default ``name``) with its ``train_defaults_for`` the data, early stopping on the
    validation part, and score it on the test part: ``(model, row)``."""
    torch.manual_seed(seed)
    data = load(data_name)
    cls = registry.get(registry_name or name)
    model = cls.from_dataset(data, **model_kwargs)
    config = {**cls.train_defaults_for(data), "seed": seed, **settings}
    if steps is not None:
        config["steps"] = steps
    t = time.perf_counter()
    res = fit(model, model.training_data(data, "train"), model.training_data(data, "val"), TrainConfig(**config))
    seconds = time.perf_counter() - t
    model.eval()
    nll = evaluate_nll(model, model.training_data(data, "test"), levels=data.levels if data.dequantized else None)
    row: dict[str, Any] = {
        "model": name,
        "data": data_name,
        "nll_nats": round(nll.nll_nats, 4),
        "nll_stderr": round(nll.nll_stderr, 4),
        "steps": res.step,
        "best_step": res.best_step,
        "train_s": round(seconds, 1),
    }
    if nll.bits_per_dim is not None:
        row["bits_per_dim"] = round(nll.bits_per_dim, 4)
    if data.kind == "text":
        row["bits_per_char"] = round(nll.nll_nats / (data.event_shape[0] * math.log(2)), 4)
    return model, row
