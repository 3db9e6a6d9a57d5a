"""Train the digit classifier whose features pyrogen's image metrics use, and write the shipped weights.

python benchmarks/feature_net.py            # retrain (seed 0), print test accuracies, compare to the shipped file
python benchmarks/feature_net.py --write    # and overwrite pyrogen/data/digit_features.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pyrogen.quality import FEATURES_FILE, digit_features, machine_fingerprint, train_digit_features

TARGET = Path(__file__).resolve().parents[1] / "pyrogen" / "data" / FEATURES_FILE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"overwrite {TARGET.name}")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the shipped file was trained on one thread
    net, acc = train_digit_features(seed=args.seed)
    out = {"test_accuracy": acc}
    if TARGET.is_file():
        shipped = digit_features()
        pairs = zip(net.state_dict().values(), shipped.state_dict().values(), strict=True)
        diff = max(float((a - b).abs().max()) for a, b in pairs)
        out["max_abs_diff_to_shipped"] = diff
    if args.write:
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(tensors, str(TARGET), metadata={"made_on": machine_fingerprint()})
        out["wrote"] = str(TARGET)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
