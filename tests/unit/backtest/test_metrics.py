"""Backtest metrics against values worked out by hand on tiny series."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.metrics import (
    TRADE_COLUMNS,
    format_comparison,
    performance_metrics,
    periods_per_year,
    round_trips,
    summarize,
    trade_metrics,
)

PPY = 252.0


def _equity(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="D"))


# --- periods_per_year ---------------------------------------------------------------------


def test_periods_per_year_exact_on_year_long_span() -> None:
    # 5 timestamps spanning exactly one 365.25-day year -> 4 bars per year.
    index = pd.date_range("2020-01-01", periods=5, freq=pd.Timedelta(days=365.25 / 4))
    assert periods_per_year(index) == pytest.approx(4.0)


def test_periods_per_year_business_days() -> None:
    index = pd.bdate_range("2021-01-01", "2022-12-31")
    span_days = (index[-1] - index[0]).days
    assert periods_per_year(index) == pytest.approx((len(index) - 1) * 365.25 / span_days)
    assert 255 < periods_per_year(index) < 265  # ~261 weekdays a year


def test_periods_per_year_hourly_fx() -> None:
    hours = pd.date_range("2023-01-02", "2023-12-29 23:00", freq="h")
    index = hours[hours.dayofweek < 5]  # FX trades 24 hours, 5 days a week
    assert 6000 < periods_per_year(index) < 6400


def test_periods_per_year_needs_two_distinct_timestamps() -> None:
    with pytest.raises(ValueError, match="at least 2 timestamps"):
        periods_per_year(pd.DatetimeIndex(["2024-01-01"]))
    with pytest.raises(ValueError, match="increasing"):
        periods_per_year(pd.DatetimeIndex(["2024-01-01", "2024-01-01"]))


# --- performance_metrics ------------------------------------------------------------------


def test_performance_metrics_by_hand() -> None:
    metrics = performance_metrics(_equity([100.0, 110.0, 99.0, 108.9]), PPY)
    # r = [+10%, -10%, +10%], n = 3
    mean = (0.1 - 0.1 + 0.1) / 3  # = 1/30
    # deviations from the mean: 1/15, -2/15, 1/15 -> ddof=1 variance (1 + 4 + 1) / 225 / 2
    std = math.sqrt(6 / 225 / 2)
    downside_dev = math.sqrt((0.0 + 0.1**2 + 0.0) / 3)
    annual_return = 1.089 ** (252 / 3) - 1

    assert metrics["total_return"] == pytest.approx(0.089)
    assert metrics["annual_return"] == pytest.approx(annual_return)
    assert metrics["annual_volatility"] == pytest.approx(math.sqrt(3.36))  # sqrt(252 / 75)
    assert metrics["sharpe"] == pytest.approx(mean / std * math.sqrt(252))
    assert metrics["sharpe"] == pytest.approx(math.sqrt(18900) / 30)
    assert metrics["sortino"] == pytest.approx(mean / downside_dev * math.sqrt(252))
    assert metrics["sortino"] == pytest.approx(math.sqrt(84))
    assert metrics["max_drawdown"] == pytest.approx(99 / 110 - 1)  # -10% from the 110 peak
    assert metrics["max_drawdown_duration"] == 2.0  # 99 and 108.9 both below 110
    assert metrics["calmar"] == pytest.approx(annual_return / 0.1)


def test_drawdown_depth_and_longest_duration_are_separate() -> None:
    # Deepest drawdown: 120 -> 90 (-25%), lasting 2 bars. Longest: 130 -> 125, 126, 124 (3 bars).
    equity = _equity([100, 120, 90, 100, 130, 125, 126, 124, 130])
    metrics = performance_metrics(equity, PPY)
    assert metrics["max_drawdown"] == pytest.approx(-0.25)
    assert metrics["max_drawdown_duration"] == 3.0


def test_drawdown_still_open_at_the_end_counts() -> None:
    metrics = performance_metrics(_equity([100, 90, 95, 99]), PPY)
    assert metrics["max_drawdown"] == pytest.approx(-0.1)
    assert metrics["max_drawdown_duration"] == 3.0


def test_flat_equity_has_zero_ratios() -> None:
    metrics = performance_metrics(_equity([100.0] * 6), PPY)
    assert metrics == {
        "total_return": 0.0,
        "annual_return": 0.0,
        "annual_volatility": 0.0,
        "sharpe": 0.0,
        "sortino": 0.0,
        "max_drawdown": 0.0,
        "max_drawdown_duration": 0.0,
        "calmar": 0.0,
    }


def test_steady_growth_has_zero_sharpe_and_infinite_sortino() -> None:
    # Constant +10% returns: std is 0 up to rounding, and there is no downside at all.
    metrics = performance_metrics(_equity([100.0, 110.0, 121.0, 133.1]), PPY)
    assert metrics["sharpe"] == 0.0
    assert metrics["sortino"] == math.inf
    assert metrics["calmar"] == 0.0  # no drawdown


def test_single_return_has_zero_volatility_and_sharpe() -> None:
    # One return of -5%: downside exists, std undefined (n = 1) -> volatility and sharpe 0.
    metrics = performance_metrics(_equity([100.0, 95.0]), PPY)
    assert metrics["annual_volatility"] == 0.0
    assert metrics["sharpe"] == 0.0
    assert metrics["sortino"] == pytest.approx(-0.05 / 0.05 * math.sqrt(252))
    assert metrics["annual_return"] == pytest.approx(0.95**252 - 1)


@pytest.mark.parametrize("after_ruin", [[0.0, 0.0], [-20.0, 5.0]])
def test_ruin_holds_equity_at_zero(after_ruin: list[float]) -> None:
    # Ruin at bar 2 (50 -> 0 or below); anything after it is treated as 0 equity.
    metrics = performance_metrics(_equity([100.0, 50.0, *after_ruin]), PPY)
    # r = [-0.5, -1.0, 0.0]: mean -0.5, deviations 0, -0.5, 0.5 -> std sqrt(0.5 / 2) = 0.5
    assert metrics["total_return"] == -1.0
    assert metrics["annual_return"] == -1.0
    assert metrics["max_drawdown"] == -1.0
    assert metrics["max_drawdown_duration"] == 3.0
    assert metrics["sharpe"] == pytest.approx(-0.5 / 0.5 * math.sqrt(252))
    assert metrics["calmar"] == -1.0


def test_performance_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 marks"):
        performance_metrics(_equity([100.0]), PPY)
    with pytest.raises(ValueError, match="NaN"):
        performance_metrics(_equity([100.0, np.nan, 101.0]), PPY)
    with pytest.raises(ValueError, match="initial equity"):
        performance_metrics(_equity([0.0, 1.0]), PPY)
    with pytest.raises(ValueError, match="periods_per_year"):
        performance_metrics(_equity([100.0, 101.0]), 0.0)


# --- trade_metrics ------------------------------------------------------------------------


def test_trade_metrics_by_hand() -> None:
    metrics = trade_metrics(pd.DataFrame({"pnl": [10.0, -5.0, 0.0, 20.0, -15.0]}))
    assert metrics["n_trades"] == 5.0
    assert metrics["win_rate"] == pytest.approx(2 / 5)  # the 0.0 trade is not a win
    assert metrics["profit_factor"] == pytest.approx((10 + 20) / (5 + 15))
    assert metrics["avg_trade_pnl"] == pytest.approx((10 - 5 + 0 + 20 - 15) / 5)


def test_trade_metrics_edge_cases() -> None:
    assert trade_metrics(pd.DataFrame({"pnl": [5.0, 0.0]}))["profit_factor"] == math.inf
    assert trade_metrics(pd.DataFrame({"pnl": [-5.0, -1.0]}))["profit_factor"] == 0.0
    assert trade_metrics(pd.DataFrame({"pnl": []}, dtype=float)) == {
        "n_trades": 0.0,
        "win_rate": 0.0,
        "profit_factor": 0.0,
        "avg_trade_pnl": 0.0,
    }
    with pytest.raises(ValueError, match="'pnl'"):
        trade_metrics(pd.DataFrame({"profit": [1.0]}))


# --- round_trips --------------------------------------------------------------------------

TIMES = pd.date_range("2024-01-01", periods=10, freq="h")
FILLS = 10.0 + np.arange(10)


def test_round_trips_with_resize_flip_and_open_trade() -> None:
    #           bar: 0    1    2    3    4     5     6      7      8    9
    positions = [0.0, 0.5, 1.0, 1.0, -1.0, -1.0, 0.0, 0.0, 1.0, 1.0]
    equity = [100.0, 99.0, 102.0, 104.0, 103.0, 101.0, 100.5, 100.5, 100.0, 103.0]
    trades = round_trips(TIMES, np.array(positions), np.array(equity), FILLS)

    assert list(trades.columns) == list(TRADE_COLUMNS)
    assert len(trades) == 3
    # Long: opened at bar 1, resized at bar 2 (same trade), closed by the flip at bar 4.
    # Short: opened by the flip at bar 4, closed at bar 6. Long: opened at bar 8, still open.
    assert list(trades["entry_time"]) == [TIMES[1], TIMES[4], TIMES[8]]
    assert list(trades["exit_time"]) == [TIMES[4], TIMES[6], TIMES[9]]
    assert list(trades["direction"]) == [1, -1, 1]
    assert list(trades["entry_price"]) == [11.0, 14.0, 18.0]
    assert list(trades["exit_price"]) == [14.0, 16.0, 19.0]
    assert list(trades["bars_held"]) == [3, 2, 2]
    assert list(trades["open_at_end"]) == [False, False, True]
    # pnl: exit-bar close minus the close before entry (the flip bar's close after a flip).
    expected_pnl = [103.0 - 100.0, 100.5 - 103.0, 103.0 - 100.5]
    assert trades["pnl"].tolist() == pytest.approx(expected_pnl)
    assert trades["return"].tolist() == pytest.approx([3.0 / 100.0, -2.5 / 103.0, 2.5 / 100.5])
    # No bar is counted twice: trade pnls add up to the whole equity change here.
    assert trades["pnl"].sum() == pytest.approx(equity[-1] - equity[0])


def test_round_trips_entry_at_first_bar_and_short_resize() -> None:
    positions = np.array([-0.5, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    equity = np.array([99.0, 101.0, 102.0, *[102.0] * 7])
    trades = round_trips(TIMES, positions, equity, FILLS)
    assert len(trades) == 1
    row = trades.iloc[0]
    assert (row["entry_time"], row["exit_time"]) == (TIMES[0], TIMES[2])
    assert row["direction"] == -1
    assert row["bars_held"] == 2
    assert row["pnl"] == pytest.approx(102.0 - 99.0)  # no mark before bar 0: base is equity[0]
    assert not row["open_at_end"]


def test_round_trips_position_opened_on_last_bar() -> None:
    positions = np.zeros(10)
    positions[-1] = 1.0
    trades = round_trips(TIMES, positions, np.linspace(100, 109, 10), FILLS)
    assert trades[["bars_held", "open_at_end"]].to_dict("records") == [
        {"bars_held": 1, "open_at_end": True}
    ]
    assert trades["pnl"].iloc[0] == pytest.approx(109.0 - 108.0)


def test_round_trips_without_trades_is_empty_with_columns() -> None:
    trades = round_trips(TIMES, np.zeros(10), np.full(10, 100.0), FILLS)
    assert trades.empty
    assert list(trades.columns) == list(TRADE_COLUMNS)


def test_round_trips_rejects_misaligned_input() -> None:
    with pytest.raises(ValueError, match="10 entries each"):
        round_trips(TIMES, np.zeros(9), np.full(10, 100.0), FILLS)
    with pytest.raises(ValueError, match="NaN"):
        round_trips(TIMES, np.full(10, np.nan), np.full(10, 100.0), FILLS)


# --- summarize and format_comparison ------------------------------------------------------


def test_summarize_adds_exposure_costs_and_turnover() -> None:
    equity = _equity([100.0, 110.0, 99.0, 108.9])
    positions = np.array([0.0, 1.0, -0.5, 0.0])
    trades = pd.DataFrame({"pnl": [3.0, -1.0]})
    summary = summarize(equity, positions, trades, 1.2, 420.0, PPY)

    assert summary["exposure"] == pytest.approx(2 / 4)
    assert summary["fees"] == 1.2
    mean_equity = (100.0 + 110.0 + 99.0 + 108.9) / 4
    assert summary["turnover"] == pytest.approx(420.0 / mean_equity * 252 / 4)
    assert summary["final_equity"] == 108.9
    assert summary["n_trades"] == 2.0
    assert summary["sharpe"] == performance_metrics(equity, PPY)["sharpe"]


def test_summarize_rejects_misaligned_positions() -> None:
    with pytest.raises(ValueError, match="one entry per equity mark"):
        summarize(_equity([100.0, 101.0]), np.zeros(3), pd.DataFrame({"pnl": []}), 0, 0, PPY)


def test_format_comparison_table() -> None:
    strategy = {"sharpe": 1.234, "total_return": 0.0891, "profit_factor": math.inf, "custom": 3}
    benchmark = {"sharpe": 0.5, "total_return": -0.02, "max_drawdown": -0.3}
    text = format_comparison(strategy, benchmark, title="Test run")
    lines = text.splitlines()

    assert lines[0] == "Test run"
    assert "strategy" in lines[2] and "buy & hold" in lines[2]
    rows = {line.split("  ")[0].strip(): line.split() for line in lines[3:] if "-" * 5 not in line}
    assert rows["Total return"][-2:] == ["8.91%", "-2.00%"]
    assert rows["Sharpe ratio"][-2:] == ["1.23", "0.50"]
    assert rows["Max drawdown"][-2:] == ["-", "-30.00%"]
    assert rows["Profit factor"][-2:] == ["inf", "-"]
    assert rows["custom"][-2:] == ["3.00", "-"]
    # Fixed order: returns, then risk-adjusted ratios, then drawdown, then trades, then extras.
    order = [text.index(label) for label in ("Total return", "Sharpe", "Max drawdown", "custom")]
    assert order == sorted(order)
