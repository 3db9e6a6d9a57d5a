"""The run layer: train a named model on a named dataset into a run directory, load, evaluate and sample it.

The CLI, the demo, the benchmarks and the tests all go through these
functions; :mod:`pyrogen.cli` only parses arguments and prints.

A run directory holds ``run.json`` (model, its configuration, dataset, seed,
training settings), rolling checkpoints ``ckpt-*.safetensors`` (for
``resume``), the final parameters ``model.safetensors`` (what
:func:`~pyrogen.inference.fit` returned: the best validation point where
there is one), ``history.json``, ``metrics.json`` and ``loss.png``.

Everything a user passes is checked before anything is created: a failed
command leaves no file behind. Errors a user can act on are
:class:`RunError` (a ``ValueError``) with one line naming the argument, the
value or the file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pyrogen import __version__
from pyrogen.data import Dataset, load
from pyrogen.inference.protocol import Classifier, Conditional, OwnMetrics, density_kind, training_data
from pyrogen.inference.trainer import TrainConfig, fit, latest_checkpoint
from pyrogen.io import CheckpointError, atomic_write_bytes, load_checkpoint, save_checkpoint
from pyrogen.metrics import evaluate_nll
from pyrogen.models import GenerativeModel, registry
from pyrogen.models.registry import Recipe

__all__ = [
    "DEFAULT_MAX_PARAMETERS",
    "MAX_PARAMETERS",
    "RunError",
    "evaluate_run",
    "load_run",
    "read_run",
    "resolve_device",
    "sample_run",
    "json_safe",
    "train_run",
]

log = logging.getLogger("pyrogen")

#: The most parameters a configuration may build (a guard against ``--set hidden=[100000,100000]``).
MAX_PARAMETERS = 200_000_000
#: The most parameters ``train_run`` builds unless told (``--max-parameters``): every registered default on its
#: bundled data is far below it (a test checks), while the default network for a large data file (a DDPM over
#: examples of 250,000 values) would build tens of millions and train for minutes per step on a laptop's cores.
DEFAULT_MAX_PARAMETERS = 20_000_000
#: File types ``sample_run`` writes.
SAMPLE_SUFFIXES = (".png", ".npz", ".txt")
_RUN_KEYS = {"model": str, "model_config": dict, "data": str, "seed": int}


class RunError(ValueError):
    """A run cannot be made, read or used as asked; the message names the argument, value or file."""


# -- checks -------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device | None:
    """The device ``device`` names, checked to exist here (``None``: the default, the CPU).

    Raises:
        RunError: an unknown device type, or CUDA / an index that this machine lacks.
    """
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise RunError(f"--device must be cpu, cuda or cuda:N; got {str(device)!r} ({e})") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RunError(f"--device {str(device)!r} was asked for but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RunError(f"--device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return dev
    if dev.type == "mps" and torch.backends.mps.is_available():
        return dev
    raise RunError(f"--device must be cpu, cuda or cuda:N; got {str(device)!r}")


def read_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated contents of ``run_dir/run.json``.

    Raises:
        RunError: the directory or its ``run.json`` is missing, not JSON, not an
            object, or lacks a key (each message names the file).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{str(run_dir)!r} is not a run directory (it does not exist or is not a directory)")
    path = run_dir / "run.json"
    if not path.is_file():
        raise RunError(f"{str(run_dir)!r} is not a run directory (no run.json); train one with `pyrogen train`")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is not valid JSON ({e}); the run cannot be read") from None
    if not isinstance(run, dict):
        raise RunError(f"{path} must hold a JSON object; got {type(run).__name__}")
    for key, kind in _RUN_KEYS.items():
        if key not in run:
            raise RunError(f"{path} lacks the key {key!r}")
        if not isinstance(run[key], kind) or isinstance(run[key], bool):
            raise RunError(f"{path}: {key!r} must be a {kind.__name__}; got {run[key]!r}")
    return run


def _build(cls: Recipe, builder: Any, where: str, limit: int = MAX_PARAMETERS) -> GenerativeModel:
    """Build a model, first on the meta device (no memory) to bound its size (``limit``, at most
    :data:`MAX_PARAMETERS`); errors name ``where``."""
    try:
        with torch.device("meta"):
            probe = builder()
        n = sum(p.numel() for p in probe.parameters()) + sum(b.numel() for b in probe.buffers())
    except (ValueError, TypeError) as e:
        raise RunError(f"{cls.name}: bad {where}: {e}") from None
    except Exception:  # a layer that cannot be built on the meta device: build it for real below
        n = 0
    _check_size(cls, where, n, limit)
    try:
        model = builder()
    except (ValueError, TypeError) as e:
        raise RunError(f"{cls.name}: bad {where}: {e}") from None
    if not n:  # not measured on the meta device: measured now
        _check_size(
            cls, where, sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()), limit
        )
    return model


def _check_size(cls: Recipe, where: str, n: int, limit: int) -> None:
    if n > MAX_PARAMETERS:
        raise RunError(f"{cls.name}: {where} builds {n:,} parameters, more than the limit {MAX_PARAMETERS:,}")
    if n > limit:
        raise RunError(
            f"{cls.name}: {where} builds {n:,} parameters, more than --max-parameters {limit:,}: choose a smaller "
            f"network with --set, or raise --max-parameters (up to {MAX_PARAMETERS:,})"
        )


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {str(out)!r} is an existing file, not a directory")
    parent = next((p for p in (out, *out.parents) if p.exists()), Path("."))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {str(out)!r}: {str(parent)!r} is not writable")


def _remove_stale_temporaries(out: Path) -> None:
    for f in out.glob(".*.tmp"):  # left by a write that was killed (atomic_write_bytes' temporary files)
        f.unlink(missing_ok=True)


# -- training -------------------------------------------------------------------


def train_run(
    model_name: str,
    data_name: str | None,
    out: str | os.PathLike[str],
    *,
    steps: int | None = None,
    seed: int = 0,
    device: str | None = None,
    resume: bool = False,
    progress: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
    evaluate: bool = True,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    max_parameters: int = DEFAULT_MAX_PARAMETERS,
    **train_overrides: Any,
) -> tuple[GenerativeModel, Dataset, dict[str, Any]]:
    """Train a registered model on a bundled dataset into the run directory ``out``.

    Args:
        model_name: a name of :mod:`pyrogen.models.registry`.
        data_name: a bundled dataset (``None``: the model's default).
        out: the run directory; it must not already hold a run unless ``resume``.
        steps: training steps (``None``: the model's default).
        **train_overrides: other :class:`~pyrogen.inference.TrainConfig` settings (``None`` values are left at
            the model's defaults).
        seed: seeds the data (toys), the model's initialisation and training.
        resume: continue the run in ``out``; ``model_kwargs``, ``seed`` and the
            dataset must agree with the run's.
        evaluate: score the trained model (``metrics.json``); ``False``: return ``{}``.
        val_fraction, test_fraction: how a data file without fixed parts is split (``--val-fraction``,
            ``--test-fraction``; 0.1 each by default), recorded in ``run.json`` for resuming and evaluating.
        max_parameters: refuse to build a model with more parameters (``--max-parameters``;
            :data:`DEFAULT_MAX_PARAMETERS` unless given, at most :data:`MAX_PARAMETERS`).

    Returns:
        ``(model, dataset, metrics)`` where ``metrics`` is what ``evaluate`` prints.

    Raises:
        RunError: a bad name, setting, device or directory, or arguments that
            contradict the run being resumed. Nothing is created in that case.
    """
    cls = _model_class(model_name)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise RunError(f"--seed must be an integer in [0, 2**32); got {seed!r}")
    out = Path(out)
    _check_out_dir(out)
    dev = resolve_device(device)
    run = _resumable(out, model_name, data_name, seed, model_kwargs) if resume else None
    if not resume and latest_checkpoint(out) is not None:
        raise RunError(
            f"{str(out)!r} already holds a run; pass --resume to continue it, or choose another --out "
            "(or delete the directory to start afresh)"
        )
    split = {k: v for k, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)) if v is not None}
    if run is not None:
        if split and split != run.get("split", {}):
            raise RunError(f"--resume of {str(out)!r} contradicts the run: its split is {run.get('split', {})}")
        split = run.get("split", {})
    data = _load_data(data_name or (run["data"] if run else cls.default_data), seed, split)
    torch.manual_seed(seed)
    if run is not None:
        model = _build(cls, lambda: cls(**run["model_config"]), f"model_config in {out / 'run.json'}")
    else:
        kwargs = dict(model_kwargs or {})
        where = f"--set {_show(kwargs)}" if kwargs else f"model for --data {data.name}"
        if isinstance(max_parameters, bool) or not isinstance(max_parameters, int) or max_parameters < 1:
            raise RunError(f"--max-parameters must be a positive integer; got {max_parameters!r}")
        model = _build(cls, lambda: cls.from_dataset(data, **kwargs), where, max_parameters)
    cfg = _train_config(cls, data, seed, steps, train_overrides)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # under torchrun the ranks start together (before fit joins them): rank 0 alone writes the run's files,
    # or one rank's clean-up removes the other's temporary file mid-write
    first = int(os.environ.get("RANK", "0")) == 0
    if first:
        _remove_stale_temporaries(out)
    run = {
        "model": model_name,
        "model_config": model.config(),
        "data": data.name,
        "seed": seed,
        **({"split": split} if split else {}),
        "train_config": cfg.__dict__,
        "pyrogen_version": __version__,
    }
    # a resume fit may still refuse (a setting that contradicts the checkpoint): run.json keeps the run's own
    # settings until fit has accepted the new ones
    resuming = resume and latest_checkpoint(out) is not None
    if first and not resuming:
        _write_json(out / "run.json", run)
    try:
        result = fit(
            model,
            training_data(model, data, "train"),
            training_data(model, data, "val"),
            cfg,
            out=out,
            resume=resume,
            device=dev,
            progress=progress,
            run_metadata={"model": model_name, "data": data.name},
        )
    except BaseException:
        if first and latest_checkpoint(out) is None:  # nothing trained: leave nothing behind
            (out / "run.json").unlink(missing_ok=True)
            if created and not any(out.iterdir()):
                out.rmdir()
        raise
    if first and resuming:
        _write_json(out / "run.json", run)
    import torch.distributed as tdist

    if tdist.is_initialized() and tdist.get_rank() != 0:
        return model, data, {}
    return model, data, _finish(out, model, data, run, result, evaluate)


def _finish(
    out: Path, model: GenerativeModel, data: Dataset, run: dict[str, Any], result: Any, evaluate: bool
) -> dict[str, Any]:
    summary = {
        "step": result.step,
        "best_step": result.best_step,
        "best_val": result.best_val,
        "stopped_early": result.stopped_early,
        "world_size": result.world_size,
    }
    save_checkpoint(out / "model.safetensors", model.state_dict(), {**run, "result": summary})
    _write_json(out / "history.json", result.history)
    from pyrogen.figures import loss_curves

    loss_curves({run["model"]: result.history}, out / "loss.png")
    if not evaluate:
        return {}
    metrics = evaluate_run(out, model=model, data=data)
    _write_json(out / "metrics.json", metrics)
    return metrics


def _model_class(name: str) -> Recipe:
    try:
        return registry.get(name)
    except ValueError as e:
        raise RunError(str(e)) from None


def _load_data(name: str, seed: int, split: Mapping[str, float] | None = None) -> Dataset:
    try:
        return load(name, seed=seed, **dict(split or {}))
    except ValueError as e:
        raise RunError(f"--data: {e}") from None


def _show(kwargs: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in kwargs.items())


def _train_config(
    cls: Recipe, data: Dataset, seed: int, steps: int | None, overrides: Mapping[str, Any]
) -> TrainConfig:
    settings = {**cls.train_defaults_for(data), **{k: v for k, v in overrides.items() if v is not None}}
    if steps is not None:
        settings["steps"] = steps
    settings.setdefault("checkpoint_every", max(1, int(settings.get("steps", 1000)) // 10))
    try:
        cfg = TrainConfig(seed=seed, **settings)
        cfg.validate()
    except (TypeError, ValueError) as e:
        raise RunError(f"bad training setting: {e}") from None
    return cfg


def _resumable(
    out: Path, model_name: str, data_name: str | None, seed: int, model_kwargs: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The run to resume in ``out`` (``None``: nothing to resume), refusing arguments that contradict it."""
    if not (out / "run.json").is_file():
        if latest_checkpoint(out) is not None:
            raise RunError(f"{str(out)!r} holds checkpoints but no run.json; it cannot be resumed by name")
        return None
    run = read_run(out)
    wrong = []
    if run["model"] != model_name:
        wrong.append(f"model {model_name!r} (the run's is {run['model']!r})")
    if data_name is not None and data_name != run["data"]:
        wrong.append(f"--data {data_name!r} (the run's is {run['data']!r})")
    if seed != run["seed"]:
        wrong.append(f"--seed {seed} (the run's is {run['seed']})")
    for k, v in (model_kwargs or {}).items():
        have = run["model_config"].get(k)
        if json.loads(json.dumps(v)) != have:
            wrong.append(f"--set {k}={json.dumps(v)} (the run's is {json.dumps(have)})")
    if wrong:
        raise RunError(f"--resume of {str(out)!r} contradicts the run: " + "; ".join(wrong))
    if latest_checkpoint(out) is None:
        return None  # run.json alone: a run that never reached a checkpoint starts afresh
    return run


# -- loading --------------------------------------------------------------------


def load_run(run_dir: str | os.PathLike[str], device: str | None = None) -> tuple[GenerativeModel, dict[str, Any]]:
    """Rebuild the model of a run directory with the parameters :func:`~pyrogen.inference.fit` returned.

    ``model.safetensors`` when training finished; else the newest readable
    checkpoint's best-validation parameters (``best.*``, what ``fit`` restores)
    or, without validation, its latest. A directory written by ``fit(out=...)``
    alone (no ``run.json``) is opened from its checkpoint's metadata.

    Raises:
        RunError: not a run, unreadable or non-finite parameters, or
            parameters of another model.
    """
    dev = resolve_device(device)
    run_dir = Path(run_dir)
    if (run_dir / "run.json").is_file() or not run_dir.is_dir() or latest_checkpoint(run_dir) is None:
        run = read_run(run_dir)
        tensors, source = _trained_tensors(run_dir)
    else:
        tensors, source = _trained_tensors(run_dir)
        run = _run_from_checkpoint(source)
    cls = _model_class(run["model"])
    model = _build(cls, lambda: cls(**run["model_config"]), f"model_config of {source}")
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise RunError(f"{source} holds non-finite parameters ({bad[0]}): the run diverged; retrain with a lower --lr")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        msg = str(e).splitlines()[0]
        raise RunError(f"{source} does not hold parameters of {run['model']} as configured: {msg}") from None
    if dev is not None:
        model.to(dev)
    model.eval()
    return model, run


def _trained_tensors(run_dir: Path) -> tuple[dict[str, torch.Tensor], Path]:
    final = run_dir / "model.safetensors"
    if final.is_file():
        return _read_checkpoint(final)[0], final
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise RunError(f"{str(run_dir)!r} holds no trained parameters yet (no model.safetensors, no checkpoint)")
    tensors, meta = _read_checkpoint(ckpt)
    restore = meta.get("train_config", {}).get("restore_best", True)
    prefix = "best." if restore and any(k.startswith("best.") for k in tensors) else "model."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, ckpt


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise RunError(f"{e}; delete it, or retrain into a new --out") from None


def _recipe_of_class(path: object) -> str | None:
    """The registered name of the class at ``path`` (``module.QualName``, as the trainer records it)."""
    for name in registry.names():
        cls = registry.get(name).cls
        if f"{cls.__module__}.{cls.__qualname__}" == path:
            return registry.recipe_of(cls).name
    return None


def _run_from_checkpoint(path: Path) -> dict[str, Any]:
    meta = _read_checkpoint(path)[1]
    name = meta.get("run", {}).get("model") or meta.get("model_name") or _recipe_of_class(meta.get("model_class"))
    if not name or not isinstance(meta.get("model_config"), dict):
        raise RunError(f"{path} does not record which model wrote it; it cannot be opened by name")
    return {
        "model": name,
        "model_config": meta["model_config"],
        "data": meta.get("run", {}).get("data", ""),
        "seed": meta.get("train_config", {}).get("seed", 0),
    }


# -- evaluation and sampling ----------------------------------------------------


def evaluate_run(
    run_dir: str | os.PathLike[str],
    *,
    data_name: str | None = None,
    split: str = "test",
    k: int = 1000,
    samples: int | None = None,
    seed: int = 0,
    model: GenerativeModel | None = None,
    data: Dataset | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The metrics ``pyrogen evaluate`` prints, as a dict (repeatable: seeded by ``seed``).

    Likelihoods where the density kind allows (``nll_nats``, ``nll_stderr``,
    ``bits_per_dim``, ``elbo_nats``, ``k``) and, for every model that samples,
    the sample-quality metrics of :func:`pyrogen.quality.sample_quality` on
    ``samples`` draws (default: as many as the split has, at most 2000):
    ``fid``, ``kid``, ``precision``, ``recall``, ``inception_score`` on images;
    ``mmd``, ``c2st`` on vectors; ``modes``, ``high_quality`` on ``8gaussians``.

    Raises:
        RunError: a bad ``k``, ``samples``, split or dataset, or an unreadable run.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RunError(f"--iwae-k must be a positive integer; got {k!r}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 2):
        raise RunError(f"--samples must be an integer of at least 2; got {samples!r}")
    if split not in ("train", "val", "test"):
        raise RunError(f"--split must be train, val or test; got {split!r}")
    if model is None:
        model, run = load_run(run_dir, device=device)
    else:
        run = read_run(run_dir)
    if data is None or (data_name is not None and data_name != data.name):
        same = data_name is None or data_name == run["data"]
        data = _load_data(data_name or run["data"], int(run.get("seed", 0)), run.get("split") if same else None)
    devices = [d for d in {p.device for p in model.parameters()} if d.type == "cuda"]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _metrics(model, run, data, split, k, samples, seed)


def _metrics(
    model: GenerativeModel, run: dict[str, Any], data: Dataset, split: str, k: int, samples: int | None, seed: int
) -> dict[str, Any]:
    examples = training_data(model, data, split)
    p = next(model.parameters(), None)
    if p is not None:
        examples = tuple(t.to(p.device) for t in examples) if isinstance(examples, tuple) else examples.to(p.device)
    x = examples[0] if isinstance(examples, tuple) else examples
    model.validate(x, name=f"{data.name} {split} data")
    kind = density_kind(model)
    out: dict[str, Any] = {"model": run["model"], "data": data.name, "split": split, "density": kind}
    if kind in ("exact", "lower_bound"):
        res = evaluate_nll(
            model, examples, k=k, levels=data.levels if data.dequantized else None, image=data.kind == "image"
        )
        out.update(res.as_dict())
        if data.kind == "text":  # nats per example of T characters -> bits per character
            out["bits_per_char"] = res.nll_nats / (math.prod(data.event_shape) * math.log(2))
    else:
        out["n"] = len(x)
    if isinstance(model, Classifier) and split in data.labels:  # a model that also classifies (the SSVAE)
        labels = data.labels[split].to(x.device)
        with torch.no_grad():
            out["accuracy"] = float((model.predict(x) == labels).float().mean())
    if isinstance(model, OwnMetrics):  # what a family measures of itself (a translator's cycle error, say)
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            out.update(model.evaluation_metrics(x))
    from pyrogen.quality import sample_quality

    out.update(sample_quality(model, data, split=split, n=samples, seed=seed))
    return out


#: The most samples ``pyrogen sample`` writes to one file (they are held in memory together).
MAX_SAMPLES = 1_000_000


def sample_run(
    run_dir: str | os.PathLike[str],
    n: int,
    out: str | os.PathLike[str],
    *,
    label: int | None = None,
    seed: int = 0,
    device: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Draw ``n`` samples of a run and write them to ``out`` (``.png``, ``.npz`` or ``.txt``); returns the path.

    ``options``: the sampler's keywords a diffusion model takes (``sampler``, ``steps``, ``eta``, ``guidance``,
    and ``prompt`` for text-diffusion; see each model's ``sample_options``).

    Raises:
        RunError: a bad ``n``, ``label``, option or ``out`` (checked before anything is drawn or created).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise RunError(f"--out must end in .png, .npz or .txt; got {str(out)!r}")
    if out.is_dir():
        raise RunError(f"--out {str(out)!r} is a directory; name a file")
    parent = next((p for p in out.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"--out {str(out)!r}: {str(parent)!r} is not a writable directory")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RunError(f"-n must be a positive integer; got {n!r}")
    if n > MAX_SAMPLES:
        raise RunError(f"-n must be at most {MAX_SAMPLES:,} samples per file; got {n:,} (write several files)")
    model, run = load_run(run_dir, device=device)
    conditional = model.classes if isinstance(model, Conditional) else 0
    if label is not None and not conditional:
        raise RunError(f"--label needs a class-conditional model; {run['model']} is unconditional")
    if label is not None and not 0 <= label < conditional:
        raise RunError(f"--label must be a class in 0..{conditional - 1}; got {label}")
    options = dict(options or {})
    allowed = registry.get(run["model"]).sample_options
    wrong = sorted(set(options) - set(allowed))
    if wrong:
        flags = ", ".join("--" + w for w in wrong)
        takes = ", ".join("--" + a for a in allowed) or "none"
        raise RunError(f"{flags}: {run['model']} takes no such sampler option (it takes: {takes})")
    if "guidance" in options and label is None and "prompt" not in options:
        what = "--prompt" if "prompt" in allowed else "--label"
        raise RunError(f"--guidance needs {what} (guidance steers samples toward a {what[2:]})")
    vocab = _load_data(run["data"], run["seed"], run.get("split")).vocab if suffix == ".txt" else ""
    if suffix == ".txt" and not vocab:
        raise RunError(f"only models of the text dataset write .txt samples; this run is on {run['data']!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            x = (model.sample(n, **options) if label is None else model.sample(n, y=label, **options)).cpu()  # type: ignore[call-arg]
        except ValueError as e:
            if not options:
                raise
            raise RunError(f"{', '.join('--' + k for k in options)}: {e}") from None
    if suffix == ".png" and not (x.dim() == 4 or (x.dim() == 2 and x.shape[1] == 2)):
        raise RunError(f"cannot draw samples of shape {tuple(x.shape[1:])} as PNG; use an .npz file")
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_samples(out, suffix, x, vocab, run["model"])
    return out


def _write_samples(out: Path, suffix: str, x: torch.Tensor, vocab: str, name: str) -> None:
    if suffix == ".npz":
        import io

        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, samples=x.numpy())  # to a buffer: numpy would append ".npz" to a name like s.NPZ
        atomic_write_bytes(out, buf.getvalue())
    elif suffix == ".txt":
        text = "\n\n".join("".join(vocab[i] for i in row.tolist()) for row in x)
        atomic_write_bytes(out, (text + "\n").encode("utf-8"))
    else:
        from pyrogen.figures import image_grid, scatter_2d

        if x.dim() == 4:
            image_grid(x.float(), out, title=f"{name} samples")
        else:
            scatter_2d(x, out, title=f"{name} samples")


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float as ``None``: JSON has no NaN or infinity (``json.dumps`` would write the
    non-standard ``NaN``, which strict readers refuse), so an undefined number -- a bootstrap interval of two test
    rows, say -- is ``null``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n").encode())
