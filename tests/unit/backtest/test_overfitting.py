"""Deflated Sharpe and PBO: the paper's numbers, luck discounted, a planted edge kept, ties
never read as overfitting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evotrader.backtest.overfitting import (
    SharpeEstimate,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)


def test_the_expected_best_of_many_lucky_candidates_grows_with_their_number() -> None:
    assert expected_max_sharpe(0.01, 1) == 0.0
    assert 0 < expected_max_sharpe(0.01, 10) < expected_max_sharpe(0.01, 1000)
    # Monte Carlo: the best of 50 zero-edge Sharpes with sd 0.1 averages about 0.22.
    draws = np.random.default_rng(0).normal(0, 0.1, size=(4000, 50)).max(axis=1).mean()
    assert expected_max_sharpe(0.01, 50) == pytest.approx(draws, rel=0.05)


def test_dsr_reproduces_the_papers_worked_example() -> None:
    """Bailey and Lopez de Prado (2014), "The Deflated Sharpe Ratio", numerical example.

    N = 100 independent trials whose Sharpe ratios have variance 1/2 annualised, i.e.
    0.5 / 250 per day; the selected strategy has an annualised Sharpe of 2.5 (2.5 / sqrt(250)
    per day) over T = 1250 daily returns with skewness -3 and kurtosis 10. The paper finds
    an expected maximum Sharpe SR_0 = 0.1132 per day (about 1.79 annualised) and DSR = 0.9004:
    not significant at 95% although the plain PSR against 0 is almost 1.
    """
    threshold = expected_max_sharpe(0.5 / 250, trials=100)
    assert threshold == pytest.approx(0.1132, abs=5e-5)
    assert threshold * math.sqrt(250) == pytest.approx(1.79, abs=5e-3)
    sharpe = 2.5 / math.sqrt(250)
    dsr = probabilistic_sharpe_ratio(sharpe, 1250, skew=-3.0, kurtosis=10.0, threshold=threshold)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    assert probabilistic_sharpe_ratio(sharpe, 1250, skew=-3.0, kurtosis=10.0) > 0.9999


def test_negative_skew_and_fat_tails_lower_the_probabilistic_sharpe() -> None:
    normal = probabilistic_sharpe_ratio(0.05, 500)
    assert probabilistic_sharpe_ratio(0.05, 500, skew=-2.0, kurtosis=8.0) < normal
    assert probabilistic_sharpe_ratio(0.0, 500) == pytest.approx(0.5)


def test_sharpe_estimate_reads_the_moments_and_refuses_to_test_a_flat_series() -> None:
    returns = np.random.default_rng(4).normal(0.001, 0.01, 400)
    estimate = SharpeEstimate.of(returns)
    assert estimate is not None and estimate.observations == 400
    assert estimate.sharpe == pytest.approx(returns.mean() / returns.std(ddof=1))
    assert estimate.kurtosis == pytest.approx(3.0, abs=0.5)  # plain kurtosis, not excess
    assert SharpeEstimate.of(np.full(400, 0.001)) is None
    with pytest.raises(ValueError, match="finite"):
        SharpeEstimate.of(np.array([0.01, np.nan, 0.02, 0.0]))


def _dsr(returns: np.ndarray, trials: int, trial_sharpe_variance: float) -> float:
    estimate = SharpeEstimate.of(returns)
    assert estimate is not None
    return estimate.probability_above(expected_max_sharpe(trial_sharpe_variance, trials))


def test_dsr_keeps_a_real_edge_and_deflates_the_best_of_many_noise_candidates() -> None:
    rng = np.random.default_rng(1)
    edge = rng.normal(0.002, 0.01, 1000)  # per-period Sharpe 0.2 over 1000 periods
    assert _dsr(edge, trials=20, trial_sharpe_variance=0.03**2) > 0.99
    noise = rng.normal(0.0, 0.01, size=(1000, 200))
    sharpes = noise.mean(0) / noise.std(0, ddof=1)
    best = noise[:, int(np.argmax(sharpes))]
    raw = _dsr(best, trials=1, trial_sharpe_variance=sharpes.var())
    deflated = _dsr(best, trials=200, trial_sharpe_variance=sharpes.var())
    assert raw > 0.9  # taken alone, the lucky winner looks significant
    assert deflated < 0.5  # knowing 200 were tried, it does not


def test_pbo_is_near_one_half_for_noise_and_low_for_a_persistent_edge() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.01, size=(800, 16))
    pbo = probability_of_backtest_overfitting(noise)
    assert pbo.value is not None and 0.3 < pbo.value < 0.7
    assert pbo.candidates == 16 and pbo.dropped_rows == 0
    edged = noise.copy()
    edged[:, 3] += 0.004
    edged_pbo = probability_of_backtest_overfitting(edged).value
    assert edged_pbo is not None and edged_pbo < 0.1


def test_identical_candidates_are_one_strategy_and_leave_pbo_undefined() -> None:
    series = np.random.default_rng(3).normal(0, 0.01, 400)
    tied = np.column_stack([series] * 5)  # e.g. five members that all hold long throughout
    pbo = probability_of_backtest_overfitting(tied)
    assert pbo.value is None  # the old code read this as 1.0, "certainly overfit"
    assert pbo.candidates == 1
    assert "5 candidate(s) with 1 distinct" in pbo.reason
    assert pbo.describe().startswith("PBO undefined: ")


def test_candidates_that_never_differ_out_of_sample_leave_pbo_undefined() -> None:
    series = np.random.default_rng(5).normal(0, 0.01, 400)
    leveraged = np.column_stack([series, 2 * series])  # same timing, twice the size
    pbo = probability_of_backtest_overfitting(leveraged)
    assert pbo.value is None and pbo.candidates == 2
    assert "never differ on a held-back half" in pbo.reason


def test_ties_count_as_half_and_column_order_does_not_matter() -> None:
    """Two candidates, equal in the newer block, the first worse in the older one.

    With the older block in-sample, the better one wins and ties on the newer (logit 0:
    half); with the newer block in-sample, both tie for the win and each is picked half the
    time (one lands below the median, one above). PBO is 0.5 whichever column comes first;
    counting logit 0 as overfit and breaking ties by column order gave 1.0.
    """
    rng = np.random.default_rng(6)
    shared = rng.normal(0, 0.01, 100)
    worse = np.concatenate([rng.normal(-0.002, 0.01, 100), shared])
    better = np.concatenate([rng.normal(0.002, 0.01, 100), shared])
    for matrix in (np.column_stack([worse, better]), np.column_stack([better, worse])):
        assert probability_of_backtest_overfitting(matrix, splits=2).value == 0.5


def test_cscv_blocks_are_equal_and_the_oldest_leftover_rows_are_dropped() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.normal(0, 0.01, size=(8 * 20 + 5, 6))
    pbo = probability_of_backtest_overfitting(matrix, splits=8)
    assert pbo.dropped_rows == 5
    assert "8 blocks of 20 periods" in pbo.reason and "oldest 5 periods dropped" in pbo.reason
    assert pbo.value == probability_of_backtest_overfitting(matrix[5:], splits=8).value
    rigged = matrix.copy()
    rigged[:5, 0] = 0.5  # the leftover rows cannot sway the result, however extreme
    assert probability_of_backtest_overfitting(rigged, splits=8).value == pbo.value


def test_pbo_is_undefined_when_the_blocks_are_too_short() -> None:
    pbo = probability_of_backtest_overfitting(np.random.default_rng(8).normal(size=(10, 3)))
    assert pbo.value is None and "too few" in pbo.reason


def test_pbo_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="matrix"):
        probability_of_backtest_overfitting(np.zeros(10))
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 3)), splits=3)
    with pytest.raises(ValueError, match="finite"):
        probability_of_backtest_overfitting(np.full((100, 3), np.nan))
