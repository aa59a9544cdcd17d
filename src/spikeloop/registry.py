"""A small name → object registry used for backends, losses, encoders and surrogates.

Dispatch by name happens in exactly one place (:meth:`Registry.get`), which raises an
:class:`~spikeloop.errors.UnknownNameError` listing the registered names.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from spikeloop.errors import ArgumentTypeError, ConfigError, SpikeloopError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or functions) of one kind.

    Example:
        >>> losses: Registry[Callable] = Registry("loss")
        >>> @losses.register("mse")
        ... def mse(a, b): ...
        >>> losses.get("mse") is mse
        True
    """

    def __init__(self, kind: str, entry_points: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._group = entry_points  # read on first lookup (see _discover)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a duplicate name is an error."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (replacing a :meth:`add_lazy` entry of that name)."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy.pop(name, None)
        self._items[name] = obj

    def _discover(self) -> None:
        """Announce the names declared by installed packages in the entry-point group given
        at construction (``name = "package.module"``; importing the module registers
        ``name``), once."""
        group, self._group = self._group, None
        if group is None:
            return
        for ep in metadata.entry_points(group=group):
            if ep.name not in self._items and ep.name not in self._lazy:
                self._lazy[ep.name] = ep.value.partition(":")[0]

    def add_lazy(self, name: str, module: str) -> None:
        """Announce ``name`` as registered by importing ``module``, which happens on the first
        :meth:`get` (so that importing spikeloop does not import every chip)."""
        if name in self._items or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = module

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise :class:`UnknownNameError`."""
        self._discover()
        if name not in self._items and name in self._lazy:
            module = self._lazy[name]
            importlib.import_module(module)
            if name not in self._items:
                raise UnknownNameError(f"{self.kind} {name!r}: importing {module} did not "
                                       "register it")
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def build(self, spec: str | Mapping[str, Any], **defaults: Any) -> Any:
        """Call the factory named by ``spec``: a name, or ``{"name": ..., param: value, ...}``.

        ``defaults`` are passed to a factory that takes them unless ``spec`` sets them (a loss
        gets the simulation step ``dt`` if it has one). A parameter the factory does not
        take raises :class:`ConfigError` naming it and the parameters it takes; the factory's
        own checks raise their own errors.

        Raises:
            ArgumentTypeError: ``spec`` is neither a name nor a mapping, or its name not a str.
            ConfigError: no name, or a parameter the factory does not take.
            UnknownNameError: nothing is registered under the name.
        """
        if not isinstance(spec, str | Mapping):
            raise ArgumentTypeError(f"a {self.kind} spec must be a name or a mapping "
                                    f"{{'name': ..., parameter: value}}, got {spec!r} "
                                    f"({type(spec).__name__})")
        params = {"name": spec} if isinstance(spec, str) else dict(spec)
        if "name" not in params:
            raise ConfigError(f"a {self.kind} spec needs a 'name', got {dict(params)}")
        name = params.pop("name")
        if not isinstance(name, str):
            raise ArgumentTypeError(f"a {self.kind} name must be a str, got {name!r} "
                                    f"({type(name).__name__})")
        factory: Any = self.get(name)
        accepted = _parameters(factory)
        if accepted is not None:
            unknown = sorted(set(params) - set(accepted))
            if unknown:
                raise ConfigError(f"{self.kind} {name!r} takes no parameter "
                                  f"{', '.join(map(repr, unknown))}; it takes "
                                  f"{', '.join(accepted) or 'none'}")
            defaults = {k: v for k, v in defaults.items() if k in accepted}
        try:
            return factory(**(defaults | params))
        except SpikeloopError:
            raise  # the factory's own check (an ArgumentTypeError is a TypeError too)
        except TypeError as err:
            raise ConfigError(f"{self.kind} {spec!r}: {err}") from None

    def accepts(self, name: str, parameter: str) -> bool:
        """Whether the factory registered as ``name`` takes ``parameter`` (``True`` when its
        signature cannot be read or takes ``**kwargs``)."""
        accepted = _parameters(self.get(name))
        return accepted is None or parameter in accepted

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._discover()
        return sorted([*self._items, *self._lazy])

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _parameters(factory: Any) -> list[str] | None:
    """The keyword parameters ``factory`` takes, or ``None`` if any (``**kwargs``) or its
    signature cannot be read."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    out = []
    for p in signature.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_"):
            out.append(p.name)
    return out
