"""Cross-sectional risk rules: low volatility, low beta and the price-based quality proxies.

Each ranks the symbols of its book by a trailing risk statistic of their daily log returns
and holds the least risky long (and, with ``bottom_n``, the riskiest short) on equal sleeves
until the next rebalance (see ``_cross_section`` for the sleeve convention).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from evotrader.strategies.knowledge import UNIVERSE_LEGS
from evotrader.strategies.templates._cross_section import (
    market,
    market_fit,
    panel,
    panel_returns,
    percentile,
    selected,
)

LEGS = UNIVERSE_LEGS
MIN_DOWN_DAYS = 10  # market down days a downside beta needs before it ranks


def low_volatility(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    volatility = panel_returns(panel(frames)).rolling(window).std()
    return selected(-volatility, top_n, bottom_n, rebalance)


def betting_against_beta(
    *frames: pd.DataFrame,
    vol_window: int,
    corr_window: int,
    top_n: int,
    bottom_n: int,
    rebalance: int,
) -> np.ndarray:
    returns = panel_returns(panel(frames))
    index = market(returns)
    correlation = returns.rolling(corr_window).corr(index)
    ratio = returns.rolling(vol_window).std().div(index.rolling(vol_window).std(), axis=0)
    return selected(-(correlation * ratio), top_n, bottom_n, rebalance)


def idiosyncratic_volatility(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    _, residual_variance = market_fit(panel_returns(panel(frames)), window)
    return selected(-np.sqrt(residual_variance), top_n, bottom_n, rebalance)


def low_downside_beta(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    returns = panel_returns(panel(frames))
    index = market(returns)
    down = (index < 0.0).astype(np.float64)  # the market's down days, 0/1
    days = down.rolling(window).sum()
    mean_r = returns.mul(down, axis=0).rolling(window).sum().div(days, axis=0)
    mean_m = (index * down).rolling(window).sum() / days
    cross = returns.mul(index * down, axis=0).rolling(window).sum().div(days, axis=0)
    variance = (index * index * down).rolling(window).sum() / days - mean_m * mean_m
    covariance = cross - mean_r.mul(mean_m, axis=0)
    enough = (days >= MIN_DOWN_DAYS) & (variance > 0.0)
    beta = covariance.div(variance.where(enough), axis=0)
    return selected(-beta, top_n, bottom_n, rebalance)


def return_consistency(
    *frames: pd.DataFrame, period: int, periods: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    ups = sum(
        (close.shift(k * period) > close.shift((k + 1) * period)).astype(np.float64)
        for k in range(periods)
    )
    total = close / close.shift(periods * period) - 1.0
    # ties in the count (it takes periods + 1 values) go to the larger return over the window;
    # half a percentile never outweighs one more positive period
    score = ups + 0.5 * percentile(total)
    return selected(score.where(total.notna()), top_n, bottom_n, rebalance)


def lottery_max(
    *frames: pd.DataFrame, window: int, days: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    close = panel(frames)
    returns = (close / close.shift(1) - 1.0).to_numpy()
    largest = np.full(returns.shape, np.nan)
    if len(returns) >= window:
        windows = sliding_window_view(returns, window, axis=0)  # (bars - window + 1, n, window)
        top = np.partition(windows, window - days, axis=-1)[..., window - days :]
        largest[window - 1 :] = top.mean(axis=-1)  # NaN while the window holds bar 0
    return selected(-pd.DataFrame(largest, index=close.index), top_n, bottom_n, rebalance)


def low_skewness(
    *frames: pd.DataFrame, window: int, top_n: int, bottom_n: int, rebalance: int
) -> np.ndarray:
    skewness = panel_returns(panel(frames)).rolling(window).skew()
    return selected(-skewness, top_n, bottom_n, rebalance)


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "low-volatility/low-volatility": low_volatility,
    "low-volatility/betting-against-beta": betting_against_beta,
    "low-volatility/idiosyncratic-volatility": idiosyncratic_volatility,
    "low-volatility/low-downside-beta": low_downside_beta,
    "quality/return-consistency": return_consistency,
    "quality/lottery-max": lottery_max,
    "quality/low-skewness": low_skewness,
}
