"""Shared test set-up: a fixed seed, Pyro validation on, warnings as errors (pyproject)."""

from __future__ import annotations

import os

import pyro
import pytest
import torch

#: Small configurations of every registered model, for the generic harness.
#: ``test_every_model_has_a_small_config`` fails when a model is missing here.
from pyrogen.data.networks import STUDENT  # noqa: E402
from pyrogen.inference.hooks import TrainingHook
from pyrogen.inference.objectives import Objective, checked, objective_for
from pyrogen.inference.protocol import training_data
from pyrogen.models import registry

SMALL = {
    "realnvp": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "nsf": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "nice": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "maf": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "iaf": {"event_shape": (2,), "num_layers": 2, "hidden": (16,)},
    "planar": {"event_shape": (2,), "num_layers": 4},
    "gaussianization": {"event_shape": (2,), "num_layers": 2, "components": 4},
    "glow": {"event_shape": (1, 8, 8), "scales": 2, "steps": 1, "hidden": 8},
    "mintnet": {"event_shape": (1, 8, 8), "num_layers": 2, "hidden": 8},
    "vae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0},
    "beta-vae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "beta": 2.0},
    "iwae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "k": 4},
    "gmvae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "prior_components": 3},
    "vae-flow": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "prior": "flow"},
    "cvae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "arch": "conv"},
    "ssvae": {"event_shape": (1, 8, 8), "latent_dim": 4, "hidden": (32,), "kl_warmup": 0, "label_fraction": 0.2},
    **{
        name: {
            "event_shape": (1, 8, 8),
            "latent_dim": 4,
            "hidden": (32,),
            "kl_warmup": 0,
            "top_dim": 2,
            "top_hidden": (8,),
            # the ladder's registered free bits change its training loss; the harness checks the ELBO against Pyro's
            **({"free_bits": 0.0} if name == "ladder-vae" else {}),
        }
        for name in ("hvae", "ladder-vae")
    },
    "fvsbn": {"event_shape": (1, 8, 8)},
    "nade": {"event_shape": (1, 8, 8), "hidden": 16},
    "rnade": {"event_shape": (1, 8, 8), "hidden": 16, "components": 3},
    "made": {"event_shape": (1, 8, 8), "hidden": (32,), "num_masks": 2},
    "pixelcnn": {"event_shape": (1, 8, 8), "features": 8, "layers": 1, "kernel_size": 3, "dropout": 0.0},
    "gated-pixelcnn": {"event_shape": (1, 8, 8), "features": 8, "layers": 2, "dropout": 0.0},
    "pixelrnn": {"event_shape": (1, 8, 8), "features": 8, "layers": 1, "kernel_size": 3, "dropout": 0.0},
    "char-rnn": {"event_shape": (128,), "levels": 160, "embed": 8, "hidden": 16},
    "transformer": {"event_shape": (1, 8, 8), "dim": 16, "heads": 2, "layers": 1, "dropout": 0.0},
    **{
        name: {"event_shape": (1, 8, 8), "latent_dim": 4, "arch": "dcgan", "features": 8, "support": "unit_interval"}
        for name in ("gan", "ns-gan", "kl-gan", "wgan", "bigan")
    },
    "wgan-gp": {"event_shape": (1, 8, 8), "latent_dim": 4, "arch": "dcgan", "features": 8, "support": "unit_interval"},
    "fgan": {
        "event_shape": (1, 8, 8),
        "latent_dim": 4,
        "arch": "dcgan",
        "features": 8,
        "support": "unit_interval",
        "divergence": "hellinger",
    },
    "cgan": {"event_shape": (1, 8, 8), "latent_dim": 4, "arch": "dcgan", "features": 8, "support": "unit_interval"},
    "cyclegan": {"event_shape": (1, 8, 8), "features": 8},
    "implicit-vae": {"event_shape": (1, 8, 8), "latent_dim": 4, "noise_dim": 4, "hidden": (32,), "score_hidden": (32,)},
    "ebm": {"event_shape": (2,), "hidden": (32, 32), "chain_steps": 10, "buffer_size": 256, "sample_steps": 20},
    "ebm-sm": {"event_shape": (2,), "hidden": (32, 32), "sample_steps": 20},
    "bayes-net": {"event_shape": (5,), "nodes": [{**nd, "table": None} for nd in STUDENT]},
    "naive-bayes": {"event_shape": (1, 8, 8), "classes": 10},
    "gmm": {"event_shape": (2,), "components": 4},
    "kde": {"event_shape": (2,)},
    "hmm": {"event_shape": (128,), "states": 4, "symbols": 160},
    "bm": {"event_shape": (1, 8, 8), "chains": 64, "sample_steps": 5, "ais_temps": 20, "ais_chains": 20},
    "rbm": {"event_shape": (1, 8, 8), "hidden": 8, "chains": 64, "sample_steps": 20},
    "dbm": {
        "event_shape": (1, 8, 8),
        "hidden": (8, 4),
        "pretrain_steps": 40,
        "chains": 64,
        "sample_steps": 20,
        "joint_lr": None,
    },
    "latent-diffusion": {
        "event_shape": (1, 8, 8),
        "latent_dim": 4,
        "hidden": (32,),
        "vae_hidden": (32,),
        "emb_dim": 16,
        "timesteps": 10,
        "vae_steps": 50,
        "support": "unit_interval",
        "ema": 0.9,
    },
    **{
        name: {"code_dim": 4, "hidden": (16,), "event_shape": (1, 8, 8)}
        for name in ("autoencoder", "denoising-ae", "sparse-ae", "contractive-ae")
    },
    "pro-vae": {
        "event_shape": (1, 8, 8),
        "latent_levels": 2,
        "latent_dim": 2,
        "width": 16,
        "grow_every": 0,
        "kl_warmup": 0,
    },
    "vrnn": {"event_shape": (40, 20), "latent_dim": 2, "state_dim": 16, "hidden": (16,), "features": 8},
    "td-vae": {
        "event_shape": (16, 1, 16, 16),
        "latent_dim": 4,
        "belief_dim": 16,
        "hidden": (32,),
        "max_jump": 3,
        "kl_warmup": 0,
    },
    "stacked-ae": {"code_dim": 4, "hidden": (16, 8), "pretrain_steps": 20, "event_shape": (1, 8, 8)},
    "text-diffusion": {
        "latent_channels": 1,
        "vae_hidden": (16,),
        "features": 8,
        "emb_dim": 16,
        "text_dim": 16,
        "text_layers": 1,
        "heads": 2,
        "timesteps": 10,
        "vae_steps": 50,
        "support": "unit_interval",
        "ema": 0.9,
    },
    "ddpm": {"event_shape": (2,), "hidden": (32, 32), "emb_dim": 16, "timesteps": 20, "ema": 0.9},
    "ncsn": {
        "event_shape": (2,),
        "hidden": (32, 32),
        "emb_dim": 16,
        "num_scales": 5,
        "steps_per_level": 10,
        "ema": 0.9,
    },
    "ffjord": {"event_shape": (2,), "hidden": (16, 16), "emb_dim": 8, "train_tol": 1e-2, "ode_tol": 1e-3},
    "flow-matching": {"event_shape": (2,), "hidden": (32, 32), "emb_dim": 16, "ode_tol": 1e-3, "ema": 0.9},
    "score-sde": {
        "event_shape": (2,),
        "hidden": (32, 32),
        "emb_dim": 16,
        "sample_steps": 20,
        "ode_tol": 1e-3,
        "ema": 0.9,
    },
    "ebm-nce": {"event_shape": (2,), "hidden": (32, 32), "sample_steps": 20},
    **{
        name: {"event_shape": (2,), "hidden": (32, 32), "sample_steps": 20, "flow_layers": 2, "flow_hidden": (16,)}
        for name in ("ebm-fce", "ebm-adv")
    },
}


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist every worker is its own process: one intra-op thread each,
    # or two workers x two threads on two cores thrash (small convolutions and
    # attention slowed down 30-50x).
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
        os.environ["OMP_NUM_THREADS"] = "1"  # and the CLI, in-process or in a subprocess, keeps to one


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first (in their order), so that two workers do not end with one of them running
    a long test while the other waits."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--float64", action="store_true", help="run with float64 as the default dtype")
    parser.addoption("--device", default="cpu", help="where the device-sensitive tests train (cpu, cuda, cuda:N)")


@pytest.fixture
def device(request: pytest.FixtureRequest) -> str:
    """The ``--device`` the device-sensitive tests (training, resume, hooks) run on."""
    dev = request.config.getoption("--device")
    if dev.startswith("cuda") and not torch.cuda.is_available():
        pytest.fail(f"--device {dev} was asked for but CUDA is not available")
    return dev


@pytest.fixture(autouse=True)
def _determinism(request: pytest.FixtureRequest):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    old = torch.get_default_dtype()
    if request.config.getoption("--float64"):
        torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def small_model(name: str, **overrides):
    """The small model ``name`` (``overrides`` replacing arguments of :data:`SMALL`); where its objective takes
    the training data as a whole (a kernel density's points, :meth:`Objective.setup`), set up on
    :func:`small_data` as ``fit`` would."""
    pyro.set_rng_seed(0)
    m = registry.create(name, **{**SMALL[name], **overrides})
    objective = objective_for(m)
    if type(objective).setup is not Objective.setup:
        objective.setup(m, checked(m, small_data(name)))
        pyro.set_rng_seed(0)
    return m


def small_data(name: str, n: int = 256):
    """The first ``n`` training examples of the model's default data (with labels for a labelled model)."""
    from pyrogen.data import load

    data = load(registry.get(name).data)
    model = registry.create(name, **SMALL[name])
    if not model.labelled:
        return data.train[:n]
    x, y = training_data(model, data, "train")
    return x[:n], y[:n]


def pyro_reference(m):
    """The objective whose fused loss Pyro's inference on ``m.model`` and ``m.guide`` must reproduce: the
    model's own where it is an ELBO or a likelihood, else the bound its Pyro program computes (a DDPM's on one
    chain), else maximum likelihood of its density (through the ODE for a score SDE)."""
    from pyrogen.inference import objectives as O
    from pyrogen.inference.diffusion import DiffusionELBO
    from pyrogen.models import DDPM, FlowMatching, ScoreSDE

    obj = O.objective_for(m)
    if isinstance(obj, (O.MaximumLikelihood, O.JointLikelihood, O.ELBO, O.SemiSupervisedELBO, O.ImplicitELBO)):
        return obj
    if isinstance(m, DDPM):
        return DiffusionELBO()
    if isinstance(m, (ScoreSDE, FlowMatching)):
        return O.MaximumLikelihood(options={"differentiable": True})
    return O.MaximumLikelihood()


def assert_fused_equals_pyro(m, batch, seed: int = 5, objective=None) -> None:
    """The fused loss of ``objective`` (:func:`pyro_reference` unless given) equals its Pyro loss on the same
    seed, in value and in every parameter's gradient, for every parameter group it trains."""
    obj = objective if objective is not None else pyro_reference(m)
    batch = checked(m, batch)
    for group in obj.groups(m):
        m.zero_grad()
        pyro.set_rng_seed(seed)
        fused = obj.loss(m, batch, group)
        pyro.set_rng_seed(seed)
        ref = obj.pyro_loss(m, batch, group)
        assert torch.allclose(fused, ref, rtol=1e-5, atol=1e-5), (group, fused, ref)
        m.zero_grad()
        pyro.set_rng_seed(seed)
        obj.loss(m, batch, group).backward()
        grads = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        pyro.set_rng_seed(seed)
        obj.pyro_loss(m, batch, group).backward()
        for g, p in zip(grads, m.parameters(), strict=True):
            assert torch.allclose(g, torch.zeros_like(p) if p.grad is None else p.grad, rtol=1e-4, atol=1e-5)
        m.zero_grad()


def loss(m, batch, group=None):
    """The model's training loss on ``batch`` under its default objective (checked), as a user computes it."""
    return objective_for(m)(m, batch, group)


class CrashAt(TrainingHook):
    """A training hook that stops the run at ``step`` (before it trains): ``KeyboardInterrupt``, or ``action()``."""

    def __init__(self, step, action=None):
        super().__init__()
        self.at, self.action = step, action

    def before_step(self, step):
        if step == self.at:
            if self.action is not None:
                self.action()
            raise KeyboardInterrupt


class Spy(Objective):
    """An objective that does what ``inner`` does and lets a test watch or change it: ``step`` is the step being
    trained (set by ``schedule``); ``change(spy, batch, group, loss)`` may replace each loss; ``only`` (a group
    name) makes every step train that group alone."""

    def __init__(self, inner, change=None, only=None):
        self.inner, self.change, self.step, self.only = inner, change, 0, only
        self.monitor, self.validation_needs_grad = inner.monitor, inner.validation_needs_grad

    def groups(self, model):
        return self.inner.groups(model)

    def schedule(self, model, step):
        self.step = step
        return (self.only,) if self.only is not None else self.inner.schedule(model, step)

    def settings(self, model):
        return self.inner.settings(model)

    def loss(self, model, batch, group="model"):
        out = self.inner.loss(model, batch, group)
        return out if self.change is None else self.change(self, batch, group, out)

    def pyro_loss(self, model, batch, group="model"):
        return self.inner.pyro_loss(model, batch, group)

    def validation(self, model, batch):
        return self.inner.validation(model, batch)


def cli(capsys: pytest.CaptureFixture[str], *args) -> tuple[int, str]:
    """``pyrogen ARGS`` in this process (a new interpreter costs two seconds of imports): the exit status and what
    it wrote to stderr. An exception that escapes ``main`` fails the test, as its traceback would in a shell."""
    from pyrogen.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own refusals
        code = int(e.code or 0)
    return code, capsys.readouterr().err
