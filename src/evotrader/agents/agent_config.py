"""What an AutonomousAgent is (``AgentArchitecture``) and how it learns and acts
(``AgentHyperparameters``): two frozen, validated dataclasses whose dict forms round-trip
exactly through JSON, because the autonomous stage mutates both between generations and
every checkpoint carries both.

The world model's context is laid out in ``CONTEXT_FIELDS``: a summary of the k memories
recalled (similarity-weighted mean outcome and its spread, in units of the training returns'
std, the mean similarity and the share of the k slots found), then the Weather Forecaster's
regime probabilities and the Chartist's pattern probabilities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Real
from typing import Any

from evotrader.core.checks import require_int
from evotrader.memory import EpisodicMemoryError, EventConfig, MemoryConfig
from evotrader.models.core_transformer import TransformerSpec
from evotrader.models.world_model import DEFAULT_COST_BPS, WorldModelConfig
from evotrader.reasoning import PATTERNS, REGIME_LABELS

MEMORY_FIELDS = ("memory_outcome", "memory_spread", "memory_similarity", "memory_found")
CONTEXT_FIELDS = (
    *MEMORY_FIELDS,
    *(f"regime_{label}" for label in REGIME_LABELS),
    *(f"pattern_{name}" for name in PATTERNS),
)
CONTEXT_DIM = len(CONTEXT_FIELDS)
# Next-bar returns reach the event detector in units of the training std, so win/loss
# thresholds are in sigmas; there are no agent actions at learn time, hence no rare_action.
AGENT_EVENTS = EventConfig(
    criteria=("flash_crash", "large_loss", "large_win", "regime_shift", "rare_outcome"),
    large_win=2.0,
    large_loss=2.0,
)


class AgentError(ValueError):
    """Bad agent settings, input or state; the message names what and where."""


@dataclass(frozen=True)
class AgentHyperparameters:
    """Training and acting knobs, the ones the autonomous stage tunes per agent.

    World model: ``lr``, ``batch_size``, ``epochs`` (prediction heads and trunk),
    ``memory_epochs`` (fusion and heads again, trunk frozen, once the memory is filled),
    ``weight_decay``. Policy head: ``policy_lr``, ``policy_epochs``, ``policy_batch`` (bars per
    time-ordered block), ``turnover_penalty`` (multiplies the execution cost of each change of
    expected exposure). Acting: ``memory_k`` memories recalled, softmax ``memory_temperature``
    over their similarities, ``risk_scale`` (< 1 prefers flat, > 1 prefers exposure, 1 is
    neutral), and the what-if refinement: ``what_if_weight`` (0 = off) times each action's
    predicted Sharpe over ``what_if_horizon`` bars from ``what_if_paths`` sampled paths.
    """

    lr: float = 3e-3
    batch_size: int = 64
    epochs: int = 5
    memory_epochs: int = 2
    weight_decay: float = 1e-4
    policy_lr: float = 1e-2
    policy_epochs: int = 30
    policy_batch: int = 256
    turnover_penalty: float = 1.0
    memory_k: int = 8
    memory_temperature: float = 0.1
    risk_scale: float = 1.0
    what_if_weight: float = 1.0
    what_if_paths: int = 64
    what_if_horizon: int = 1

    def __post_init__(self) -> None:
        counts = [f.name for f in fields(self) if f.type == "int" and f.name != "memory_epochs"]
        require_int("hyperparameter ", self, 1, *counts, error=AgentError)
        require_int("hyperparameter ", self, 0, "memory_epochs", error=AgentError)
        for name in (f.name for f in fields(self) if f.type != "int"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise AgentError(f"hyperparameter {name} must be a finite number, got {value!r}")
            positive = name in ("lr", "policy_lr", "memory_temperature", "risk_scale")
            if value < 0 or (positive and value == 0):
                raise AgentError(
                    f"hyperparameter {name} must be {'> 0' if positive else '>= 0'}, got {value}"
                )
            object.__setattr__(self, name, float(value))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentHyperparameters:
        """Strict inverse of ``to_dict``: unknown keys are errors, not silently dropped."""
        return cls(**_known(cls, data, "AgentHyperparameters"))


@dataclass(frozen=True)
class AgentArchitecture:
    """Everything that shapes the agent's networks and components (its genome).

    ``encoder`` is the world model's CoreTransformer trunk (``input_dim`` = feature channels,
    ``max_len`` >= ``window``); ``world_model`` its heads, whose ``context_dim`` the agent sets
    to ``CONTEXT_DIM``; ``positions`` the target exposures actions index; ``return_channel``
    the observation channel holding the standardised ``log_return`` feature, which the
    forecaster reads and whose cumulative sum the chartist reads; ``memory`` and ``events``
    the episodic memory and what it stores; ``forecaster`` / ``chartist`` registry names with
    their options (for ``cnn``, ChartistConfig fields plus ``seed``); ``cost_bps`` the cost of
    a unit change of exposure in the what-if rollouts.
    """

    encoder: TransformerSpec
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    window: int = 32
    positions: tuple[float, ...] = (-1.0, 0.0, 1.0)
    return_channel: int = 0
    memory: MemoryConfig = field(default_factory=lambda: MemoryConfig(capacity=10_000))
    events: EventConfig = AGENT_EVENTS
    forecaster: str = "hmm"
    forecaster_options: Mapping[str, Any] = field(default_factory=lambda: {"max_iter": 50})
    chartist: str = "cnn"
    chartist_options: Mapping[str, Any] = field(
        default_factory=lambda: {"length": 32, "train_samples": 4096, "epochs": 4, "seed": 0}
    )
    cost_bps: float = DEFAULT_COST_BPS

    def __post_init__(self) -> None:
        for name, kind in (
            ("encoder", TransformerSpec),
            ("world_model", WorldModelConfig),
            ("memory", MemoryConfig),
            ("events", EventConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise AgentError(f"architecture {name} must be a {kind.__name__}")
        context = self.world_model.context_dim
        if context not in (0, CONTEXT_DIM):
            raise AgentError(
                f"architecture world_model.context_dim is set by the agent to {CONTEXT_DIM} "
                f"(the fields {list(CONTEXT_FIELDS)}), got {context}"
            )
        object.__setattr__(self, "world_model", replace(self.world_model, context_dim=CONTEXT_DIM))
        require_int("architecture ", self, 2, "window", error=AgentError)
        require_int("architecture ", self, 0, "return_channel", error=AgentError)
        if self.window > self.encoder.max_len:
            raise AgentError(
                f"architecture window {self.window} exceeds the encoder's max_len "
                f"{self.encoder.max_len}"
            )
        if self.return_channel >= self.encoder.input_dim:
            raise AgentError(
                f"architecture return_channel {self.return_channel} is not one of the encoder's "
                f"{self.encoder.input_dim} input channels"
            )
        positions = tuple(self.positions)
        if len(positions) < 2 or any(
            isinstance(p, bool) or not isinstance(p, Real) or not math.isfinite(p)
            for p in positions
        ):
            raise AgentError(f"architecture positions must be >= 2 numbers, got {self.positions!r}")
        if len(set(positions)) != len(positions):
            raise AgentError(f"architecture positions must be distinct, got {positions}")
        object.__setattr__(self, "positions", tuple(float(p) for p in positions))
        cost = self.cost_bps
        if isinstance(cost, bool) or not isinstance(cost, Real) or not 0 <= cost < 1e4:
            raise AgentError(f"architecture cost_bps must be in [0, 10000), got {cost!r}")
        object.__setattr__(self, "cost_bps", float(cost))
        for name in ("forecaster", "chartist"):
            if not isinstance(getattr(self, name), str):
                raise AgentError(f"architecture {name} must be a registry name (str)")
            options = getattr(self, f"{name}_options")
            try:
                plain = json.loads(json.dumps(dict(options)))
            except (TypeError, ValueError) as error:
                raise AgentError(
                    f"architecture {name}_options must be a JSON-able dict: {error}"
                ) from error
            object.__setattr__(self, f"{name}_options", plain)

    @property
    def num_actions(self) -> int:
        return len(self.positions)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; ``from_dict(json.loads(json.dumps(d)))`` rebuilds it."""
        return {
            "encoder": self.encoder.to_dict(),
            "world_model": self.world_model.to_dict(),
            "window": self.window,
            "positions": list(self.positions),
            "return_channel": self.return_channel,
            "memory": asdict(self.memory),
            "events": asdict(self.events) | {"criteria": list(self.events.criteria)},
            "forecaster": self.forecaster,
            "forecaster_options": dict(self.forecaster_options),
            "chartist": self.chartist,
            "chartist_options": dict(self.chartist_options),
            "cost_bps": self.cost_bps,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AgentArchitecture:
        """Strict inverse of ``to_dict``: unknown keys anywhere are errors."""
        values = _known(cls, data, "AgentArchitecture")
        if "encoder" not in values:
            raise AgentError("AgentArchitecture needs an encoder (a TransformerSpec dict)")
        try:
            values["encoder"] = TransformerSpec.from_dict(values["encoder"])
            if "world_model" in values:
                values["world_model"] = WorldModelConfig.from_dict(values["world_model"])
            if "memory" in values:
                values["memory"] = MemoryConfig(**_known(MemoryConfig, values["memory"], "memory"))
            if "events" in values:
                events = _known(EventConfig, values["events"], "events")
                if "criteria" in events:
                    events["criteria"] = tuple(events["criteria"])
                values["events"] = EventConfig(**events)
        except AgentError:
            raise
        except (TypeError, KeyError, ValueError, EpisodicMemoryError) as error:
            raise AgentError(f"AgentArchitecture: {error}") from error
        if "positions" in values:
            values["positions"] = tuple(values["positions"])
        return cls(**values)


def _known(cls: type[Any], data: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``data`` as a dict, with keys that ``cls`` does not have named in the error."""
    if not isinstance(data, Mapping):
        raise AgentError(f"{owner} must be a dict, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AgentError(f"unknown {owner} key(s): {unknown}; known: {sorted(known)}")
    return dict(data)
