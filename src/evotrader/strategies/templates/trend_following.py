"""Trend following: be on the side of a smoothed price trend and stay there while it lasts."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    atr,
    banded_sign,
    ema,
    hysteresis,
    rolling_regression_t,
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


def ichimoku_cloud(bars: pd.DataFrame, *, conversion: int, base: int, span: int) -> np.ndarray:
    high, low, close = bars["high"], bars["low"], bars["close"]

    def midpoint(window: int) -> pd.Series:
        return (high.rolling(window).max() + low.rolling(window).min()) / 2.0

    tenkan, kijun = midpoint(conversion), midpoint(base)
    # the cloud drawn at t was computed `base` bars earlier: shifting forward keeps it causal
    span_a, span_b = ((tenkan + kijun) / 2.0).shift(base), midpoint(span).shift(base)
    cloud_top = np.fmax(span_a, span_b).where(span_b.notna())
    cloud_bottom = np.fmin(span_a, span_b).where(span_b.notna())
    long = (close > cloud_top) & (tenkan > kijun)
    short = (close < cloud_bottom) & (tenkan < kijun)
    return long.to_numpy(np.float64) - short.to_numpy(np.float64)


def trix(bars: pd.DataFrame, *, period: int, signal: int) -> np.ndarray:
    smoothed = ema(ema(ema(np.log(bars["close"]), period), period), period)
    line = 100.0 * smoothed.diff()
    trigger = ema(line, signal)
    long = (line > 0) & (line > trigger)
    short = (line < 0) & (line < trigger)
    return long.to_numpy(np.float64) - short.to_numpy(np.float64)


def regression_slope(bars: pd.DataFrame, *, window: int, t_entry: float) -> np.ndarray:
    return banded_sign(rolling_regression_t(np.log(bars["close"]), window), t_entry)


def triple_moving_average(bars: pd.DataFrame, *, fast: int, middle: int, slow: int) -> np.ndarray:
    close = bars["close"]
    short_avg, mid_avg, long_avg = sma(close, fast), sma(close, middle), sma(close, slow)
    long = (short_avg > mid_avg) & (mid_avg > long_avg)
    short = (short_avg < mid_avg) & (mid_avg < long_avg)
    return long.to_numpy(np.float64) - short.to_numpy(np.float64)


def chandelier_exit(
    bars: pd.DataFrame, *, entry_window: int, stop_window: int, multiplier: float
) -> np.ndarray:
    close, high, low = bars["close"], bars["high"], bars["low"]
    distance = multiplier * atr(bars, stop_window)
    long_stop = high.rolling(stop_window).max() - distance
    short_stop = low.rolling(stop_window).min() + distance
    long = hysteresis(close > high.rolling(entry_window).max().shift(1), close < long_stop)
    short = hysteresis(close < low.rolling(entry_window).min().shift(1), close > short_stop)
    return long - short


def efficiency_ratio(bars: pd.DataFrame, *, window: int, threshold: float) -> np.ndarray:
    close = bars["close"]
    path = close.diff().abs().rolling(window).sum()
    signed_efficiency = close.diff(window) / path.replace(0.0, np.nan)
    return banded_sign(signed_efficiency, threshold)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "trend-following/moving-average-crossover": moving_average_crossover,
    "trend-following/price-above-moving-average": price_above_moving_average,
    "trend-following/macd": macd,
    "trend-following/adx-directional": adx_directional,
    "trend-following/ichimoku-cloud": ichimoku_cloud,
    "trend-following/trix": trix,
    "trend-following/regression-slope": regression_slope,
    "trend-following/triple-moving-average": triple_moving_average,
    "trend-following/chandelier-exit": chandelier_exit,
    "trend-following/efficiency-ratio": efficiency_ratio,
}
