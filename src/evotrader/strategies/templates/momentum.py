"""Momentum: keep betting on the direction an asset has recently moved in."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    annualised_volatility,
    banded_sign,
    hysteresis,
    past_return,
    quarter_steps,
    sma,
)

LEGS = 1


def time_series_momentum(bars: pd.DataFrame, *, lookback: int, threshold: float) -> np.ndarray:
    return banded_sign(past_return(bars["close"], lookback), threshold)


def volatility_scaled_momentum(
    bars: pd.DataFrame, *, lookback: int, vol_window: int, target_vol: float
) -> np.ndarray:
    direction = banded_sign(past_return(bars["close"], lookback), 0.0)
    size = quarter_steps(target_vol / annualised_volatility(bars["close"], vol_window))
    return direction * size


def fifty_two_week_high(bars: pd.DataFrame, *, window: int, proximity: float) -> np.ndarray:
    high = bars["high"].rolling(window).max()
    return (bars["close"] >= (1.0 - proximity) * high).to_numpy(np.float64)


def volume_confirmed_momentum(
    bars: pd.DataFrame, *, lookback: int, volume_short: int, volume_long: int, volume_ratio: float
) -> np.ndarray:
    past = past_return(bars["close"], lookback)
    active = sma(bars["volume"], volume_short) > volume_ratio * sma(bars["volume"], volume_long)
    long = hysteresis((past > 0) & active, past <= 0)
    short = hysteresis((past < 0) & active, past >= 0)
    return long - short


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "momentum/time-series-momentum": time_series_momentum,
    "momentum/volatility-scaled-momentum": volatility_scaled_momentum,
    "momentum/52-week-high": fifty_two_week_high,
    "momentum/volume-confirmed-momentum": volume_confirmed_momentum,
}
