"""Cross-sectional rules: rank the symbols of a universe against each other and hold the best.

Every signal takes all of its book's frames (one index) and returns one column per symbol:
+1 for a symbol held long on its share of the capital, -1 for one held short, 0 in cash
(see ``_cross_section`` for the sleeve convention). This module holds the rules that rank
past returns (momentum, trend, seasonality); reversal, risk and volume rules live in the
``cross_sectional_*`` modules beside it.
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


def sector_rotation(
    *frames: pd.DataFrame,
    short_lookback: int,
    medium_lookback: int,
    long_lookback: int,
    top_n: int,
    rebalance: int,
) -> np.ndarray:
    close = panel(frames)
    horizons = (short_lookback, medium_lookback, long_lookback)
    score = sum(close / close.shift(lookback) - 1.0 for lookback in horizons) / len(horizons)
    return selected(score, top_n, 0, rebalance)


def same_month_seasonality(
    *frames: pd.DataFrame, years: int, top_n: int, bottom_n: int
) -> np.ndarray:
    close = panel(frames)
    month = close.index.to_period("M")
    calendar = pd.period_range(month[0], month[-1], freq="M")
    month_end = close.groupby(month).last().reindex(calendar)
    monthly = month_end / month_end.shift(1) - 1.0  # the current month's value is never read
    lags = [monthly.shift(12 * k) for k in range(1, years + 1)]
    history = pd.concat(lags, keys=range(years)).groupby(level=1).mean()  # skips missing years
    return rank_select(history.reindex(month), top_n, bottom_n)


def moving_average_distance(
    *frames: pd.DataFrame, fast: int, slow: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    distance = close.rolling(fast).mean() / close.rolling(slow).mean() - 1.0
    return selected(distance, top_n, bottom_n, rebalance)


def ranked_trend(
    *frames: pd.DataFrame, window: int, min_t: float, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    log_close = np.log(panel(frames))
    clock = pd.Series(np.arange(len(log_close), dtype=np.float64), index=log_close.index)
    correlation = log_close.rolling(window).corr(clock).clip(-1.0 + 1e-12, 1.0 - 1e-12)
    slope_t = correlation * np.sqrt((window - 2) / (1.0 - correlation**2))
    picks = rank_select(slope_t, top_n, bottom_n)
    return every(with_hurdle(picks, slope_t, min_t), rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "momentum/cross-sectional-momentum": cross_sectional_momentum,
    "momentum/residual-momentum": residual_momentum,
    "momentum/sharpe-momentum": sharpe_momentum,
    "momentum/52-week-high-ranking": high_52_week_ranking,
    "momentum/frog-in-the-pan": frog_in_the_pan,
    "momentum/dual-momentum": dual_momentum,
    "momentum/sector-rotation": sector_rotation,
    "seasonal/same-month-seasonality": same_month_seasonality,
    "trend-following/moving-average-distance": moving_average_distance,
    "trend-following/ranked-trend-strength": ranked_trend,
}
