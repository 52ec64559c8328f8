"""Universes resolved into books: the instruments (or pairs) a spec trades, chosen causally.

Filters and cointegration tests only ever see bars up to ``end`` (the end of the training
window), so choosing what to trade can never use the period being evaluated. A book is a
tuple of symbols: one for single-instrument templates, two (first, second) for pairs, every
symbol that passed the filters for a cross-sectional template.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from evotrader.data import load_bars
from evotrader.data.universe import align as align_bars
from evotrader.strategies.knowledge import MIN_UNIVERSE_LEGS
from evotrader.strategies.spec import StrategySpec, UniverseSpec
from evotrader.strategies.templates._indicators import TRADING_DAYS

Book = tuple[str, ...]
MIN_COINT_BARS = 30  # below this the Engle-Granger test has no power worth reporting
# Lags the test's ADF regression may use (chosen by AIC). statsmodels' default grows with the
# sample (23 lags for 1500 bars) and costs seconds per pair; a week of daily lags is enough.
COINT_MAX_LAG = 5


def load_universe_bars(
    universe: UniverseSpec,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
) -> dict[str, pd.DataFrame]:
    """Bars of every listed symbol from the universe's source, by symbol."""
    return {s: load_bars(universe.source, s, start=start, end=end) for s in universe.symbols}


def align(data: Mapping[str, pd.DataFrame], symbols: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """The symbols' bars restricted to the dates they all share (one common index).

    The data layer's ``align`` (validated bars, no forward fill) with no cap on the days a
    symbol loses to others' holes, as a search over a listed universe has always taken them,
    and its trimming logged at debug level (a search aligns the same symbols for every spec).
    """
    missing = [s for s in symbols if s not in data]
    if missing:
        raise KeyError(f"no bars for symbol(s) {missing}; have {sorted(data)}")
    aligned = align_bars(
        {s: data[s] for s in symbols}, missing="drop", max_drop_share=1.0, quiet=True
    )
    common = aligned[symbols[0]].index
    if len(common) < 2:
        raise ValueError(f"symbols {list(symbols)} share {len(common)} timestamps; need >= 2")
    return aligned


MOMENTUM_BARS = 126  # "momentum": the return over the last half year of daily bars


def symbol_stats(
    symbol: str, bars: pd.DataFrame, market: pd.Series | None = None
) -> dict[str, float | str]:
    """The filterable statistics of one symbol over ``bars`` (the training window).

    ``market`` is the universe's equal-weight daily log return on the same dates (beta is
    measured against it; without it beta is 1).
    """
    close, volume = bars["close"], bars["volume"]
    returns = np.log(close).diff().dropna()
    deviation = float(returns.std()) if len(returns) > 1 else 0.0
    sharpe = float(returns.mean()) / deviation * math.sqrt(TRADING_DAYS) if deviation else 0.0
    beta = 1.0
    if market is not None and len(returns) > 1:
        paired = market.reindex(returns.index)
        variance = float(paired.var())
        beta = float(returns.cov(paired)) / variance if variance > 0 else 1.0
    return {
        "symbol": symbol,
        "price": float(close.iloc[-1]),
        "avg_volume": float(volume.mean()),
        "avg_dollar_volume": float((close * volume).mean()),
        "volatility": deviation * math.sqrt(TRADING_DAYS),
        "total_return": float(close.iloc[-1] / close.iloc[0] - 1.0),
        "history_bars": float(len(bars)),
        "momentum": float(close.iloc[-1] / close.iloc[-min(MOMENTUM_BARS, len(close))] - 1.0),
        "max_drawdown": float((close / close.cummax() - 1.0).min()),
        "sharpe": sharpe,
        "beta": beta,
    }


def universe_stats(training: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, float | str]]:
    """Every symbol's statistics over its (aligned) training bars, in listed order."""
    log_returns = pd.DataFrame({s: np.log(b["close"]).diff() for s, b in training.items()})
    market = log_returns.mean(axis=1).dropna()
    return {s: symbol_stats(s, bars, market) for s, bars in training.items()}


def passing_symbols(spec: StrategySpec, training: Mapping[str, pd.DataFrame]) -> list[str]:
    """The listed symbols that pass the universe's filters, applied in order on the
    training bars (a ``top_n`` ranks only the symbols the earlier filters kept)."""
    stats = universe_stats({s: training[s] for s in spec.universe.symbols})
    kept = list(stats)
    for rule in spec.universe.filters:
        kept = rule.keep({s: stats[s] for s in kept})
    return kept


def resolve_books(
    spec: StrategySpec, data: Mapping[str, pd.DataFrame], end: pd.Timestamp | None = None
) -> list[Book]:
    """The books ``spec`` trades, decided from bars up to ``end`` (default: all of them)."""
    universe = spec.universe
    training = {s: bars.loc[:end] for s, bars in align(data, universe.symbols).items()}
    passing = passing_symbols(spec, training)
    if spec.info.legs == 1:
        return [(s,) for s in passing]
    if spec.info.cross_sectional:
        return [tuple(passing)] if len(passing) >= MIN_UNIVERSE_LEGS else []
    if universe.kind == "static":
        listed = zip(universe.symbols[::2], universe.symbols[1::2], strict=True)
        return [pair for pair in listed if pair[0] in passing and pair[1] in passing]
    found = cointegrated_pairs(training, passing, universe.max_p_value)
    return [pair for pair, _ in found[: universe.max_pairs]]


def cointegrated_pairs(
    data: Mapping[str, pd.DataFrame], symbols: list[str], max_p_value: float
) -> list[tuple[Book, float]]:
    """Pairs of ``symbols`` whose log closes are Engle-Granger cointegrated, best p first.

    Each pair is tested in list order (the first symbol regressed on the second) with
    statsmodels' ``coint`` (ADF lags up to ``COINT_MAX_LAG``, chosen by AIC) over all of
    ``data``: pass training bars only.
    """
    from statsmodels.tsa.stattools import coint  # a 1-2 s import: only when pairs are tested

    found = []
    for first, second in itertools.combinations(symbols, 2):
        a, b = np.log(data[first]["close"]), np.log(data[second]["close"])
        if len(a) < MIN_COINT_BARS:
            raise ValueError(
                f"cointegration test of {first}/{second} needs >= {MIN_COINT_BARS} bars, "
                f"got {len(a)}"
            )
        p_value = float(coint(a.to_numpy(), b.to_numpy(), maxlag=COINT_MAX_LAG, autolag="aic")[1])
        if p_value < max_p_value:
            found.append(((first, second), p_value))
    return sorted(found, key=lambda item: item[1])
