"""Cross-sectional rules: rank the symbols of a universe against each other and hold the best.

Every signal takes all of its book's frames (one index) and returns one column per symbol:
+1 for a symbol held long on its share of the capital, -1 for one held short, 0 in cash
(see ``_cross_section`` for the sleeve convention).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from evotrader.strategies.knowledge import UNIVERSE_LEGS
from evotrader.strategies.templates._cross_section import panel, selected

LEGS = UNIVERSE_LEGS


def cross_sectional_momentum(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    score = close.shift(skip) / close.shift(lookback) - 1.0
    return selected(score, top_n, bottom_n, rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "momentum/cross-sectional-momentum": cross_sectional_momentum,
}
