"""The ``pyrogen`` command: list, train, sample, evaluate, demo.

A run directory (``train --out RUN``) holds ``run.json`` (model, dataset and
settings), rolling checkpoints ``ckpt-*.safetensors`` (for ``--resume``), the
final parameters ``model.safetensors`` (the best validation point) and
``metrics.json``. A user error prints one line on stderr and exits with
status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from pyrogen import __version__
from pyrogen.data import DATASETS, Dataset, load
from pyrogen.inference.trainer import TrainConfig, fit, latest_checkpoint
from pyrogen.io import CheckpointError, load_checkpoint, save_checkpoint
from pyrogen.metrics import evaluate_nll
from pyrogen.models import GenerativeModel, registry

__all__ = ["evaluate_run", "load_run", "main", "train_run"]

log = logging.getLogger("pyrogen")


class UserError(Exception):
    """An error caused by the command line; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


# -- run directories ----------------------------------------------------------


def train_run(
    model_name: str,
    data_name: str | None,
    out: str | Path,
    *,
    steps: int | None = None,
    seed: int = 0,
    device: str | None = None,
    resume: bool = False,
    progress: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    **train_overrides: Any,
) -> tuple[GenerativeModel, Dataset, dict[str, Any]]:
    """Train a registered model on a bundled dataset into the run directory ``out``.

    Returns:
        ``(model, dataset, metrics)`` where ``metrics`` is what ``evaluate`` prints.
    """
    cls = registry.get(model_name)
    data = load(data_name or cls.default_data, seed=seed)
    out = Path(out)
    run_file = out / "run.json"
    if resume and run_file.is_file():
        run = json.loads(run_file.read_text())
        if run["model"] != model_name or run["data"] != data.name:
            raise UserError(f"{out} holds a run of {run['model']} on {run['data']}, not {model_name} on {data.name}")
        model_kwargs = None
        config = run["model_config"]
    elif not resume and latest_checkpoint(out) is not None:
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    torch.manual_seed(seed)
    model = cls(**config) if resume and run_file.is_file() else cls.from_dataset(data, **(model_kwargs or {}))
    settings = {**cls.train_defaults_for(data), **{k: v for k, v in train_overrides.items() if v is not None}}
    if steps is not None:
        settings["steps"] = steps
    settings.setdefault("checkpoint_every", max(1, settings.get("steps", 1000) // 10))
    cfg = TrainConfig(seed=seed, **settings)
    out.mkdir(parents=True, exist_ok=True)
    run = {
        "model": model_name,
        "model_config": model.config(),
        "data": data.name,
        "seed": seed,
        "train_config": cfg.__dict__,
        "pyrogen_version": __version__,
    }
    _write_json(run_file, run)
    result = fit(
        model,
        model.training_data(data, "train"),
        model.training_data(data, "val"),
        cfg,
        out=out,
        resume=resume,
        device=device,
        progress=progress,
        run_metadata={"model": model_name, "data": data.name},
    )
    import torch.distributed as tdist

    if tdist.is_initialized() and tdist.get_rank() != 0:
        return model, data, {}
    save_checkpoint(
        out / "model.safetensors",
        model.state_dict(),
        {
            **run,
            "result": {
                "step": result.step,
                "best_step": result.best_step,
                "best_val": result.best_val,
                "stopped_early": result.stopped_early,
                "world_size": result.world_size,
            },
        },
    )
    _write_json(out / "history.json", result.history)
    metrics = evaluate_run(out, model=model, data=data)
    _write_json(out / "metrics.json", metrics)
    from pyrogen.figures import loss_curves

    loss_curves({model_name: result.history}, out / "loss.png")
    return model, data, metrics


def load_run(run_dir: str | Path, device: str | None = None) -> tuple[GenerativeModel, dict[str, Any]]:
    """Rebuild the model of a run directory with its final (or latest checkpointed) parameters."""
    run_dir = Path(run_dir)
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise UserError(f"{run_dir} is not a run directory (no run.json)")
    run = json.loads(run_file.read_text())
    model = registry.create(run["model"], **run["model_config"])
    final = run_dir / "model.safetensors"
    if final.is_file():
        tensors, _ = load_checkpoint(final)
    else:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise UserError(f"{run_dir} holds no trained parameters yet")
        all_tensors, _ = load_checkpoint(ckpt)
        tensors = {k[6:]: v for k, v in all_tensors.items() if k.startswith("model.")}
    model.load_state_dict(tensors)
    if device is not None:
        model.to(device)
    model.eval()
    return model, run


def evaluate_run(
    run_dir: str | Path,
    *,
    data_name: str | None = None,
    split: str = "test",
    k: int = 1000,
    model: GenerativeModel | None = None,
    data: Dataset | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The metrics ``pyrogen evaluate`` prints, as a dict."""
    if model is None:
        model, run = load_run(run_dir, device=device)
    else:
        run = json.loads((Path(run_dir) / "run.json").read_text())
    if data is None or (data_name is not None and data_name != data.name):
        data = load(data_name or run["data"], seed=run.get("seed", 0))
    examples = model.training_data(data, split)
    p = next(model.parameters(), None)
    if p is not None:
        examples = tuple(t.to(p.device) for t in examples) if isinstance(examples, tuple) else examples.to(p.device)
    x = examples[0] if isinstance(examples, tuple) else examples
    model.validate(x, name=f"{data.name} {split} data")
    out: dict[str, Any] = {
        "model": run["model"],
        "data": data.name,
        "split": split,
        "density": model.density,
    }
    if model.density in ("exact", "lower_bound"):
        res = evaluate_nll(
            model,
            examples,
            k=k,
            levels=data.levels if data.dequantized else None,
            image=data.kind == "image",
        )
        out.update(res.as_dict())
        if data.kind == "text":  # nats per example of T characters -> bits per character
            out["bits_per_char"] = res.nll_nats / (math.prod(data.event_shape) * math.log(2))
    else:
        out["n"] = len(x)
    predict = getattr(model, "predict", None)
    if callable(predict) and split in data.labels:  # a model that also classifies (the semi-supervised VAE)
        labels = data.labels[split].to(x.device)
        with torch.no_grad():
            out["accuracy"] = float((predict(x) == labels).float().mean())
    return out


def _write_json(path: Path, obj: Any) -> None:
    from pyrogen.io import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


# -- commands -----------------------------------------------------------------


def _cmd_list(args: argparse.Namespace) -> None:
    rows = [
        (n, registry.get(n).family, registry.get(n).density, registry.get(n).default_data) for n in registry.names()
    ]
    print(f"{'model':<18}{'family':<16}{'density':<14}default data")
    for r in rows:
        print(f"{r[0]:<18}{r[1]:<16}{r[2]:<14}{r[3]}")


def _model_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as keyword arguments; values are read as JSON where they parse, else kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--set takes KEY=VALUE with KEY a model argument; got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def _cmd_train(args: argparse.Namespace) -> None:
    import torch.distributed as tdist

    try:
        _, _, metrics = train_run(
            args.model,
            args.data,
            args.out,
            steps=args.steps,
            seed=args.seed,
            device=args.device,
            resume=args.resume,
            progress=not args.quiet,
            batch_size=args.batch_size,
            lr=args.lr,
            model_kwargs=_model_options(args.set),
        )
        if tdist.is_initialized():
            tdist.barrier()  # every rank waits for rank 0's evaluation before the group goes away
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
    if metrics:
        print(json.dumps(metrics))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    m = evaluate_run(args.run_dir, data_name=args.data, split=args.split, k=args.iwae_k, device=args.device)
    if args.json:
        print(json.dumps(m))
        return
    for key, v in m.items():
        print(f"{key:>14}: {v:.4f}" if isinstance(v, float) else f"{key:>14}: {v}")


def _cmd_sample(args: argparse.Namespace) -> None:
    model, run = load_run(args.run_dir, device=args.device)
    if args.n < 1:
        raise UserError(f"-n must be a positive integer; got {args.n}")
    torch.manual_seed(args.seed)
    if args.label is None:
        x = model.sample(args.n).cpu()
    elif not (getattr(model, "classes", 0) or getattr(model, "context_classes", 0)):
        raise UserError(f"--label needs a class-conditional model; {run['model']} is unconditional")
    else:
        x = model.sample(args.n, y=args.label).cpu()  # type: ignore[call-arg]
    out = Path(args.out)
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        import numpy as np

        np.savez(out, samples=x.numpy())
    elif suffix == ".txt":
        vocab = load(run["data"]).vocab
        if not vocab:
            raise UserError(f"only models of the text dataset write .txt samples; this run is on {run['data']!r}")
        text = "\n\n".join("".join(vocab[i] for i in row.tolist()) for row in x)
        out.write_text(text + "\n", encoding="utf-8")
    elif suffix == ".png":
        from pyrogen.figures import image_grid, scatter_2d

        if x.dim() == 4:
            image_grid(x.float(), out, title=f"{run['model']} samples")
        elif x.dim() == 2 and x.shape[1] == 2:
            scatter_2d(x, out, title=f"{run['model']} samples")
        else:
            raise UserError(f"cannot draw samples of shape {tuple(x.shape[1:])} as PNG; use an .npz file")
    else:
        raise UserError(f"--out must end in .png, .npz or .txt; got {str(out)!r}")
    print(f"wrote {args.n} samples to {out}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from pyrogen.demo import run_demo

    run_demo(args.out, fast=args.fast, device=args.device, progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyrogen", description="Deep generative models on Pyro.")
    p.add_argument("--version", action="version", version=f"pyrogen {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="list the registered models with family and density kind")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("train", help="train a model on a bundled dataset")
    s.add_argument("model", help="registered model name (see `pyrogen list`)")
    s.add_argument("--data", choices=DATASETS, help="dataset (default: the model's default)")
    s.add_argument("--steps", type=int, help="training steps (default: the model's default)")
    s.add_argument("--out", default="runs/latest", help="run directory (default: runs/latest)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a model argument, e.g. --set likelihood=categorical --set hidden=[128,128] (repeatable)",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("-n", type=int, default=64, help="number of samples")
    s.add_argument("--label", type=int, help="class to draw, for class-conditional models (cvae, ssvae, ...)")
    s.add_argument("--out", required=True, help="FILE.png (grid or scatter), FILE.npz (raw) or FILE.txt (text models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device")
    s.set_defaults(func=_cmd_sample)

    s = sub.add_parser("evaluate", help="test log-likelihood of a trained run")
    s.add_argument("run_dir")
    s.add_argument("--data", choices=DATASETS, help="dataset (default: the run's)")
    s.add_argument("--split", choices=("train", "val", "test"), default="test")
    s.add_argument("--iwae-k", type=int, default=1000, help="importance samples for latent models")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--device")
    s.set_defaults(func=_cmd_evaluate)

    s = sub.add_parser("demo", help="train RealNVP and a VAE, print metrics, write figures")
    s.add_argument("--out", default="demo-output", help="directory for figures and metrics")
    s.add_argument("--fast", action="store_true", help="a few steps only (a smoke test)")
    s.add_argument("--device")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrogen`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.func(args)
    except (
        UserError,
        ValueError,
        TypeError,
        NotImplementedError,
        CheckpointError,
        FileNotFoundError,
    ) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"pyrogen: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyrogen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
