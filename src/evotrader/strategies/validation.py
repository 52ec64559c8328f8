"""Validation with NautilusTrader: a spec under broker-like costs, by regime, and its capacity.

Translator: each leg of a spec becomes one NautilusTrader backtest through the one
integration in ``backtest/nautilus_replay.py`` (``run_targets``: a margin account, one
equity instrument, the bars as given, the replay strategy trading the shared
``spec_targets`` with market orders in whole shares). Nautilus fills a market order sent
from ``on_bar`` at that bar's close, so it matches our engine with
``ExecutionModel(fill="close")``, not the default next-open fill. Costs are the IB cost
model (``backtest/costs.IBCosts``): $0.005 per share, $1 minimum, at most 1% of the
trade's value, plus slippage in basis points of notional charged as a fee, so fill prices
stay the closes. Metrics are ours, from a daily mark-to-market equity curve rebuilt from
Nautilus's fills (its own statistics count closed positions only).

Validation (``validate``) judges a spec on a held-out window, never seen by screening:
Sharpe and drawdown there, returns in four S&P 500 regimes (``SP500_REGIMES``), and
capacity: the capital at which square-root market impact halves the Sharpe. Its settings
(``ValidationConfig``) live in ``settings.py``, which the run's schema nests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial

import numpy as np
import pandas as pd

from evotrader.backtest.costs import IBCosts
from evotrader.backtest.nautilus_replay import TargetFills, run_targets
from evotrader.env.execution import ExecutionModel
from evotrader.strategies import diagnostics
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.runs import Leg, LegRun, SpecRun, run_legs
from evotrader.strategies.settings import ValidationConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.universe import Book


def run_nautilus(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    costs: IBCosts | None = None,
    cash: float = 1_000_000.0,
) -> SpecRun:
    """Run ``spec`` in NautilusTrader, one backtest per leg, after ``costs``.

    Same arguments and result as ``run_engine`` and ``run_backtesting`` (with broker costs
    in place of an execution model), so the three compare directly. Whole shares only.
    """
    costs = costs or IBCosts()
    return run_legs(
        spec,
        data,
        partial(_run_leg, costs),
        ExecutionModel(0.0, 0.0, costs.slippage_bps, fill="close"),
        parameters=parameters,
        start=start,
        books=books,
        cash=cash,
    )


def validate(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    start: str | pd.Timestamp,
    parameters: Mapping[str, int | float] | None = None,
    config: ValidationConfig | None = None,
) -> StrategyResult:
    """Judge ``spec`` on the held-out window of ``data`` from ``start`` to its last bar.

    ``data`` holds the universe's bars up to the window's end; bars before ``start`` are
    indicator history and decide the universe. ``parameters`` (the screen's) are fixed.
    Regimes are measured on one run over all of ``data`` with the held-out books and
    parameters: a robustness check, in sample where a regime lies before ``start``.
    """
    config = config or ValidationConfig()
    tuned = spec.with_parameters(parameters) if parameters else spec
    run = partial(
        run_nautilus, tuned, data, parameters=tuned.parameters, costs=config.costs, cash=config.cash
    )
    held = run(start=start)
    regimes, uncovered = regime_results(run(books=held.books), config)
    positive = [name for name, r in regimes.items() if r["return"] > 0]
    capacity, curve = capacity_scan(tuned, data, start, held.books, config)
    failed = config.failures(held.metrics, positive, capacity)
    labels = diagnostics.label_regimes(held.benchmark_equity)
    notes = diagnostics.findings(
        held.metrics,
        held.benchmark,
        held.trades,
        held.benchmark_equity,
        diagnostics.regime_results(held.equity, held.benchmark_equity, held.trades, labels),
        held.fees,
        held.slippage,
    )
    notes.append(_regime_sentence(regimes, uncovered))
    if not held.books:
        notes.insert(0, "the universe resolved to no instrument before the held-out window")
    summary = ("Failed: " + "; ".join(failed + notes)) if failed else "; ".join(["Passed", *notes])
    return StrategyResult(
        spec_id=spec.spec_id,
        phase="validate",
        passed=not failed,
        metrics=held.metrics,
        benchmark=held.benchmark,
        parameters=dict(tuned.parameters),
        equity=held.equity,
        trades=held.trades,
        regimes=regimes,
        fees=held.fees,
        slippage=held.slippage,
        failure_reason=summary if failed else "",
        failure_details=tuple(failed + notes),
        diagnostics={
            "engine": "nautilus_trader",
            "summary": summary,
            "failed": failed,  # the pass criteria missed (failure_details adds the notes)
            "window": {
                "start": held.equity.index[0].isoformat(),
                "end": held.equity.index[-1].isoformat(),
            },
            "books": [list(book) for book in held.books],
            "capacity": capacity,
            "capacity_curve": curve,
            "positive_regimes": positive,
            "regimes_without_data": uncovered,
            "regime_periods": [asdict(p) for p in config.regimes],
            "costs": asdict(config.costs),
        },
    )


def regime_results(
    run: SpecRun, config: ValidationConfig
) -> tuple[dict[str, dict[str, float]], list[str]]:
    """Per regime with at least ``min_regime_bars`` bars in ``run``: its results (see
    ``diagnostics.regime_results``); and the regimes the run does not cover."""
    index = pd.DatetimeIndex(run.equity.index)
    found, uncovered = {}, []
    for name in config.regime_names:
        inside = np.zeros(len(index), dtype=bool)
        for period in config.regimes:
            if period.regime == name:
                inside |= (index >= pd.Timestamp(period.start)) & (
                    index <= pd.Timestamp(period.end)
                )
        if inside.sum() < config.min_regime_bars:
            uncovered.append(name)
            continue
        labels = pd.Series(np.where(inside, name, ""), index=index)
        found[name] = diagnostics.regime_results(
            run.equity, run.benchmark_equity, run.trades, labels
        )[name]
    return found, uncovered


def capacity_scan(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    start: str | pd.Timestamp,
    books: list[Book],
    config: ValidationConfig,
) -> tuple[float, dict[str, float]]:
    """Capital at which square-root impact cuts the held-out Sharpe to ``capacity_keep`` of
    its impact-free value, and the Sharpe at each scanned capital.

    Our engine runs the held-out window at each capital of the grid (NautilusTrader has no
    impact model), with the broker's commission as bps at the legs' median price. Impact
    per unit traded grows with sqrt(capital), so the Sharpe is interpolated linearly in
    sqrt(capital) between scanned points (from the impact-free Sharpe at zero capital).
    No edge (Sharpe <= 0) means no capacity; a Sharpe that survives the whole grid gives
    infinity.
    """
    prices = [float(data[s]["close"].loc[start:].median()) for book in books for s in book]
    base_model = config.costs.execution(float(np.median(prices)) if prices else 1.0)
    run = partial(run_engine, spec, data, parameters=spec.parameters, start=start, books=books)
    base = run(execution=base_model, cash=config.cash).metrics["sharpe"]
    curve = {"0": base}
    if not base > 0:
        return 0.0, curve
    impact = ExecutionModel(
        commission_bps=base_model.commission_bps,
        half_spread_bps=0.0,
        slippage_bps=base_model.slippage_bps,
        impact_coef=config.impact_coef,
        impact_window=config.impact_window,
        fill="close",
    )
    floor = config.capacity_keep * base
    previous = (0.0, base)
    for capital in config.capacity_grid:
        sharpe = run(execution=impact, cash=capital).metrics["sharpe"]
        curve[f"{capital:g}"] = sharpe
        if sharpe < floor:
            (low, above), high = previous, math.sqrt(capital)
            root = low + (above - floor) / (above - sharpe) * (high - low)
            return root**2, curve
        previous = (math.sqrt(capital), sharpe)
    return math.inf, curve


def _regime_sentence(regimes: Mapping[str, Mapping[str, float]], uncovered: list[str]) -> str:
    parts = [
        f"{name} {r['return']:+.1%} (buy & hold {r['benchmark_return']:+.1%})"
        for name, r in regimes.items()
    ]
    parts += [f"{name}: no data" for name in uncovered]
    return "S&P 500 regimes: " + ", ".join(parts)


# --- the NautilusTrader side -----------------------------------------------------------------


def _run_leg(costs: IBCosts, leg: Leg, first: int, cash: float) -> LegRun:
    """One leg in Nautilus: its targets from bar ``first`` on (the last bar only marks, so
    no decision fills there), slippage charged as a fee."""
    done = run_targets(
        leg.bars, leg.targets[:-1], leg.symbol, costs, cash, first=first, slippage="fee"
    )
    return _leg_run(leg, first, done, costs, cash)


def _leg_run(leg: Leg, first: int, done: TargetFills, costs: IBCosts, cash: float) -> LegRun:
    """Daily mark-to-market account from Nautilus's fills, in the convention of our engine:
    a fill at bar b's close changes the held units from mark b - first + 1 on."""
    bars = leg.bars
    n = len(bars)
    at = done.fills["bar"].to_numpy(np.int64)
    if ((at < first) | (at > n - 2)).any():
        raise RuntimeError(f"NautilusTrader filled {leg.symbol} away from its decision bars")
    signed, prices, paid = (done.fills[k].to_numpy(np.float64) for k in ("units", "price", "cost"))
    shares = np.abs(signed)
    cash_after, held = done.holdings(n, cash)
    close = bars["close"].to_numpy(np.float64)
    equity = (cash_after + held * close)[first:]
    units = np.concatenate(([0.0], held[first:-1]))
    fill_prices = np.full(n - first, np.nan)
    fill_prices[at - first + 1] = prices
    return LegRun(
        leg=leg,
        equity=equity,
        units=units,
        fill_prices=fill_prices,
        traded_notional=float(np.abs(signed * prices).sum()),
        costs=float(paid.sum()),
        commission=float(sum(costs.commission(s, p) for s, p in zip(shares, prices, strict=True))),
    )
