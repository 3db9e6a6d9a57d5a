"""PixelRNN: the skew, the causal masks by autograd, a normalized distribution by brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from pyrogen.models import PixelRNN
from pyrogen.nn.pixelrnn import PIXELRNN_CELLS, skew, unskew


def test_skew_puts_the_diagonals_in_columns_and_unskew_inverts_it():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    s = skew(x)
    assert s.shape == (1, 2, 3, 6)
    for i in range(3):
        for j in range(4):
            assert s[0, :, i, i + j].tolist() == x[0, :, i, j].tolist()
    assert int((s != 0).sum()) == int((x != 0).sum())
    assert torch.equal(unskew(s, 4), x)


def _dependencies(model: PixelRNN) -> tuple[torch.Tensor, list[int]]:
    """``deps[p, q]``: the parameters of position ``p`` change with input position ``q`` (autograd, on any of 64
    random images: one alone can leave a position's ReLUs all off)."""
    model.eval()
    x = (3 * torch.randn(64, *model.event_shape)).requires_grad_()
    out = model._params(x)
    d = model.num_vars
    deps = torch.zeros(d, d, dtype=torch.bool)
    for p in range(d):
        (g,) = torch.autograd.grad(out[:, p].sum(), x, retain_graph=True)
        deps[p] = (g != 0).reshape(len(x), -1).any(0)
    return deps, model.ordering().tolist()


@pytest.mark.parametrize("cell", PIXELRNN_CELLS)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_conditional_reads_only_earlier_pixels_and_the_diagonal_bilstm_reads_all_of_them(cell, channels):
    torch.manual_seed(0)
    kw = {"likelihood": "categorical", "levels": 4} if channels == 3 else {}
    model = PixelRNN(event_shape=(channels, 4, 5), features=12, layers=2, kernel_size=3, cell=cell, **kw)
    deps, order = _dependencies(model)
    rank = {p: r for r, p in enumerate(order)}
    later = torch.tensor([[rank[q] >= rank[p] for q in range(len(order))] for p in range(len(order))])
    assert not bool((deps & later).any()), "a conditional reads the current or a later pixel"
    if cell == "diagonal-bilstm":
        assert bool(deps[~later].all()), "the Diagonal BiLSTM leaves an earlier pixel out of view"
    else:  # the Row LSTM's triangle: the row above, within the state convolution's reach
        assert not bool(deps[~later].all())


def test_the_distribution_sums_to_one_over_every_binary_image():
    torch.manual_seed(1)
    model = PixelRNN(event_shape=(1, 2, 3), features=4, layers=1, kernel_size=3).eval()
    images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=6))).view(-1, 1, 2, 3)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(images).double(), 0)
    assert abs(float(total)) < 1e-5, float(total)


def test_a_bad_cell_is_named():
    with pytest.raises(ValueError, match="cell must be one of"):
        PixelRNN(cell="gru")
