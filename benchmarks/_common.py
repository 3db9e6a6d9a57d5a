"""What the family benchmarks share: train a registered model on a bundled dataset and score it."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

from pyrogen.data import Dataset, load
from pyrogen.inference import TrainConfig, fit, training_data
from pyrogen.metrics import evaluate_nll
from pyrogen.models import registry


def train_and_score(
    name: str,
    data_name: str | Dataset,
    model_kwargs: dict[str, Any],
    steps: int | None,
    seed: int = 0,
    registry_name: str | None = None,
    score: bool = True,
    **settings: Any,
) -> tuple[Any, dict[str, Any]]:
    """Train ``registry_name`` (default ``name``) with its ``train_defaults_for`` the data, early stopping on the
    validation part, and (with ``score``) score its test NLL: ``(model, row)``."""
    torch.manual_seed(seed)
    data = load(data_name) if isinstance(data_name, str) else data_name
    cls = registry.get(registry_name or name)
    model = cls.from_dataset(data, **model_kwargs)
    config = {**cls.train_defaults_for(data), "seed": seed, **settings}
    if steps is not None:
        config["steps"] = steps
    t = time.perf_counter()
    res = fit(model, training_data(model, data, "train"), training_data(model, data, "val"), TrainConfig(**config))
    seconds = time.perf_counter() - t
    model.eval()
    # each row keeps the command that measured it, so that rows filed from a stopped run's log (--record) still say
    row: dict[str, Any] = {"model": name, "data": data.name, "command": machine()["command"]}
    if score:
        nll = evaluate_nll(model, training_data(model, data, "test"), levels=data.levels if data.dequantized else None)
        row |= {"nll_nats": round(nll.nll_nats, 4), "nll_stderr": round(nll.nll_stderr, 4)}
    row |= {"steps": res.step, "best_step": res.best_step, "train_s": round(seconds, 1)}
    if not score:
        return model, row
    if nll.bits_per_dim is not None:
        row["bits_per_dim"] = round(nll.bits_per_dim, 4)
    if data.kind == "text":
        row["bits_per_char"] = round(nll.nll_nats / (data.event_shape[0] * math.log(2)), 4)
    return model, row


def section_parser(doc: str | None, sections: Sequence[str]) -> argparse.ArgumentParser:
    """The options every family benchmark takes: ``--json``, ``--quick`` and ``--only SECTION ...``."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="30 training steps per model (a smoke run)")
    p.add_argument("--only", nargs="+", choices=list(sections), help="run only these sections")
    return p


RESULTS = Path(__file__).resolve().parents[1] / "results"


def machine() -> dict[str, Any]:
    """What produced a number: the command, the package versions, the CPU and its kernels, the threads."""
    import platform

    from pyrogen.quality import machine_fingerprint

    return {
        "command": "python " + " ".join([Path(sys.argv[0]).name if sys.argv else "?", *sys.argv[1:]]),
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
        "machine": machine_fingerprint(),
        "threads": torch.get_num_threads(),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def save_results(out: dict[str, Any], name: str | None = None) -> Path:
    """Merge ``out``'s sections into ``results/<benchmark>.json``, each with :func:`machine` beside it, written
    atomically (a section measured again replaces its old numbers; the others stay)."""
    from pyrogen.io import atomic_write_bytes

    name = name or Path(sys.argv[0]).stem
    path = RESULTS / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    meta = machine()
    for section, value in out.items():
        old[section] = {"results": value, "measured": meta}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_bytes(path, (json.dumps(old, indent=1, sort_keys=True) + "\n").encode())
    return path


def previous_rows(section: str, name: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``section`` in ``results/<benchmark>.json`` (none if it is not there)."""
    path = RESULTS / f"{name or Path(sys.argv[0]).stem}.json"
    if not path.is_file():
        return []
    return list(json.loads(path.read_text()).get(section, {}).get("results", []))


def merged_rows(
    old: list[dict[str, Any]], new: list[dict[str, Any]], key: Sequence[str] = ("model", "data")
) -> list[dict[str, Any]]:
    """``new`` and the rows of ``old`` whose ``key`` no new row has: re-measuring some rows keeps the others."""
    seen = {tuple(r.get(k) for k in key) for r in new}
    return [*new, *(r for r in old if tuple(r.get(k) for k in key) not in seen)]


def logged_rows(path: str | Path, key: Sequence[str] = ("model", "data")) -> list[dict[str, Any]]:
    """The rows a benchmark printed as JSON lines while it ran (to stderr), read back from its log: the rows of a
    run that was stopped before its end; of rows with the same ``key``, the last."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            row = json.loads(line)
            if isinstance(row, dict) and "model" in row and "data" in row:
                rows.append(row)
    if not rows:
        raise SystemExit(f"no rows (JSON lines with 'model' and 'data') in {path}")
    last = {tuple(r.get(k) for k in key): r for r in rows}  # a row printed again, completed, replaces its first
    return list(last.values())


def keep(out: dict[str, Any], section: str, value: Any) -> Any:
    """``out[section] = value``, and (not ``--quick``) the section saved at once (:func:`save_results`): a run
    stopped in a later section keeps the sections it finished."""
    out[section] = value
    if "--quick" not in sys.argv:
        save_results({section: value})
    return value


def report(out: dict[str, Any], as_json: bool, printer: Callable[[dict[str, Any]], None]) -> int:
    """Print the results as JSON or as the benchmark's table, with the versions that produced them; a full run
    (not ``--quick``) also keeps them in ``results/<benchmark>.json`` (:func:`save_results`)."""
    if "--quick" not in sys.argv:
        save_results(out)
    if as_json:
        print(json.dumps(out, indent=1))
    else:
        printer(out)
        print(f"torch {torch.__version__}, pyro {pyro.__version__}, {torch.get_num_threads()} threads")
    return 0


def tanh_energy() -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[Any], Any]]:
    """The 2-D energy of the samplers' speed rows, E(x) = MLP(x) + x·x/8 (tanh 2-32-32-1, the weights of
    ``torch.manual_seed(0)``, float64): ``(torch log density of (chains, 2), JAX potential of (2,))``, the same
    network with the same weights in both."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # before the weights are copied: float64 in both
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
    ).double()
    for p in net.parameters():
        p.requires_grad_(False)
    w = [jnp.asarray(p.numpy()) for p in net.parameters()]

    def log_prob(x: torch.Tensor) -> torch.Tensor:
        return -(net(x).squeeze(-1) + (x * x).sum(-1) / 8)

    def potential(x: Any) -> Any:
        h = jnp.tanh(x @ w[0].T + w[1])
        h = jnp.tanh(h @ w[2].T + w[3])
        return (h @ w[4].T + w[5])[0] + (x * x).sum() / 8

    return log_prob, potential
