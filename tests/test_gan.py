"""The GAN family: implicit Pyro distributions, the options users set, and conditioning through a generator."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pytest
import torch
from conftest import SMALL, CrashAt, loss

from pyrogen.data import load
from pyrogen.distributions import ImplicitDistribution
from pyrogen.inference import adversarial as adv
from pyrogen.inference import fit, training_data
from pyrogen.inference.objectives import objective_for
from pyrogen.inference.protocol import ExactDensity
from pyrogen.latent import generator_posterior, generator_program
from pyrogen.metrics import log_likelihood
from pyrogen.models import registry

GANS = ["gan", "ns-gan", "kl-gan", "fgan", "wgan", "wgan-gp", "cgan", "bigan"]


def small(name, **kw):
    return registry.create(name, **{**SMALL[name], **kw})


@pytest.mark.parametrize("name", GANS)
def test_samples_have_the_event_shape_dtype_and_support(name):
    m = small(name)
    x = m.sample(5)
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.float32 and not x.requires_grad
    assert 0 <= float(x.min()) and float(x.max()) <= 1  # the sigmoid output of unit-interval data
    m64 = small(name).double()
    assert m64.sample(3).dtype == torch.float64


@pytest.mark.parametrize("name", GANS)
def test_log_prob_says_what_to_use_instead(name):
    m = small(name)
    assert not isinstance(m, ExactDensity)  # no log_prob member: the likelihood metric says what to use
    with pytest.raises(NotImplementedError, match="use a sample-quality metric"):
        log_likelihood(m, m.sample(2))
    with pytest.raises(NotImplementedError, match="no density.*pyrogen.quality.*generator_posterior"):
        m.as_distribution().log_prob(m.sample(2))


def test_an_implicit_distribution_stands_in_a_pyro_program():
    gan = small("ns-gan")

    def program():
        with pyro.plate("images", 6):
            x = pyro.sample("x", gan.as_distribution())
        return pyro.deterministic("brightness", x.mean((-1, -2, -3)))

    tr = pyro.poutine.trace(program).get_trace()
    assert tr.nodes["x"]["value"].shape == (6, 1, 8, 8)
    assert tr.nodes["x"]["fn"].batch_shape == (6,) and tr.nodes["x"]["fn"].event_shape == (1, 8, 8)
    assert not list(pyro.get_param_store().keys())  # a trained model enters frozen
    pyro.poutine.trace(lambda: pyro.sample("x", gan.as_distribution(trainable=True))).get_trace()
    assert "ns-gan$$$generator.net.0.weight" in pyro.get_param_store()  # asked for: its weights are Pyro's
    # rsample is reparameterized: gradients reach the generator (its own weights; with an EMA, the average's
    # buffers are what it samples with)
    gan = small("ns-gan", ema=None)
    d = gan.as_distribution()
    d.rsample((4,)).sum().backward()
    assert gan.generator.net[0].weight.grad.abs().sum() > 0
    assert d.has_rsample and d.expand((2, 3)).sample().shape == (2, 3, 1, 8, 8)
    with pytest.raises(ValueError, match="hold no draw"):
        d.rsample((0,))


def test_implicit_distribution_checks_its_sampler():
    bad = ImplicitDistribution(lambda n: torch.zeros(n, 3), event_shape=(2,))
    with pytest.raises(ValueError, match=r"sampler returned shape \(4, 3\); expected \(4, 2\)"):
        bad.sample((4,))


def test_generate_uses_the_ema_average():
    m = small("ns-gan", ema=0.5)
    z = torch.randn(3, 4)
    with torch.no_grad():
        for p in m.generator.parameters():
            p.add_(1.0)
    m.ema.after_step(0)  # the average moves half way (its warm-up decay at t = 0 is 1/10)
    with m.ema.averaged():
        expected = m.generator.eval()(z)
    m.generator.train()
    torch.testing.assert_close(m.generate(z), expected)
    assert m.generator.training  # generate leaves the mode as it was


def test_generate_checks_its_codes():
    m = small("ns-gan")
    with pytest.raises(ValueError, match=r"z must have shape \(n, 4\); got \(3, 5\)"):
        m.generate(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="z must hold finite"):
        m.generate(torch.full((2, 4), float("nan")))
    assert m.generate(torch.zeros(2, 4, dtype=torch.float64)).dtype == torch.float32


def test_wgan_critic_is_clipped_when_used():
    m = small("wgan")
    x = load("digits").train[:32]
    with torch.no_grad():
        for p in m.critic.parameters():
            p.fill_(1.0)
    loss(m, x, "critic")
    assert max(p.abs().max().item() for p in m.critic.parameters()) <= 0.01 + 1e-7
    assert m.config()["clip"] == 0.01 and m.config()["n_critic"] == 5


@pytest.mark.parametrize("divergence", adv.F_DIVERGENCES)
def test_fgan_trains_a_step_under_every_divergence(divergence):
    m = small("fgan", divergence=divergence, alpha=0.5 if divergence == "alpha" else 2.0)
    x = load("digits").train[:64]
    r = fit(m, x, None, steps=3, batch_size=32, progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for row in r.history for k, v in row.items() if k.startswith("loss"))
    assert m.config()["divergence"] == divergence


def test_options_are_checked_by_name():
    for kw, msg in (
        ({"n_critic": 0}, "n_critic must be a positive integer; got 0"),
        ({"clip": -1.0}, "clip must be a positive finite number or None; got -1.0"),
        ({"gp_weight": -1}, "gp_weight must be a non-negative number; got -1"),
        ({"betas": [0.5]}, r"betas must be two numbers in \[0, 1\); got \[0.5\]"),
        ({"ema": 1.0}, r"ema must be a decay in \[0, 1\) or None; got 1.0"),
        ({"arch": "resnet"}, "arch must be one of mlp, dcgan; got 'resnet'"),
        ({"support": "binary"}, "support must be 'real' or 'unit_interval'; got 'binary'"),
        ({"divergence": "kll"}, "unknown f-divergence 'kll'"),
        ({"spectral_norm": "yes"}, "spectral_norm must be true or false; got 'yes'"),
    ):
        with pytest.raises(ValueError, match=msg):
            registry.create("fgan", **{**SMALL["fgan"], **kw})
    with pytest.raises(ValueError, match="images .C, H, W. with H and W divisible by 4; got .1, 6, 6."):
        registry.create("ns-gan", event_shape=(1, 6, 6), arch="dcgan")
    with pytest.raises(ValueError, match="domain_b must be one of invert, transpose, flip; got 'rotate'"):
        registry.create("cyclegan", event_shape=(1, 8, 8), domain_b="rotate")


def test_per_group_learning_rates_and_betas_reach_the_optimizers():
    from pyrogen.inference import TrainConfig
    from pyrogen.inference.trainer import make_optimizers

    m = small("wgan-gp", critic_lr=4e-4)
    groups = make_optimizers(m, TrainConfig(lr=1e-4))
    assert groups.settings["critic"]["lr"] == 4e-4 and groups.settings["generator"]["lr"] == 1e-4
    assert groups.settings["critic"]["betas"] == [0.0, 0.9]
    assert objective_for(m).schedule(m, 0) == ("critic",) * 5 + ("generator",)


def test_spectral_norm_bounds_every_critic_layer():
    m = small("ns-gan", spectral_norm=True)
    x = load("digits").train[:32]
    for _ in range(20):  # power iterations run in training-mode forwards
        loss(m, x, "critic")
    for mod in m.critic.modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            w = mod.weight.detach().flatten(1)
            assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, abs=0.05)


def test_cgan_checks_its_labels():
    m = small("cgan")
    assert m.sample(4, y=3).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels y must be in 0..9; got \[12\]"):
        m.sample(2, y=12)
    with pytest.raises(ValueError, match="class-conditional: give .examples, labels."):
        loss(m, load("digits").train[:4])
    with pytest.raises(ValueError, match="unconditional; got labels y"):
        small("gan").sample(2, y=1)


def test_cyclegan_translates_and_does_not_sample():
    m = small("cyclegan")
    x = load("digits").train[:4]
    assert m.translate(x).shape == x.shape and m.translate_back(x).shape == x.shape
    torch.testing.assert_close(m.to_domain_b(x), 1 - x)  # the default domain B: the negatives
    torch.testing.assert_close(small("cyclegan", domain_b="transpose").to_domain_b(x), x.transpose(-1, -2))
    with pytest.raises(NotImplementedError, match="use translate"):
        m.sample(3)
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        m.sample(0)


def test_resume_of_a_registered_gan_is_bit_for_bit(tmp_path):
    x = load("digits").train[:256]
    cfg = {"steps": 12, "batch_size": 32, "checkpoint_every": 4, "val_every": 4, "progress": False}
    torch.manual_seed(0)
    full = small("wgan-gp", ema=0.9, spectral_norm=True)
    r_full = fit(full, x, x[:64], out=tmp_path / "full", **cfg)
    torch.manual_seed(0)
    part = small("wgan-gp", ema=0.9, spectral_norm=True)

    part.crash = CrashAt(6)
    with pytest.raises(KeyboardInterrupt):
        fit(part, x, x[:64], out=tmp_path / "part", **cfg)
    torch.manual_seed(5)
    resumed = small("wgan-gp", ema=0.9, spectral_norm=True)
    r_res = fit(resumed, x, x[:64], out=tmp_path / "part", resume=True, **cfg)
    assert r_res.history == r_full.history
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


# -- conditioning through a generator ------------------------------------------------------------------------------
def test_generator_program_log_joint_is_the_masked_bernoulli_sum():
    m = small("ns-gan")
    x = load("digits-binary").test[:3]
    top = torch.zeros(1, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    z = torch.randn(3, 4)
    program = generator_program(m, "bernoulli")
    tr = pyro.poutine.trace(pyro.poutine.condition(program, {"z": z})).get_trace(x, top)
    tr.compute_log_prob()
    probs = m.generate(z).clamp(1e-4, 1 - 1e-4)
    by_hand = (x * probs.log() + (1 - x) * (1 - probs).log())[:, :, :4].sum((-1, -2, -3))
    torch.testing.assert_close(tr.nodes["x"]["log_prob"], by_hand)
    torch.testing.assert_close(tr.nodes["z"]["log_prob"], dist.Normal(0.0, 1.0).log_prob(z).sum(-1))


@pytest.mark.parametrize("method", ["nuts", "svi"])
def test_generator_posterior_runs_nuts_and_svi(method):
    m = small("ns-gan").eval()
    x = load("digits-binary").test[:2]
    top = torch.zeros(1, 8, 8, dtype=torch.bool)
    top[:, :4] = True
    post = generator_posterior(m, x, top, method=method, num_samples=20, warmup_steps=20, svi_steps=30)
    assert post.mean.shape == x.shape
    torch.testing.assert_close(post.mean[:, :, :4], x[:, :, :4])  # observed entries put back
    assert ((post.mean >= 0) & (post.mean <= 1)).all()
    if method == "nuts":
        assert post.z.shape == (40, 2, 4)
        assert dict(post.idata.posterior.sizes)["chain"] == 2 and "diverging" in post.idata.sample_stats
    else:
        assert post.z.shape == (20, 2, 4) and len(post.losses) == 30
    with pytest.raises(ValueError, match="method must be 'nuts' or 'svi'; got 'hmc'"):
        generator_posterior(m, x, top, method="hmc")
    with pytest.raises(ValueError, match="observed must be a boolean tensor"):
        generator_posterior(m, x, top.float())


# -- what training reaches, on problems small enough for the suite --------------------------------------------------
def test_cgan_samples_carry_the_requested_label():
    from pyrogen.data import from_array

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    y = torch.randint(3, (3000,), generator=g)
    data = from_array(centres[y] + 0.4 * torch.randn(3000, 2, generator=g), y, name="blobs")
    pyro.set_rng_seed(0)
    m = registry.get("cgan").from_dataset(data, hidden=[64, 64])
    assert m.classes == 3 and m.arch == "mlp"
    fit(m, training_data(m, data, "train"), None, steps=400, batch_size=128, lr=2e-3, progress=False)
    asked = torch.arange(3).repeat(100)
    nearest = ((m.sample(300, y=asked)[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
    assert float((nearest == asked).float().mean()) > 0.9  # measured 1.0; a label-blind generator gets 1/3


def test_bigan_encoder_inverts_the_generator_better_than_chance():
    toy = load("8gaussians")
    pyro.set_rng_seed(0)
    m = registry.get("bigan").from_dataset(toy, hidden=[64, 64])
    fit(m, toy.train, None, steps=600, batch_size=256, lr=1e-3, progress=False)
    z = torch.randn(1000, 2)
    rec = m.encode(m.generate(z))
    mse, shuffled = float(((rec - z) ** 2).mean()), float(((rec - z[torch.randperm(1000)]) ** 2).mean())
    assert mse < 0.5 * shuffled  # measured 0.33 against 1.57


@pytest.mark.slow
def test_cyclegan_keeps_the_digit_when_it_changes_its_look():
    from sklearn.linear_model import LogisticRegression

    digits = load("digits")
    torch.manual_seed(0)
    m = registry.create("cyclegan", event_shape=(1, 8, 8), features=16)
    fit(m, digits.train, None, steps=400, batch_size=64, lr=5e-4)
    m.eval()
    target = LogisticRegression(max_iter=2000).fit(
        m.to_domain_b(digits.train).flatten(1).numpy(), digits.labels["train"]
    )
    kept = (target.predict(m.translate(digits.test).flatten(1).numpy()) == digits.labels["test"].numpy()).mean()
    assert kept > 0.8  # a relabelling translator (or an untrained one, which does not invert) scores near 0.1
    assert float((m.translate_back(m.translate(digits.test)) - digits.test).abs().mean()) < 0.1


def test_every_variant_is_a_loss_pair_of_one_table():
    from pyrogen.inference import adversarial as adv

    for name, pair in (("gan", "minimax"), ("ns-gan", "ns"), ("kl-gan", "kl"), ("wgan", "wgan"), ("wgan-gp", "wgan")):
        assert small(name).losses is adv.LOSS_PAIRS[pair], name
    assert registry.create("cyclegan", **SMALL["cyclegan"]).losses is adv.LOSS_PAIRS["least-squares"]
    f = small("fgan")
    real, fake = torch.randn(6, 1), torch.randn(6, 1)
    torch.testing.assert_close(f.losses.critic(real, fake), adv.fgan_critic_loss(real, fake, f.divergence))
    with pytest.raises(ValueError, match="loss must be one of minimax, ns, kl, wgan, hinge, least-squares, f"):
        adv.loss_pair("bce")
