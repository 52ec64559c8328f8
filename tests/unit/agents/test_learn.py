"""learn: improves its objective, stores only training events, never looks ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tests.unit.agents.helpers import TINY, WINDOW, Learned, learn_tiny, tiny_architecture

from evotrader.agents import AGENT_EVENTS, AutonomousAgent, trading_objective
from evotrader.agents.agent_learning import learning_segment, sample_contexts
from evotrader.models.world_model_training import horizon_samples
from evotrader.reasoning import PatternRecognizer


def test_learn_improves_the_world_model_and_the_trading_objective(learned: Learned) -> None:
    report = learned.report
    assert report.world_model[-1]["pinball"] < report.world_model[0]["pinball"]
    assert len(report.fusion) == TINY.memory_epochs
    objective = report.policy_objective
    assert len(objective) == TINY.policy_epochs + 1
    assert abs(objective[0]) < 0.02  # a near-uniform policy holds almost nothing
    assert objective[-1] > objective[0] + 0.05  # in training sigmas per bar, after costs
    assert report.events == len(learned.agent.memory) > 0
    assert 0 < report.seconds < 60


def test_samples_are_the_training_windows_whose_targets_stay_inside_the_split(
    learned: Learned,
) -> None:
    train, pipeline = learned.splits.train, learned.pipeline
    first_decision = pipeline.warmup + WINDOW - 1
    assert learned.report.samples == len(train) - first_decision - 2  # horizon 2


def test_memory_holds_only_training_events_known_before_the_split_ends(learned: Learned) -> None:
    memory = learned.agent.memory
    everything = memory.retrieve(np.ones(memory.dim, np.float32), len(memory))
    times = pd.DatetimeIndex([meta["time"] for meta in everything.metadata[0]])
    train = learned.splits.train.index
    assert times.min() >= train[0] and times.max() <= train[-3]  # next 2 returns known
    parts = {part for kind in everything.kinds[0] for part in kind.split("+")}
    assert "regime_shift" in parts and parts <= set(AGENT_EVENTS.criteria)


def test_bars_after_the_training_split_do_not_change_what_is_learned(
    learned: Learned, chartist: PatternRecognizer
) -> None:
    altered = learned.bars.copy()
    later = altered.index > learned.splits.train.index[-1]
    altered.loc[later, ["open", "high", "low", "close"]] *= 1.5
    agent, _ = learn_tiny(altered, learned.splits, learned.pipeline, chartist)
    mine, theirs = learned.agent.state_dict(), agent.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[key], theirs[key]) for key in mine)


def test_training_contexts_recall_only_events_already_known(learned: Learned) -> None:
    agent = learned.agent
    segment, _ = learning_segment(learned.bars, learned.splits.train, learned.pipeline, WINDOW)
    samples = horizon_samples(segment, learned.pipeline, WINDOW, 2)
    decision_bars = segment.index.get_indexer(samples.decisions)
    memory = agent.memory
    everything = memory.retrieve(np.ones(memory.dim, np.float32), len(memory))
    event_bars = np.empty(len(memory), np.int64)
    times = [meta["time"] for meta in everything.metadata[0]]
    event_bars[everything.ids[0]] = segment.index.get_indexer(pd.DatetimeIndex(times))
    causal, _ = sample_contexts(agent, samples.obs, decision_bars, event_bars=event_bars)
    free, _ = sample_contexts(agent, samples.obs, decision_bars)
    known = (event_bars[None, :] < decision_bars[:, None]).sum(axis=1)
    k = agent.hyperparameters.memory_k
    np.testing.assert_allclose(causal[:, 3], np.minimum(known, k) / k)
    assert causal[0, 3] == 0 and np.all(free[:, 3] == 1)  # the unfiltered recall would cheat


def test_a_later_fold_learns_from_its_own_bars_with_history_before_it(
    learned: Learned, chartist: PatternRecognizer
) -> None:
    fold = learned.bars.iloc[300:600]
    segment, first = learning_segment(learned.bars, fold, learned.pipeline, WINDOW)
    assert segment.index[first] == fold.index[0] and segment.index[-1] == fold.index[-1]
    assert first == learned.pipeline.warmup + WINDOW - 1  # just enough history for one window
    agent = AutonomousAgent(tiny_architecture(), TINY, chartist=chartist)
    report = agent.learn(learned.bars, learned.pipeline, fold, seed=0)
    assert report.samples == len(fold) - 2


def test_trading_objective_rewards_exposure_times_return_and_charges_turnover() -> None:
    positions = torch.tensor([-1.0, 0.0, 1.0])
    logits = torch.tensor([[0.0, 0.0, 50.0], [50.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    returns = torch.tensor([1.0, -2.0, 0.5])
    value = trading_objective(logits, positions, returns, cost=0.1)
    # exposures 1, -1, -1: gains 1 + 2 - 0.5, one change of size 2 costs 0.2
    torch.testing.assert_close(value, torch.tensor((2.5 - 0.2) / 3))
