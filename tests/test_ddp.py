"""The trainer under ``torchrun --standalone --nproc_per_node=2`` (gloo on CPU).

Two ranks with half of each global batch each, gradients averaged by DDP, reach
the parameters of a single process trained on the full batches: the union of
the two ranks' shards of a global batch is exactly the single process's batch.
"""

import os
import subprocess
import sys

import pytest
import torch

from pyrogen.io import load_checkpoint
from pyrogen.runs import load_run


def _train(out, *launcher):
    cmd = [
        *launcher,
        "-m",
        "pyrogen.cli",
        "train",
        "realnvp",
        "--data",
        "moons",
        "--steps",
        "60",
        "--out",
        str(out),
        "-q",
        "--seed",
        "4",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.xdist_group("ddp")
def test_two_rank_ddp_equals_single_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _train(tmp_path / "ddp", *torchrun)
    _train(tmp_path / "single", sys.executable)
    ddp, _ = load_run(tmp_path / "ddp")
    single, _ = load_run(tmp_path / "single")
    for (k, a), b in zip(ddp.state_dict().items(), single.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), k
    _, meta = load_checkpoint(tmp_path / "ddp" / "model.safetensors")
    assert meta["result"]["world_size"] == 2
    # checkpoints come from rank 0 alone: one file per checkpoint step, no leftovers
    names = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "single").iterdir())
