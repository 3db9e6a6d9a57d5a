"""The autoregressive family's numbers: digits NLL, RNADE bits/dim, bits per character, NADE's one-pass speed-up.

Every model is trained by :func:`pyrogen.inference.fit` with its own
``train_defaults`` (early stopping on the validation part, best parameters
restored) and scored on the test part of the bundled data.

    python benchmarks/autoregressive.py            # the table (about 15 minutes on 2 cores)
    python benchmarks/autoregressive.py --json     # the rows as JSON
    python benchmarks/autoregressive.py --quick    # a smoke run with few steps

A full run or ``--only`` keeps its sections in ``results/autoregressive.json`` (re-measured rows replace their own).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from typing import Any

import torch
from _common import merged_rows, previous_rows, save_results, train_and_score

from pyrogen.data import load
from pyrogen.models import NADE

#: Binary-digit models and their settings (the registry defaults unless given).
DIGITS: dict[str, dict[str, Any]] = {
    "fvsbn": {},
    "nade": {"hidden": 128},
    "made": {"hidden": [256, 256], "num_masks": 8},
    "pixelcnn": {"features": 64, "layers": 4, "dropout": 0.5},
    "gated-pixelcnn": {"features": 32, "layers": 5, "dropout": 0.5},
    "pixelrnn": {},
    "pixelrnn-row": {"cell": "row-lstm"},
    "transformer": {"dim": 64, "layers": 2, "dropout": 0.1},
}
#: Rows that are another setting of a registered model.
REGISTERED = {"pixelrnn-row": "pixelrnn"}
#: PixelCNN on the colour digits (features a multiple of the 3 channels).
RGB: dict[str, Any] = {"features": 48, "layers": 4}
#: Step caps (with early stopping) that keep the whole script near 15 minutes on 2 cores.
STEPS = {"gated-pixelcnn": 1500, "transformer": 1500, "made": 6000}
TEXT_STEPS = {"char-rnn": 1000, "transformer": 600}
#: The floor on the binarized digits: independent pixels, measured by tests/test_data.py.
FLOORS = {"factorized Bernoulli": 25.30}
TEXT: dict[str, dict[str, Any]] = {
    "char-rnn": {"hidden": 128},
    "transformer": {"dim": 64, "heads": 4, "layers": 2, "dropout": 0.1},
}


def _train(
    name: str, data_name: str, model_kwargs: dict[str, Any], steps: int | None, seed: int = 0, **settings: Any
) -> dict[str, Any]:
    row = _fit(name, data_name, model_kwargs, steps, seed, **settings)[1]
    print(json.dumps(row), file=sys.stderr, flush=True)  # each row as it is measured: a long run keeps its rows
    return row


def _fit(
    name: str, data_name: str, model_kwargs: dict[str, Any], steps: int | None, seed: int = 0, **settings: Any
) -> tuple[Any, dict[str, Any]]:
    return train_and_score(name, data_name, model_kwargs, steps, seed, REGISTERED.get(name), **settings)


def colour_consistency(samples: torch.Tensor) -> float:
    """Fraction of ``(n, 3, H, W)`` binary images whose lit pixels all have one colour (blank images count as such)."""
    lit = samples.flatten(2).amax(2)  # (n, 3): the channels lit anywhere
    return float((samples == samples.amax(1, keepdim=True) * lit[:, :, None, None]).flatten(1).all(1).float().mean())


def rgb_digits(steps: int | None, binary_nll: float) -> dict[str, Any]:
    """PixelCNN with R -> G -> B masks on ``digits-rgb``: colour costs log 7 nats when it is learned."""
    model, row = _fit("pixelcnn", "digits-rgb", RGB, steps)
    torch.manual_seed(0)
    with torch.no_grad():
        row["single_colour_samples"] = round(colour_consistency(model.sample(500)), 3)
    row["binary_nll_plus_log7"] = round(binary_nll + math.log(7), 3)
    return row


def ngram_bits_per_char(order: int) -> float:
    """A unigram (order 1) or bigram (order 2) model with add-one smoothing, fitted on the training text."""
    data = load("text")
    v = data.levels or 0
    train, test = data.train.flatten(), data.test
    if order == 1:
        counts = torch.bincount(train, minlength=v).double() + 1
        logp = (counts / counts.sum()).log()
        return float(-logp[test].mean() / math.log(2))
    pairs = torch.zeros(v, v, dtype=torch.double)
    pairs.index_put_((train[:-1], train[1:]), torch.ones(len(train) - 1, dtype=torch.double), accumulate=True)
    cond = ((pairs + 1) / (pairs + 1).sum(1, keepdim=True)).log()
    uni = torch.bincount(train, minlength=v).double() + 1
    first = (uni / uni.sum()).log()[test[:, 0]]  # each 128-character example starts afresh
    rest = cond[test[:, :-1], test[:, 1:]]
    return float(-(first.sum() + rest.sum()) / (test.numel() * math.log(2)))


def nade_speed(batch: int, rounds: int = 7) -> dict[str, Any]:
    """NADE's one-pass log_prob against the d-pass reference (each hidden layer from scratch), d = 64, H = 128."""
    torch.manual_seed(0)
    m = NADE(event_shape=(64,), hidden=128)
    x = torch.bernoulli(torch.full((batch, 64), 0.4))
    times: dict[str, list[float]] = {"one_pass": [], "d_pass": []}
    with torch.no_grad():
        torch.testing.assert_close(m.log_prob(x), m._log_prob_naive(x), rtol=1e-4, atol=1e-3)
        for _ in range(rounds):
            for key, fn in (("one_pass", m.log_prob), ("d_pass", m._log_prob_naive)):
                t = time.perf_counter()
                for _ in range(20):
                    fn(x)
                times[key].append((time.perf_counter() - t) / 20 * 1e3)
    one, naive = statistics.median(times["one_pass"]), statistics.median(times["d_pass"])
    return {
        "batch": batch,
        "one_pass_ms": round(one, 3),
        "d_pass_ms": round(naive, 3),
        "speedup": round(naive / one, 1),
    }


def run(quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    steps = 30 if quick else None
    if only:  # re-measure some rows only
        out: dict[str, Any] = {
            "digits_binary": [_train(n, "digits-binary", DIGITS[n], steps or STEPS.get(n)) for n in only if n in DIGITS]
        }
        if "rgb" in only:
            pixel = [r for r in out["digits_binary"] if r["model"] == "pixelcnn"]
            if not pixel:
                raise SystemExit("--only rgb needs pixelcnn in the same run (its binary NLL + log 7 is the reference)")
            out["rgb"] = rgb_digits(steps, pixel[0]["nll_nats"])
        if "nade-speed" in only:
            out["nade_speed"] = [nade_speed(b, 3 if quick else 7) for b in (1, 16, 128)]
        return out
    digits = [_train(n, "digits-binary", kw, steps or STEPS.get(n)) for n, kw in DIGITS.items()]
    rnade = _train("rnade", "digits", {"hidden": 128, "components": 10}, steps)
    rgb = rgb_digits(steps, next(r["nll_nats"] for r in digits if r["model"] == "pixelcnn"))
    text = [_train(n, "text", kw, steps or TEXT_STEPS[n], batch_size=32, val_every=100) for n, kw in TEXT.items()]
    return {
        "digits_binary": digits,
        "floors": FLOORS,
        "rnade": rnade,
        "rgb": rgb,
        "text": text,
        "text_baselines": {"unigram": round(ngram_bits_per_char(1), 4), "bigram": round(ngram_bits_per_char(2), 4)},
        "nade_speed": [nade_speed(b, 3 if quick else 7) for b in (1, 16, 128)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="30 training steps per model (a smoke run)")
    p.add_argument(
        "--only",
        nargs="+",
        choices=[*sorted(DIGITS), "rgb", "nade-speed"],
        help="re-measure only these binarized-digits rows (and/or the colour-digits row, the NADE timing)",
    )
    args = p.parse_args(argv)
    out = run(args.quick, args.only)
    if not args.quick:  # results/autoregressive.json: rows measured again replace their own, the others stay
        kept = dict(out)
        kept["digits_binary"] = merged_rows(previous_rows("digits_binary"), out["digits_binary"], key=("model",))
        if "text" in out:
            kept["text"] = merged_rows(previous_rows("text"), out["text"], key=("model",))
        save_results(kept)
    if args.json or args.only:
        print(json.dumps(out, indent=1))
        return 0
    print("binarized digits, test NLL (nats)")
    for r in out["digits_binary"]:
        nll = f"{r['nll_nats']:>8.2f} ± {r['nll_stderr']:.2f}"
        print(f"  {r['model']:<16}{nll}   best step {r['best_step']}, {r['train_s']} s")
    for k, v in out["floors"].items():
        print(f"  {k:<28}{v:>8.2f}  (floor)")
    r = out["rnade"]
    gmm = "the 10-component GMM of benchmarks/classical.py: 2.81"
    print(f"dequantized digits: RNADE {r['bits_per_dim']:.3f} bits/dim ({gmm})")
    r = out["rgb"]
    print(
        f"colour digits: PixelCNN (R -> G -> B masks) {r['nll_nats']:.2f} ± {r['nll_stderr']:.2f} nats "
        f"(binary PixelCNN + log 7 = {r['binary_nll_plus_log7']:.2f}); "
        f"{100 * r['single_colour_samples']:.1f}% of 500 samples in one colour"
    )
    b = out["text_baselines"]
    print(f"text, bits per character: unigram {b['unigram']:.3f}, bigram {b['bigram']:.3f}")
    for r in out["text"]:
        print(f"  {r['model']:<16}{r['bits_per_char']:>8.3f}   best step {r['best_step']}, {r['train_s']} s")
    for s in out["nade_speed"]:
        print(
            f"NADE log_prob d=64, H=128, batch {s['batch']}: one pass {s['one_pass_ms']} ms, "
            f"d passes {s['d_pass_ms']} ms: {s['speedup']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
