"""The flow family's numbers: 2-D toys, dequantized digits, the D-pass direction, distillation.

Every model is trained by :func:`pyrogen.inference.fit` (early stopping on the
validation part, best parameters restored) and scored on the test part.

    python benchmarks/flows.py                  # every section (about 40 minutes on 2 cores)
    python benchmarks/flows.py --only toys      # one section: toys, digits, dpass, distill, fresh
    python benchmarks/flows.py --only toys --flows maf-large   # some flows only
    python benchmarks/flows.py --json           # the rows as JSON
    python benchmarks/flows.py --quick          # a smoke run with few steps
    python benchmarks/flows.py --only fresh --flows nsf zuko-nsf   # the fresh densities, pyrogen's NSF and zuko's
    python benchmarks/flows.py --only fresh --flows nsf --densities funnel   # some rows again, the others kept
    python benchmarks/flows.py --record run.log   # file the rows a stopped run printed to its log
    python benchmarks/flows.py --only toys --record run.log   # the same for the toys (or digits)
    python benchmarks/flows.py --only seeds --densities digits   # pyrogen's NSF and zuko's from seeds 0, 1, 2

Section ``fresh``: the four densities of ``benchmarks/fresh_densities.py`` (never tuned on; exact entropies),
each flow from its registered defaults, next to the best possible value; and ``zuko-nsf``, zuko's NSF with
pyrogen NSF's architecture (5 autoregressive rational-quadratic transforms, 8 bins, hidden (64, 64)) trained
by the same loop settings (steps, batch, learning rate and its cosine schedule, gradient clipping, validation
every ``val_every`` steps with the best parameters kept), on the data in the same units
(``pyrogen.models.flows.data_units``, whose log-determinant is added back). The same zuko NSF is a column of the
toys (``--only toys --flows zuko-nsf``) and a row of the digits (``--only digits --flows zuko-nsf``), where it sees
the digits as pyrogen's flows do: flattened, each training batch dequantized afresh, the logit pre-processing of
``LogitTransform(0.05)`` with its log-determinant counted, bits/dim with the ``log2 17`` correction.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from typing import Any

import torch
from _common import keep, logged_rows, machine, merged_rows, previous_rows, report, section_parser, train_and_score
from pages import SEEDS, seed_table
from pyro.distributions.transforms import AffineAutoregressive
from pyro.nn import AutoRegressiveNN

from pyrogen.data import TOY_ENTROPY, TOYS, load
from pyrogen.distributions.transforms import MaskedAutoregressive
from pyrogen.inference import TrainConfig, distill
from pyrogen.metrics import bits_per_dim, evaluate_nll
from pyrogen.models import IAF, MAF, registry
from pyrogen.nn import MADENet

#: Flows on the 2-D toys, with their settings.
TOY_FLOWS: dict[str, dict[str, Any]] = {
    "realnvp": {"num_layers": 8, "hidden": (64, 64)},
    "nice": {"num_layers": 8, "hidden": (64, 64)},
    "maf": {"num_layers": 5, "hidden": (64, 64)},
    "iaf": {"num_layers": 5, "hidden": (64, 64)},
    "gaussianization": {"num_layers": 6, "components": 12},
    "maf-large": {"num_layers": 8, "hidden": (128, 128)},
    "nsf": {},  # the registered defaults: 5 rational-quadratic autoregressive layers, 8 bins, hidden (64, 64)
    "flow-matching": {},  # the registered defaults (the diffusion family's MLP, EMA 0.999)
    "ffjord": {},  # the registered defaults: 3 layers of 64, 2000 steps, tolerance 1e-3 in training
}
#: Table rows that are another configuration of a registered flow.
VARIANTS = {"glow-permute": "glow", "maf-large": "maf"}
#: Step caps above a flow's train_defaults on the toys.
TOY_STEPS = {"maf-large": 6000}
# Planar flows are left out of the toy table: scoring data inverts every layer by bisection, which
# makes 32 layers slow to train on 30,000 points; they are in the digits table (16 layers).
#: Flows on the dequantized digits (logit pre-processing), with their settings.
DIGIT_FLOWS: dict[str, dict[str, Any]] = {
    "realnvp": {"num_layers": 8, "hidden": (256, 256)},
    "nice": {"num_layers": 4, "hidden": (256, 256)},
    "maf": {"num_layers": 5, "hidden": (128,)},
    "gaussianization": {"num_layers": 4, "components": 8},
    "glow": {"scales": 2, "steps": 4, "hidden": 64},
    "glow-permute": {"scales": 2, "steps": 4, "hidden": 64, "mixing": "permute"},
    "planar": {"num_layers": 16},
    "mintnet": {"num_layers": 6, "hidden": 32},
    "nsf": {},  # the registered defaults: 5 affine + rational-quadratic autoregressive layers, hidden (64, 64)
}
# IAF scores external data in D = 64 network passes per layer, so maximum likelihood on the digits is
# its slow direction; its digits row is the student distilled from the MAF (section "distill").


def _train(name: str, data_name: str, kwargs: dict[str, Any], steps: int | None, seed: int = 0) -> tuple[Any, dict]:
    return train_and_score(name, data_name, kwargs, steps, seed, registry_name=VARIANTS.get(name, name))


def toys(steps: int | None, flows: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for toy in TOYS:
        for name, kw in {**TOY_FLOWS, "zuko-nsf": {}}.items():
            if flows and name not in flows:
                continue
            try:
                if name == "zuko-nsf":
                    row = zuko_nsf(load(toy), steps)
                else:
                    row = _train(name, toy, kw, steps or TOY_STEPS.get(name))[1]
            except FloatingPointError as e:  # reported, not hidden
                rows.append({"model": name, "data": toy, "diverged": str(e)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                continue
            row["best_possible"] = round(TOY_ENTROPY[toy], 3)
            row["gap"] = round(row["nll_nats"] - TOY_ENTROPY[toy], 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)  # each row as it comes
    return rows


#: Flows on the fresh densities (registered defaults), and zuko's NSF beside them.
FRESH_FLOWS = ("realnvp", "maf", "nsf", "flow-matching", "ffjord", "zuko-nsf")


def zuko_nsf(data: Any, steps: int | None, seed: int = 0) -> dict[str, Any]:
    """zuko's NSF trained as pyrogen's NSF is (its registered training settings for ``data``), scored on the test
    part in the data's own units."""
    return zuko_flow("zuko-nsf", data, steps, seed)


def zuko_flow(name: str, data: Any, steps: int | None, seed: int = 0) -> dict[str, Any]:
    """zuko's NSF (``"zuko-nsf"``: 5 spline transforms of 8 bins, hidden 64-64) or MAF (``"zuko-maf"``: 5 affine
    transforms, hidden 64-64) trained as pyrogen's flow of the same name is (its registered training settings for
    ``data``), scored on the test part in the data's own units."""
    import copy

    import zuko

    torch.manual_seed(seed)
    cfg = registry.get(name.removeprefix("zuko-")).train_defaults_for(data)
    steps = steps or cfg["steps"]
    to_flow = _zuko_units(data)
    train, val, test = data.train, data.val, data.test
    features = to_flow(train[:1], False)[0].shape[-1]  # the flow's dimension as to_flow hands it the data
    if name == "zuko-nsf":
        flow = zuko.flows.NSF(features, bins=8, transforms=5, hidden_features=(64, 64))
    else:
        flow = zuko.flows.MAF(features, transforms=5, hidden_features=(64, 64))
    opt = torch.optim.Adam(flow.parameters(), lr=cfg["lr"])
    best, best_state, best_step, t = math.inf, copy.deepcopy(flow.state_dict()), 0, time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    schedule = TrainConfig(**{**cfg, "steps": steps})  # the same learning-rate schedule (cosine) as fit's
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = schedule.lr_at(step - 1)
        batch = train[torch.randint(0, len(train), (cfg["batch_size"],), generator=g)]
        loss = -_zuko_log_prob(flow, *to_flow(batch, True)).mean()
        opt.zero_grad()
        loss.backward()
        if cfg.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(flow.parameters(), cfg["grad_clip"])
        opt.step()
        if step % cfg["val_every"] == 0 or step == steps:
            with torch.no_grad():
                v = float(-_zuko_log_prob(flow, *to_flow(val, False)).mean())
            if v < best:
                best, best_state, best_step = v, copy.deepcopy(flow.state_dict()), step
    flow.load_state_dict(best_state)
    with torch.no_grad():
        lp = _zuko_log_prob(flow, *to_flow(test, False)).double()
    row = {
        "model": name,
        "data": data.name,
        "command": machine()["command"],
        "nll_nats": round(float(-lp.mean()), 4),
        "nll_stderr": round(float(lp.std() / math.sqrt(len(lp))), 4),
        "steps": steps,
        "best_step": best_step,
        "train_s": round(time.perf_counter() - t, 1),
    }
    if data.kind == "image":
        row["bits_per_dim"] = round(bits_per_dim(-float(lp.mean()), math.prod(data.event_shape), data.levels), 4)
    return row


def _zuko_log_prob(flow: Any, y: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
    """zuko's ``log p(y)`` plus the log-determinant of the map from the data to ``y``: ``log p(x)``."""
    return flow().log_prob(y) + log_det


def _zuko_units(data: Any) -> Any:
    """``to_flow(x, training) -> (y, log |dy/dx|)``: the data as pyrogen's flows of the same recipe see them.
    Dequantized images (the digits): flattened, each training batch dequantized afresh (as
    :class:`~pyrogen.inference.objectives.MaximumLikelihood` does), then the logit pre-processing of
    :class:`~pyrogen.distributions.transforms.LogitTransform` (alpha 0.05, the flows' default); vectors: rescaled
    by :func:`~pyrogen.models.flows.data_units`."""
    from pyrogen.distributions.transforms import LogitTransform
    from pyrogen.inference.objectives import dequantize
    from pyrogen.models.flows import data_units

    if data.kind == "image":
        logit, levels = LogitTransform(0.05), data.levels

        def to_flow(x: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
            x = x.flatten(1)
            if training and levels:
                x = dequantize(x, levels)
            y = logit.inv(x)
            return y, -logit.log_abs_det_jacobian(y, x)

        return to_flow
    loc, scale = data_units(data.train)
    log_det = -scale.log().sum()

    def rescale(x: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return (x - loc) / scale, log_det.expand(len(x))

    return rescale


def fresh(
    steps: int | None, flows: list[str] | None = None, densities: list[str] | None = None
) -> list[dict[str, Any]]:
    from fresh_densities import NAMES, entropy, load_fresh

    rows = []
    for name in densities or NAMES:
        data = load_fresh(name)
        best, best_se = entropy(name)
        for flow in flows or FRESH_FLOWS:  # any vector flow may be named; the table's by default
            try:
                if flow == "zuko-nsf":
                    row = zuko_nsf(data, steps)
                else:
                    row = train_and_score(flow, data, {}, steps)[1]
            except FloatingPointError as e:  # reported, not hidden
                rows.append({"model": flow, "data": name, "diverged": str(e)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                continue
            row.update(best_possible=round(best, 4), best_possible_stderr=round(best_se, 4))
            row["gap"] = round(row["nll_nats"] - best, 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)  # each row as it comes: a long run keeps its rows
    return rows


def digits(steps: int | None, flows: list[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for name, kw in {**DIGIT_FLOWS, "zuko-nsf": {}}.items():
        if not flows or name in flows:
            rows.append(zuko_nsf(load("digits"), steps) if name == "zuko-nsf" else _train(name, "digits", kw, steps)[1])
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # each row as it comes
    return rows


#: Where zuko's NSF was ahead of pyrogen's at seed 0 (the digits; by under 0.004 nats on the toys): both again
#: from seeds 0, 1 and 2 (pages.SEEDS), so that the comparison says how much of a difference the seed makes.
SEED_DATA = ("digits", "checkerboard", "circles", "moons")


def seeds(steps: int | None, densities: list[str] | None = None) -> list[dict[str, Any]]:
    """pyrogen's NSF and zuko's NSF on each of ``densities`` (toys or the digits) from seeds 0, 1 and 2: the same
    data, the same training settings, the seed drawing the initial weights, the batches and the dequantization."""
    rows = []
    for name in densities or SEED_DATA:
        for seed in SEEDS:
            for flow in ("nsf", "zuko-nsf"):
                if flow == "zuko-nsf":
                    row = zuko_nsf(load(name), steps, seed)
                else:
                    kw = DIGIT_FLOWS["nsf"] if name == "digits" else TOY_FLOWS["nsf"]
                    row = _train(flow, name, kw, steps, seed)[1]
                row["seed"] = seed
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _median_ms(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def dpass(rounds: int = 7, batch: int = 256, dim: int = 128, hidden: int = 256) -> dict[str, Any]:
    """The sequential direction of one autoregressive layer, in units of its own one-pass direction."""
    torch.manual_seed(0)
    ours = MaskedAutoregressive(MADENet(dim, [hidden, hidden], out_mult=2))
    theirs = AffineAutoregressive(AutoRegressiveNN(dim, [hidden, hidden]))
    y = torch.randn(batch, dim)
    out: dict[str, Any] = {"batch": batch, "dim": dim, "hidden": [hidden, hidden]}

    def forward_passes(layer: Any) -> None:
        for _ in range(dim):
            layer._call(y)

    with torch.no_grad():
        for key, layer in (("pyrogen", ours), ("pyro", theirs)):
            layer(y)  # warm-up
            # D forward passes timed as one loop, like the D-pass inverse they are compared with
            one = _median_ms(lambda layer=layer: forward_passes(layer), rounds) / dim
            seq = _median_ms(lambda layer=layer: layer._inverse(y), rounds)
            out[f"{key}_one_pass_ms"] = round(one, 3)
            out[f"{key}_d_pass_ms"] = round(seq, 2)
            out[f"{key}_cost_in_passes"] = round(seq / one / dim, 2)  # target: pyrogen <= 1.5
    return out


def distillation(steps: int | None) -> dict[str, Any]:
    """A MAF teacher on the dequantized digits, an IAF student distilled from it."""
    teacher, row = _train("maf", "digits", DIGIT_FLOWS["maf"], steps)
    torch.manual_seed(0)
    student = registry.from_dataset(IAF, load("digits"), num_layers=5, hidden=(128,))
    assert isinstance(teacher, MAF) and isinstance(student, IAF)
    t = time.perf_counter()
    res = distill(teacher, student, steps=steps or 3000, batch_size=128, lr=1e-3)
    student.eval()
    digits = load("digits")
    scored = evaluate_nll(student, digits.test, levels=digits.levels)  # D-pass density of the student
    return {
        "student_test_nll_nats": round(scored.nll_nats, 3),
        "student_bits_per_dim": round(scored.bits_per_dim or float("nan"), 4),
        "teacher_test_nll_nats": row["nll_nats"],
        "teacher_bits_per_dim": row.get("bits_per_dim"),
        "kl_nats": round(res.kl, 3),
        "kl_stderr": round(res.kl_stderr, 3),
        "teacher_nll_of_student_samples": round(res.teacher_nll_of_student, 3),
        "teacher_nll_of_own_samples": round(res.teacher_nll_of_teacher, 3),
        "teacher_nll_of_student_samples_median": round(res.teacher_nll_of_student_median, 3),
        "teacher_nll_of_own_samples_median": round(res.teacher_nll_of_teacher_median, 3),
        "student_sample_ms": round(res.student_sample_ms, 2),
        "teacher_sample_ms": round(res.teacher_sample_ms, 2),
        "sampling_speedup": round(res.speedup, 1),
        "distill_s": round(time.perf_counter() - t, 1),
    }


SECTIONS = ("toys", "digits", "dpass", "distill", "fresh", "seeds")
#: What a run without ``--only`` measures: every section but ``seeds`` (24 trainings), which runs when asked.
DEFAULT_SECTIONS = SECTIONS[:-1]


def _merged(section: str, rows: list[dict[str, Any]], some: list[str] | None) -> list[dict[str, Any]]:
    """``rows``, and where only some flows (or densities) were run, the other rows kept from the results file."""
    return merged_rows(previous_rows(section), rows) if some else rows


def run(
    quick: bool, only: list[str] | None, flows: list[str] | None = None, densities: list[str] | None = None
) -> dict[str, Any]:
    steps = 30 if quick else None
    out: dict[str, Any] = {}
    for section in only or DEFAULT_SECTIONS:
        if section == "toys":
            keep(out, "toys", _merged("toys", toys(steps, flows), flows))
        elif section == "digits":
            keep(out, "digits", _merged("digits", digits(steps, flows), flows))
        elif section == "dpass":
            keep(out, "dpass", dpass(rounds=2 if quick else 7))
        elif section == "distill":
            keep(out, "distill", distillation(steps))
        elif section == "fresh":
            keep(out, "fresh", _merged("fresh", fresh(steps, flows, densities), flows or densities))
        elif section == "seeds":
            rows = seeds(steps, densities)  # before the file is read: another run may have filed rows meanwhile
            keep(out, "seeds", merged_rows(previous_rows("seeds"), rows, ("model", "data", "seed")))
    return out


def _print(out: dict[str, Any]) -> None:
    if "toys" in out:
        print("2-D toys, test NLL (nats) - best possible (minus the entropy)")
        names = [n for n in (*TOY_FLOWS, "zuko-nsf") if any(r["model"] == n for r in out["toys"])]
        print(f"  {'toy':<14}{'best':>8}" + "".join(f"{n:>16}" for n in names))
        for toy in TOYS:
            rows = {r["model"]: r for r in out["toys"] if r["data"] == toy}
            cells = "".join(
                f"{'–':>16}"
                if n not in rows
                else f"{rows[n]['nll_nats']:>9.3f} ({rows[n]['gap']:+.2f})"
                if "gap" in rows[n]
                else f"{'diverged':>16}"
                for n in names
            )
            print(f"  {toy:<14}{TOY_ENTROPY[toy]:>8.3f}{cells}")
        within = sum(min(r.get("gap", 9e9) for r in out["toys"] if r["data"] == toy) <= 0.10 for toy in TOYS)
        print(f"  best flow within 0.10 nats of the best possible on {within} of {len(TOYS)} toys")
    for r in out.get("fresh", []):
        cell = f"{r['nll_nats']:.3f} (best {r['best_possible']:.3f}, gap {r['gap']:+.3f})" if "gap" in r else "diverged"
        print(f"  fresh {r['data']:<14}{r['model']:<16}{cell}")
    if "digits" in out:
        print("dequantized digits, test bits/dim (log2 17 dequantization correction included; GMM 2.90)")
        for r in out["digits"]:
            print(f"  {r['model']:<16}{r['bits_per_dim']:>8.3f}   best step {r['best_step']}, {r['train_s']} s")
    if "seeds" in out:
        print("pyrogen's NSF - zuko's NSF, paired by seed (mean over the seeds, ± its standard error)")
        for t in seed_table(out["seeds"]):
            print(
                f"  {t['data']:<14}{t['unit']:<14}nsf {t['nsf']:.4f}  zuko {t['zuko-nsf']:.4f}  "
                f"difference {t['difference']:+.4f} ± {t['difference_stderr']:.4f} ({t['seeds']} seeds)"
            )
    if "dpass" in out:
        d = out["dpass"]
        print(f"D-pass direction of one autoregressive layer (batch {d['batch']}, D = {d['dim']}), in forward passes:")
        for k in ("pyrogen", "pyro"):
            print(
                f"  {k:<8} one pass {d[k + '_one_pass_ms']} ms, D passes {d[k + '_d_pass_ms']} ms: "
                f"{d[k + '_cost_in_passes']} x D forward passes"
            )
    if "distill" in out:
        d = out["distill"]
        print(
            f"distillation on digits: IAF student {d['student_bits_per_dim']} bits/dim on the test digits "
            f"(teacher MAF {d['teacher_bits_per_dim']}); "
            f"KL(student || teacher) {d['kl_nats']} ± {d['kl_stderr']} nats; "
            f"teacher NLL of student samples {d['teacher_nll_of_student_samples']} "
            f"(of its own {d['teacher_nll_of_own_samples']}; medians {d['teacher_nll_of_student_samples_median']} and "
            f"{d['teacher_nll_of_own_samples_median']}); sampling {d['sampling_speedup']}x faster "
            f"({d['teacher_sample_ms']} -> {d['student_sample_ms']} ms for 1024 samples)"
        )


def main(argv: list[str] | None = None) -> int:
    p = section_parser(__doc__, SECTIONS)
    p.add_argument(
        "--flows",
        nargs="+",
        choices=sorted({*TOY_FLOWS, *DIGIT_FLOWS, *FRESH_FLOWS}),
        help="toys, digits and fresh: only these flows",
    )
    p.add_argument(
        "--densities",
        nargs="+",
        help="fresh: only these densities (benchmarks/fresh_densities.py); seeds: these toys or digits",
    )
    p.add_argument(
        "--record",
        metavar="LOG",
        help="toys, digits, fresh or seeds (--only; fresh if not given): file the rows a stopped run printed to its "
        "log (stderr) instead of measuring",
    )
    args = p.parse_args(argv)
    if args.only and "seeds" in args.only:
        bad = [d for d in args.densities or () if d not in (*TOYS, "digits")]
        if bad:
            p.error(f"--densities for seeds: a toy or digits; got {bad[0]!r}")
    if args.record:
        section = (args.only or ["fresh"])[0]
        if args.only and (len(args.only) > 1 or section not in ("toys", "fresh", "digits", "seeds")):
            p.error(f"--record files one section, toys, digits, fresh or seeds; got --only {' '.join(args.only)}")
        key = ("model", "data", "seed") if section == "seeds" else ("model", "data")
        rows = logged_rows(args.record, key)
        if section == "seeds":  # a log may hold other sections' rows too: a row of this one has its seed
            rows = [r for r in rows if "seed" in r]
        out = {section: merged_rows(previous_rows(section), rows, key)}
    else:
        out = run(args.quick, args.only, args.flows, args.densities)
    return report(out, args.json, _print)


if __name__ == "__main__":
    sys.exit(main())
