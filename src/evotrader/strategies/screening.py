"""Screening with backtesting.py: spec -> Strategy class, optimise, walk forward, judge.

The translator builds a backtesting.py ``Strategy`` subclass in code (``type(...)``, never
text): its parameters are the template's, its ``init`` computes the shared ``spec_targets``
and its ``next`` trades towards them with market orders, which backtesting.py fills at the
next bar's open (or at the close with ``ExecutionModel(fill="close")``), as our engine does.
Commission, half-spread and slippage become one backtesting.py commission rate on each fill.

Walk-forward: for each fold the universe is resolved and the parameters optimised
(``Backtest.optimize``, a grid inside the template's bounds) on the bars before the fold;
the fold is then traded with them. Only the stitched out-of-sample folds are judged.
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing import resource_tracker
from multiprocessing.pool import ThreadPool
from typing import Any

import backtesting
import backtesting.backtesting
import numpy as np
import pandas as pd
from backtesting import Backtest, Strategy

from evotrader.backtest import metrics
from evotrader.data.splits import walk_forward_folds
from evotrader.env.execution import ExecutionModel
from evotrader.strategies import diagnostics
from evotrader.strategies.runs import Leg, LegRun, SpecRun, book_targets, plan, run_legs
from evotrader.strategies.settings import ScreeningConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.universe import Book, align, load_universe_bars, resolve_books

_FULL = 1.0 - sys.float_info.epsilon  # backtesting.py reads sizes in (0, 1) as equity fractions
_MULTI_LEG_OBJECTIVE = "Return [%]"  # additive across legs, unlike a Sharpe ratio
_PATCH_LOCK = threading.Lock()


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: what was chosen in-sample and how it did out of sample."""

    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    books: list[Book]
    parameters: dict[str, int | float]
    in_sample: SpecRun
    out_of_sample: SpecRun

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_end": self.train_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
            "books": [list(book) for book in self.books],
            "parameters": dict(self.parameters),
            "in_sample_sharpe": self.in_sample.metrics["sharpe"],
            "oos_sharpe": self.out_of_sample.metrics["sharpe"],
            "oos_return": self.out_of_sample.metrics["total_return"],
            "oos_trades": self.out_of_sample.metrics["n_trades"],
        }


def strategy_class(spec: StrategySpec, leg: Leg, first: int) -> type[Strategy]:
    """A backtesting.py Strategy trading ``leg`` of ``spec`` from bar ``first`` on.

    Built deterministically in code: class attributes are the template's parameters (so
    ``Backtest.run``/``optimize`` can set them) and the spec, the book's bars and the leg.
    """
    clashes = [name for name in spec.parameters if hasattr(_TargetStrategy, name)]
    if clashes:
        raise ValueError(f"{spec.template}: parameter(s) {clashes} shadow backtesting.py names")
    attributes = dict(spec.parameters) | {
        "spec": spec,
        "book_frames": leg.book_frames,
        "column": leg.column,
        "first": first,
    }
    name = f"Spec_{spec.spec_id}_{leg.book.replace('/', '_')}_{leg.column}"
    return type(name, (_TargetStrategy,), attributes)


class _TargetStrategy(Strategy):
    """Trades towards the spec's target at each bar; subclasses carry spec and parameters."""

    spec: StrategySpec
    book_frames: tuple[pd.DataFrame, ...]
    column: int
    first: int

    def init(self) -> None:
        parameters = {name: getattr(self, name) for name in self.spec.parameters}
        targets = book_targets(self.spec, self.book_frames, self.first, parameters)
        column = targets[:, self.column]
        self.target = self.I(lambda: column, name="target", plot=False)
        self.held = 0.0

    def next(self) -> None:
        target = float(self.target[-1])
        previous = self.held
        if target == previous:
            return
        self.held = target
        if target == 0.0 or previous == 0.0 or (target > 0) != (previous > 0):
            if self.position:
                self.position.close()
            if target != 0.0:
                order = self.buy if target > 0 else self.sell
                order(size=min(abs(target), _FULL))
        else:
            self._resize(abs(target), 1 if target > 0 else -1)

    def _resize(self, target: float, side: int) -> None:
        """Same side, new size: aim at ``target`` x equity at this close, as our engine aims
        at it at the fill; only the gap between close and fill differs."""
        price, equity = self.data.Close[-1], self.equity
        held, wanted = abs(self.position.size), target * equity / price
        if wanted > held:
            free = equity - held * price  # backtesting.py sizes fractions of the free margin
            order = self.buy if side > 0 else self.sell
            order(size=min((wanted - held) * price / free, _FULL))
        elif wanted < held:
            self.position.close(portion=1.0 - wanted / held)


def run_backtesting(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    execution: ExecutionModel | None = None,
    cash: float = 1_000_000.0,
) -> SpecRun:
    """Run ``spec`` with backtesting.py's ``Backtest.run``, one backtest per leg.

    Same arguments and result as ``backtest_bridge.run_engine``, so the two compare directly.
    """
    execution = _checked(execution)
    run_spec = spec.with_parameters(parameters) if parameters else spec

    def fill(leg: Leg, first: int, leg_cash: float) -> LegRun:
        backtest = _backtest(run_spec, leg, first, execution, leg_cash)
        return _leg_run(backtest.run(), leg, first, execution)

    with _backtesting_in_process():
        return run_legs(
            spec,
            data,
            fill,
            execution,
            parameters=parameters,
            start=start,
            books=books,
            cash=cash,
        )


def optimize(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    books: list[Book],
    config: ScreeningConfig,
    execution: ExecutionModel | None = None,
    seed: int = 0,
) -> tuple[dict[str, int | float], float]:
    """Best parameters on ``data`` by ``Backtest.optimize`` over a grid inside the bounds.

    Returns the parameters and their objective (NaN, with the spec's own parameters, when
    no combination traded). Template constraints (e.g. fast < slow) restrict the grid; a
    grid over ``max_combinations`` is sampled with ``seed``.
    """
    execution = _checked(execution)
    legs_plan = plan(spec, data, books=books)
    if not legs_plan.legs:
        return dict(spec.parameters), math.nan
    grid = parameter_grid(spec, config.grid_points)
    size = math.prod(len(values) for values in grid.values())
    key = config.maximize if len(legs_plan.legs) == 1 else _MULTI_LEG_OBJECTIVE
    constraints = spec.info.constraints
    heatmaps = []
    with _backtesting_in_process():
        for leg in legs_plan.legs:
            backtest = _backtest(
                spec, leg, legs_plan.first, execution, config.cash / len(legs_plan.legs)
            )
            _, heatmap = backtest.optimize(
                **grid,
                maximize=key,
                constraint=lambda p: all(c.holds(p) for c in constraints),
                max_tries=config.max_combinations if size > config.max_combinations else None,
                random_state=seed,
                return_heatmap=True,
            )
            heatmaps.append(heatmap)
    objective = _combined(heatmaps)
    if objective.isna().all():
        return dict(spec.parameters), math.nan
    best = objective.idxmax()
    best = best if isinstance(best, tuple) else (best,)
    chosen = spec.with_parameters(dict(zip(objective.index.names, best, strict=True)))
    return dict(chosen.parameters), float(objective.max())


def parameter_grid(spec: StrategySpec, points: int) -> dict[str, list[int | float]]:
    """Per parameter: ``points`` values spread over its bounds plus the spec's own value."""
    return {
        name: sorted(set(p.grid(points)) | {spec.parameters[name]})
        for name, p in spec.info.parameters.items()
    }


def walk_forward(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    config: ScreeningConfig,
    execution: ExecutionModel | None = None,
    seed: int = 0,
) -> list[Fold]:
    """Optimise on each in-sample window (expanding), trade the next out-of-sample fold."""
    frames = align(data, spec.universe.symbols)
    index = frames[spec.universe.symbols[0]].index
    test_size = int(len(index) * (1.0 - config.min_train_fraction) / config.n_folds)
    if test_size < 2:
        raise ValueError(f"{len(index)} bars are too few for {config.n_folds} folds")
    windows = walk_forward_folds(
        pd.DataFrame(index=index),
        n_folds=config.n_folds,
        test_size=test_size,
        embargo=config.embargo,
    )
    folds = []
    for train, test in windows:
        train_end, test_start, test_end = train.index[-1], test.index[0], test.index[-1]
        in_sample = {s: bars.loc[:train_end] for s, bars in frames.items()}
        books = resolve_books(spec, in_sample, train_end)
        parameters, _ = optimize(spec, in_sample, books, config, execution, seed)
        run = partial(
            run_backtesting,
            spec,
            parameters=parameters,
            books=books,
            execution=execution,
            cash=config.cash,
        )
        folds.append(
            Fold(
                train_end=train_end,
                test_start=test_start,
                test_end=test_end,
                books=books,
                parameters=parameters,
                in_sample=run(in_sample),
                out_of_sample=run(
                    {s: b.loc[:test_end] for s, b in frames.items()}, start=test_start
                ),
            )
        )
    return folds


def screen(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame] | None = None,
    config: ScreeningConfig | None = None,
    execution: ExecutionModel | None = None,
    seed: int = 0,
) -> StrategyResult:
    """Walk-forward screen of ``spec`` judged by ``config``'s criteria, with diagnostics.

    ``data`` defaults to the universe's bars from its source. The result's metrics are the
    stitched out-of-sample folds after costs; its ``failure_reason`` reads like an analyst's
    note ("Failed: walk-forward Sharpe 0.21 < 0.5; 9 of 14 losing trades came in ...").
    """
    config = config or ScreeningConfig()
    data = data if data is not None else load_universe_bars(spec.universe)
    folds = walk_forward(spec, data, config, execution, seed)
    stitched = stitch([fold.out_of_sample for fold in folds], config.cash)
    labels = diagnostics.label_regimes(stitched.benchmark_equity)
    regimes = diagnostics.regime_results(
        stitched.equity, stitched.benchmark_equity, stitched.trades, labels
    )
    in_sample_sharpe = float(np.mean([fold.in_sample.metrics["sharpe"] for fold in folds]))
    failed = config.failures(stitched.metrics, stitched.benchmark)
    empty = sum(not fold.books for fold in folds)
    notes = [f"the universe resolved to no instrument in {empty} of {len(folds)} folds"] * bool(
        empty
    )
    notes += diagnostics.findings(
        stitched.metrics,
        stitched.benchmark,
        stitched.trades,
        stitched.benchmark_equity,
        regimes,
        stitched.fees,
        stitched.slippage,
        in_sample_sharpe=in_sample_sharpe,
        fold_sharpes=[fold.out_of_sample.metrics["sharpe"] for fold in folds],
    )
    verdict = "Failed: " if failed else "Passed"
    summary = verdict + "; ".join(failed + notes) if failed else "; ".join([verdict, *notes])
    return StrategyResult(
        spec_id=spec.spec_id,
        phase="screen",
        passed=not failed,
        metrics=stitched.metrics,
        benchmark=stitched.benchmark,
        parameters=folds[-1].parameters,
        equity=stitched.equity,
        trades=stitched.trades,
        regimes=regimes,
        fees=stitched.fees,
        slippage=stitched.slippage,
        failure_reason=summary if failed else "",
        failure_details=tuple(failed + notes),
        diagnostics={
            "engine": "backtesting.py",
            "summary": summary,
            "failed": failed,  # the pass criteria missed (failure_details adds the notes)
            "in_sample_sharpe": in_sample_sharpe,
            "folds": [fold.to_dict() for fold in folds],
            "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
            "seed": seed,
        },
    )


def stitch(runs: list[SpecRun], cash: float) -> SpecRun:
    """Chain consecutive out-of-sample runs into one account, as if capital rolled over.

    Each run starts from ``cash``; run k is scaled by the equity the previous runs ended
    with, and so are its trades' P&L and its costs. Metrics are recomputed on the chain.
    """
    scales, equity_end, benchmark_end = [], cash, cash
    equities, benchmarks = [], []
    for run in runs:
        scales.append(equity_end / cash)
        equities.append(run.equity * scales[-1])
        benchmarks.append(run.benchmark_equity * (benchmark_end / cash))
        equity_end, benchmark_end = equities[-1].iloc[-1], benchmarks[-1].iloc[-1]
    equity = pd.concat(equities).rename("equity")
    benchmark_equity = pd.concat(benchmarks).rename("benchmark")
    scaled = [r.trades.assign(pnl=r.trades["pnl"] * s) for r, s in zip(runs, scales, strict=True)]
    traded = [t for t in scaled if not t.empty] or scaled[:1]  # pandas warns on empty frames
    trades = pd.concat(traded, ignore_index=True)
    units = pd.concat([r.units for r in runs]).fillna(0.0)
    fees = float(sum(r.fees * s for r, s in zip(runs, scales, strict=True)))
    slippage = float(sum(r.slippage * s for r, s in zip(runs, scales, strict=True)))
    notional = float(sum(r.traded_notional * s for r, s in zip(runs, scales, strict=True)))
    ppy = metrics.periods_per_year(pd.DatetimeIndex(equity.index))
    exposure = np.abs(units.to_numpy()).sum(axis=1) if units.shape[1] else np.zeros(len(equity))
    return SpecRun(
        equity=equity,
        units=units,
        trades=trades,
        fees=fees,
        slippage=slippage,
        traded_notional=notional,
        metrics=metrics.summarize(equity, exposure, trades, fees + slippage, notional, ppy),
        benchmark_equity=benchmark_equity,
        benchmark=metrics.performance_metrics(benchmark_equity, ppy),
        books=sorted({book for r in runs for book in r.books}),
    )


def _checked(execution: ExecutionModel | None) -> ExecutionModel:
    execution = execution or ExecutionModel()
    if execution.impact_coef > 0:
        raise ValueError(
            "backtesting.py has no market-impact model: screen with impact_coef=0 "
            "(the NautilusTrader validation and our engine model impact)"
        )
    return execution


def _backtest(
    spec: StrategySpec, leg: Leg, first: int, execution: ExecutionModel, cash: float
) -> Backtest:
    ohlcv = leg.bars.rename(columns=str.capitalize)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some prices are larger than initial cash")
        return Backtest(
            ohlcv,
            strategy_class(spec, leg, first),
            cash=cash,
            commission=execution.linear_rate,
            trade_on_close=execution.fill == "close",
        )


def _leg_run(stats: pd.Series, leg: Leg, first: int, execution: ExecutionModel) -> LegRun:
    """Units held and fill prices per mark, rebuilt from backtesting.py's trades."""
    n = len(leg.bars)
    shift = 1 if execution.fill == "close" else 0  # close fills book at the decision bar
    closed = stats["_trades"]
    still_open = stats["_strategy"].trades
    entries = np.concatenate(
        [closed["EntryBar"].to_numpy(int), [t.entry_bar for t in still_open]]
    ).astype(np.int64)
    sizes = np.concatenate([closed["Size"].to_numpy(float), [t.size for t in still_open]])
    entry_prices = np.concatenate(
        [closed["EntryPrice"].to_numpy(float), [t.entry_price for t in still_open]]
    )
    exits, exit_prices = closed["ExitBar"].to_numpy(int), closed["ExitPrice"].to_numpy(float)
    delta = np.zeros(n + 1)
    np.add.at(delta, entries + shift, sizes)
    np.add.at(delta, exits + shift, -closed["Size"].to_numpy(float))
    prices = np.full(n + 1, np.nan)
    prices[entries + shift] = entry_prices
    prices[exits + shift] = exit_prices
    notional = float(np.abs(sizes * entry_prices).sum())
    notional += float(np.abs(closed["Size"].to_numpy(float) * exit_prices).sum())
    return LegRun(
        leg=leg,
        equity=stats["_equity_curve"]["Equity"].to_numpy(np.float64)[first:],
        units=np.cumsum(delta)[first:n],
        fill_prices=prices[first:n],
        traded_notional=notional,
        costs=notional * execution.linear_rate,
        commission=notional * execution.commission_bps / 1e4,
    )


def _combined(heatmaps: list[pd.Series]) -> pd.Series:
    """One objective per combination: the leg's own, or the legs' mean (no trades: 0)."""
    if len(heatmaps) == 1:
        return heatmaps[0]
    stacked = pd.concat(heatmaps, axis=1)
    return stacked.fillna(0.0).mean(axis=1).where(stacked.notna().any(axis=1))


@contextmanager
def _backtesting_in_process() -> Iterator[None]:
    """Run backtesting.py's optimiser in a one-thread pool and without progress bars.

    Its default process pool forks (unsafe next to torch and Ray threads) and pickles the
    strategy class, which a class built at run time cannot be; ``backtesting.Pool`` is the
    library's documented override point. Its shared-memory blocks are created and unlinked
    here, in one process, by its own manager; on Python < 3.13 its workers' attach/detach
    dance through the resource tracker races with the main thread and makes the tracker print
    KeyError tracebacks into the run's output, so the tracker is bypassed meanwhile.
    Restored on exit, serialised by a lock.
    """
    with _PATCH_LOCK:
        pool, progress = backtesting.Pool, backtesting.backtesting._tqdm
        backtesting.Pool = lambda *args, **kwargs: ThreadPool(1)
        backtesting.backtesting._tqdm = lambda iterable, **kwargs: iterable
        tracked = resource_tracker.register, resource_tracker.unregister
        resource_tracker.register = resource_tracker.unregister = lambda *args: None
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Some trades remain open")
                yield
        finally:
            backtesting.Pool, backtesting.backtesting._tqdm = pool, progress
            resource_tracker.register, resource_tracker.unregister = tracked
