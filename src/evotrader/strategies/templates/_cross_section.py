"""Causal building blocks of the cross-sectional templates: panels, ranks and rebalance days.

A cross-sectional rule scores every symbol of its book at each close from bars <= t, ranks
the scores across symbols and holds the best (and shorts the worst) until the next rebalance.
Targets are fractions of each symbol's own share of the capital (the book's legs split it
equally), so a selected symbol holds its whole share and the others hold cash: top-n of m
invests n/m of the capital, and every translator trades the same sleeves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def panel(frames: Sequence[pd.DataFrame], field: str = "close") -> pd.DataFrame:
    """One column per symbol (0, 1, ...) of ``field``; the frames share one index."""
    index = frames[0].index
    for frame in frames[1:]:
        if not frame.index.equals(index):
            raise ValueError("a cross-section's frames must share one index (align them first)")
    return pd.DataFrame({i: frame[field] for i, frame in enumerate(frames)}, index=index)


def rank_select(scores: pd.DataFrame | np.ndarray, top_n: int, bottom_n: int) -> np.ndarray:
    """+1 for the ``top_n`` highest scores of each row, -1 for the ``bottom_n`` lowest.

    Only finite scores rank; a row with fewer finite scores than ``top_n + bottom_n`` is flat
    (a half-formed cross-section would concentrate the book). Both ends read one total order,
    highest score first and the lower column first on ties, so the selection is deterministic
    and no symbol is picked both long and short.
    """
    values = np.asarray(scores, dtype=np.float64)
    rows, columns = values.shape
    top_n, bottom_n = min(top_n, columns), min(bottom_n, columns)
    out = np.zeros((rows, columns))
    known = np.isfinite(values)
    enough = known.sum(axis=1) >= max(top_n + bottom_n, 1)
    # stable argsort of -score (NaN last) ranks the highest first, lower column first on ties;
    # the same on the mirrored columns ranks the lowest first, higher column first on ties
    order = np.argsort(np.where(known, -values, np.inf), axis=1, kind="stable")
    mirrored = np.where(known, values, np.inf)[:, ::-1]
    reverse = columns - 1 - np.argsort(mirrored, axis=1, kind="stable")
    rows_enough = np.flatnonzero(enough)
    if top_n:
        out[rows_enough[:, None], order[rows_enough, :top_n]] = 1.0
    if bottom_n:
        out[rows_enough[:, None], reverse[rows_enough, :bottom_n]] = -1.0
    return out


def every(targets: np.ndarray, rebalance: int) -> np.ndarray:
    """Targets revised only on every ``rebalance``-th bar (bar 0, rebalance, ...) and held
    between them: turnover falls by ``rebalance`` while each revision stays causal."""
    held = np.full(targets.shape, np.nan)
    days = np.arange(0, len(targets), max(int(rebalance), 1))
    held[days] = targets[days]
    return pd.DataFrame(held).ffill().fillna(0.0).to_numpy()


def selected(scores: pd.DataFrame, top_n: int, bottom_n: int, rebalance: int) -> np.ndarray:
    """The usual cross-sectional book: rank the scores, hold the picks until the next revision."""
    return every(rank_select(scores, top_n, bottom_n), rebalance)


def panel_returns(close: pd.DataFrame) -> pd.DataFrame:
    """Daily log returns of every symbol (NaN on the first bar)."""
    return np.log(close).diff()


def market(returns: pd.DataFrame) -> pd.Series:
    """The equal-weight market of the book: each bar's mean return over the symbols with one
    (every symbol is part of its own market, as in an index that holds it)."""
    return returns.mean(axis=1)


def market_fit(returns: pd.DataFrame, window: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each symbol's trailing OLS beta on the equal-weight market over ``window`` bars and the
    variance of its residual ``r - beta * m`` in that window (NaN until the window is full)."""
    index = market(returns)
    covariance = returns.rolling(window).cov(index, ddof=0)
    market_variance = index.rolling(window).var(ddof=0)
    beta = covariance.div(market_variance.where(market_variance > 0.0), axis=0)
    residual_variance = returns.rolling(window).var(ddof=0) - beta * covariance
    return beta, residual_variance.clip(lower=0.0)


def percentile(scores: pd.DataFrame) -> pd.DataFrame:
    """Each score's rank across the symbols of its bar, in (0, 1] (NaN stays unranked)."""
    return scores.rank(axis=1, pct=True)


def with_hurdle(picks: np.ndarray, scores: pd.DataFrame | np.ndarray, hurdle: float) -> np.ndarray:
    """Ranked picks kept only where the symbol's own score agrees: a long only while its score
    is above ``hurdle``, a short only while it is below ``-hurdle`` (cash otherwise)."""
    values = np.asarray(scores, dtype=np.float64)
    keep = ((picks > 0) & (values > hurdle)) | ((picks < 0) & (values < -hurdle))
    return np.where(keep, picks, 0.0)


def positive_volume(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The volume panel with every non-positive volume (unknown, e.g. the ``sp500`` source)
    set to NaN, so a rule that reads volume leaves those symbols and bars unranked."""
    volume = panel(frames, "volume")
    return volume.where(volume > 0.0)
