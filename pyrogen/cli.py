"""The ``pyrogen`` command: list, train, sample, evaluate, demo.

It only parses arguments and prints; the work is done by the run layer
(:mod:`pyrogen.runs`), which describes a run directory. A user error prints
one line on stderr and exits with status 2; nothing is created by a command
that fails its checks.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from pyrogen import __version__
from pyrogen.data import DATASETS, FILE_SUFFIXES
from pyrogen.inference.samplers import KERNELS
from pyrogen.models import registry
from pyrogen.runs import DEFAULT_MAX_PARAMETERS, RunError, evaluate_run, json_safe, sample_run, train_run

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
            raise RunError(f"--set takes KEY=VALUE with KEY a model argument; got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def _cmd_train(args: argparse.Namespace) -> None:
    import torch.distributed as tdist

    from pyrogen.inference.trainer import latest_checkpoint

    if args.resume and os.path.isdir(args.out) and latest_checkpoint(args.out) is None:
        print(f"pyrogen: --resume: {args.out!r} holds no checkpoint; starting a fresh run there", file=sys.stderr)
    elif args.resume and not os.path.exists(args.out):
        print(f"pyrogen: --resume: {args.out!r} does not exist; starting a fresh run there", file=sys.stderr)
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
            checkpoint_every=args.checkpoint_every,
            val_every=args.val_every,
            patience=args.patience,
            model_kwargs=_model_options(args.set),
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            max_parameters=args.max_parameters,
        )
        if tdist.is_initialized():
            tdist.barrier()  # every rank waits for rank 0's evaluation before the group goes away
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()
            gc.collect()  # nothing holding the group may reach interpreter shutdown (see trainer._loop)
    if metrics:
        print(json.dumps(json_safe(metrics), allow_nan=False))


def _cmd_evaluate(args: argparse.Namespace) -> None:
    m = evaluate_run(
        args.run_dir,
        data_name=args.data,
        split=args.split,
        k=args.iwae_k,
        samples=args.samples,
        seed=args.seed,
        device=args.device,
    )
    if args.json:
        print(json.dumps(json_safe(m), allow_nan=False))
        return
    for key, v in m.items():
        if isinstance(v, dict) and "value" in v:
            lo, hi = v.get("ci", [math.nan, math.nan])
            print(f"{key:>16}: {v['value']:.4f}  [{lo:.4f}, {hi:.4f}]")
        else:
            print(f"{key:>16}: {v:.4f}" if isinstance(v, float) else f"{key:>16}: {v}")


def _cmd_sample(args: argparse.Namespace) -> None:
    keys = ("sampler", "steps", "eta", "guidance", "prompt", "kernel")
    options = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    out = sample_run(
        args.run_dir, args.n, args.out, label=args.label, seed=args.seed, device=args.device, options=options
    )
    print(f"wrote {args.n} samples to {out}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from pyrogen.demo import run_demo

    run_demo(args.out, fast=args.fast, device=args.device, progress=not args.quiet)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pyrogen", description="Deep generative models on Pyro.")
    p.add_argument("--version", action="version", version=f"pyrogen {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress messages")
    p.add_argument(
        "--threads",
        type=int,
        help=(
            "intra-op CPU threads (default: the cores left idle by the 1-minute load average, at least 1, unless "
            "OMP_NUM_THREADS is set: small models slow down several-fold when their threads compete for busy cores)"
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("list", help="list the registered models with family and density kind")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("train", help="train a model on a bundled dataset")
    s.add_argument("model", help="registered model name (see `pyrogen list`)")
    s.add_argument(
        "--data",
        metavar="DATA",
        help=f"a bundled dataset ({', '.join(DATASETS)}) or a file ({', '.join(FILE_SUFFIXES)}); default: the model's. "
        "A file holds the examples, one per row: .npy one array; .npz / .safetensors the array x (or the only "
        "one) with optional labels y, or fixed parts train, val, test (labels y_train, y_val, y_test); .csv "
        "numbers, a header row skipped. A file without fixed parts is split at random by --seed "
        "(--val-fraction, --test-fraction)",
    )
    s.add_argument(
        "--max-parameters",
        type=int,
        default=DEFAULT_MAX_PARAMETERS,
        metavar="N",
        help=f"refuse to build a model with more parameters (default {DEFAULT_MAX_PARAMETERS:,}; the default "
        "network for a large data file can exceed it)",
    )
    s.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="the share of a data file's examples held out for validation (default 0.1)",
    )
    s.add_argument(
        "--test-fraction",
        type=float,
        metavar="F",
        help="the share of a data file's examples held out for testing (default 0.1)",
    )
    s.add_argument("--steps", type=int, help="training steps (default: the model's default)")
    s.add_argument("--out", default="runs/latest", help="run directory (default: runs/latest)")
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (where --out holds none, a fresh run starts there, "
        "and a line on stderr says so)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    s.add_argument("--batch-size", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: steps / 10)")
    s.add_argument("--val-every", type=int, help="steps between validations (0: never; default: the model's)")
    s.add_argument("--patience", type=int, help="stop after this many validations without improvement")
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
    s.add_argument("--sampler", help="diffusion models: ancestral or ddim (ddpm); ode, em or pc (score-sde)")
    s.add_argument("--steps", type=int, help="diffusion models: sampler steps (ddim, em, pc; ncsn: per noise level)")
    s.add_argument("--eta", type=float, help="ddim: 0 deterministic, 1 as stochastic as DDPM")
    s.add_argument("--guidance", type=float, help="classifier-free guidance scale w, with --label or --prompt")
    s.add_argument("--prompt", help='text-diffusion: the caption to draw, e.g. "a thick seven leaning right"')
    s.add_argument("--kernel", help=f"EBMs: the MCMC kernel, one of {', '.join(KERNELS)} (default langevin)")
    s.set_defaults(func=_cmd_sample)

    s = sub.add_parser("evaluate", help="test log-likelihood and sample quality of a trained run")
    s.add_argument("run_dir")
    s.add_argument("--data", metavar="DATA", help="a bundled dataset or a data file (default: the run's)")
    s.add_argument("--split", choices=("train", "val", "test"), default="test")
    s.add_argument("--iwae-k", type=int, default=1000, help="importance samples for latent models")
    s.add_argument("--samples", type=int, help="samples for the sample-quality metrics (default: the split's size)")
    s.add_argument("--seed", type=int, default=0, help="seeds the estimates (the same seed gives the same numbers)")
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


def default_threads() -> int | None:
    """The intra-op threads for a command run without ``--threads``: ``None`` (torch's choice) where
    ``OMP_NUM_THREADS`` says it, else the cores the 1-minute load average leaves idle, at least 1.

    Threads that compete with other work for the same cores slow small models several-fold
    (``benchmarks/threads.py`` times the demo idle and with one core busy, both ways).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average on this platform
        return None
    return max(1, min(cores, cores - math.floor(load)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrogen`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.threads is not None and args.threads < 1:
        print(f"pyrogen: error: --threads must be a positive integer; got {args.threads}", file=sys.stderr)
        return 2
    threads = args.threads if args.threads is not None else default_threads()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    try:
        args.func(args)
    # RunError and CheckpointError are ValueErrors; TrainingDiverged is a FloatingPointError
    except (ValueError, TypeError, NotImplementedError, OSError, FloatingPointError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"pyrogen: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyrogen: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
