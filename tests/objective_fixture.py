"""Record, per registered model, the training loss and gradient norm of every parameter group on a fixed seed
and batch, so that moving a family's objective out of the model is proved to change nothing.

Each measurement builds the small model of ``conftest.SMALL`` afresh from seed 0, takes the first 16 examples
of its default data, sets the training step, and for each group the step updates reseeds Pyro's generator and
computes that group's loss and the 2-norm of the gradient it gives that group's parameters.

Run from the repository root; ``--api model`` measures through the models' own ``forward(batch, group)`` (the
code before objectives left the models; run it against such a checkout with ``PYTHONPATH``), ``--api
objective`` through :func:`pyrogen.inference.objectives.objective_for`::

    python tests/objective_fixture.py --api objective --out tests/objective_fixture.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pyro
import torch

STEPS = (0, 1, 2, 7, 1500, 100_000)
#: Arguments that rebuild the architecture the record was made on, where a default changed after it: MAF's and
#: IAF's MADE networks lost their direct input-to-output connections (a change of network, not of objective).
RECORDED_WITH: dict[str, dict[str, Any]] = {"maf": {"direct": True}, "iaf": {"direct": True}}
SEED = 11
N = 16


def _measure_one(name: str, api: str, step: int) -> dict[str, list[Any]]:
    from conftest import small_data, small_model

    batch = small_data(name, n=N)
    model = small_model(name, **RECORDED_WITH.get(name, {}))
    model.train()
    out: dict[str, list[Any]] = {}
    if api == "model":
        batch = model._checked_batch(batch)
        model.set_step(step)
        groups, schedule = model.param_groups(), model.update_schedule(step)

        def loss_of(group: str) -> torch.Tensor:
            return model.forward(batch, group)

    else:
        from pyrogen.inference.hooks import TrainingHook
        from pyrogen.inference.objectives import checked, objective_for

        objective = objective_for(model)
        batch = checked(model, batch)
        for hook in model.modules():
            if isinstance(hook, TrainingHook):
                hook.before_step(step)
        groups, schedule = objective.groups(model), objective.schedule(model, step)

        def loss_of(group: str) -> torch.Tensor:
            return objective.loss(model, batch, group)

    out["schedule"] = list(schedule)
    for group in dict.fromkeys(schedule):
        model.zero_grad(set_to_none=True)
        pyro.set_rng_seed(SEED)
        loss = loss_of(group)
        params = groups[group]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads if g is not None))
        out[group] = [loss.item(), norm.item()]
    return out


def measure(name: str, api: str = "objective") -> dict[str, dict[str, list[Any]]]:
    """``{step: {"schedule": groups in order, group: [loss, gradient norm]}}`` for model ``name`` at each of
    :data:`STEPS`."""
    return {str(step): _measure_one(name, api, step) for step in STEPS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", choices=("model", "objective"), default="objective")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import SMALL

    pyro.enable_validation(True)
    record: dict[str, Any] = {}
    for name in sorted(SMALL):
        record[name] = measure(name, args.api)
        print(name, record[name], flush=True)
    args.out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
