"""What every translator shares: the legs a spec trades on one window and the combined result.

A run splits the capital equally across legs (a pair is two legs), computes each book's
targets once with ``spec_targets``, lets a translator fill them (our engine or
backtesting.py), and combines the legs into one equity curve, one trade list and one set of
metrics computed with evotrader's own formulas, so results from different engines compare
number for number. Bars before ``start`` are history only; the first bar always is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evotrader.backtest import metrics
from evotrader.backtest.engine import simulate
from evotrader.env.execution import ExecutionModel
from evotrader.strategies.signals import spec_targets
from evotrader.strategies.spec import StrategySpec
from evotrader.strategies.universe import Book, align, resolve_books

TRADE_COLUMNS = ("book", "symbol", *metrics.TRADE_COLUMNS)


@dataclass(frozen=True)
class Leg:
    """One instrument of one book: the book's bars, this leg's column and its targets."""

    book: str
    symbol: str
    book_frames: tuple[pd.DataFrame, ...]
    column: int
    targets: np.ndarray

    @property
    def bars(self) -> pd.DataFrame:
        return self.book_frames[self.column]


@dataclass(frozen=True)
class Plan:
    """Everything a translator needs: the legs, the common index and the first decision,
    plus every universe symbol's bars (the buy-and-hold benchmark holds them all)."""

    legs: list[Leg]
    index: pd.DatetimeIndex
    first: int
    books: list[Book]
    universe: dict[str, pd.DataFrame]

    @property
    def marks(self) -> pd.DatetimeIndex:
        return self.index[self.first :]


@dataclass(frozen=True)
class LegRun:
    """One leg filled by a translator, marked at each close from the first decision on.

    ``units[i]`` is held during mark i (after that bar's fill); ``fill_prices[i]`` is the
    price of the fill that changed the position at mark i (NaN where none did).
    """

    leg: Leg
    equity: np.ndarray
    units: np.ndarray
    fill_prices: np.ndarray
    traded_notional: float
    costs: float
    commission: float


@dataclass(frozen=True)
class SpecRun:
    """A spec's result on one window: combined equity, per-leg units, trades, costs, metrics."""

    equity: pd.Series
    units: pd.DataFrame
    trades: pd.DataFrame
    fees: float
    slippage: float
    traded_notional: float
    metrics: dict[str, float]
    benchmark_equity: pd.Series
    benchmark: dict[str, float]
    books: list[Book]


def plan(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
) -> Plan:
    """Legs of ``spec`` on the universe's common dates, trading from ``start`` on.

    ``books`` defaults to the universe resolved on the bars before ``start`` (all bars when
    there is no start: only then can a computed universe see the traded period).
    """
    frames = align(data, spec.universe.symbols)
    index = frames[spec.universe.symbols[0]].index
    first = _first_decision(index, start)
    if books is None:
        end = index[first - 1] if start is not None else None
        books = resolve_books(spec, frames, end)
    legs: list[Leg] = []
    for book in books:
        book_frames = tuple(frames[s] for s in book)
        targets = book_targets(spec, book_frames, first, parameters)
        legs.extend(
            Leg("/".join(book), symbol, book_frames, column, targets[:, column])
            for column, symbol in enumerate(book)
        )
    return Plan(legs=legs, index=index, first=first, books=books, universe=frames)


LegFill = Callable[[Leg, int, float], LegRun]  # (leg, first decision, the leg's cash)


def run_legs(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    fill: LegFill,
    benchmark: ExecutionModel,
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    cash: float = 1_000_000.0,
) -> SpecRun:
    """What every translator does around its own fills: plan the legs, give each an equal
    share of ``cash``, let ``fill`` trade it, and combine the legs next to buy-and-hold
    after ``benchmark``'s costs."""
    legs_plan = plan(spec, data, parameters=parameters, start=start, books=books)
    per_leg = cash / max(len(legs_plan.legs), 1)
    runs = [fill(leg, legs_plan.first, per_leg) for leg in legs_plan.legs]
    return combine(legs_plan, runs, benchmark, cash)


def book_targets(
    spec: StrategySpec,
    book_frames: tuple[pd.DataFrame, ...],
    first: int,
    parameters: Mapping[str, int | float] | None = None,
) -> np.ndarray:
    """The book's targets (bars, legs), flat before the first decision."""
    targets = spec_targets(spec, book_frames, parameters)
    targets[:first] = 0.0
    return targets


def _first_decision(index: pd.DatetimeIndex, start: str | pd.Timestamp | None) -> int:
    first = 1 if start is None else max(1, int(index.searchsorted(pd.Timestamp(start))))
    if first > len(index) - 2:
        raise ValueError(
            f"start {start} leaves no bar to trade: data ends {index[-1]} ({len(index)} bars)"
        )
    return first


def combine(
    plan: Plan,
    runs: list[LegRun],
    execution: ExecutionModel,
    cash: float,
) -> SpecRun:
    """Sum the legs into one account and measure it next to buy-and-hold of the universe."""
    marks = plan.marks
    ppy = metrics.periods_per_year(marks)
    if runs:
        equity = pd.Series(np.sum([r.equity for r in runs], axis=0), index=marks, name="equity")
    else:
        equity = pd.Series(cash, index=marks, name="equity", dtype=np.float64)
    units = pd.DataFrame(
        {f"{r.leg.book}:{r.leg.symbol}": r.units for r in runs}, index=marks, dtype=np.float64
    )
    trades = _trades(marks, runs)
    costs = sum(r.costs for r in runs)
    fees = sum(r.commission for r in runs)
    notional = sum(r.traded_notional for r in runs)
    exposure = np.abs(units.to_numpy()).sum(axis=1) if runs else np.zeros(len(marks))
    summary = metrics.summarize(equity, exposure, trades, costs, notional, ppy)
    benchmark_equity = buy_and_hold(plan, execution, cash)
    return SpecRun(
        equity=equity,
        units=units,
        trades=trades,
        fees=fees,
        slippage=costs - fees,
        traded_notional=notional,
        metrics=summary,
        benchmark_equity=benchmark_equity,
        benchmark=metrics.performance_metrics(benchmark_equity, ppy),
        books=plan.books,
    )


def buy_and_hold(plan: Plan, execution: ExecutionModel, cash: float) -> pd.Series:
    """Equal capital long in every universe symbol from the first decision, after costs.

    The whole listed universe, not just the books traded, so the benchmark does not move
    when a fold's computed universe changes or comes out empty.
    """
    count = len(plan.index) - 1 - plan.first
    per_symbol = cash / len(plan.universe)
    curves = [
        simulate(
            np.ones(count), execution.prices(bars), plan.first, execution.linear_rate, per_symbol
        ).equity
        for bars in plan.universe.values()
    ]
    return pd.Series(np.sum(curves, axis=0), index=plan.marks, name="benchmark")


def _trades(marks: pd.DatetimeIndex, runs: list[LegRun]) -> pd.DataFrame:
    frames = [
        metrics.round_trips(marks, r.units, r.equity, r.fill_prices).assign(
            book=r.leg.book, symbol=r.leg.symbol
        )
        for r in runs
    ]
    if not frames:
        return pd.DataFrame(columns=list(TRADE_COLUMNS))
    trades = pd.concat(frames, ignore_index=True)[list(TRADE_COLUMNS)]
    return trades.sort_values(["entry_time", "book", "symbol"], kind="stable", ignore_index=True)
