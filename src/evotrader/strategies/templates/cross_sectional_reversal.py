"""Cross-sectional reversal rules: buy the universe's recent losers, sell its recent winners.

Each scores every symbol by how far it has moved against the others and bets on the gap
closing, on equal sleeves (see ``_cross_section`` for the sleeve convention).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.knowledge import UNIVERSE_LEGS
from evotrader.strategies.templates._cross_section import panel, selected

LEGS = UNIVERSE_LEGS


def cross_sectional_reversal(
    *frames: pd.DataFrame, lookback: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    return selected(-(close / close.shift(lookback) - 1.0), top_n, bottom_n, rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "mean-reversion/cross-sectional-reversal": cross_sectional_reversal,
}
