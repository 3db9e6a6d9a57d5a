"""The GPU check (``make gpu-check``): every registered model trained a few steps on a device, sampled,
checkpointed, resumed and evaluated; then the two-group step timed there. Prints one JSON object.

    python benchmarks/gpu_check.py                   # on cuda (fails if there is none)
    python benchmarks/gpu_check.py --device cpu      # the same check on the CPU (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from pyrogen.models import registry
from pyrogen.runs import evaluate_run, load_run, resolve_device, train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from two_group import TinyWGANGP, plain_loop  # noqa: E402


def check_model(name: str, device: str, steps: int, tmp: Path) -> dict[str, Any]:
    t = time.perf_counter()
    out = tmp / name
    row: dict[str, Any] = {"model": name}
    try:
        kw = {"device": device, "checkpoint_every": steps, "evaluate": False}
        train_run(name, None, out, steps=steps, **kw)
        model, _, _ = train_run(name, None, out, steps=2 * steps, resume=True, **kw)
        row["param_device"] = str(next(model.parameters()).device)
        with torch.no_grad():
            row["sample_shape"] = list(model.sample(4).shape)
        reloaded, _ = load_run(out, device=device)
        m = evaluate_run(out, k=8, samples=64, model=reloaded)
        row["metrics"] = sorted(k for k in m if k not in ("model", "data", "split", "density"))
        row["ok"] = True
    except Exception as e:  # the check reports every model, whatever fails
        row["ok"] = False
        row["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()[-500:]
    row["seconds"] = round(time.perf_counter() - t, 2)
    return row


def two_group_step(device: str, steps: int = 30) -> dict[str, Any]:
    from pyrogen.inference import TrainConfig
    from pyrogen.inference.trainer import _Batches, make_optimizers, training_step

    dev = torch.device(device)
    data = torch.randn(30000, 2, device=dev)
    torch.manual_seed(0)
    model, ref = TinyWGANGP().to(dev), TinyWGANGP().to(dev)
    cfg = TrainConfig(batch_size=256, steps=10**9)
    groups = make_optimizers(model, cfg)
    batches = _Batches(len(data), 256, 0, 1, 0, dev)

    def ours(i: int) -> None:
        training_step(model, None, data.index_select(0, batches(i)), i, groups, cfg)

    theirs = plain_loop(ref, data, 256)
    times = {}
    for label, step in (("pyrogen", ours), ("reference", theirs)):
        for i in range(5):
            step(i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for i in range(5, 5 + steps):
            step(i)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times[label] = (time.perf_counter() - t) / steps * 1e3
    return {
        "name": "wgan-gp-2d-b256",
        "pyrogen_ms": round(times["pyrogen"], 3),
        "reference_ms": round(times["reference"], 3),
        "ratio": round(times["pyrogen"] / times["reference"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=registry.names())
    args = p.parse_args(argv)
    resolve_device(args.device)  # a clear error where the device is missing
    report: dict[str, Any] = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        report["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        rows = [check_model(n, args.device, args.steps, Path(tmp)) for n in args.only or registry.names()]
    report["models"] = rows
    report["all_ok"] = all(r["ok"] for r in rows)
    report["step_benchmark"] = two_group_step(args.device)
    print(json.dumps(report))
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
