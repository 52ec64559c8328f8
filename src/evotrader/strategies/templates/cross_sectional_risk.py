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
    panel,
    panel_returns,
    percentile,
    selected,
)

LEGS = UNIVERSE_LEGS


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


SIGNALS: dict[str, Callable[..., np.ndarray]] = {
    "low-volatility/low-volatility": low_volatility,
    "low-volatility/betting-against-beta": betting_against_beta,
    "quality/return-consistency": return_consistency,
    "quality/lottery-max": lottery_max,
}
