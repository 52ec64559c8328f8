"""The feature window refuses bars that cannot be the next one and keeps the newest."""

from __future__ import annotations

import math

import pandas as pd

from evotrader.core.trading import Bar
from evotrader.live.window import BarWindow

DAYS = pd.bdate_range("2024-01-01", periods=6)


def bar(day: pd.Timestamp, close: float = 100.0, symbol: str = "SYN") -> Bar:
    end = (day + pd.Timedelta(hours=21)).tz_localize("UTC")
    return Bar(symbol, day, end, close, close + 1, close - 1, close, 1_000.0)


def history(days: pd.DatetimeIndex) -> pd.DataFrame:
    rows = [[100.0, 101.0, 99.0, 100.0, 1_000.0]] * len(days)
    columns = ["open", "high", "low", "close", "volume"]
    return pd.DataFrame(rows, index=days.rename("timestamp"), columns=columns)


def test_only_the_next_sane_bar_of_the_symbol_is_accepted() -> None:
    window = BarWindow("SYN", keep=4)
    assert window.extend(history(DAYS[:3])) == 3
    assert window.problem(bar(DAYS[3])) is None
    assert "bar for OTHER" in str(window.problem(bar(DAYS[3], symbol="OTHER")))
    assert "duplicate" in str(window.problem(bar(DAYS[2])))
    assert "out of order" in str(window.problem(bar(DAYS[1])))
    assert "finite" in str(window.problem(bar(DAYS[3], close=math.nan)))


def test_it_keeps_the_newest_bars_and_back_fills_only_newer_ones() -> None:
    window = BarWindow("SYN", keep=4)
    window.extend(history(DAYS[:3]))
    window.append(bar(DAYS[3], close=105.0))
    assert (window.latest, window.close, window.last_bar) == (DAYS[3], 105.0, bar(DAYS[3], 105.0))
    assert window.extend(history(DAYS)) == 2  # a back-fill after a reconnect: two were missed
    assert list(window.frame.index) == list(DAYS[2:])  # four kept
