"""The think loop: every piece is used, batched equals per-sample, what-if and risk steer it."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from tests.unit.agents.helpers import WINDOW, Learned, learn_tiny, tiny_architecture

from evotrader.agents import CONTEXT_DIM, AgentError, AutonomousAgent
from evotrader.agents.agent_learning import embed
from evotrader.agents.thinking import rollout_uniforms, what_if_sharpe
from evotrader.backtest.engine import run_backtest
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec
from evotrader.env.execution import ExecutionModel
from evotrader.env.market_data import MarketData
from evotrader.models.world_model_training import horizon_samples
from evotrader.reasoning import PatternRecognizer, make_classifier, make_recognizer

LONG, FLAT, SHORT = 2, 1, 0


def windows(learned: Learned, n: int = 64) -> np.ndarray:
    """The first ``n`` validation windows, exactly as the backtest engine builds them."""
    bars = learned.bars.loc[: learned.splits.validation.index[-1]]
    market = MarketData.build(bars, learned.pipeline, WINDOW, ExecutionModel(), agent_state=False)
    first = int(bars.index.searchsorted(learned.splits.validation.index[0]))
    return np.ascontiguousarray(market.windows()[first - WINDOW + 1 :][:n])


def planted(agent: AutonomousAgent, drift: float) -> AutonomousAgent:
    """A copy whose policy head insists on flat and whose world model predicts a return of
    ``drift`` return-scale units per bar, whatever it sees."""
    clone = copy.deepcopy(agent)
    model = clone.world_model
    levels = model.levels
    normal = torch.special.ndtri(levels) * 0.2 + drift  # tight quantiles around the drift
    increments = torch.cat([normal[:1], torch.log(torch.expm1(normal.diff()))])
    with torch.no_grad():
        model.policy.weight.zero_()
        model.policy.bias.copy_(torch.tensor([0.0, 3.0, 0.0]))
        model.quantile_head.weight.zero_()
        model.quantile_head.bias.copy_(increments.repeat(model.config.horizon))
    return clone


def test_think_shapes_and_ranges(learned: Learned) -> None:
    obs = windows(learned, 32)
    thought = learned.agent.think(obs)
    assert thought.embedding.shape == (32, 16)
    assert thought.memory.shape == (32, 4) and thought.regime.shape == (32, 4)
    assert thought.pattern.shape == (32, 8) and thought.context.shape == (32, CONTEXT_DIM)
    assert thought.policy_logits.shape == thought.scores.shape == (32, 3)
    np.testing.assert_allclose(thought.regime.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(thought.pattern.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(thought.memory[:, 3] > 0)  # every window recalls something
    assert thought.actions.dtype == np.int64 and set(thought.actions) <= {0, 1, 2}
    assert np.array_equal(learned.agent.act(obs), thought.actions)


def test_memory_contents_change_the_context_and_the_logits(learned: Learned) -> None:
    obs = windows(learned)
    agent = copy.deepcopy(learned.agent)
    samples = horizon_samples(learned.splits.train, learned.pipeline, WINDOW, 2)
    keys = embed(agent, samples.obs)
    memories = []
    for sign in (1.0, -1.0):  # the same events under the same keys, opposite outcomes
        memory = agent.new_memory()
        memory.store(keys, sign * samples.targets[:, 0])
        memories.append(memory)
    agent.memory = memories[0]
    before = agent.think(obs)
    agent.memory = memories[1]
    after = agent.think(obs)
    assert np.abs(before.memory[:, 0]).max() > 0.1
    np.testing.assert_allclose(after.memory[:, 0], -before.memory[:, 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(after.memory[:, 1:], before.memory[:, 1:])
    assert not torch.allclose(after.policy_logits, before.policy_logits)


def test_regime_and_pattern_change_the_context_and_the_logits(learned: Learned) -> None:
    obs = windows(learned)
    before = learned.agent.think(obs)
    agent = copy.deepcopy(learned.agent)
    train = learned.pipeline.transform(learned.splits.train)[50:, 0]
    agent.forecaster = make_classifier("hmm", max_iter=5).fit(np.sign(train) * train**2)
    regime = agent.think(obs)
    assert not np.allclose(regime.regime, before.regime)
    assert np.array_equal(regime.memory, before.memory)
    assert not torch.allclose(regime.policy_logits, before.policy_logits)
    agent = copy.deepcopy(learned.agent)
    agent.chartist = make_recognizer("templates", length=16)
    pattern = agent.think(obs)
    assert not np.allclose(pattern.pattern, before.pattern)
    assert not torch.allclose(pattern.policy_logits, before.policy_logits)


def test_batched_act_equals_per_sample_act(learned: Learned) -> None:
    obs = windows(learned, 48)
    agent = learned.agent
    assert agent.hyperparameters.what_if_weight > 0  # the rollouts are part of the check
    batched = agent.act(obs)
    single = np.concatenate([agent.act(obs[i : i + 1]) for i in range(len(obs))])
    assert np.array_equal(batched, single)
    assert len(set(batched)) > 1  # not a constant policy, so the check has teeth


def test_act_is_deterministic_for_a_seed(learned: Learned, chartist: PatternRecognizer) -> None:
    obs = windows(learned)
    again, _ = learn_tiny(learned.bars, learned.splits, learned.pipeline, chartist)
    assert np.array_equal(again.act(obs), learned.agent.act(obs))
    mine, theirs = learned.agent.state_dict(), again.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    other, _ = learn_tiny(learned.bars, learned.splits, learned.pipeline, chartist, seed=1)
    assert not torch.equal(other.world_model.policy.weight, again.world_model.policy.weight)


def test_what_if_refinement_overrides_the_policy_in_a_planted_case(learned: Learned) -> None:
    obs = windows(learned, 16)
    up, down = planted(learned.agent, drift=2.0), planted(learned.agent, drift=-2.0)
    for agent in (up, down):
        agent.hyperparameters = replace(agent.hyperparameters, what_if_weight=0.0)
        assert np.all(agent.act(obs) == FLAT)  # the policy alone stays flat
        agent.hyperparameters = replace(agent.hyperparameters, what_if_weight=2.0)
    assert np.all(up.act(obs) == LONG)
    assert np.all(down.act(obs) == SHORT)
    thought = up.think(obs)
    assert torch.all(thought.what_if[:, FLAT] == 0)
    assert torch.all(thought.what_if[:, LONG] > 1.0) and torch.all(thought.what_if[:, SHORT] < -1.0)


def test_risk_scale_decides_how_readily_the_agent_leaves_flat(learned: Learned) -> None:
    obs = windows(learned)
    agent = copy.deepcopy(learned.agent)
    assert np.mean(agent.act(obs) != FLAT) > 0.5
    agent.hyperparameters = replace(agent.hyperparameters, risk_scale=1e-6)
    assert np.all(agent.act(obs) == FLAT)


def test_what_if_sharpe_matches_the_world_models_own_rollouts(learned: Learned) -> None:
    model = learned.agent.world_model
    obs = torch.as_tensor(windows(learned, 2))
    context = learned.agent.think(obs.numpy()).context
    positions = torch.tensor([-1.0, 0.0, 1.0])
    output = model(obs, context)
    uniform = rollout_uniforms(0, 20_000, 2)
    ours = what_if_sharpe(output.quantiles, model.levels, uniform, positions, 3e-4)
    generator = torch.Generator().manual_seed(5)
    for action in (0, 2):
        forecast = model.what_if(
            obs,
            [action, action],
            positions.tolist(),
            n_paths=20_000,
            context=context,
            generator=generator,
            cost_bps=3.0,
        )
        gain = forecast.samples.mean(dim=1) - 1
        theirs = gain / forecast.samples.std(dim=1, correction=0)
        torch.testing.assert_close(ours[:, action], theirs, atol=0.03, rtol=0.0)
    assert torch.all(ours[:, 1] == 0)


def test_the_backtest_engine_runs_the_agent_in_batches(learned: Learned) -> None:
    validation = learned.splits.validation
    bars = learned.bars.loc[: validation.index[-1]]
    result = run_backtest(
        learned.agent,
        bars,
        start=validation.index[0],
        pipeline=learned.pipeline,
        spec=EnvSpec(window=WINDOW, agent_state=False),
        batch_size=50,
    )
    assert len(result.positions) == len(validation)
    actions = learned.agent.act(windows(learned, len(validation) - 1))
    held = result.positions.to_numpy()[1:]
    assert np.array_equal(held, np.asarray(learned.agent.positions)[actions])


def test_bad_observations_are_named(learned: Learned) -> None:
    agent, obs = learned.agent, windows(learned, 4)
    with pytest.raises(AgentError, match=r"must have shape \(B >= 1, 16, 6\).*got \(16, 6\)"):
        agent.act(obs[0])
    with pytest.raises(AgentError, match=r"got \(4, 15, 6\)"):
        agent.act(obs[:, 1:])
    with pytest.raises(AgentError, match=r"got \(4, 16, 8\)"):
        agent.act(np.concatenate([obs, obs[:, :, :2]], axis=2))  # agent_state channels
    bad = obs.copy()
    bad[2, 5, 1] = np.nan
    with pytest.raises(AgentError, match=r"1 non-finite value\(s\).*first at \[2, 5, 1\]"):
        agent.act(bad)


def test_an_agent_that_has_not_learned_refuses_to_act(learned: Learned) -> None:
    agent = AutonomousAgent(tiny_architecture())
    with pytest.raises(AgentError, match="has not learned yet"):
        agent.act(windows(learned, 2))


def test_learn_refuses_a_pipeline_or_split_it_cannot_use(learned: Learned) -> None:
    agent = AutonomousAgent(tiny_architecture())
    other = FeaturePipeline(("gap", "log_return", "body", "range", "volatility", "volume_z"))
    other.fit(learned.splits.train)
    narrow = FeaturePipeline(("log_return",)).fit(learned.splits.train)
    with pytest.raises(AgentError, match="channel 0 is 'gap'"):
        agent.learn(learned.bars, other, learned.splits.train, seed=0)
    with pytest.raises(AgentError, match="encoder reads 6"):
        agent.learn(learned.bars, narrow, learned.splits.train, seed=0)
    foreign = learned.splits.train.set_axis(learned.splits.train.index + pd.Timedelta(hours=1))
    with pytest.raises(AgentError, match="must be a slice of bars"):
        agent.learn(learned.bars, learned.pipeline, foreign, seed=0)
    with pytest.raises(AgentError, match="contiguous"):
        agent.learn(learned.bars, learned.pipeline, learned.splits.train.iloc[::2], seed=0)
