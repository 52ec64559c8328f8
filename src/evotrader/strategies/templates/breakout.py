"""Breakout: enter when price escapes a recent range, on the side it escaped to."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import atr, ema, hold_after, hysteresis, sma

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


def narrow_range(
    bars: pd.DataFrame, *, range_window: int, setup_life: int, hold: int
) -> np.ndarray:
    high, low, close = bars["high"], bars["low"], bars["close"]
    span = high - low
    narrowest = span <= span.rolling(range_window).min()
    setup = pd.Series(np.arange(len(bars), dtype=np.float64), index=bars.index)
    setup_bar = setup.where(narrowest).ffill()
    age = setup - setup_bar
    # the breakout is judged against the narrow bar's range, from the bar after it
    armed = (age >= 1) & (age <= setup_life)
    setup_high, setup_low = high.where(narrowest).ffill(), low.where(narrowest).ffill()
    entries = np.where(armed & (close > setup_high), 1.0, 0.0)
    entries = np.where(armed & (close < setup_low), -1.0, entries)
    return hold_after(entries, hold)


def bollinger_squeeze(
    bars: pd.DataFrame, *, window: int, width: float, squeeze_window: int, armed_bars: int
) -> np.ndarray:
    close = bars["close"]
    middle, deviation = sma(close, window), close.rolling(window).std()
    bandwidth = deviation / middle
    squeeze = (bandwidth <= bandwidth.rolling(squeeze_window).min()).astype(np.float64)
    armed = squeeze.rolling(armed_bars, min_periods=1).max() > 0
    upper, lower = middle + width * deviation, middle - width * deviation
    long = hysteresis(armed & (close > upper), close < middle)
    short = hysteresis(armed & (close < lower), close > middle)
    return long - short


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "breakout/donchian-channel": donchian_channel,
    "breakout/keltner-channel": keltner_channel,
    "breakout/narrow-range": narrow_range,
    "breakout/bollinger-squeeze": bollinger_squeeze,
}
