"""Factor: time an instrument with the characteristics that price the cross-section."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import banded_sign, log_returns, zscore

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


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "factor/multi-factor-composite": multi_factor_composite,
    "factor/high-volume-return-premium": high_volume_return_premium,
}
