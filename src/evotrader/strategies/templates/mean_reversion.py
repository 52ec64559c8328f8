"""Mean reversion: fade moves that stretched the price away from its recent norm."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    band_reversion,
    banded_sign,
    hysteresis,
    past_return,
    range_position,
    rsi,
    sma,
    zscore,
)

LEGS = 1


def bollinger_reversion(
    bars: pd.DataFrame, *, window: int, entry_z: float, exit_z: float
) -> np.ndarray:
    return band_reversion(zscore(bars["close"], window), entry_z, exit_z)


def rsi_reversion(
    bars: pd.DataFrame, *, period: int, oversold: float, exit_level: float
) -> np.ndarray:
    strength = rsi(bars["close"], period)
    long = hysteresis(strength < oversold, strength > exit_level)
    short = hysteresis(strength > 100.0 - oversold, strength < 100.0 - exit_level)
    return long - short


def short_term_reversal(bars: pd.DataFrame, *, lookback: int, threshold: float) -> np.ndarray:
    return -banded_sign(past_return(bars["close"], lookback), threshold)


def internal_bar_strength(
    bars: pd.DataFrame, *, entry_level: float, exit_level: float
) -> np.ndarray:
    span = (bars["high"] - bars["low"]).to_numpy()
    where_close = (bars["close"] - bars["low"]).to_numpy()
    strength = np.divide(where_close, span, out=np.full(len(bars), 0.5), where=span > 0)
    return hysteresis(strength < entry_level, strength > exit_level)


def connors_rsi2(
    bars: pd.DataFrame, *, period: int, oversold: float, trend_window: int, exit_window: int
) -> np.ndarray:
    close = bars["close"]
    strength, trend, exit_average = (
        rsi(close, period),
        sma(close, trend_window),
        sma(close, exit_window),
    )
    long = hysteresis((close > trend) & (strength < oversold), close > exit_average)
    short = hysteresis((close < trend) & (strength > 100.0 - oversold), close < exit_average)
    return long - short


def stochastic_oscillator(
    bars: pd.DataFrame, *, k_window: int, d_window: int, oversold: float, exit_level: float
) -> np.ndarray:
    k = 100.0 * range_position(bars, k_window)
    d = k.rolling(d_window).mean()
    long = hysteresis((d < oversold) & (k > d), d > exit_level)
    short = hysteresis((d > 100.0 - oversold) & (k < d), d < 100.0 - exit_level)
    return long - short


def down_streak(bars: pd.DataFrame, *, streak: int, max_hold: int) -> np.ndarray:
    change = bars["close"].diff()
    down = (change < 0).astype(np.int64)
    run = down.groupby((down == 0).cumsum()).cumsum()
    held = pd.Series(hysteresis(run >= streak, change > 0), index=bars.index)
    bars_held = held.groupby((held == 0).cumsum()).cumsum()
    return (held.astype(bool) & (bars_held <= max_hold)).to_numpy(np.float64)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "mean-reversion/bollinger-reversion": bollinger_reversion,
    "mean-reversion/rsi-reversion": rsi_reversion,
    "mean-reversion/short-term-reversal": short_term_reversal,
    "mean-reversion/internal-bar-strength": internal_bar_strength,
    "mean-reversion/connors-rsi2": connors_rsi2,
    "mean-reversion/stochastic-oscillator": stochastic_oscillator,
    "mean-reversion/down-streak": down_streak,
}
