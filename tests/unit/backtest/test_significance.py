"""Edges are judged against buy-and-hold on the same bars, each figure on its named split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.overfitting import expected_max_sharpe, probabilistic_sharpe_ratio
from evotrader.backtest.significance import (
    TEST,
    VALIDATION,
    bar_returns,
    edge_on_test,
    edge_on_validation,
    excess_returns,
    verdict,
)

BARS = 500


def _equity(returns: np.ndarray) -> pd.Series:
    index = pd.date_range("2020-01-01", periods=len(returns) + 1, freq="B")
    return pd.Series(100_000 * np.cumprod(np.concatenate([[1.0], 1 + returns])), index=index)


def _drifting_market(seed: int = 0) -> np.ndarray:
    """A random walk with drift: buy-and-hold's per-bar Sharpe about 0.15 (2.4 a year)."""
    return np.random.default_rng(seed).normal(0.0015, 0.01, BARS)


def test_bar_returns_stop_at_ruin() -> None:
    returns = bar_returns(np.array([100.0, 110.0, 0.0, 0.0]))
    assert returns == pytest.approx([0.1, -1.0, 0.0])


def test_holding_the_benchmark_is_no_edge_however_high_its_sharpe() -> None:
    market = _drifting_market()
    assert probabilistic_sharpe_ratio(market.mean() / market.std(ddof=1), BARS) > 0.95
    equity = _equity(market)
    test = edge_on_test(excess_returns(equity, equity.copy()))
    assert test.sharpe == 0.0 and test.p_value == 1.0 and not test.significant
    assert test.split == TEST and test.trials == 1


def test_mostly_long_after_costs_is_no_edge_over_the_drift() -> None:
    market = _drifting_market(1)
    strategy = market.copy()
    strategy[::50] -= 0.001  # the champion "held long 99% of the time" and paid for a few trades
    test = edge_on_test(excess_returns(_equity(strategy), _equity(market)))
    assert test.sharpe < 0 and not test.significant


def test_a_timing_edge_over_the_benchmark_is_significant_on_test() -> None:
    rng = np.random.default_rng(2)
    market = _drifting_market(2)
    strategy = market + rng.normal(0.002, 0.01, BARS)  # per-bar excess Sharpe about 0.2
    test = edge_on_test(excess_returns(_equity(strategy), _equity(market)))
    assert test.significant and test.p_value < 0.001
    assert test.p_value == pytest.approx(1 - test.probability)


def test_excess_needs_the_same_bars() -> None:
    equity = _equity(_drifting_market())
    with pytest.raises(ValueError, match="different bars"):
        excess_returns(equity, equity.iloc[1:])


def test_near_identical_candidates_cannot_make_the_deflation_vanish() -> None:
    """Forty candidates that all trade like the champion: their excess Sharpes barely differ,
    but forty tries still inflate the best, so the threshold keeps the sampling variance of a
    zero-edge Sharpe over these bars, 1 / (T - 1)."""
    rng = np.random.default_rng(3)
    champion = rng.normal(0.0009, 0.01, BARS)  # per-bar excess Sharpe about 0.09
    candidates = [champion + rng.normal(0, 1e-6, BARS) for _ in range(39)] + [champion]
    selection = edge_on_validation(champion, candidates)
    assert selection.split == VALIDATION and selection.trials == 40
    assert selection.threshold == pytest.approx(expected_max_sharpe(1 / (BARS - 1), 40))
    alone = edge_on_test(champion)
    assert alone.significant  # taken alone it would pass ...
    assert selection.probability < 0.95 < alone.probability  # ... but not as the best of 40


def test_spread_out_candidates_deflate_by_their_own_variance() -> None:
    rng = np.random.default_rng(4)
    candidates = [rng.normal(mean, 0.01, BARS) for mean in np.linspace(-0.003, 0.003, 20)]
    sharpes = [c.mean() / c.std(ddof=1) for c in candidates]
    selection = edge_on_validation(candidates[-1], candidates)
    assert np.var(sharpes, ddof=1) > 1 / (BARS - 1)
    assert selection.threshold == pytest.approx(
        expected_max_sharpe(float(np.var(sharpes, ddof=1)), 20)
    )
    with pytest.raises(ValueError, match="no candidates"):
        edge_on_validation(candidates[0], [])


def test_the_verdict_names_the_test_split_its_p_value_and_the_trials() -> None:
    market = _drifting_market()
    equity = _equity(market)
    line = verdict(edge_on_test(excess_returns(equity, equity.copy())), 44)
    assert line == (
        "edge over buy-and-hold: not significant (p=1.000, test split, 44 trials behind selection)"
    )
    strategy = market + np.random.default_rng(5).normal(0.002, 0.01, BARS)
    edge = edge_on_test(excess_returns(_equity(strategy), equity))
    assert verdict(edge, 3).startswith("edge over buy-and-hold: significant (p=0.000, test split")
    with pytest.raises(ValueError, match="test split"):
        verdict(edge_on_validation(strategy - market, [strategy - market]), 1)
