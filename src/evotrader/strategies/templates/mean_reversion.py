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
    rsi,
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


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "mean-reversion/bollinger-reversion": bollinger_reversion,
    "mean-reversion/rsi-reversion": rsi_reversion,
    "mean-reversion/short-term-reversal": short_term_reversal,
    "mean-reversion/internal-bar-strength": internal_bar_strength,
}
