"""The registry of model families: names users type, classes that implement them.

Example:
    >>> from pyrogen.models import registry
    >>> "realnvp" in registry.names() and "vae" in registry.names()
    True
    >>> registry.get("realnvp").density
    'exact'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pyrogen.models.base import GenerativeModel

__all__ = ["CAPABILITIES", "alias", "capabilities", "create", "get", "names", "register"]

#: What a model can declare itself to be; the generic test harness runs the checks that apply.
CAPABILITIES = ("exact", "lower_bound", "unnormalized", "sampler", "several_groups", "labelled")

_REGISTRY: dict[str, type[GenerativeModel]] = {}
_ALIASES: dict[str, str] = {}
_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

M = TypeVar("M", bound=type[GenerativeModel])


def register(name: str) -> Callable[[M], M]:
    """Class decorator: register a :class:`GenerativeModel` subclass under ``name``.

    Raises:
        ValueError: ``name`` is not lowercase-with-hyphens or is taken, or the
            class lacks ``family``/``density``.
    """

    def deco(cls: M) -> M:
        if not _NAME.match(name):
            raise ValueError(f"model names are lowercase with hyphens; got {name!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name].__name__}")
        if not cls.family or cls.density not in ("exact", "lower_bound", "unnormalized", "none"):
            raise ValueError(f"{cls.__name__} must set family and a valid density; got {cls.density!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


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


def get(name: str) -> type[GenerativeModel]:
    """The class registered under ``name``.

    Raises:
        ValueError: no model has that name.
    """
    name = _ALIASES.get(name, name) if isinstance(name, str) else name
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create(name: str, **config: Any) -> GenerativeModel:
    """Build the model ``name`` from its :meth:`~GenerativeModel.config` keywords."""
    return get(name)(**config)


def capabilities(model: GenerativeModel) -> frozenset[str]:
    """What ``model`` is, in the harness's words: its density kind, ``"sampler"`` (every model that
    samples: all but pure potentials), ``"several_groups"`` (more than one parameter group) and
    ``"labelled"`` (trains on ``(examples, labels)``).

    Example:
        >>> from pyrogen.models import RealNVP
        >>> sorted(capabilities(RealNVP(event_shape=(2,), num_layers=1, hidden=(4,))))
        ['exact', 'sampler']
    """
    caps = set()
    if model.density != "none":
        caps.add(model.density)
    if getattr(model, "can_sample", True):
        caps.add("sampler")
    if len(model.param_groups()) > 1:
        caps.add("several_groups")
    if model.labelled:
        caps.add("labelled")
    return frozenset(caps)
