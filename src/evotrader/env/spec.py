"""EnvSpec: the one description of a trading environment, from the config to the checkpoint.

MarketEnv, VectorMarketEnv, the backtest engine, the sim broker and the live runner all take
this one frozen value; a checkpoint stores it once (``to_dict``) and every reader rebuilds it
with ``from_dict``, which checks it as the constructor does. The training config nests it
directly, so a bad value fails when the run starts, naming the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from evotrader.core.checks import require_at_least, require_between
from evotrader.env.execution import ExecutionModel
from evotrader.env.rewards import REWARDS

DEFAULT_POSITIONS = (-1.0, 0.0, 1.0)


@dataclass(frozen=True)
class EnvSpec:
    """What the agent sees and how its decisions are filled and rewarded.

    ``positions`` are the target positions (fractions of equity) the discrete actions pick;
    ``episode_length=None`` runs an episode to the end of the bars; ``agent_state`` adds the
    position and unrealised-return channels to each observation window.
    """

    window: int = 64
    positions: tuple[float, ...] = DEFAULT_POSITIONS
    reward: str = "log_return"
    episode_length: int | None = 256
    initial_cash: float = 100_000.0
    agent_state: bool = True
    sharpe_eta: float = 0.01
    execution: ExecutionModel = field(default_factory=ExecutionModel)

    def __post_init__(self) -> None:
        # Lists from YAML or JSON become a tuple, so specs compare and hash by value; numbers
        # given as ints become floats, so the env's arithmetic and the checkpoint's JSON match.
        object.__setattr__(self, "positions", tuple(float(p) for p in self.positions))
        object.__setattr__(self, "initial_cash", float(self.initial_cash))
        object.__setattr__(self, "sharpe_eta", float(self.sharpe_eta))
        if isinstance(self.execution, Mapping):
            object.__setattr__(self, "execution", ExecutionModel(**self.execution))
        require_at_least("", self, 1, "window")
        if len(self.positions) < 2:
            raise ValueError(f"positions need at least two targets, got {list(self.positions)}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward must be one of {REWARDS}, got {self.reward!r}")
        if self.episode_length is not None and self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1 or None, got {self.episode_length}")
        if self.initial_cash <= 0:
            raise ValueError(f"initial_cash must be positive, got {self.initial_cash}")
        require_between("", self, 0, 1, "sharpe_eta")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a checkpoint stores (positions as a list, execution as a dict)."""
        settings = asdict(self)
        settings["positions"] = list(self.positions)
        return settings

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> EnvSpec:
        """The spec ``to_dict`` wrote; an unknown or missing key, in it or in its execution
        settings, is a ``ValueError`` naming it."""
        _check_keys("env settings", settings, cls)
        execution = settings["execution"]
        if not isinstance(execution, Mapping):
            raise ValueError(f"env settings: execution must be a dict, got {execution!r}")
        _check_keys("env execution settings", execution, ExecutionModel)
        return cls(**{**settings, "execution": ExecutionModel(**execution)})


def _check_keys(what: str, settings: Mapping[str, Any], schema: type) -> None:
    known = {f.name for f in fields(schema)}
    unknown, missing = sorted(map(str, set(settings) - known)), sorted(known - set(settings))
    if unknown or missing:
        raise ValueError(f"{what}: unknown keys {unknown}, missing keys {missing}")
