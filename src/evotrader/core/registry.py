"""The one registry helper: named entries of one kind (stages, data sources, NAS controllers,
regime classifiers, pattern recognizers, checkpoint kinds, brokers), looked up by the name a
config or a checkpoint gives.

Two modes, one class. Eager (no ``locate``): the defining module registers its entries when it
is imported, and ``names()`` lists what is registered. Lazy (``locate``, a map of name -> module
read without importing anything): ``get(name)`` imports that module on first use and the
module's own ``register`` call fills the entry in; a registration from any other module, or a
name the map does not know, is an error, so the map and the modules cannot drift apart.

Either way an unknown name raises ``error`` (each layer keeps its own exception type, e.g.
``DataError``, so scripts map it to their exit code) with one message listing what is
available; a name registered twice, or a module that breaks the map, is a ``RegistryError``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(ValueError):
    """An unknown name, or a registration that contradicts the registry.

    A ``ValueError``: a bad name is a bad configuration value, and callers that check those
    catch it.
    """


class Registry(Generic[T]):
    """Entries of one kind; ``kind`` names them in messages ("unknown data source 'x'")."""

    def __init__(
        self,
        kind: str,
        locate: Callable[[], Mapping[str, str]] | None = None,
        *,
        error: type[Exception] = RegistryError,
    ) -> None:
        self.kind = kind
        self._locate = locate
        self._error = error
        self._entries: dict[str, T] = {}

    def names(self) -> tuple[str, ...]:
        """Every name, sorted; in lazy mode the map's, with nothing imported."""
        return tuple(sorted(self._entries if self._locate is None else self._locate()))

    def module_of(self, name: str) -> str:
        """Lazy mode: the module the map says registers ``name``."""
        if self._locate is None:
            raise RegistryError(f"the {self.kind} registry has no module map")
        located = self._locate()
        if name not in located:
            raise self._unknown(name)
        return located[name]

    def register(self, name: str, entry: T, module: str | None = None) -> T:
        """Add ``entry`` as ``name``; in lazy mode ``module`` (the caller) must be the map's."""
        if self._locate is not None:
            expected = self.module_of(name)
            if module != expected:
                raise RegistryError(f"{self.kind} {name!r} belongs to {expected}, not {module}")
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry ``name``; in lazy mode its module is imported on first use."""
        if name in self._entries:
            return self._entries[name]
        if self._locate is None:
            raise self._unknown(name)
        module = self.module_of(name)
        importlib.import_module(module)
        if name not in self._entries:
            raise RegistryError(f"{module} does not register the {self.kind} {name!r}")
        return self._entries[name]

    def _unknown(self, name: str) -> Exception:
        return self._error(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
