"""The registry: recipes under the names users type, and the classes that implement them.

A *recipe* is a registered name: the class it builds, the constructor's defaults (a preset such as ``beta-vae``
is ``vae`` with ``beta=4``, not a subclass), the data it trains on unless told, the training settings, the
choices it makes from the data (:meth:`Recipe.from_dataset`) and the sampling options its CLI takes. Recipes are
registered beside their class, in the family's module.

Example:
    >>> from pyrogen.models import registry
    >>> "realnvp" in registry.names() and "vae" in registry.names()
    True
    >>> registry.get("realnvp").density
    'exact'
    >>> registry.get("beta-vae").create(event_shape=(4,), hidden=[8], latent_dim=2).config()["beta"]
    4.0
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pyrogen.data import Dataset
from pyrogen.inference.objectives import Objective, use_objective
from pyrogen.inference.protocol import capabilities as _capabilities
from pyrogen.inference.protocol import density_kind
from pyrogen.inference.trainer import use_train_defaults
from pyrogen.models.base import GenerativeModel

__all__ = [
    "CAPABILITIES",
    "Recipe",
    "alias",
    "capabilities",
    "continuous_support",
    "create",
    "from_dataset",
    "get",
    "name_of",
    "names",
    "preset",
    "recipe_of",
    "register",
    "same_support",
]

#: What a model can declare itself to be; the generic test harness runs the checks that apply.
CAPABILITIES = ("exact", "lower_bound", "unnormalized", "estimated", "sampler", "several_groups", "labelled")

#: Keyword choices a recipe makes from the data: ``(recipe, data, keywords) -> keywords`` (keywords the caller
#: gave win).
Choices = Callable[["Recipe", Dataset, dict[str, Any]], dict[str, Any]]

_REGISTRY: dict[str, Recipe] = {}
_ALIASES: dict[str, str] = {}
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

M = TypeVar("M", bound=type[GenerativeModel])


def same_support(recipe: Recipe, data: Dataset, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The choice of a model of one support: none, once the data's support is checked.

    Raises:
        ValueError: the data's support is another.
    """
    support = recipe.cls.support
    if data.support != support:
        raise ValueError(f"{recipe.name} models {support} data; dataset {data.name!r} is {data.support}")
    return kwargs


def continuous_support(
    recipe: Recipe, data: Dataset, kwargs: dict[str, Any], verb: str = "models", hint: str = ""
) -> dict[str, Any]:
    """The choice of a model of continuous data: its ``support`` that of the data, real or the unit interval.

    Raises:
        ValueError: discrete data, named with ``hint`` (what to use instead).
    """
    if data.support not in ("real", "unit_interval"):
        more = f" ({hint})" if hint else ""
        raise ValueError(f"{recipe.name} {verb} continuous data; dataset {data.name!r} is {data.support}{more}")
    kwargs.setdefault("support", data.support)
    return kwargs


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A registered name: how to build, train and sample one model.

    Attributes:
        name: what users type (``pyrogen train NAME``).
        cls: the class it builds.
        family: the family it belongs to (``pyrogen list``).
        defaults: constructor keywords of this recipe (a preset's settings).
        data: the dataset trained on when none is named.
        train: training settings (:class:`~pyrogen.inference.TrainConfig` fields), or a function of the dataset
            that returns them.
        choices: the constructor keywords chosen from the data (``(recipe, data, keywords) -> keywords``), or
            ``None``: the data's support must be the class's (:func:`same_support`).
        prepare: what is set from the data once the model is built (``(model, data) -> None``), e.g. a visible
            bias at the data's log-odds.
        sample_options: the ``pyrogen sample`` options the model's ``sample`` takes.
        doc: one line for ``pyrogen list``; the class's first docstring line unless given.
        objective: the class's default objective, ``model -> Objective`` (what :func:`~pyrogen.inference.fit`
            trains it under unless told; :func:`~pyrogen.inference.objectives.objective_for`); a subclass
            registered without one trains under its base class's.
    """

    name: str
    cls: type[GenerativeModel]
    family: str
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    data: str = ""
    train: Mapping[str, Any] | Callable[[Dataset], dict[str, Any]] = dataclasses.field(default_factory=dict)
    choices: Choices | None = None
    prepare: Callable[[Any, Dataset], None] | None = None
    sample_options: tuple[str, ...] = ()
    doc: str = ""
    objective: Callable[[Any], Objective] | None = None

    # what the class is, for callers that held the class before recipes
    @property
    def density(self) -> str:
        return density_kind(self.cls)

    @property
    def support(self) -> str:
        return self.cls.support

    @property
    def default_data(self) -> str:
        return self.data

    def create(self, **config: Any) -> GenerativeModel:
        """The model from its :meth:`~GenerativeModel.config` keywords, this recipe's defaults under them."""
        return self._named(self.cls(**{**self.defaults, **config}))

    __call__ = create

    def _named(self, model: GenerativeModel) -> GenerativeModel:
        model.__dict__["_registered_as"] = self.name
        return model

    def from_dataset(self, data: Dataset, **kwargs: Any) -> GenerativeModel:
        """The model for ``data``: its event shape, this recipe's defaults, then what it chooses from the data
        (keywords given win over both).

        Raises:
            ValueError: the data do not fit the model.
        """
        kwargs = {**self.defaults, **kwargs}
        kwargs = (self.choices or same_support)(self, data, kwargs)
        model = self.cls(event_shape=tuple(data.event_shape), **kwargs)
        if self.prepare is not None:
            self.prepare(model, data)
        return self._named(model)

    def train_defaults_for(self, data: Dataset) -> dict[str, Any]:
        """The training settings for ``data``."""
        return dict(self.train(data) if callable(self.train) else self.train)

    def summary(self) -> str:
        return self.doc or (self.cls.__doc__ or "").strip().split("\n")[0]


def register(
    name: str,
    cls: type[GenerativeModel] | None = None,
    *,
    like: str | None = None,
    family: str | None = None,
    **fields: Any,
) -> Any:
    """Register the recipe ``name``; as a class decorator (``@register("realnvp", family="flow", ...)``) or a call
    (``register("beta-vae", VAE, like="vae", defaults={"beta": 4.0})``: a preset of the recipe ``like``, its
    fields unless given). A decorated subclass may take its parent's recipe fields with ``like``.

    Raises:
        ValueError: ``name`` is not lowercase-with-hyphens or is taken, or no family is known.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"model names are lowercase with hyphens; got {name!r}")
    unknown = set(fields) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise TypeError(f"register() got unknown recipe fields {sorted(unknown)}")

    def deco(klass: M) -> M:
        base = _REGISTRY[like] if like is not None else None
        if name in _REGISTRY and _REGISTRY[name].cls is not klass:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name].cls.__name__}")
        own = dict(fields)
        if base is not None:
            own["defaults"] = {**base.defaults, **own.get("defaults", {})}
            own.setdefault("doc", "")
            recipe = dataclasses.replace(base, name=name, cls=klass, family=family or base.family, **own)
        elif not family:
            raise ValueError(f"recipe {name!r} needs a family")
        else:
            recipe = Recipe(name=name, cls=klass, family=family, **own)
        _REGISTRY[name] = recipe
        if "_recipe" not in vars(klass):  # the class's own name: the first recipe registered for it
            klass._recipe = name
            if recipe.objective is not None:
                use_objective(klass, recipe.objective)
            use_train_defaults(klass, _recipe_train_defaults)
        return klass

    if like is not None and like not in _REGISTRY:
        raise ValueError(f"register({name!r}, like={like!r}): {like!r} is not registered")
    if cls is not None:
        return deco(cls)
    return deco


def _recipe_train_defaults(model: GenerativeModel, data: Dataset) -> dict[str, Any]:
    """The training settings of the recipe ``model`` was built under, for ``data`` (what ``fit(model, data)``
    takes)."""
    return get(name_of(model)).train_defaults_for(data)


def alias(name: str, target: str) -> None:
    """Let ``name`` stand for the registered ``target`` (listed once, under ``target``).

    Raises:
        ValueError: ``name`` is taken or badly formed, or ``target`` is not registered.
    """
    if not _NAME.match(name) or name in _REGISTRY or name in _ALIASES:
        raise ValueError(f"alias {name!r} is taken or not lowercase-with-hyphens")
    get(target)
    _ALIASES[name] = target


def names() -> list[str]:
    """Every registered model name, in registration order."""
    return list(_REGISTRY)


def get(name: str) -> Recipe:
    """The recipe registered under ``name``.

    Raises:
        ValueError: no model has that name.
    """
    name = _ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def recipe_of(model: GenerativeModel | type[GenerativeModel]) -> Recipe:
    """The recipe a class was first registered under (``VAE`` -> ``vae``).

    Raises:
        ValueError: the class is not registered.
    """
    cls = model if isinstance(model, type) else type(model)
    own = vars(cls).get("_recipe")
    if own is None:
        raise ValueError(f"{cls.__name__} is not a registered model class")
    return _REGISTRY[own]


def name_of(model: GenerativeModel) -> str:
    """The registered name ``model`` was built under (:func:`create`, :meth:`Recipe.from_dataset`), else its
    class's recipe."""
    return model.__dict__.get("_registered_as") or recipe_of(model).name


def create(name: str, **config: Any) -> GenerativeModel:
    """Build the model ``name`` from its :meth:`~GenerativeModel.config` keywords."""
    return get(name).create(**config)


def from_dataset(name: str | type[GenerativeModel], data: Dataset, **kwargs: Any) -> GenerativeModel:
    """The model ``name`` (a registered name, or a class for its own recipe) built for ``data``
    (:meth:`Recipe.from_dataset`)."""
    recipe = recipe_of(name) if isinstance(name, type) else get(name)
    return recipe.from_dataset(data, **kwargs)


def capabilities(model: GenerativeModel) -> frozenset[str]:
    """What ``model`` is, in the harness's words, from the protocols it implements
    (:func:`pyrogen.inference.protocol.capabilities`).

    Example:
        >>> from pyrogen.models import RealNVP
        >>> sorted(capabilities(RealNVP(event_shape=(2,), num_layers=1, hidden=(4,))))
        ['exact', 'sampler']
    """
    return _capabilities(model)


def preset(name: str) -> Callable[..., GenerativeModel]:
    """The constructor of the recipe ``name``: ``preset("beta-vae")(event_shape=(64,))`` is
    ``get("beta-vae").create(event_shape=(64,))`` (``event_shape`` may come first, by position)."""
    recipe = get(name)

    def build(*event_shape: Any, **config: Any) -> GenerativeModel:
        if len(event_shape) > 1:
            raise TypeError(f"{name} takes event_shape by position and everything else by keyword")
        if event_shape:
            config["event_shape"] = event_shape[0]
        return recipe.create(**config)

    build.__name__ = build.__qualname__ = name.replace("-", "_")
    build.__doc__ = f"{recipe.summary()}\n\nThe recipe {name!r}: {recipe.cls.__name__} with {dict(recipe.defaults)}."
    return build
