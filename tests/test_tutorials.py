"""Every tutorial runs end to end in its fast mode; a tutorial left out of this list fails.

``make test`` leaves the runs (marker ``tutorial``) to ``make docs``, which executes every tutorial in the same
fast mode and fails on any error or warning; ``pytest`` alone runs them here.
"""

import os
import runpy
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
RUN = [
    "01_whole_path.py",
    "02_autoregressive.py",
    "03_flows.py",
    "04_vae.py",
    "05_semi_supervised.py",
    "06_mcmc_over_latents.py",
    "07_gan.py",
    "08_ebm.py",
    "09_diffusion.py",
    "10_classical.py",
]


def test_every_tutorial_is_run():
    assert sorted(p.name for p in TUTORIALS.glob("*.py")) == sorted(RUN)


@pytest.mark.tutorial
@pytest.mark.parametrize("name", RUN)
def test_tutorial_runs(name, monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(os.environ, "PYROGEN_FAST", "1")
    monkeypatch.setitem(os.environ, "PYROGEN_OUT", str(tmp_path))
    runpy.run_path(str(TUTORIALS / name), run_name="__main__")
    out = capsys.readouterr().out
    assert "Traceback" not in out and out.strip()
