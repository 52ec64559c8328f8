"""A spec's books as one portfolio: its targets as the weights of a single account, run by
the portfolio engine next to equal weight and buy-and-hold of the same universe.

The three translators give each leg its own equal share of the capital (a sleeve). Here the
legs share one account, as a portfolio checkpoint's assets do: when a leg's target changes,
its weight becomes target / legs, the exposure its sleeve would take; between changes the
policy holds (the weights drift with prices, like the sleeves). So the two differ only in
how capital one leg frees is reused by another, and a cross-sectional spec is judged in the
engine, with the costs and the baselines, every portfolio checkpoint is judged in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from evotrader.backtest.baselines import (
    BUY_AND_HOLD,
    EQUAL_WEIGHT,
    Comparison,
    buy_and_hold,
    compare_with_baselines,
    equal_weight,
)
from evotrader.backtest.portfolio import History, PortfolioSettings, WeightsPolicy
from evotrader.env.execution import ExecutionModel
from evotrader.strategies.runs import plan
from evotrader.strategies.spec import StrategySpec
from evotrader.strategies.universe import Book


def book_weights(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
) -> pd.DataFrame:
    """Target weight of every universe symbol at every close (0 outside the books and
    before ``start``): each leg's target over the number of legs, summed per symbol."""
    legs_plan = plan(spec, data, parameters=parameters, start=start, books=books)
    weights = pd.DataFrame(0.0, index=legs_plan.index, columns=list(legs_plan.universe))
    for leg in legs_plan.legs:
        weights[leg.symbol] += leg.targets / len(legs_plan.legs)
    return weights


def latest_weights(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    books: list[Book],
    parameters: Mapping[str, int | float] | None = None,
) -> np.ndarray:
    """``book_weights`` at the last of ``data``'s closes, from those bars only: what the
    full-data weights hold at that close, since every target reads closes <= t (the live
    basket bot decides with it; ``books`` are resolved once, before its first bar)."""
    weights = book_weights(spec, data, parameters=parameters, books=books)
    return weights.iloc[-1].to_numpy(np.float64)


def weights_policy(weights: pd.DataFrame) -> WeightsPolicy:
    """Trade to ``weights`` at a close where they changed; hold (None) where they did not."""
    return changed_only(
        lambda history: weights.loc[history.timestamp, list(history.closes.columns)].to_numpy()
    )


def changed_only(
    wanted_at: Callable[[History], np.ndarray],
) -> Callable[[History], np.ndarray | None]:
    """A policy trading to ``wanted_at(history)`` when it differs from the weights it last
    traded to, holding (None) otherwise: the first decision always trades."""
    held: dict[str, np.ndarray] = {}

    def decide(history: History) -> np.ndarray | None:
        wanted = wanted_at(history)
        if "last" in held and np.array_equal(held["last"], wanted):
            return None
        held["last"] = wanted
        return wanted

    return decide


def compare_as_portfolio(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    start: str | pd.Timestamp,
    parameters: Mapping[str, int | float] | None = None,
    execution: ExecutionModel | None = None,
    cash: float = 1_000_000.0,
    split: str = "test",
) -> Comparison:
    """The spec as one account from ``start`` next to equal weight and buy-and-hold of its
    universe, through the same portfolio engine and costs (bars before ``start`` are
    history; the universe is resolved on them)."""
    weights = book_weights(spec, data, parameters=parameters, start=start)
    frames = {s: data[s].loc[weights.index] for s in weights.columns}
    settings = PortfolioSettings(
        rebalance="bar",
        long_only=bool((weights >= 0.0).all().all()),
        max_gross=1.0,
        initial_cash=cash,
        execution=execution or ExecutionModel(),
    )
    return compare_with_baselines(
        weights_policy(weights),
        frames,
        settings,
        name="strategy",
        split=split,
        start=start,
        baselines={EQUAL_WEIGHT: equal_weight, BUY_AND_HOLD: buy_and_hold},
    )
