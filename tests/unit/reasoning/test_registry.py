from dataclasses import dataclass
from typing import Any, Self

import pytest

from evotrader.reasoning.registry import Registry, build_config


@dataclass(frozen=True)
class EchoConfig:
    level: int = 1


class Echo:
    config_type = EchoConfig

    def __init__(self, config: EchoConfig) -> None:
        self.config = config

    @classmethod
    def create(cls, **options: Any) -> Self:
        return cls(build_config(EchoConfig, "echo", options))


def test_register_make_and_list() -> None:
    registry: Registry[Echo] = Registry("widget")
    assert registry.register("echo")(Echo) is Echo
    assert registry.names() == ("echo",)
    assert registry.make("echo", level=3).config == EchoConfig(level=3)
    assert registry.get("echo") is Echo


def test_duplicate_and_unknown_names_and_options_are_errors() -> None:
    registry: Registry[Echo] = Registry("widget")
    registry.register("echo")(Echo)
    with pytest.raises(ValueError, match="widget 'echo' is already registered"):
        registry.register("echo")(Echo)
    with pytest.raises(ValueError, match="unknown widget 'ech'; available: echo"):
        registry.make("ech")
    unknown = r"echo: unknown option\(s\) \['levle'\]; known: \['level'\]"
    with pytest.raises(ValueError, match=unknown):
        registry.make("echo", levle=2)
