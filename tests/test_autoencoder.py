"""The autoencoders against independent computations: the contractive penalty against autograd's Jacobian,
the sparsity penalty against a hand-written KL, denoising against vanilla on corrupted digits, the sparse code's
mean activation against its target, k-NN accuracy against a brute-force vote."""

from __future__ import annotations

import pytest
import torch

from pyrogen.data import load
from pyrogen.inference import fit
from pyrogen.inference.objectives import objective_for
from pyrogen.metrics import knn_accuracy, outlier_scores
from pyrogen.models import Autoencoder, registry


def test_the_contractive_penalty_is_the_jacobians_squared_frobenius_norm():
    torch.manual_seed(0)
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    one = Autoencoder(code_dim=6, hidden=(), contractive=0.1).double()
    deep = Autoencoder(code_dim=6, hidden=(16,), contractive=0.1).double()
    for ae in (one, deep):
        code = lambda v, ae=ae: ae.encode(v.reshape(1, 1, 8, 8))[0]  # noqa: E731
        want = torch.stack([torch.autograd.functional.jacobian(code, xi.flatten()).pow(2).sum() for xi in x])
        torch.testing.assert_close(ae.jacobian_norm(x, method="autograd"), want)
    torch.testing.assert_close(one.jacobian_norm(x, method="closed_form"), one.jacobian_norm(x, method="autograd"))
    for ae in (one, deep):
        torch.testing.assert_close(ae.jacobian_norm(x), ae.jacobian_norm(x, method="autograd"))
    with pytest.raises(ValueError, match="one sigmoid layer"):
        deep.jacobian_norm(x, method="closed_form")


def test_the_sparsity_penalty_is_the_kl_of_each_units_mean_activation():
    ae = Autoencoder(code_dim=3, hidden=(), sparsity=1.0, sparsity_target=0.1)
    h = torch.tensor([[0.2, 0.5, 0.05], [0.4, 0.1, 0.15]])
    want = 0.0
    for rho_hat in (0.3, 0.3, 0.1):
        want += 0.1 * torch.log(torch.tensor(0.1 / rho_hat)) + 0.9 * torch.log(torch.tensor(0.9 / (1 - rho_hat)))
    torch.testing.assert_close(ae.sparsity_penalty(h), want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity_target": 0.0}, "sparsity_target"),
        ({"noise": 1.0}, "below 1"),
        ({"support": "integer"}, "support must be"),
        ({"pretrain_steps": -1}, "pretrain_steps"),
        ({"code_dim": 0}, "code_dim"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(**kwargs)


def _trained(name: str, **kw):
    torch.manual_seed(0)
    d = load("digits")
    ae = registry.from_dataset(name, d, hidden=(64,), **kw)
    fit(ae, d.train, None, steps=500, batch_size=128, lr=3e-3)
    return ae.eval()


def test_denoising_beats_vanilla_on_corrupted_digits_and_sparsity_reaches_its_target():
    d = load("digits")
    vanilla, denoising = _trained("autoencoder", code_dim=16), _trained("denoising-ae", code_dim=16, noise=0.5)
    g = torch.Generator().manual_seed(1)
    corrupted = d.test * (torch.rand(d.test.shape, generator=g) >= 0.5)
    with torch.no_grad():
        errs = [float(m.error(d.test, m.decoder_output(m.encode(corrupted))).mean()) for m in (vanilla, denoising)]
    # 7.79 and 6.99 nats above the cross-entropy floor on the machine that wrote this
    assert errs[1] < errs[0] - 0.4, errs
    sparse = _trained("sparse-ae")  # 64 code units, target 0.05
    with torch.no_grad():
        mean = float(sparse.encode(d.test).mean())
    assert abs(mean - sparse.sparsity_target) <= 0.1 * sparse.sparsity_target, mean


def test_the_stacked_autoencoder_pretrains_each_layer_then_fine_tunes():
    ae = registry.create("stacked-ae", code_dim=4, hidden=(16, 8), pretrain_steps=10)
    obj = objective_for(ae)
    assert list(obj.groups(ae)) == ["layer1", "layer2", "layer3", "finetune"]
    assert [obj.schedule(ae, s) for s in (0, 10, 25, 30, 99)] == [
        ("layer1",),
        ("layer2",),
        ("layer3",),
        ("finetune",),
        ("finetune",),
    ]
    # the first layer's pre-training is a one-layer autoencoder of x: encoder[0] and the decoder's last layer
    x = load("digits").train[:32]
    h = torch.relu(ae.encoder[0](x.flatten(1)))
    want = ae.error(x, ae.decoder[-1](h).reshape(x.shape)).mean()
    torch.testing.assert_close(obj.loss(ae.eval(), x, "layer1"), want)


def test_outlier_scores_and_knn_accuracy():
    torch.manual_seed(0)
    ae = Autoencoder(code_dim=4, hidden=(8,)).eval()
    x = load("digits").test[:20]
    torch.testing.assert_close(outlier_scores(ae, x), ae.reconstruction_error(x).detach())
    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(60, 3, generator=g), torch.randn(15, 3, generator=g)
    ytr, yte = (train[:, 0] > 0).long(), (test[:, 0] > 0).long()
    mu, sd = train.mean(0), train.std(0, unbiased=False)
    d = torch.cdist((test - mu) / sd, (train - mu) / sd)
    votes = ytr[d.topk(5, largest=False).indices]
    want = float(((votes.sum(1) >= 3).long() == yte).float().mean())
    assert knn_accuracy(train, ytr, test, yte, k=5) == pytest.approx(want)


def test_the_autoencoders_api_checks_its_input():
    ae = Autoencoder(code_dim=4, hidden=(8,))
    with pytest.raises(ValueError, match="x must be finite"):
        ae.encode(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="x must have shape"):
        ae.encode(torch.zeros(2, 64))
    with pytest.raises(ValueError, match="x is empty"):
        ae.reconstruction_error(torch.zeros(0, 1, 8, 8))
    assert ae.encode(torch.rand(3, 1, 8, 8, dtype=torch.float64)).dtype == torch.float32  # cast at the boundary
    with pytest.raises(NotImplementedError, match="does not sample"):
        ae.sample(2)
