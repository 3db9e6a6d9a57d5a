"""The trainer under ``torchrun --standalone --nproc_per_node=2`` (gloo on CPU).

Two ranks with half of each global batch each, gradients averaged by DDP, reach
the parameters of a single process trained on the full batches: the union of
the two ranks' shards of a global batch is exactly the single process's batch.
"""

import os
import shutil
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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if r.returncode != 0 and _shutdown_abort(r, out):
        # A rank aborted in gloo's C++ teardown *after* training and the final checkpoint were
        # complete (seen once in CI, never reproduced in 38 local runs under load). That is a
        # torch shutdown race, not a result; rerun once from scratch so the comparison below
        # still decides the test. Any other failure, or a second abort, fails.
        print("rank aborted at shutdown; rerunning once:\n" + _stderr_summary(r))
        shutil.rmtree(out)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, _stderr_summary(r)
    return r


def _shutdown_abort(r, out):
    return "terminate called without an active exception" in r.stderr and (out / "model.safetensors").exists()


def _stderr_summary(r):
    """The ranks' own messages (faulthandler stacks included), without torchrun's warnings."""
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith(("W1", "I1"))]
    text = "\n".join(lines)
    return text if len(text) < 6000 else text[:3000] + "\n...\n" + text[-3000:]


@pytest.mark.slow
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
