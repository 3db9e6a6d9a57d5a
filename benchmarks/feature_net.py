"""Train the digit classifier whose features pyrogen's image metrics use, and write the shipped weights.

python benchmarks/feature_net.py            # retrain (seed 0), print test accuracies, compare to the shipped file
python benchmarks/feature_net.py --write    # and overwrite pyrogen/data/digit_features.safetensors
python benchmarks/feature_net.py --mnist --write   # the 28x28 network: pyrogen/data/mnist_features.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from pyrogen.quality import (
    FEATURES_FILE,
    MNIST_FEATURES_FILE,
    digit_features,
    machine_fingerprint,
    mnist_features,
    train_digit_features,
    train_mnist_features,
)

DATA = Path(__file__).resolve().parents[1] / "pyrogen" / "data"
TARGET = DATA / FEATURES_FILE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"overwrite {TARGET.name}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mnist", action="store_true", help=f"the 28x28 network ({MNIST_FEATURES_FILE})")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the shipped files were trained on one thread
    target = DATA / MNIST_FEATURES_FILE if args.mnist else TARGET
    net, acc = (train_mnist_features if args.mnist else train_digit_features)(seed=args.seed)
    out: dict = {"test_accuracy": acc}
    if args.mnist:
        with torch.no_grad():
            from pyrogen.data import load

            f = net.features(load("mnist-int").train.float() / 255.0)
        out["feature_units_varying_on_training_digits"] = int((f.std(0) > 1e-3).sum())
    if target.is_file():
        shipped = mnist_features() if args.mnist else digit_features()
        pairs = zip(net.state_dict().values(), shipped.state_dict().values(), strict=True)
        diff = max(float((a - b).abs().max()) for a, b in pairs)
        out["max_abs_diff_to_shipped"] = diff
    if args.write:
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(tensors, str(target), metadata={"made_on": machine_fingerprint()})
        out["wrote"] = str(target)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
