"""Cross-sectional volume rules: illiquidity, abnormal volume and volume-conditioned momentum.

Volume is read through ``positive_volume``: a bar with zero (unknown) volume, as the
``sp500`` source has throughout, leaves its symbol unranked, so a universe without volume
data stays flat instead of dividing by zero. Sleeves follow ``_cross_section``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.knowledge import UNIVERSE_LEGS
from evotrader.strategies.templates._cross_section import (
    panel,
    percentile,
    positive_volume,
    selected,
)

LEGS = UNIVERSE_LEGS


def amihud_illiquidity(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    price_impact = (close / close.shift(1) - 1.0).abs() / (close * positive_volume(frames))
    return selected(price_impact.rolling(window).mean(), top_n, bottom_n, rebalance)


def abnormal_volume(
    *frames: pd.DataFrame, formation: int, reference: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    volume = np.log(positive_volume(frames))
    history = volume.shift(formation).rolling(reference)
    spread = history.std()
    shock = (volume.rolling(formation).mean() - history.mean()) / spread.where(spread > 0.0)
    return selected(shock, top_n, bottom_n, rebalance)


def volume_momentum(
    *frames: pd.DataFrame, lookback: int, history: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    volume = positive_volume(frames)
    formation = close / close.shift(lookback) - 1.0
    relative_volume = volume.rolling(lookback).mean() / volume.rolling(history).mean()
    score = percentile(formation.where(relative_volume.notna())) - percentile(relative_volume)
    return selected(score, top_n, bottom_n, rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "factor/amihud-illiquidity": amihud_illiquidity,
    "factor/abnormal-volume-ranking": abnormal_volume,
    "factor/low-volume-momentum": volume_momentum,
}
