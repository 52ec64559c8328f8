"""One small lazy registry: named entries that the modules defining them register.

``locate()`` says, without importing anything, which module registers each name; ``get(name)``
imports that module only when the entry is first asked for, and the module's own
``register(...)`` call fills the entry in. A registration from any other module, or a name
registered twice, is an error, so the map and the modules cannot drift apart. (A generic
helper at the bottom layer: stages, checkpoint kinds, data sources, NAS controllers, forecasters and brokers all register through it.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """An unknown name, or a module that does not register what the map says it does."""


class Registry(Generic[T]):
    """Entries of one kind (``kind`` only appears in messages), imported on first use."""

    def __init__(self, kind: str, locate: Callable[[], Mapping[str, str]]) -> None:
        self.kind = kind
        self._locate = locate
        self._entries: dict[str, T] = {}

    def names(self) -> tuple[str, ...]:
        """Every name the map knows, sorted; nothing is imported."""
        return tuple(sorted(self._locate()))

    def module_of(self, name: str) -> str:
        located = self._locate()
        if name not in located:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; available: {', '.join(sorted(located))}"
            )
        return located[name]

    def register(self, name: str, entry: T, module: str) -> T:
        """Called by ``module`` itself: it must be the module the map names for ``name``."""
        expected = self.module_of(name)
        if module != expected:
            raise RegistryError(f"{self.kind} {name!r} belongs to {expected}, not {module}")
        if name in self._entries:
            raise RegistryError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry, importing its module on first use."""
        if name not in self._entries:
            module = self.module_of(name)
            importlib.import_module(module)
            if name not in self._entries:
                raise RegistryError(f"{module} does not register the {self.kind} {name!r}")
        return self._entries[name]
