"""Volatility: size or gate exposure by how turbulent the market has been recently."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import (
    annualised_volatility,
    log_returns,
    quarter_steps,
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


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "volatility/volatility-targeting": volatility_targeting,
    "volatility/volatility-regime-filter": volatility_regime_filter,
}
