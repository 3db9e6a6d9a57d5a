"""Flows on natural-image patches (the BSDS300 construction on scikit-learn's two photographs, 63 dimensions):
pyrogen's flows from their registered defaults against zuko's MAF and NSF trained on the same data with the same
steps, batch, learning rate and schedule; test log-likelihood in nats (higher is better).

    python benchmarks/patches.py                         # every flow (about an hour on 2 cores)
    python benchmarks/patches.py --flows maf zuko-maf    # some of them
    python benchmarks/patches.py --quick                 # a smoke run: 30 steps each
    python benchmarks/patches.py --record run.log        # file the rows a stopped run printed to its log

Each row is printed to stderr as it comes and merged into ``results/patches.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch
from _common import logged_rows, merged_rows, previous_rows, save_results, train_and_score
from flows import zuko_flow

from pyrogen.data import load

FLOWS = ("realnvp", "maf", "nsf", "zuko-maf", "zuko-nsf")


def patches(flows: list[str], steps: int | None) -> list[dict[str, Any]]:
    data = load("patches")
    rows = []
    for name in flows:
        if name.startswith("zuko-"):
            row = zuko_flow(name, data, steps)
        else:
            row = train_and_score(name, data, {}, steps)[1]
        row["test_log_likelihood"] = -row["nll_nats"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flows", nargs="+", choices=FLOWS)
    p.add_argument("--steps", type=int)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--record", metavar="LOG", help="file the rows a stopped run printed to its log (stderr)")
    args = p.parse_args(argv)
    if args.record:
        save_results({"patches": merged_rows(previous_rows("patches"), logged_rows(args.record))})
        return 0
    torch.set_num_threads(args.threads)
    rows = patches(list(args.flows or FLOWS), 30 if args.quick else args.steps)
    if not args.quick:
        save_results({"patches": merged_rows(previous_rows("patches"), rows)})
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
