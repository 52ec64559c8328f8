"""Agent genome and knobs: validated on construction, exact JSON round trips, clear errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tests.unit.agents.helpers import tiny_architecture

from evotrader.agents import CONTEXT_DIM, AgentArchitecture, AgentError, AgentHyperparameters
from evotrader.memory import MemoryConfig
from evotrader.models.world_model import WorldModelConfig


def test_hyperparameters_round_trip_through_json() -> None:
    hp = AgentHyperparameters(lr=1e-3, batch_size=32, memory_k=4, risk_scale=0.5)
    assert AgentHyperparameters.from_dict(json.loads(json.dumps(hp.to_dict()))) == hp


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0.0}, "lr must be > 0"),
        ({"risk_scale": -1.0}, "risk_scale must be > 0"),
        ({"turnover_penalty": -0.1}, "turnover_penalty must be >= 0"),
        ({"memory_k": 0}, "memory_k must be an int >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an int"),
        ({"epochs": True}, "epochs must be an int"),
        ({"what_if_weight": float("nan")}, "what_if_weight must be a finite number"),
    ],
)
def test_bad_hyperparameters_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(AgentError, match=message):
        AgentHyperparameters(**changes)  # type: ignore[arg-type]


def test_unknown_hyperparameter_keys_are_refused() -> None:
    with pytest.raises(AgentError, match=r"unknown AgentHyperparameters key\(s\): \['lr_x'\]"):
        AgentHyperparameters.from_dict({"lr_x": 1.0})


def test_architecture_round_trips_through_json_and_sets_the_context_width() -> None:
    arch = tiny_architecture(memory=MemoryConfig(index="hnsw", capacity=500, metric="l2"))
    assert arch.world_model.context_dim == CONTEXT_DIM
    rebuilt = AgentArchitecture.from_dict(json.loads(json.dumps(arch.to_dict())))
    assert rebuilt == arch
    assert rebuilt.to_dict() == arch.to_dict()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": 64}, "window 64 exceeds the encoder's max_len 16"),
        ({"return_channel": 6}, "return_channel 6 is not one of the encoder's 6"),
        ({"positions": (0.0, 0.0, 1.0)}, "positions must be distinct"),
        ({"positions": (1.0,)}, "positions must be >= 2 numbers"),
        ({"cost_bps": -1.0}, "cost_bps must be in"),
        ({"world_model": WorldModelConfig(context_dim=3)}, "context_dim is set by the agent"),
        ({"forecaster_options": {"bad": object()}}, "forecaster_options must be a JSON-able"),
    ],
)
def test_bad_architectures_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(AgentError, match=message):
        tiny_architecture(**changes)


def test_unknown_architecture_keys_are_refused_at_any_depth() -> None:
    data = tiny_architecture().to_dict()
    with pytest.raises(AgentError, match="unknown AgentArchitecture key"):
        AgentArchitecture.from_dict(data | {"heads": 3})
    with pytest.raises(AgentError, match="unknown memory key"):
        AgentArchitecture.from_dict(data | {"memory": {"index": "flat", "size": 3}})
    with pytest.raises(AgentError, match="unknown TransformerSpec key"):
        AgentArchitecture.from_dict(data | {"encoder": data["encoder"] | {"depth": 2}})


def test_a_mutated_genome_is_validated_again() -> None:
    arch = tiny_architecture()
    wider = replace(arch, encoder=replace(arch.encoder, model_dim=32, num_heads=4))
    assert wider.encoder.model_dim == 32 and wider.world_model.context_dim == CONTEXT_DIM
    with pytest.raises(AgentError, match="window 32 exceeds the encoder's max_len 16"):
        replace(arch, window=32)
