"""Deflated Sharpe and PBO: luck is discounted, a planted edge survives."""

from __future__ import annotations

import numpy as np
import pytest

from evotrader.backtest.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)


def test_the_expected_best_of_many_lucky_candidates_grows_with_their_number() -> None:
    assert expected_max_sharpe(0.01, 1) == 0.0
    assert 0 < expected_max_sharpe(0.01, 10) < expected_max_sharpe(0.01, 1000)
    # Monte Carlo: the best of 50 zero-edge Sharpes with sd 0.1 averages about 0.22.
    draws = np.random.default_rng(0).normal(0, 0.1, size=(4000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(0.01, 50) == pytest.approx(draws, rel=0.05)


def test_dsr_keeps_a_real_edge_and_deflates_the_best_of_many_noise_candidates() -> None:
    rng = np.random.default_rng(1)
    edge = rng.normal(0.002, 0.01, 1000)  # per-period Sharpe 0.2 over 1000 periods
    assert deflated_sharpe_ratio(edge, trials=20, trial_sharpe_variance=0.03**2)["dsr"] > 0.99
    noise = rng.normal(0.0, 0.01, size=(1000, 200))
    sharpes = noise.mean(0) / noise.std(0, ddof=1)
    best = noise[:, int(np.argmax(sharpes))]
    raw = deflated_sharpe_ratio(best, trials=1, trial_sharpe_variance=sharpes.var())
    deflated = deflated_sharpe_ratio(best, trials=200, trial_sharpe_variance=sharpes.var())
    assert raw["dsr"] > 0.9  # taken alone, the lucky winner looks significant
    assert deflated["dsr"] < 0.5  # knowing 200 were tried, it does not


def test_pbo_is_near_one_half_for_noise_and_low_for_a_persistent_edge() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.01, size=(800, 16))
    assert 0.3 < probability_of_backtest_overfitting(noise) < 0.7
    edged = noise.copy()
    edged[:, 3] += 0.004
    assert probability_of_backtest_overfitting(edged) < 0.1


def test_pbo_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="matrix"):
        probability_of_backtest_overfitting(np.zeros(10))
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), splits=3)
    with pytest.raises(ValueError, match="too few"):
        probability_of_backtest_overfitting(np.zeros((10, 3)), splits=8)
