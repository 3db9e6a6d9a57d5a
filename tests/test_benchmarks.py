"""The hand-written references of the speed benchmarks compute the same losses as pyrogen's models."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from run import PlainMAF  # noqa: E402

from pyrogen.models import MAF  # noqa: E402


def test_plain_maf_reference_computes_pyrogens_loss():
    torch.manual_seed(0)
    maf = MAF(event_shape=(6,), num_layers=3, hidden=(16,))
    plain = PlainMAF(maf)
    with torch.no_grad():  # copy the weights: same network, written by hand
        ws = [layer for made in maf.mades for layer in (*made.net.layers, made.net.direct)]
        for w, b, layer in zip(plain.weights, plain.biases, ws, strict=True):
            w.copy_(layer.weight)
            b.copy_(layer.bias if layer.bias is not None else torch.zeros_like(b))
    x = torch.randn(32, 6)
    torch.testing.assert_close(plain.loss(x), maf.loss(x), rtol=1e-5, atol=1e-5)
