"""Run by ``test_two_groups_resume_bit_for_bit_under_torchrun`` under torchrun: full, crash at step 16, resume."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from conftest import CrashAt  # noqa: E402
from two_group import TinyWGANGP  # noqa: E402

from pyrogen.inference import TrainConfig, fit  # noqa: E402


def main(out: Path, mode: str) -> None:
    data = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(steps=24, batch_size=64, checkpoint_every=8, val_every=0, seed=2, schedule="cosine")
    torch.manual_seed(0)
    model = TinyWGANGP(n_critic=2, ema=0.95, replay=100)
    run = out / ("full" if mode == "full" else "crash")
    if mode == "crash":
        model.crash = CrashAt(16, lambda: os._exit(0))  # the process dies right after the step-16 checkpoint
    try:
        fit(model, data, None, cfg, out=run, resume=mode == "resume")
        if tdist.is_initialized():
            tdist.barrier()
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
