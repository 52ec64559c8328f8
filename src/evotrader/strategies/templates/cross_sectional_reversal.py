"""Cross-sectional reversal rules: buy the universe's recent losers, sell its recent winners.

Each scores every symbol by how far it has moved against the others and bets on the gap
closing, on equal sleeves (see ``_cross_section`` for the sleeve convention).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.knowledge import UNIVERSE_LEGS
from evotrader.strategies.templates._cross_section import market, panel, panel_returns, selected
from evotrader.strategies.templates._indicators import band_reversion, zscore

LEGS = UNIVERSE_LEGS


def cross_sectional_reversal(
    *frames: pd.DataFrame, lookback: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    return selected(-(close / close.shift(lookback) - 1.0), top_n, bottom_n, rebalance)


def long_term_reversal(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    formation = close.shift(skip) / close.shift(lookback) - 1.0
    return selected(-formation, top_n, bottom_n, rebalance)


def residual_reversal(
    *frames: pd.DataFrame, window: int, entry_z: float, exit_z: float
) -> np.ndarray:
    returns = panel_returns(panel(frames))
    relative = returns.sub(market(returns), axis=0).cumsum()  # log price against the market
    return np.column_stack(
        [band_reversion(zscore(relative[column], window), entry_z, exit_z) for column in relative]
    )


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "mean-reversion/cross-sectional-reversal": cross_sectional_reversal,
    "mean-reversion/long-term-reversal": long_term_reversal,
    "mean-reversion/residual-reversal": residual_reversal,
}
