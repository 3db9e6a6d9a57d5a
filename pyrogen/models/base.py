"""The base class every pyrogen model family implements."""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import pyro
import torch
from pyro.nn import PyroModule
from pyro.nn.module import _PyroModuleMeta

from pyrogen.checks import integer
from pyrogen.data import validate
from pyrogen.inference.objectives import checked, is_trusted

__all__ = ["GenerativeModel", "accepts_unbatched", "frozen_unless_trainable", "takes_context"]


def takes_context(method: Callable[..., Any]) -> Callable[..., Any]:
    """Let a method conditioned on labels ``y`` take them as ``context=``, the name Pyro's conditional
    transforms and distributions use (``ConditionalTransformModule.condition(context)``).

    ``f(..., context=c)`` is ``f(..., y=c)``.

    Raises:
        TypeError: both ``context`` and ``y`` given.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, context: Any = None, **kwargs: Any) -> Any:
        if context is not None:
            bound = signature.bind_partial(self, *args, **kwargs).arguments
            if bound.get("y") is not None:
                raise TypeError(f"{method.__name__}: give the conditioning as context= or as y=, not both")
            kwargs["y"] = context
        return method(self, *args, **kwargs)

    return wrapper


def accepts_unbatched(
    shape: Callable[[Any], Sequence[int]] = lambda self: self.event_shape,
    label: int | None = None,
) -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Let a method over a batch of examples take one example, as ``torch.distributions`` do.

    ``f(x)`` of an unbatched ``x`` (shape ``shape(self)``, the event shape unless told) is ``f(x[None])[0]``; an
    integer or 0-d label ``y`` (keyword ``y``, or the positional argument ``label`` after ``x``) goes with it as
    ``[y]``. Batched input is passed through.
    """

    def wrap(method: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        @functools.wraps(method)
        def wrapper(self: Any, x: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
            if not (isinstance(x, torch.Tensor) and tuple(x.shape) == tuple(shape(self))):
                return method(self, x, *args, **kwargs)

            def one(y: Any) -> Any:
                if isinstance(y, int) and not isinstance(y, bool):
                    return [y]
                return y[None] if isinstance(y, torch.Tensor) and y.dim() == 0 else y

            if label is not None and len(args) > label:
                args = (*args[:label], one(args[label]), *args[label + 1 :])
            if "y" in kwargs:
                kwargs["y"] = one(kwargs["y"])
            return method(self, x.unsqueeze(0), *args, **kwargs)[0]

        return wrapper

    return wrap


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as JSON data: tuples (and ``torch.Size``) as lists, tensors by ``tolist``.

    Raises:
        TypeError: something JSON cannot hold (a module, a function), named by ``where``.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(f"constructor argument {where} must be JSON data (numbers, strings, lists, dicts); got {value!r}")


def frozen_unless_trainable(as_distribution: Callable[..., Any]) -> Callable[..., Any]:
    """Make a family's ``as_distribution`` enter a Pyro program frozen unless asked.

    The decorated method takes one more keyword, ``trainable`` (default ``False``): with ``trainable=True``, called
    inside a Pyro program, the model's parameters are registered with ``pyro.module`` under its registered name,
    so that an outer ``SVI`` trains them; otherwise nothing goes into Pyro's param store. Every family decorates
    its ``as_distribution`` (a test checks it), the way diffusers' ``register_to_config`` is written on each
    constructor.

    Raises:
        TypeError: ``trainable`` not a bool.
    """

    @functools.wraps(as_distribution)
    def wrapper(self: GenerativeModel, *args: Any, trainable: bool = False, **kwargs: Any) -> Any:
        if not isinstance(trainable, bool):
            raise TypeError(f"trainable must be True or False; got {trainable!r}")
        if trainable and pyro.poutine.runtime.am_i_wrapped():  # asked for: its parameters are Pyro's
            pyro.module(self._param_store_name(), self)
        return as_distribution(self, *args, **kwargs)

    wrapper.enters_frozen = True  # type: ignore[attr-defined]
    return wrapper


class _RecordsConfig(_PyroModuleMeta):
    """The metaclass of :class:`GenerativeModel`: building a model records the constructor's arguments, with their
    defaults, as its configuration (what diffusers' ``register_to_config`` captures), so that
    ``type(m)(**m.config())`` rebuilds ``m``. The class's ``__init__`` is left as written, and the class's
    signature is its constructor's (``help`` and ``inspect.signature`` show the family's arguments)."""

    @property
    def __signature__(cls) -> inspect.Signature:
        init = inspect.signature(cls.__init__)  # type: ignore[misc]
        return init.replace(parameters=list(init.parameters.values())[1:])

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]
        bound = signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        config: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                config.update(value)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(f"{cls.__name__} takes its configuration by keyword; got {value!r}")
            else:
                config[name] = value
        recorded = {k: _jsonable(v, k) for k, v in config.items()}
        model = super().__call__(*args, **kwargs)
        model.__dict__["_config"] = recorded
        return model


class GenerativeModel(PyroModule, metaclass=_RecordsConfig):
    """A generative model as a Pyro citizen, trainable by :func:`pyrogen.inference.fit`.

    The contract every family keeps (read by the generic tests, the CLI and the trainer):

    - ``__init__`` takes ``event_shape`` and JSON keyword arguments, recorded when the model is built (by the
      metaclass; the family writes nothing for it): :meth:`config` returns them, so that
      ``type(m)(**m.config())`` rebuilds the model;
    - :meth:`model` and :meth:`guide` are Pyro programs over a batch ``x`` of shape ``(n,) + event_shape``
      (the guide is empty for fully observed models); they put their rows in the caller's plate at dim -1
      where there is one (:func:`~pyrogen.inference.program.data_plate`), so plate names are the caller's;
    - :meth:`sample` returns ``(n,) + event_shape``;
    - :meth:`as_distribution` returns a Pyro distribution where the family defines one. Inside a Pyro program
      it enters *frozen*: nothing goes into Pyro's param store, so an outer ``SVI`` never changes the model (a
      trained prior stays the prior it was trained to be). With ``as_distribution(..., trainable=True)`` its
      parameters are registered with ``pyro.module`` under the model's name and ``SVI`` trains them (each
      family writes :func:`frozen_unless_trainable` on its ``as_distribution``);
    - :meth:`validate` checks data against the event shape and support.

    What else a model can do — an exact ``log_prob``, a bound, an energy, an estimated log-probability,
    conditioning, classifying — it declares by the protocols of :mod:`pyrogen.inference.protocol`. How it is
    trained is not the model's: an :class:`~pyrogen.inference.objectives.Objective` (its recipe names the
    default) declares the parameter groups, the schedule and each group's loss.
    """

    #: The data's support (:data:`pyrogen.data.SUPPORTS`); a family whose support depends on its configuration
    #: sets it per instance.
    support: str = "real"
    #: The recipe the class was first registered under (set by :func:`pyrogen.models.registry.register`).
    _recipe: ClassVar[str | None] = None
    #: Whether the model trains on ``(examples, labels)`` pairs (see
    #: :func:`~pyrogen.inference.protocol.training_data`).
    labelled: bool = False

    def _param_store_name(self) -> str:
        """The name of the model's parameters in Pyro's param store: the registered name it was built under."""
        return self.__dict__.get("_registered_as") or self._recipe or type(self).__name__.lower()

    def _checked_batch(self, batch: Any) -> Any:
        return checked(self, batch)

    def __init__(self, event_shape: Sequence[int]) -> None:
        super().__init__()
        shape = tuple(event_shape)
        if not shape or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"event_shape must be a non-empty tuple of positive integers; got {event_shape!r}")
        self.event_shape = torch.Size(shape)

    # -- construction -------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this model, ``type(m)(**m.config())``: the constructor's arguments,
        recorded when it ran, with their defaults (JSON data: tuples as lists)."""
        return copy.deepcopy(self.__dict__.get("_config") or {"event_shape": list(self.event_shape)})

    @property
    def _levels(self) -> int | None:
        """The number of values of integer data (2 for binary), for :meth:`validate`; a family with integer data
        overrides it."""
        return 2 if self.support == "binary" else None

    def validate(self, x: object, name: str = "x") -> torch.Tensor:
        """Check data against the model's event shape and support (see :func:`pyrogen.data.validate`).

        Returns the data, floating data cast to the parameters' floating dtype (float64 data into a
        float32 model, and the reverse), the same way in every family.
        """
        if is_trusted() and isinstance(x, torch.Tensor):  # the trainer's data, checked once on entry
            return x
        x = validate(x, event_shape=self.event_shape, support=self.support, levels=self._levels, name=name)
        if x.dtype.is_floating_point:
            tensors = itertools.chain(self.parameters(), self.buffers())
            ref = next((t for t in tensors if t.dtype.is_floating_point), None)
            if ref is not None and ref.dtype != x.dtype:
                x = x.to(ref.dtype)
        return x

    # -- the Pyro program ----------------------------------------------------
    def model(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def guide(self, x: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        """The empty guide of a fully observed model."""
        return None

    @frozen_unless_trainable
    def as_distribution(self) -> pyro.distributions.Distribution:
        raise NotImplementedError(f"{type(self).__name__} defines no Pyro distribution")

    # -- samples ---------------------------------------------------------------
    def sample(self, n: int) -> torch.Tensor:
        """``n`` draws from the model, shape ``(n,) + event_shape``."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"event_shape={tuple(self.event_shape)}"


def check_positive_int(name: str, value: object) -> int:
    return integer(name, value)


def check_hidden(value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in value
    ):
        raise ValueError(f"hidden must be a sequence of positive integers; got {value!r}")
    return tuple(value)


def check_dropout(value: object, name: str = "dropout") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1); got {value!r}")
    return float(value)
