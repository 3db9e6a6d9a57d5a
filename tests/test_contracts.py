"""The model contract: configuration recorded from the constructor, recipes instead of preset subclasses, and
capabilities from protocols (nothing probes a model for a member no protocol declares)."""

from __future__ import annotations

import ast
import inspect
import json
import typing
from pathlib import Path

import pytest
import torch
from conftest import SMALL, small_model

import pyrogen
from pyrogen.data import load
from pyrogen.inference.protocol import (
    BoundedDensity,
    DeclaresDensity,
    ExactDensity,
    UnnormalizedDensity,
    density_kind,
)
from pyrogen.models import DBM, RBM, VAE, AdversarialModel, GenerativeModel, registry

SRC = Path(pyrogen.__file__).parent


def test_the_configuration_is_the_constructors_arguments_with_their_defaults():
    vae = VAE(event_shape=(1, 8, 8), latent_dim=3, hidden=(16,))
    cfg = vae.config()
    params = inspect.signature(VAE).parameters
    assert set(cfg) == set(params) and cfg["latent_dim"] == 3 and cfg["hidden"] == [16]
    assert all(
        cfg[k] == json.loads(json.dumps(p.default))
        for k, p in params.items()
        if k not in ("event_shape", "latent_dim", "hidden")
    )
    json.dumps(cfg)  # JSON data: tuples as lists
    again = VAE(**cfg)
    assert again.config() == cfg
    assert [t.shape for t in again.state_dict().values()] == [t.shape for t in vae.state_dict().values()]
    cfg["hidden"].append(99)  # a copy: changing it leaves the model's alone
    assert vae.config()["hidden"] == [16]


def test_a_configuration_that_is_not_json_data_is_refused_naming_the_argument():
    with pytest.raises(TypeError, match=r"constructor argument hidden\[0\] must be JSON data"):
        VAE(event_shape=(4,), hidden=(torch.nn.Linear(1, 1),))


def test_no_model_class_writes_its_own_config():
    for name in registry.names():
        cls = registry.get(name).cls
        assert all(
            "config" not in vars(k) for k in cls.__mro__ if k is not GenerativeModel and issubclass(k, GenerativeModel)
        ), name


@pytest.mark.parametrize(
    "preset, family_name, defaults",
    [
        ("beta-vae", "vae", {"beta": 4.0}),
        ("iwae", "vae", {"k": 10}),
        ("gmvae", "vae", {"prior": "mixture"}),
        ("vae-flow", "vae", {"posterior_flow": "iaf"}),
        ("cvae", "vae", {"classes": 10}),
        ("ns-gan", "gan", {"loss": "ns"}),
        ("kl-gan", "gan", {"loss": "kl"}),
        ("fgan", "gan", {"loss": "f"}),
        ("wgan", "gan", {"loss": "wgan", "n_critic": 5, "clip": 0.01}),
        ("wgan-gp", "gan", {"loss": "wgan", "n_critic": 5, "gp_weight": 10.0}),
    ],
)
def test_a_preset_is_a_recipe_of_its_family_class_not_a_subclass(preset, family_name, defaults):
    recipe = registry.get(preset)
    assert recipe.cls is registry.get(family_name).cls
    assert {k: recipe.defaults[k] for k in defaults} == defaults
    m = recipe.create(**{k: v for k, v in SMALL[preset].items() if k not in defaults})
    assert type(m) is recipe.cls and registry.name_of(m) == preset
    assert {k: m.config()[k] for k in defaults} == defaults
    assert registry.create(preset, **m.config()).config() == m.config()  # a checkpoint's config rebuilds it


def test_no_registered_class_exists_only_to_change_defaults():
    """A registered subclass of a registered class adds code of its own: more than an ``__init__``."""
    registered = {registry.get(n).cls for n in registry.names()}
    for name in registry.names():
        cls = registry.get(name).cls
        parent = cls.__mro__[1]
        if parent not in registered:
            continue
        own = {k for k, v in vars(cls).items() if callable(v) or isinstance(v, property)} - {"__init__"}
        assert own, f"{name}: {cls.__name__} only changes the defaults of {parent.__name__}"


def test_recipes_hold_the_defaults_and_the_data_dependent_choices():
    assert registry.get("glow").data == "digits" and registry.get("realnvp").data == "moons"
    assert registry.get("realnvp").train_defaults_for(load("moons"))["grad_clip"] == 10.0
    assert registry.get("realnvp").train_defaults_for(load("digits"))["val_every"] == 50
    m = registry.get("wgan-gp").from_dataset(load("digits"))
    assert (m.arch, m.latent_dim, m.gp_weight, m.n_critic) == ("dcgan", 32, 10.0, 5)
    rbm = registry.from_dataset(RBM, load("digits-binary"), hidden=4)  # a class stands for its own recipe
    p = load("digits-binary").train.flatten(1).float().mean(0).clamp(0.01, 0.99)
    torch.testing.assert_close(torch.sigmoid(rbm.b), p)
    assert registry.get("ddpm").sample_options == ("sampler", "steps", "eta", "guidance")
    for name in registry.names():
        cls = registry.get(name).cls
        for member in ("from_dataset", "train_defaults_for", "train_defaults", "default_data", "sample_options"):
            assert not any(member in vars(k) for k in cls.__mro__), (name, member)


def test_the_density_kind_is_the_protocol_a_model_implements():
    kinds = {name: density_kind(small_model(name)) for name in registry.names()}
    for name, kind in kinds.items():
        m = small_model(name)
        want = {
            "exact": isinstance(m, ExactDensity),
            "lower_bound": isinstance(m, BoundedDensity) and not isinstance(m, ExactDensity),
            "unnormalized": isinstance(m, UnnormalizedDensity) and not isinstance(m, ExactDensity),
            "none": not isinstance(m, (ExactDensity, BoundedDensity, UnnormalizedDensity)),
            "estimated": isinstance(m, DeclaresDensity),
        }
        assert want[kind], (name, kind)
    assert kinds["vae"] == "lower_bound" and kinds["ebm"] == "unnormalized" and kinds["gan"] == "none"
    assert registry.get("realnvp").density == "exact" and registry.get("ddpm").density == "lower_bound"


def test_a_dbm_says_what_its_log_prob_is():
    small = DBM(event_shape=(6,), hidden=(3, 5), exact_max=3)  # log Z and log p*(v) by enumerating h1
    both = DBM(event_shape=(6,), hidden=(4, 5), exact_max=3, ais_temps=50, ais_chains=20)  # mean field, AIS
    big = DBM(event_shape=(6,), hidden=(5, 2), exact_max=3, ais_temps=50, ais_chains=20)  # log Z by AIS
    assert [density_kind(m) for m in (small, both, big)] == ["exact", "estimated", "estimated"]
    v = torch.bernoulli(torch.full((4, 6), 0.5))
    value, se = big.log_prob_estimate(v)
    torch.testing.assert_close(value, big.log_prob(v))
    assert se > 0 and big.estimate_method == "ais" and small.log_prob_estimate(v)[1] == 0.0
    assert registry.capabilities(big) >= {"estimated", "sampler"}


def _probes(path: Path) -> list[str]:
    """``getattr``/``hasattr`` calls in ``path`` that probe an object for a member by name."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
            out.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return out


def test_runs_metrics_and_the_registry_use_protocols_not_getattr():
    probes = [p for f in ("runs.py", "metrics.py", "models/registry.py") for p in _probes(SRC / f)]
    assert probes == []


def test_the_probe_check_catches_a_probe(tmp_path):
    f = tmp_path / "probe.py"
    f.write_text("def f(model):\n    return getattr(model, 'predict', None)\n")
    assert len(_probes(f)) == 1


def test_support_is_a_plain_attribute_set_without_type_ignores():
    hint = typing.get_type_hints(GenerativeModel)["support"]
    assert hint is str and typing.get_origin(hint) is not typing.ClassVar  # an instance may set its own
    for f in (SRC / "models").glob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            assert not ("self.support =" in line and "type: ignore" in line), f"{f.name}:{i}"
    gan = AdversarialModel(event_shape=(2,), support="unit_interval")
    assert gan.support == "unit_interval" and AdversarialModel.support == "real"


def test_nothing_in_pyrogen_probes_a_model_by_getattr():
    # a model's capabilities are its protocols (pyrogen.inference.protocol); nothing asks for a member by name
    import re
    from pathlib import Path

    probe = re.compile(r"\b(?:getattr|hasattr)\(\s*(?:model|m|teacher|student|wrapper|cls)\s*,")
    root = Path(__file__).resolve().parents[1] / "pyrogen"
    found = [
        f"{path.relative_to(root)}:{i}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    assert not found, "\n".join(found)
    assert probe.search('x = getattr(model, "generate", None)')  # the pattern finds what it is meant to


def test_the_base_class_is_narrow():
    from pyro.nn import PyroModule

    public = sorted(n for n in dir(GenerativeModel) if not n.startswith("_") and n not in dir(PyroModule))
    assert len(public) <= 8, public
    # nothing rewrites a family's methods when it is defined: each registered class's __init__ and
    # as_distribution are the functions its module wrote (configuration is recorded by the metaclass)
    assert "__init_subclass__" not in vars(GenerativeModel)
    for name in registry.names():
        cls = registry.get(name).cls
        for k in cls.__mro__:
            init = vars(k).get("__init__")
            if init is not None and issubclass(k, GenerativeModel):
                assert init.__qualname__ == f"{k.__qualname__}.__init__", (name, k)
        assert inspect.signature(cls).parameters.keys() == inspect.signature(cls.__init__).parameters.keys() - {
            "self"
        }, name


def test_every_as_distribution_enters_a_pyro_program_frozen_unless_trainable():
    for name in registry.names():
        cls = registry.get(name).cls
        for k in cls.__mro__:
            method = vars(k).get("as_distribution")
            if method is not None:
                assert getattr(method, "enters_frozen", False), f"{k.__name__}.as_distribution lacks the decorator"
    m = VAE(event_shape=(4,), latent_dim=2, hidden=(8,))
    with pytest.raises(TypeError, match="trainable must be True or False; got 1"):
        m.as_distribution(trainable=1)


def test_no_model_class_holds_a_training_loss_and_objectives_live_in_inference():
    import importlib
    import pkgutil

    from pyrogen.inference.objectives import Objective

    for name in registry.names():
        cls = registry.get(name).cls
        for k in cls.__mro__:
            if issubclass(k, GenerativeModel):
                held = {"loss", "validation_loss", "pyro_loss"} & set(vars(k))
                assert not held, (name, k.__name__, held)
                forward = vars(k).get("forward")
                assert forward is None or "group" not in inspect.signature(forward).parameters, (name, k.__name__)
    import pyrogen.models as models

    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"pyrogen.models.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Objective):
                assert value.__module__.startswith("pyrogen.inference"), (info.name, value.__name__)
