"""Behaviour of single-instrument and pair templates on hand-built bars: each test pins down
the rule its knowledge file states (the per-template causality, bounds and translator tests
cover every template generically)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from tests.unit.strategies.test_templates import _bars

from evotrader.strategies.templates import template_signal
from evotrader.strategies.templates._indicators import hold_after
from evotrader.strategies.templates.pairs import _kalman_regression


def _held_dates(template_id: str, start: str, end: str, parameters: dict) -> list[str]:
    index = pd.bdate_range(start, end)
    bars = _bars(np.full(len(index), 100.0), start=start)
    targets = template_signal(template_id, [bars], parameters)[:, 0]
    return [day.strftime("%Y-%m-%d") for day in index[targets > 0]]


def test_pre_holiday_is_set_the_session_before_the_last_session_ahead_of_each_holiday() -> None:
    held = _held_dates("seasonal/pre-holiday", "2023-12-01", "2024-04-05", {"days_before": 1})
    # Christmas (Mon 25 Dec), New Year, MLK day (15 Jan), Presidents day (19 Feb), Good Friday
    assert held == ["2023-12-21", "2023-12-28", "2024-01-11", "2024-02-15", "2024-03-27"]
    two = _held_dates("seasonal/pre-holiday", "2024-01-02", "2024-01-31", {"days_before": 2})
    assert two == ["2024-01-10", "2024-01-11"]


def test_pre_holiday_knows_juneteenth_only_from_2022() -> None:
    params = {"days_before": 1}
    assert _held_dates("seasonal/pre-holiday", "2021-06-14", "2021-06-25", params) == []
    # 19 June 2022 is a Sunday: observed Monday 20 June, so Friday 17 June is the last session
    assert _held_dates("seasonal/pre-holiday", "2022-06-13", "2022-06-24", params) == ["2022-06-16"]


def test_hold_after_keeps_each_entry_for_its_bars_and_lets_new_entries_replace_it() -> None:
    entries = np.array([0, 1, 0, 0, 0, -1, 0, 1, 0, 0.0])
    assert hold_after(entries, 2).tolist() == [0, 1, 1, 0, 0, -1, -1, 1, 1, 0]
    assert hold_after(entries, 1).tolist() == entries.tolist()


def test_narrow_range_trades_the_break_of_the_narrow_bar_for_hold_bars() -> None:
    close = np.full(14, 100.0)
    close[8], close[9:] = 100.5, 100.3
    bars = pd.DataFrame(
        {"open": close, "high": close + 1.0, "low": close - 1.0, "close": close, "volume": 1e6},
        index=pd.bdate_range("2022-01-03", periods=14),
    )
    bars.iloc[7, [1, 2]] = [100.1, 99.9]  # the narrowest bar of the last seven
    bars.iloc[8, [1, 2]] = [100.6, 99.95]  # closes above the narrow bar's high
    targets = template_signal(
        "breakout/narrow-range", [bars], {"range_window": 7, "setup_life": 1, "hold": 3}
    )[:, 0]
    # bar 9 also closes above 100.1, but the setup is two bars old by then
    assert targets.tolist() == [0] * 8 + [1, 1, 1] + [0] * 3


def test_down_streak_enters_on_the_third_down_close_and_leaves_on_the_first_up_close() -> None:
    close = np.array([100, 99, 98, 97, 96, 95, 94, 95, 94, 93, 92, 93.0])
    targets = template_signal(
        "mean-reversion/down-streak", [_bars(close)], {"streak": 3, "max_hold": 2}
    )[:, 0]
    # held two bars at most; after that it waits for the up close at bar 7 to re-arm
    assert targets.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0]


def test_connors_rsi2_buys_pullbacks_in_uptrends_and_sells_rallies_in_downtrends() -> None:
    rise = np.linspace(100, 160, 41)
    close = np.concatenate([rise, [157, 154, 150, 153, 158, 161, 162.0]])
    parameters = {"period": 2, "oversold": 10.0, "trend_window": 20, "exit_window": 5}
    up = template_signal("mean-reversion/connors-rsi2", [_bars(close)], parameters)[:, 0]
    assert up.min() == 0 and up[43] == 1  # the third down close, far above the trend
    assert up[-1] == 0  # out once the close is back above its 5-bar average
    mirrored = template_signal("mean-reversion/connors-rsi2", [_bars(400 - close)], parameters)
    np.testing.assert_array_equal(mirrored[:, 0], -up)


def test_kalman_filter_adapts_to_a_change_in_the_hedge_ratio() -> None:
    rng = np.random.default_rng(0)
    x = np.log(100) + np.cumsum(rng.normal(0, 0.01, 600))
    beta = np.where(np.arange(600) < 300, 1.0, 1.5)
    y = beta * x + 0.2 + rng.normal(0, 0.005, 600)
    errors, variances = _kalman_regression(y, x, 1e-5, 0.005**2)
    assert np.abs(errors[250:300]).mean() < 0.01  # tracks the first ratio to the noise level
    assert np.abs(errors[300:310]).mean() > 0.1  # the break is a surprise
    assert np.abs(errors[500:]).mean() < 0.01  # and is learned
    assert np.all(variances > 0.005**2)
