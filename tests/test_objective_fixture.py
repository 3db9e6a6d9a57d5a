"""Moving the training objectives out of the models changed no loss and no gradient.

``tests/objective_fixture.json`` was recorded by ``tests/objective_fixture.py --api model`` on the code in which
every family still computed its own loss (``forward(batch, group)``): for each registered model, at steps 0, 1,
2, 7, 1,500 and 100,000, the groups the step updates, and each group's loss and gradient norm on a fixed seed
and batch. Here the same measurement through the models' default objectives must give the same schedule and the
same numbers, to float tolerance (the record is float32 arithmetic of one CPU; other CPUs round differently).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import SMALL
from objective_fixture import STEPS, measure

RECORD = json.loads((Path(__file__).parent / "objective_fixture.json").read_text())


def test_the_record_covers_every_family_that_moved_and_every_step():
    # the 49 models registered when the objectives left the models; families added since were built on them
    assert len(RECORD) == 49 and set(RECORD) <= set(SMALL)
    assert all(sorted(map(int, RECORD[name])) == sorted(STEPS) for name in RECORD)


@pytest.mark.parametrize("name", sorted(RECORD))
def test_the_default_objective_gives_the_recorded_loss_and_gradients(name):
    got = measure(name)
    for step, want in RECORD[name].items():
        assert got[step]["schedule"] == want["schedule"], (step, got[step]["schedule"], want["schedule"])
        for group in dict.fromkeys(want["schedule"]):
            (loss, norm), (want_loss, want_norm) = got[step][group], want[group]
            assert math.isclose(loss, want_loss, rel_tol=2e-3, abs_tol=1e-5), (step, group, loss, want_loss)
            assert math.isclose(norm, want_norm, rel_tol=5e-3, abs_tol=1e-5), (step, group, norm, want_norm)
