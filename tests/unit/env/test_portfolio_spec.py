"""Action projection: every action form gives valid target weights, exactly where it must."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from evotrader.env import PortfolioSpec

POSITIONS = np.array([-1.0, 0.0, 1.0])
ASSETS = 5


def test_long_only_weights_lie_on_the_simplex_with_cash() -> None:
    spec = PortfolioSpec("long_only")
    scores = np.random.default_rng(0).normal(size=(2000, ASSETS + 1))
    weights = spec.weights(scores, ASSETS, POSITIONS)
    positive = np.maximum(scores, 0.0)
    cash = positive[:, -1] / np.where(positive.sum(axis=1) > 0, positive.sum(axis=1), 1.0)
    held = positive.sum(axis=1) > 0
    assert weights.shape == (2000, ASSETS)
    assert (weights >= 0).all() and (weights <= 1).all()
    np.testing.assert_allclose(weights.sum(axis=1)[held] + cash[held], 1.0, rtol=1e-12)
    assert (weights[scores[:, :ASSETS] <= 0] == 0).all()  # a non-positive score holds nothing
    np.testing.assert_allclose(spec.weights(scores * 7.0, ASSETS, POSITIONS), weights)


def test_long_only_zero_scores_mean_all_cash_and_one_hot_is_exact() -> None:
    spec = PortfolioSpec("long_only")
    assert not spec.weights(np.zeros(ASSETS + 1), ASSETS, POSITIONS).any()
    assert not spec.weights(-np.ones(ASSETS + 1), ASSETS, POSITIONS).any()
    one_hot = np.eye(ASSETS + 1)[2]
    assert spec.weights(one_hot, ASSETS, POSITIONS).tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    half = spec.weights(np.array([0.5, 0.0, 0.0, 0.0, 0.0, 0.5]), ASSETS, POSITIONS)
    assert half.tolist() == [0.5, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("max_gross", [0.5, 1.0, 2.0])
def test_long_short_gross_exposure_never_exceeds_the_limit(max_gross: float) -> None:
    spec = PortfolioSpec("long_short", max_gross=max_gross)
    actions = np.random.default_rng(1).normal(scale=0.6, size=(2000, ASSETS))
    weights = spec.weights(actions, ASSETS, POSITIONS)
    clipped = np.clip(actions, -max_gross, max_gross)
    gross = np.abs(clipped).sum(axis=1)
    assert (np.abs(weights).sum(axis=1) <= max_gross * (1 + 1e-12)).all()
    within = gross <= max_gross
    assert within.any() and (~within).any()
    assert np.array_equal(weights[within], clipped[within])  # bit for bit under the limit
    ratio = weights[~within] / clipped[~within]  # over it: the same direction, scaled down
    np.testing.assert_allclose(ratio, (max_gross / gross[~within])[:, None] * np.ones(ASSETS))


def test_discrete_picks_positions_and_limits_gross() -> None:
    one = PortfolioSpec("discrete")
    for index, position in enumerate(POSITIONS):
        assert one.weights(np.array([index]), 1, POSITIONS).tolist() == [position]
    spec = PortfolioSpec("discrete", max_gross=1.0)
    weights = spec.weights(np.array([2, 0, 1, 2]), 4, POSITIONS)
    np.testing.assert_allclose(weights, [1 / 3, -1 / 3, 0.0, 1 / 3])
    wide = PortfolioSpec("discrete", max_gross=4.0)
    assert wide.weights(np.array([2, 0, 1, 2]), 4, POSITIONS).tolist() == [1.0, -1.0, 0.0, 1.0]


@pytest.mark.parametrize("action", ["long_only", "long_short", "discrete"])
def test_a_batch_projects_as_its_rows_do(action: str) -> None:
    spec = PortfolioSpec(action, max_gross=1.5)
    space = spec.action_space(ASSETS, POSITIONS.tolist())
    space.seed(3)
    batch = np.stack([space.sample() for _ in range(64)])
    weights = spec.weights(batch, ASSETS, POSITIONS)
    for row, expected in zip(batch, weights, strict=True):
        assert np.array_equal(spec.weights(row, ASSETS, POSITIONS), expected)


def test_action_spaces() -> None:
    assert PortfolioSpec("long_only").action_space(3, [0.0, 1.0]).shape == (4,)
    box = PortfolioSpec("long_short", max_gross=2).action_space(3, [0.0, 1.0])
    assert isinstance(box, gym.spaces.Box)
    assert box.shape == (3,) and box.low.min() == -2.0 and box.high.max() == 2.0
    discrete = PortfolioSpec("discrete").action_space(3, [-1.0, 0.0, 0.5, 1.0])
    assert isinstance(discrete, gym.spaces.MultiDiscrete)
    assert discrete.nvec.tolist() == [4, 4, 4]


def test_bad_settings_and_actions_are_named() -> None:
    with pytest.raises(ValueError, match="portfolio action must be one of"):
        PortfolioSpec("shorts")
    with pytest.raises(ValueError, match="portfolio max_gross must be positive, got 0"):
        PortfolioSpec("long_short", max_gross=0)
    with pytest.raises(ValueError, match=r"long_only action for 5 assets needs 6 values"):
        PortfolioSpec().weights(np.ones(5), ASSETS, POSITIONS)
    with pytest.raises(ValueError, match="long_short action must be finite"):
        PortfolioSpec("long_short").weights(np.array([0.1, np.nan]), 2, POSITIONS)
    with pytest.raises(ValueError, match=r"integer indices in \[0, 3\), got \[1, 3\]"):
        PortfolioSpec("discrete").weights(np.array([1, 3]), 2, POSITIONS)
    with pytest.raises(ValueError, match="integer indices"):
        PortfolioSpec("discrete").weights(np.array([0.0, 1.0]), 2, POSITIONS)


def test_settings_round_trip_and_unknown_keys_are_named() -> None:
    spec = PortfolioSpec("long_short", max_gross=2)
    assert PortfolioSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict() == {"action": "long_short", "max_gross": 2.0}
    with pytest.raises(ValueError, match=r"unknown keys \['gross'\], missing keys \['max_gross'\]"):
        PortfolioSpec.from_dict({"action": "long_only", "gross": 1.0})
