"""Breakout: enter when price escapes a recent range, on the side it escaped to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import atr, ema, hysteresis

LEGS = 1


def donchian_channel(bars: pd.DataFrame, *, entry_window: int, exit_window: int) -> np.ndarray:
    close, high, low = bars["close"], bars["high"], bars["low"]
    long = hysteresis(
        close > high.rolling(entry_window).max().shift(1),
        close < low.rolling(exit_window).min().shift(1),
    )
    short = hysteresis(
        close < low.rolling(entry_window).min().shift(1),
        close > high.rolling(exit_window).max().shift(1),
    )
    return long - short


def keltner_channel(bars: pd.DataFrame, *, window: int, multiplier: float) -> np.ndarray:
    close, middle = bars["close"], ema(bars["close"], window)
    width = multiplier * atr(bars, window)
    long = hysteresis(close > middle + width, close < middle)
    short = hysteresis(close < middle - width, close > middle)
    return long - short


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "breakout/donchian-channel": donchian_channel,
    "breakout/keltner-channel": keltner_channel,
}
