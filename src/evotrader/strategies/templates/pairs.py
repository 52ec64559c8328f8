"""Pairs: trade the spread of two related instruments back towards its norm.

Each signal returns two columns, the target of the first and of the second leg; the legs are
always opposite (+1/-1: long the spread, -1/+1: short it), each on its own half of the capital.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.templates._indicators import band_reversion, zscore

LEGS = 2


def distance_zscore(
    first: pd.DataFrame, second: pd.DataFrame, *, window: int, entry_z: float, exit_z: float
) -> np.ndarray:
    spread = np.log(first["close"]) - np.log(_aligned(first, second)["close"])
    return _legs(band_reversion(zscore(spread, window), entry_z, exit_z))


def cointegration_spread(
    first: pd.DataFrame,
    second: pd.DataFrame,
    *,
    hedge_window: int,
    z_window: int,
    entry_z: float,
    exit_z: float,
) -> np.ndarray:
    a, b = np.log(first["close"]), np.log(_aligned(first, second)["close"])
    hedge_ratio = a.rolling(hedge_window).cov(b) / b.rolling(hedge_window).var()
    return _legs(band_reversion(zscore(a - hedge_ratio * b, z_window), entry_z, exit_z))


def _aligned(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    if not first.index.equals(second.index):
        raise ValueError("pair legs must share one index (align them on common dates first)")
    return second


def _legs(spread_position: np.ndarray) -> np.ndarray:
    return np.column_stack([spread_position, -spread_position])


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "pairs/distance-zscore": distance_zscore,
    "pairs/cointegration-spread": cointegration_spread,
}
