import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pyrogen.metrics import bits_per_dim, evaluate_nll, log_likelihoods
from pyrogen.models import RealNVP


def _standard_normal_flow(d=2):
    flow = RealNVP(event_shape=(d,), num_layers=2, hidden=(8,)).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()  # every coupling is the identity: the flow is N(0, I)
    return flow


def test_nll_and_stderr_against_a_closed_form():
    flow = _standard_normal_flow()
    x = torch.randn(1000, 2, dtype=torch.float64)
    res = evaluate_nll(flow, x)
    ref = 0.5 * (x**2).sum(1) + math.log(2 * math.pi)
    assert res.nll_nats == pytest.approx(float(ref.mean()), rel=1e-10)
    assert res.nll_stderr == pytest.approx(float(np.std(ref.numpy(), ddof=1) / math.sqrt(1000)), rel=1e-10)
    assert res.n == 1000 and res.bits_per_dim is None and res.k is None


def test_dataloader_and_tensor_agree():
    flow = _standard_normal_flow()
    x = torch.randn(300, 2, dtype=torch.float64)
    a = log_likelihoods(flow, x, batch_size=64)
    b = log_likelihoods(flow, DataLoader(TensorDataset(x), batch_size=7))
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match="empty"):
        log_likelihoods(flow, DataLoader(TensorDataset(x[:0]), batch_size=7))


def test_bits_per_dim_with_and_without_dequantization():
    assert bits_per_dim(64 * math.log(2), 64) == pytest.approx(1.0)
    assert bits_per_dim(0.0, 64, levels=17) == pytest.approx(math.log2(17))  # uniform on [0,1)^64
    assert bits_per_dim(0.0, 64, levels=17) == pytest.approx(4.087, abs=1e-3)
    with pytest.raises(ValueError, match="num_dims must be a positive integer; got 0"):
        bits_per_dim(1.0, 0)


def test_latent_models_get_the_iwae_estimate_and_elbo():
    from conftest import small_data, small_model

    m = small_model("vae")
    x = small_data("vae", 20)
    res = evaluate_nll(m, x, k=50)
    assert res.k == 50 and res.elbo_nats is not None and res.bits_per_dim is not None
    assert -res.nll_nats >= res.elbo_nats - 3 * res.nll_stderr  # the IWAE bound is above the ELBO
    assert res.bits_per_dim == pytest.approx(res.nll_nats / (64 * math.log(2)))
    assert "none (discrete data)" in res.dequantization
