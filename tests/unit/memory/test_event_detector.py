"""EventDetector: each criterion fires on its planted event, nothing fires on calm data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from evotrader.memory import (
    CRITERIA,
    EpisodicMemoryError,
    EventConfig,
    EventDetector,
    ExternalMemory,
    MemoryConfig,
)

N = 1000


def _calm(seed: int = 0) -> dict[str, np.ndarray]:
    """A quiet market: 1% daily moves, small P&L, three common actions, one regime."""
    rng = np.random.default_rng(seed)
    return {
        "returns": rng.normal(0.0, 0.01, N),
        "pnl": rng.normal(0.0, 0.002, N),
        "actions": rng.integers(3, size=N),
        "regimes": np.zeros(N, np.int64),
    }


def _flagged(events: Any, criterion: str) -> list[int]:
    return np.flatnonzero(events.flags[:, CRITERIA.index(criterion)]).tolist()


def test_calm_data_has_no_events() -> None:
    for seed in range(3):
        events = EventDetector().detect(**_calm(seed))
        assert events.flags.shape == (N, len(CRITERIA))
        assert not events.flags.any() and len(events.steps) == 0 and events.kinds == ()


def test_flash_crash_is_judged_against_trailing_volatility() -> None:
    data = _calm()
    returns = data["returns"]
    returns[500] = -0.08  # 8 sigma
    returns[5] = -0.08  # too early: fewer than min_vol_periods earlier returns
    returns[700:] *= 10  # a storm: its first moves are shocks, later ones are its normal
    returns[900] = -0.08
    events = EventDetector().detect(returns=returns)
    crashes = _flagged(events, "flash_crash")
    assert crashes[0] == 500 and all(700 <= step < 764 for step in crashes[1:])
    assert events.steps.tolist() == crashes and set(events.kinds) == {"flash_crash"}
    stricter = EventDetector(EventConfig(crash_sigma=9.0)).detect(returns=returns)
    assert 500 not in _flagged(stricter, "flash_crash")


def test_large_wins_losses_and_rare_outcomes() -> None:
    data = _calm()
    data["pnl"][[100, 200, 300]] = [0.05, -0.05, 0.012]  # 0.012: 6 sigma, under the 3% bar
    events = EventDetector().detect(pnl=data["pnl"])
    assert _flagged(events, "large_win") == [100]
    assert _flagged(events, "large_loss") == [200]
    assert _flagged(events, "rare_outcome") == [100, 200, 300]
    assert events.steps.tolist() == [100, 200, 300]
    assert events.kinds == ("large_win+rare_outcome", "large_loss+rare_outcome", "rare_outcome")


def test_regime_shifts_are_the_label_changes() -> None:
    regimes = np.repeat([0, 2, 2, 1], [300, 200, 100, 400])
    events = EventDetector().detect(regimes=regimes)
    assert _flagged(events, "regime_shift") == [300, 600]


def test_rare_actions_are_those_below_the_frequency_threshold() -> None:
    actions = _calm()["actions"]
    actions[[10, 400, 410, 800, 999]] = 3  # 0.5% of the steps, under the 2% bar
    events = EventDetector().detect(actions=torch.as_tensor(actions))
    assert _flagged(events, "rare_action") == [10, 400, 410, 800, 999]
    loose = EventDetector(EventConfig(rare_action_freq=0.004)).detect(actions=actions)
    assert not loose.flags.any()


def test_only_configured_criteria_and_given_inputs_are_checked() -> None:
    data = _calm()
    data["returns"][500], data["regimes"][600:] = -0.08, 1
    only_regimes = EventDetector(EventConfig(criteria=("regime_shift",))).detect(**data)
    assert only_regimes.steps.tolist() == [600] and only_regimes.kinds == ("regime_shift",)
    without_regimes = EventDetector().detect(returns=data["returns"], pnl=data["pnl"])
    assert without_regimes.steps.tolist() == [500]


def test_detected_events_feed_the_memory_with_their_kinds() -> None:
    data = _calm()
    data["returns"][500], data["pnl"][500] = -0.08, -0.05
    data["regimes"][600:] = 1
    events = EventDetector().detect(**data)
    embeddings = np.random.default_rng(1).standard_normal((N, 8))
    memory = ExternalMemory(8, MemoryConfig(capacity=100))
    ids = memory.store(
        embeddings[events.steps],
        data["pnl"][events.steps],
        [{"step": int(step)} for step in events.steps],
        kind=list(events.kinds),
    )
    recalled = memory.retrieve(embeddings[500], k=1)
    assert recalled.ids[0, 0] == ids[0] and recalled.metadata[0][0] == {"step": 500}
    assert recalled.kinds[0][0] == "flash_crash+large_loss+rare_outcome"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({}, "give at least one of"),
        ({"returns": np.zeros(5), "pnl": np.zeros(6)}, "differ in length"),
        ({"returns": np.zeros((5, 2))}, "returns: expected a non-empty 1-D array"),
        ({"pnl": ["a", "b"]}, "pnl: expected numbers"),
        ({"pnl": [0.0, np.inf]}, "pnl: step 1 is inf"),
    ],
)
def test_bad_input_is_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EpisodicMemoryError) as caught:
        EventDetector().detect(**kwargs)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"criteria": ("flash_crash", "meteor")}, "distinct names"),
        ({"criteria": ("large_win", "large_win")}, "distinct names"),
        ({"vol_window": 1}, "vol_window must be an int >= 2"),
        ({"min_vol_periods": 80}, "min_vol_periods (80) cannot exceed vol_window (64)"),
        ({"crash_sigma": 0}, "crash_sigma must be a number > 0"),
        ({"rare_outcome_freq": 1.5}, "rare_outcome_freq must be in (0, 1)"),
    ],
)
def test_config_is_validated(overrides: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EpisodicMemoryError) as caught:
        EventConfig(**overrides)
    assert fragment in str(caught.value)
