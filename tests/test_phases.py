"""A curriculum of phases resumes in its phase: a run killed with SIGKILL during its second phase and resumed ends
with the parameters of a run never stopped (the DBM: layer-wise pre-training then joint training; latent
diffusion: the VAE, then the DDPM over its codes)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pyrogen.inference.objectives import Phases, objective_for
from pyrogen.models import registry

_RUN = """
import os, signal, sys
import torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from conftest import small_data, small_model
from safetensors.torch import save_file
from pyrogen.inference import fit
from pyrogen.inference.hooks import TrainingHook

name, out, save = sys.argv[1], sys.argv[2], sys.argv[6]
steps, kill_at, resume = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"


class Kill(TrainingHook):
    def before_step(self, step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


m = small_model(name)
x = small_data(name, 256)
if kill_at >= 0:
    m.killer = Kill()
fit(m, x, None, steps=steps, batch_size=32, checkpoint_every=10, out=out, resume=resume, seed=3)
save_file({{k: v.contiguous() for k, v in m.state_dict().items() if not k.startswith("killer")}}, save)
"""


def _run(tmp_path, name, out, steps, kill_at=-1, resume=False):
    save = str(tmp_path / f"{Path(out).name}-{steps}-{kill_at}-{int(resume)}.safetensors")
    script = _RUN.format(tests=str(Path(__file__).parent))
    args = [sys.executable, "-c", script, name, str(out), str(steps), str(kill_at), "1" if resume else "0", save]
    return subprocess.run(args, capture_output=True, text=True, timeout=600), save


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kill_at", "steps"), [("dbm", 62, 100), ("latent-diffusion", 67, 80)])
def test_a_run_killed_in_its_second_phase_resumes_to_the_uninterrupted_parameters(tmp_path, name, kill_at, steps):
    phases = objective_for(registry.create(name, **__import__("conftest").SMALL[name]))
    assert isinstance(phases, Phases)
    first, second = phases.phase(0)[0], phases.phase(kill_at)[0]
    assert first != second, "the kill must fall in the second phase"
    done, whole = _run(tmp_path, name, tmp_path / "whole", steps)
    assert done.returncode == 0, done.stderr[-2000:]
    killed, _ = _run(tmp_path, name, tmp_path / "cut", steps, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    resumed, cut = _run(tmp_path, name, tmp_path / "cut", steps, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(whole), load_file(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=k)
