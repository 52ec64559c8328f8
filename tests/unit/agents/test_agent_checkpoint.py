"""One self-contained checkpoint file rebuilds an agent that acts exactly like the saved one."""

from __future__ import annotations

import copy
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.unit.agents.helpers import WINDOW, Learned, learn_tiny, tiny_architecture

from evotrader.agents import AgentError, AutonomousAgent
from evotrader.agents.loading import policy_from_checkpoint
from evotrader.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from evotrader.env import EnvSpec
from evotrader.memory import EpisodicMemoryError, ExternalMemory
from evotrader.reasoning import PatternRecognizer

ENV = EnvSpec(window=WINDOW, agent_state=False)


def observations(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, WINDOW, 6)).astype(np.float32)


def assert_same_thoughts(a: AutonomousAgent, b: AutonomousAgent, obs: np.ndarray) -> None:
    mine, theirs = a.think(obs), b.think(obs)
    assert np.array_equal(mine.actions, theirs.actions)
    assert torch.equal(mine.scores, theirs.scores)
    assert np.array_equal(mine.memory, theirs.memory)
    assert np.array_equal(mine.regime, theirs.regime)
    assert np.array_equal(mine.pattern, theirs.pattern)


def test_checkpoint_round_trip_acts_exactly_like_the_saved_agent(
    learned: Learned, tmp_path: Path
) -> None:
    checkpoint = learned.agent.to_checkpoint(
        learned.pipeline, env=ENV, symbol="AR1", metrics={"sharpe": 1.0}
    )
    path = save_checkpoint(checkpoint, tmp_path / "AR1_autonomous_final.pth")
    loaded = load_checkpoint(path)
    assert loaded.kind == "autonomous" and loaded.hyperparameters["seed"] == 0
    assert loaded.state_dict["memory.archive"].dtype == torch.uint8
    agent = policy_from_checkpoint(loaded)
    assert isinstance(agent, AutonomousAgent)
    assert len(agent.memory) == len(learned.agent.memory) > 0
    assert agent.hyperparameters == learned.agent.hyperparameters
    assert_same_thoughts(agent, learned.agent, observations())


def test_same_seed_checkpoints_hold_byte_identical_tensors(
    learned: Learned, chartist: PatternRecognizer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Learning again with the same seed, and saving on another day, changes no tensor byte."""
    again, _ = learn_tiny(learned.bars, learned.splits, learned.pipeline, chartist)
    two_days_later = time.time() + 2 * 86_400
    files = []
    for agent in (learned.agent, again):
        checkpoint = agent.to_checkpoint(learned.pipeline, env=ENV, symbol="AR1")
        files.append(save_checkpoint(checkpoint, tmp_path / f"{len(files)}.pth"))
        monkeypatch.setattr(time, "time", lambda: two_days_later)
    first, second = (load_checkpoint(path).state_dict for path in files)
    assert list(first) == list(second)
    for name, tensor in first.items():
        assert tensor.dtype == second[name].dtype and tensor.shape == second[name].shape, name
        assert tensor.numpy().tobytes() == second[name].numpy().tobytes(), name


def test_copies_and_pickles_act_alike(learned: Learned) -> None:
    obs = observations()
    assert_same_thoughts(copy.deepcopy(learned.agent), learned.agent, obs)
    assert_same_thoughts(pickle.loads(pickle.dumps(learned.agent)), learned.agent, obs)


def test_an_unlearned_agent_round_trips_and_still_refuses_to_act() -> None:
    agent = AutonomousAgent(tiny_architecture(), seed=3)
    rebuilt = AutonomousAgent.from_architecture(agent.architecture())
    rebuilt.load_state_dict(agent.state_dict())
    assert not rebuilt.fitted
    assert torch.equal(rebuilt.world_model.policy.weight, agent.world_model.policy.weight)
    with pytest.raises(AgentError, match="has not learned yet"):
        rebuilt.act(np.zeros((1, WINDOW, 6), np.float32))


def test_damaged_or_foreign_states_are_named(learned: Learned) -> None:
    state = learned.agent.state_dict()
    fresh = AutonomousAgent.from_architecture(learned.agent.architecture())
    with pytest.raises(AgentError, match=r"unknown keys \['extra'\]"):
        fresh.load_state_dict(state | {"extra": torch.zeros(1)})
    with pytest.raises(AgentError, match=r"missing key 'memory\.archive'"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "memory.archive"})
    with pytest.raises(AgentError, match="memory archive \\(bytes\\): not a memory archive"):
        fresh.load_state_dict(state | {"memory.archive": torch.zeros(10, dtype=torch.uint8)})
    with pytest.raises(AgentError, match="uint8"):
        fresh.load_state_dict(state | {"forecaster.state": torch.zeros(3)})
    wider = replace(tiny_architecture(), encoder=replace(tiny_architecture().encoder, ff_dim=48))
    with pytest.raises(AgentError, match="world model weights do not fit"):
        AutonomousAgent(wider).load_state_dict(state)
    with pytest.raises(AgentError, match="unknown autonomous architecture key"):
        AutonomousAgent.from_architecture(learned.agent.architecture() | {"genes": 1})


def test_policy_from_checkpoint_names_a_broken_autonomous_file(
    learned: Learned, tmp_path: Path
) -> None:
    checkpoint = learned.agent.to_checkpoint(learned.pipeline, env=ENV, symbol="AR1")
    broken = replace(checkpoint, state_dict={"memory.archive": torch.zeros(4, dtype=torch.uint8)})
    with pytest.raises(CheckpointError, match="do not fit its 'autonomous' architecture"):
        policy_from_checkpoint(broken)


def test_to_checkpoint_refuses_an_env_the_agent_cannot_trade(learned: Learned) -> None:
    with pytest.raises(AgentError, match="must match the agent"):
        learned.agent.to_checkpoint(learned.pipeline, env=EnvSpec(window=WINDOW), symbol="X")
    with pytest.raises(AgentError, match="must match the agent"):
        learned.agent.to_checkpoint(
            learned.pipeline, env=replace(ENV, positions=[0.0, 1.0]), symbol="X"
        )


def test_the_memory_travels_as_bytes_with_every_event(learned: Learned) -> None:
    memory = learned.agent.memory
    copy_ = ExternalMemory.from_bytes(memory.to_bytes())
    query = np.random.default_rng(1).standard_normal((5, memory.dim)).astype(np.float32)
    mine, theirs = memory.retrieve(query, 8), copy_.retrieve(query, 8)
    assert np.array_equal(mine.ids, theirs.ids) and np.array_equal(mine.scores, theirs.scores)
    assert mine.metadata == theirs.metadata and mine.kinds == theirs.kinds
    with pytest.raises(EpisodicMemoryError, match=r"memory archive \(bytes\): not a memory"):
        ExternalMemory.from_bytes(memory.to_bytes()[:100])
