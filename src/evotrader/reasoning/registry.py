"""One small name -> component registry, shared by the Weather Forecaster and the Chartist.

Components register their class under a name; ``make(name, **options)`` calls the class's
``create(**options)``, so a config file can pick an implementation by name and pass its settings
without the caller importing the class. Unknown names and unknown options fail loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar


class Creatable(Protocol):
    """What a registered component offers: a config dataclass and a factory from options."""

    config_type: ClassVar[type[Any]]

    @classmethod
    def create(cls, **options: Any) -> Self: ...


T = TypeVar("T", bound=Creatable)


class Registry(Generic[T]):
    """Named components of one kind (``kind`` only appears in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding the class under ``name``; a taken name is an error."""

        def add(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = cls
            return cls

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def get(self, name: str) -> type[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}"
            ) from None

    def make(self, name: str, **options: Any) -> T:
        """Build the component ``name`` with ``options`` (its config fields, plus e.g. a seed)."""
        return self.get(name).create(**options)


def build_config(config_type: type[Any], owner: str, options: dict[str, Any]) -> Any:
    """``config_type(**options)``, with unknown option names reported as a ValueError."""
    known = {f.name for f in fields(config_type)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"{owner}: unknown option(s) {unknown}; known: {sorted(known)}")
    return config_type(**options)
