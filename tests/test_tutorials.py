"""Every tutorial runs end to end in its fast mode; a tutorial left out of this list fails."""

import os
import runpy
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
RUN = ["01_whole_path.py"]


def test_every_tutorial_is_run():
    assert sorted(p.name for p in TUTORIALS.glob("*.py")) == sorted(RUN)


@pytest.mark.parametrize("name", RUN)
def test_tutorial_runs(name, monkeypatch, capsys):
    monkeypatch.setitem(os.environ, "PYROGEN_FAST", "1")
    runpy.run_path(str(TUTORIALS / name), run_name="__main__")
    out = capsys.readouterr().out
    assert "Traceback" not in out and out.strip()
