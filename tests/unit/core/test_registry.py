"""The one registry helper, in both modes: eager (entries registered by their own module on
import) and lazy (a name -> module map; the module is imported on first use)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from evotrader.core.registry import Registry, RegistryError


class WidgetError(ValueError):
    """Stands in for a layer's own exception type (DataError, CheckpointError...)."""


def test_eager_entries_are_listed_sorted_and_returned() -> None:
    registry: Registry[int] = Registry("widget")
    assert registry.register("b", 2) == 2
    registry.register("a", 1)
    assert registry.names() == ("a", "b")
    assert registry.get("a") == 1


def test_an_unknown_name_lists_the_available_ones_in_the_layers_error() -> None:
    registry: Registry[int] = Registry("widget", error=WidgetError)
    registry.register("gear", 1)
    registry.register("cog", 2)
    with pytest.raises(WidgetError, match=r"^unknown widget 'sprocket'; available: cog, gear$"):
        registry.get("sprocket")
    with pytest.raises(RegistryError, match=r"unknown thing 'x'; available: $"):
        Registry[int]("thing").get("x")  # the default error; nothing registered yet


def test_a_name_registered_twice_is_refused() -> None:
    registry: Registry[int] = Registry("widget", error=WidgetError)
    registry.register("gear", 1)
    with pytest.raises(RegistryError, match="widget 'gear' is already registered"):
        registry.register("gear", 2)
    assert registry.get("gear") == 1


def test_lazy_mode_refuses_a_registration_from_another_module_or_off_the_map() -> None:
    registry: Registry[str] = Registry("thing", lambda: {"a": "pkg.a"})
    with pytest.raises(RegistryError, match=r"thing 'a' belongs to pkg\.a, not pkg\.b"):
        registry.register("a", "entry", module="pkg.b")
    with pytest.raises(RegistryError, match=r"belongs to pkg\.a, not None"):
        registry.register("a", "entry")
    with pytest.raises(RegistryError, match="unknown thing 'z'; available: a"):
        registry.register("z", "entry", module="pkg.a")
    registry.register("a", "entry", module="pkg.a")
    assert registry.get("a") == "entry"
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("a", "again", module="pkg.a")


LAZY_REGISTRY: Registry[str]  # the fixture's registry, which the module it writes imports


@pytest.fixture
def lazy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry[str]]:
    """A fresh lazy registry: ``lazy_one`` registers "one"; ``lazy_none`` registers nothing."""
    registry = Registry[str]("gadget", lambda: {"one": "lazy_one", "none": "lazy_none"})
    monkeypatch.setattr(sys.modules[__name__], "LAZY_REGISTRY", registry, raising=False)
    (tmp_path / "lazy_one.py").write_text(
        textwrap.dedent(f"""
            from {__name__} import LAZY_REGISTRY
            LAZY_REGISTRY.register("one", "first", module=__name__)
        """)
    )
    (tmp_path / "lazy_none.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield registry
    for module in ("lazy_one", "lazy_none"):
        sys.modules.pop(module, None)


def test_lazy_mode_imports_a_module_only_when_its_entry_is_first_asked_for(
    lazy: Registry[str],
) -> None:
    assert lazy.names() == ("none", "one")  # from the map alone
    assert lazy.module_of("one") == "lazy_one"
    assert "lazy_one" not in sys.modules
    assert lazy.get("one") == "first"
    assert "lazy_one" in sys.modules
    assert lazy.get("one") == "first"  # registered once, not imported again
    with pytest.raises(RegistryError, match="lazy_none does not register the gadget 'none'"):
        lazy.get("none")
    with pytest.raises(RegistryError, match="unknown gadget 'two'; available: none, one"):
        lazy.get("two")


def test_an_eager_registry_has_no_module_map() -> None:
    with pytest.raises(RegistryError, match="the widget registry has no module map"):
        Registry[int]("widget").module_of("gear")
