"""Volatility: size or gate exposure by how turbulent the market has been recently."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    annualised_volatility,
    atr,
    hold_after,
    log_returns,
    quarter_steps,
    sma,
)

LEGS = 1


def volatility_targeting(bars: pd.DataFrame, *, vol_window: int, target_vol: float) -> np.ndarray:
    return quarter_steps(target_vol / annualised_volatility(bars["close"], vol_window))


def volatility_regime_filter(
    bars: pd.DataFrame, *, short_window: int, long_window: int, ratio: float
) -> np.ndarray:
    returns = log_returns(bars["close"])
    calm = returns.rolling(short_window).std() < ratio * returns.rolling(long_window).std()
    return calm.to_numpy(np.float64)


def range_expansion(bars: pd.DataFrame, *, multiplier: float, hold: int) -> np.ndarray:
    reach = multiplier * (bars["high"] - bars["low"]).shift(1)
    move = bars["close"] - bars["open"]
    entries = np.where(move > reach, 1.0, np.where(move < -reach, -1.0, 0.0))
    return hold_after(entries, hold)


def atr_percentile_regime(
    bars: pd.DataFrame,
    *,
    atr_period: int,
    rank_window: int,
    tail: float,
    trend_window: int,
) -> np.ndarray:
    close = bars["close"]
    relative_range = atr(bars, atr_period) / close
    percentile = relative_range.rolling(rank_window).rank(pct=True)
    trend = sma(close, trend_window)
    long = (percentile <= tail) & (close > trend)
    short = (percentile > 1.0 - tail) & (close < trend)
    return long.to_numpy(np.float64) - short.to_numpy(np.float64)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "volatility/volatility-targeting": volatility_targeting,
    "volatility/volatility-regime-filter": volatility_regime_filter,
    "volatility/range-expansion": range_expansion,
    "volatility/atr-percentile-regime": atr_percentile_regime,
}
