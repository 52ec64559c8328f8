"""Causal building blocks shared by the template families: each value at bar t uses bars <= t.

Everything runs forward in time (trailing rolling windows, recursive averages, forward-filled
states), so truncating or changing the bars after t never changes a value at t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TRADING_DAYS = 252  # annualisation of daily volatility; templates state it in their rule


def sma(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window).mean()


def ema(values: pd.Series, span: int) -> pd.Series:
    return values.ewm(span=span, adjust=False, min_periods=span).mean()


def wilder(values: pd.Series, period: int) -> pd.Series:
    """Wilder's smoothing: an exponential average with alpha = 1 / period."""
    return values.ewm(alpha=1.0 / period, adjust=False, min_periods=period).mean()


def zscore(values: pd.Series, window: int) -> pd.Series:
    """Distance from the trailing mean in trailing standard deviations (NaN when flat)."""
    rolling = values.rolling(window)
    return (values - rolling.mean()) / rolling.std().replace(0.0, np.nan)


def log_returns(close: pd.Series) -> pd.Series:
    return np.log(close).diff()


def annualised_volatility(close: pd.Series, window: int) -> pd.Series:
    return log_returns(close).rolling(window).std() * np.sqrt(TRADING_DAYS)


def past_return(close: pd.Series, lookback: int) -> pd.Series:
    return close / close.shift(lookback) - 1.0


def rsi(close: pd.Series, period: int) -> pd.Series:
    """Wilder's relative strength index in [0, 100] (100 when there were no losses)."""
    change = close.diff()
    gain = wilder(change.clip(lower=0.0), period)
    loss = wilder(-change.clip(upper=0.0), period)
    return (100.0 - 100.0 / (1.0 + gain / loss)).where(loss > 0, 100.0).where(gain.notna())


def true_range(bars: pd.DataFrame) -> pd.Series:
    previous = bars["close"].shift(1)
    ranges = [bars["high"] - bars["low"], (bars["high"] - previous).abs()]
    ranges.append((bars["low"] - previous).abs())
    return pd.concat(ranges, axis=1).max(axis=1)


def atr(bars: pd.DataFrame, period: int) -> pd.Series:
    return wilder(true_range(bars), period)


def banded_sign(values: pd.Series | np.ndarray, band: float) -> np.ndarray:
    """+1 above ``band``, -1 below ``-band``, 0 in between or where the value is unknown."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > band, 1.0, np.where(values < -band, -1.0, 0.0))


def hysteresis(enter: pd.Series | np.ndarray, leave: pd.Series | np.ndarray) -> np.ndarray:
    """1 from a bar where ``enter`` holds until a later bar where ``leave`` holds, else 0.

    ``enter`` wins when both hold on one bar. Vectorised as a forward fill of the events.
    """
    enter, leave = np.asarray(enter, dtype=bool), np.asarray(leave, dtype=bool)
    events = pd.Series(np.where(enter, 1.0, np.where(leave, 0.0, np.nan)))
    return events.ffill().fillna(0.0).to_numpy()


def band_reversion(z: pd.Series, entry: float, exit: float) -> np.ndarray:
    """Long below ``-entry``, short above ``entry``, flat again once within ``exit`` of zero."""
    long = hysteresis(z < -entry, z > -exit)
    short = hysteresis(z > entry, z < exit)
    return long - short


def quarter_steps(fraction: pd.Series | np.ndarray) -> np.ndarray:
    """Sizes rounded down to multiples of 0.25 in [0, 1], so positions change rarely."""
    fraction = np.nan_to_num(np.asarray(fraction, dtype=np.float64), nan=0.0, posinf=1.0)
    return np.floor(np.clip(fraction, 0.0, 1.0) * 4.0) / 4.0


def range_position(bars: pd.DataFrame, window: int) -> pd.Series:
    """Where the close sits in the high-low range of the last ``window`` bars, in [0, 1]."""
    highest = bars["high"].rolling(window).max()
    lowest = bars["low"].rolling(window).min()
    return (bars["close"] - lowest) / (highest - lowest).replace(0.0, np.nan)


def hold_after(entries: pd.Series | np.ndarray, bars: int) -> np.ndarray:
    """The sign of the latest non-zero entry (+1 or -1), held for ``bars`` bars from its bar.

    A new entry replaces the one being held; once ``bars`` bars have passed without one,
    the position is flat.
    """
    events = pd.Series(np.asarray(entries, dtype=np.float64)).replace(0.0, np.nan)
    held = events.ffill(limit=int(bars) - 1) if bars > 1 else events
    return held.fillna(0.0).to_numpy()


def rolling_regression_t(values: pd.Series, window: int) -> pd.Series:
    """The t statistic of the slope of ``values`` on time over the last ``window`` bars."""
    time = pd.Series(np.arange(len(values), dtype=np.float64), index=values.index)
    r = values.rolling(window).corr(time).clip(-1.0 + 1e-12, 1.0 - 1e-12)
    return r * np.sqrt((window - 2) / (1.0 - r * r))
