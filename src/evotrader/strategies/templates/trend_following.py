"""Trend following: be on the side of a smoothed price trend and stay there while it lasts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    banded_sign,
    ema,
    hysteresis,
    sma,
    true_range,
    wilder,
)

LEGS = 1


def moving_average_crossover(bars: pd.DataFrame, *, fast: int, slow: int) -> np.ndarray:
    return banded_sign(sma(bars["close"], fast) - sma(bars["close"], slow), 0.0)


def price_above_moving_average(bars: pd.DataFrame, *, window: int, band: float) -> np.ndarray:
    close, average = bars["close"], sma(bars["close"], window)
    return hysteresis(close > average * (1.0 + band), close < average * (1.0 - band))


def macd(bars: pd.DataFrame, *, fast: int, slow: int, signal: int) -> np.ndarray:
    line = ema(bars["close"], fast) - ema(bars["close"], slow)
    return banded_sign(line - ema(line, signal), 0.0)


def adx_directional(bars: pd.DataFrame, *, period: int, adx_threshold: float) -> np.ndarray:
    up, down = bars["high"].diff(), -bars["low"].diff()
    plus_move = up.where((up > down) & (up > 0), 0.0)
    minus_move = down.where((down > up) & (down > 0), 0.0)
    average_range = wilder(true_range(bars), period)
    plus = 100.0 * wilder(plus_move, period) / average_range
    minus = 100.0 * wilder(minus_move, period) / average_range
    dx = 100.0 * (plus - minus).abs() / (plus + minus).replace(0.0, np.nan)
    strong = (wilder(dx, period) > adx_threshold).to_numpy()
    return np.where(strong, banded_sign(plus - minus, 0.0), 0.0)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "trend-following/moving-average-crossover": moving_average_crossover,
    "trend-following/price-above-moving-average": price_above_moving_average,
    "trend-following/macd": macd,
    "trend-following/adx-directional": adx_directional,
}
