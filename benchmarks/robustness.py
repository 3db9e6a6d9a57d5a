"""Registered defaults on data they were not tuned on (hardening issue, items 14 and 24).

Sections (``--only``):

- ``units``: RealNVP from ``from_dataset`` with its registered training defaults on the moons in other units --
  times 1000 plus 5000, and times 0.001 -- re-split by ``from_array`` (seed 0): test NLL in the moons' own units
  (the rescaling's log-determinant removed), next to the bundled moons' (best possible 2.391).
- ``tails``: RealNVP on a density no bundled generator makes -- a ring of radius 2 (noise 0.1) plus a Student-t
  blob with 2 degrees of freedom, 10,000 points each -- with the registered defaults and at ``lr`` 1e-3: whether
  the run finishes, its test NLL and the trainer's warnings.

    python benchmarks/robustness.py --json      # about 3 minutes on one core
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report, section_parser  # noqa: E402

from pyrogen.data import Dataset, from_array, load  # noqa: E402
from pyrogen.inference import TrainConfig, fit  # noqa: E402
from pyrogen.models import (
    RealNVP,  # noqa: E402
    registry,
)

SECTIONS = ("units", "tails")


def _run(data: Dataset, steps: int | None, shift_log_det: float = 0.0, **settings: Any) -> dict[str, Any]:
    pyro.set_rng_seed(0)
    model = registry.from_dataset(RealNVP, data)
    cfg = {**registry.recipe_of(RealNVP).train_defaults_for(data), "seed": 0, **settings}
    if steps is not None:
        cfg["steps"] = steps
    row: dict[str, Any] = {"data": data.name, "lr": cfg["lr"], "rescaled": model.rescaled}
    try:
        res = fit(model, data.train, data.val, TrainConfig(**cfg))
    except FloatingPointError as e:  # TrainingDiverged: reported, not hidden
        return {**row, "finished": False, "error": str(e)}
    with torch.no_grad():
        nll = float(-model.log_prob(data.test).mean()) - shift_log_det
    return {
        **row,
        "finished": True,
        "test_nll_nats": round(nll, 3),
        "best_step": res.best_step,
        "warnings": res.warnings,
    }


def units(steps: int | None) -> list[dict[str, Any]]:
    moons = load("moons")
    x = torch.cat([moons.train, moons.val, moons.test])
    rows = [_run(moons, steps)]
    for a, b in ((1000.0, 5000.0), (0.001, 0.0)):
        data = from_array(x * a + b, name=f"moons x {a:g} + {b:g}")
        rows.append(_run(data, steps, shift_log_det=2 * math.log(a)))
    return rows


def ring_and_student_t(n: int = 20000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(n // 2, generator=g) * 2 * math.pi
    ring = 2 * torch.stack([theta.cos(), theta.sin()], 1) + 0.1 * torch.randn(n // 2, 2, generator=g)
    # Student-t(2) = normal / sqrt(chi2(2) / 2), chi2(2) = -2 log U
    chi2 = -2 * torch.log(torch.rand(n // 2, 2, generator=g))
    blob = torch.randn(n // 2, 2, generator=g) / torch.sqrt(chi2 / 2)
    return torch.cat([ring, blob])[torch.randperm(n, generator=g)]


def tails(steps: int | None) -> list[dict[str, Any]]:
    data = from_array(ring_and_student_t(), name="ring + student-t(2)")
    return [_run(data, steps), _run(data, steps, lr=1e-3)]


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    args = p.parse_args(argv)
    steps = 30 if args.quick else None
    only = set(args.only or SECTIONS)
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    if "units" in only:
        out["units"] = units(steps)
    if "tails" in only:
        out["tails"] = tails(steps)
    return report(out, args.json, lambda o: [print(r) for rows in o.values() for r in rows])


if __name__ == "__main__":
    raise SystemExit(main())
