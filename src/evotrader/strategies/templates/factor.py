"""Factor: time an instrument with the characteristics that price the cross-section."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    banded_sign,
    ema,
    hysteresis,
    log_returns,
    zscore,
)

LEGS = 1


def multi_factor_composite(
    bars: pd.DataFrame,
    *,
    momentum_window: int,
    vol_window: int,
    reversal_window: int,
    norm_window: int,
    threshold: float,
) -> np.ndarray:
    log_close = np.log(bars["close"])
    momentum = zscore(log_close.diff(momentum_window), norm_window)
    volatility = zscore(log_returns(bars["close"]).rolling(vol_window).std(), norm_window)
    reversal = zscore(log_close.diff(reversal_window), norm_window)
    return banded_sign((momentum - volatility - reversal) / 3.0, threshold)


def high_volume_return_premium(
    bars: pd.DataFrame, *, volume_window: int, volume_z: float, hold: int
) -> np.ndarray:
    surge = (zscore(np.log1p(bars["volume"]), volume_window) > volume_z).astype(np.float64)
    return surge.rolling(hold, min_periods=1).max().to_numpy()


def on_balance_volume(bars: pd.DataFrame, *, window: int, band: float) -> np.ndarray:
    flow = (np.sign(bars["close"].diff()) * bars["volume"]).fillna(0.0)
    balance = flow.cumsum()
    # the gap to the average in units of average volume, so the band does not depend on size
    gap = (balance - ema(balance, window)) / bars["volume"].rolling(window).mean()
    return banded_sign(gap, band)


def chaikin_money_flow(bars: pd.DataFrame, *, window: int, threshold: float) -> np.ndarray:
    high, low, close, volume = bars["high"], bars["low"], bars["close"], bars["volume"]
    span = (high - low).replace(0.0, np.nan)
    multiplier = (((close - low) - (high - close)) / span).fillna(0.0)
    flow = (multiplier * volume).rolling(window).sum() / volume.rolling(window).sum()
    return banded_sign(flow, threshold)


def illiquidity_timing(
    bars: pd.DataFrame, *, illiquidity_window: int, norm_window: int, entry_z: float, exit_z: float
) -> np.ndarray:
    dollar_volume = (bars["close"] * bars["volume"]).replace(0.0, np.nan)
    illiquidity = (log_returns(bars["close"]).abs() / dollar_volume).rolling(illiquidity_window)
    z = zscore(np.log(illiquidity.mean()), norm_window)
    return hysteresis(z > entry_z, z < exit_z)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "factor/multi-factor-composite": multi_factor_composite,
    "factor/high-volume-return-premium": high_volume_return_premium,
    "factor/on-balance-volume": on_balance_volume,
    "factor/chaikin-money-flow": chaikin_money_flow,
    "factor/illiquidity-timing": illiquidity_timing,
}
