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
from evotrader.strategies.templates._cross_section import (
    every,
    market,
    market_fit,
    panel,
    panel_returns,
    rank_select,
    selected,
    with_hurdle,
)

LEGS = UNIVERSE_LEGS


def cross_sectional_momentum(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    score = close.shift(skip) / close.shift(lookback) - 1.0
    return selected(score, top_n, bottom_n, rebalance)


def residual_momentum(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    returns = panel_returns(panel(frames)).shift(skip)
    window = lookback - skip
    beta, residual_variance = market_fit(returns, window)
    market_return = market(returns).rolling(window).sum()
    residual_return = returns.rolling(window).sum() - beta.mul(market_return, axis=0)
    score = residual_return / np.sqrt(residual_variance.where(residual_variance > 0.0))
    return selected(score, top_n, bottom_n, rebalance)


def sharpe_momentum(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    window = panel_returns(panel(frames)).shift(skip).rolling(lookback - skip)
    deviation = window.std()
    return selected(window.mean() / deviation.where(deviation > 0.0), top_n, bottom_n, rebalance)


def high_52_week_ranking(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    nearness = panel(frames) / panel(frames, "high").rolling(window).max()
    return selected(nearness, top_n, bottom_n, rebalance)


def frog_in_the_pan(
    *frames: pd.DataFrame, lookback: int, skip: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    returns = panel_returns(close).shift(skip)
    window = lookback - skip
    share_up = (returns > 0.0).astype(np.float64).rolling(window).mean()
    share_down = (returns < 0.0).astype(np.float64).rolling(window).mean()
    formation = close.shift(skip) / close.shift(lookback) - 1.0
    discreteness = np.sign(formation) * (share_down - share_up)  # -1 smooth ... +1 jumpy
    return selected(formation * (1.0 - discreteness), top_n, bottom_n, rebalance)


def dual_momentum(
    *frames: pd.DataFrame, lookback: int, top_n: int, hurdle: float, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    score = close / close.shift(lookback) - 1.0
    return every(with_hurdle(rank_select(score, top_n, 0), score, hurdle), rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "momentum/cross-sectional-momentum": cross_sectional_momentum,
    "momentum/residual-momentum": residual_momentum,
    "momentum/sharpe-momentum": sharpe_momentum,
    "momentum/52-week-high-ranking": high_52_week_ranking,
    "momentum/frog-in-the-pan": frog_in_the_pan,
    "momentum/dual-momentum": dual_momentum,
}
