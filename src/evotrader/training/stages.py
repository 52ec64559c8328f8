"""The training stages: one module per stage, each registering itself at its end::

    register_stage(
        "stage_1_ppo",
        config=PPOStageConfig,  # its settings: the ``stage_1_ppo`` section of the config
        run=run_ppo_stage,  # (StageContext) -> StageResult
        check_settings=check_settings,  # (StageContext) -> None, raises on unusable settings
        checkpoint_kind="ppo",  # the kind of its .pth, or None if it leaves no policy
        portfolio=True,  # it also trains over a universe (env=portfolio); default False
    )

Stage modules import heavy libraries (Ray, RLlib, NautilusTrader), so nothing imports them
until a stage is asked for: the map of names to modules is found by reading the module files
of ``evotrader.training`` for a top-level ``register_stage("name", ...)`` call, and
``stage(name)`` imports the module, whose own call must match. The order the stages run in is
written once, in the ``stages`` list of configs/training_sequence.yaml.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evotrader.core.registry import Registry

if TYPE_CHECKING:
    from evotrader.training.pipeline import StageContext, StageResult

_PACKAGE = "evotrader.training"
_DECLARATION = re.compile(r'^register_stage\(\s*"(?P<name>[A-Za-z0-9_]+)"', re.MULTILINE)


@dataclass(frozen=True)
class StageSpec:
    """What the pipeline needs of a stage."""

    name: str
    config: type[Any]
    run: Callable[[StageContext], StageResult]
    check_settings: Callable[[StageContext], None]
    checkpoint_kind: str | None
    portfolio: bool = False  # trains over data.universe with env=portfolio


@cache
def stage_modules() -> dict[str, str]:
    """Stage name -> the module of ``evotrader.training`` that registers it (not imported)."""
    found: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for name in _DECLARATION.findall(path.read_text(encoding="utf-8")):
            if name in found:
                raise ValueError(f"stage {name!r} is registered by {found[name]} and {path.stem}")
            found[name] = f"{_PACKAGE}.{path.stem}"
    return found


STAGES: Registry[StageSpec] = Registry("stage", stage_modules)


def register_stage(
    name: str,
    *,
    config: type[Any],
    run: Callable[[StageContext], StageResult],
    check_settings: Callable[[StageContext], None],
    checkpoint_kind: str | None,
    portfolio: bool = False,
) -> StageSpec:
    """Called once at the end of a stage's own module (see the module docstring)."""
    spec = StageSpec(name, config, run, check_settings, checkpoint_kind, portfolio)
    return STAGES.register(name, spec, module=run.__module__)


def stage(name: str) -> StageSpec:
    """The registered stage ``name``, importing its module on first use."""
    return STAGES.get(name)
