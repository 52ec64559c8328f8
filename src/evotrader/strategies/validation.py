"""Validation with NautilusTrader: a spec under broker-like costs, by regime, and its capacity.

Translator: each leg of a spec becomes one NautilusTrader backtest through the one
integration in ``backtest/nautilus_replay.py`` (``run_targets``: a margin account, one
equity instrument, the bars as given, the replay strategy trading the shared
``spec_targets`` with market orders in whole shares). Nautilus fills a market order sent
from ``on_bar`` at that bar's close, so it matches our engine with
``ExecutionModel(fill="close")``, not the default next-open fill. Costs are the IB cost
model (``BrokerCosts``, i.e. ``IBCosts``): $0.005 per share, $1 minimum, at most 1% of the
trade's value, plus slippage in basis points of notional charged as a fee, so fill prices
stay the closes. Metrics are ours, from a daily mark-to-market equity curve rebuilt from
Nautilus's fills (its own statistics count closed positions only).

Validation (``validate``) judges a spec on a held-out window, never seen by screening:
Sharpe and drawdown there, returns in four S&P 500 regimes (``SP500_REGIMES``), and
capacity: the capital at which square-root market impact halves the Sharpe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from evotrader.backtest.nautilus_replay import IBCosts, TargetFills, run_targets
from evotrader.env.execution import ExecutionModel
from evotrader.strategies import diagnostics
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.runs import Leg, LegRun, SpecRun, run_legs
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.universe import Book

BrokerCosts = IBCosts  # the one IB cost model, under the name validation configs use


@dataclass(frozen=True)
class RegimePeriod:
    """A calendar period of one market regime, named from the S&P 500's own history."""

    regime: str
    start: str
    end: str
    note: str


# Chosen on the embedded S&P 500 closes (1999-2018); returns and annualised volatility of
# daily log returns over each period. A regime may have several periods; each spec is
# judged on the bars its data covers.
SP500_REGIMES: tuple[RegimePeriod, ...] = (
    RegimePeriod("bull", "2003-03-12", "2007-10-09", "trough to peak: +95%, volatility 12%"),
    RegimePeriod("bear", "2000-03-24", "2002-10-09", "dot-com bust: -49%"),
    RegimePeriod("bear", "2007-10-10", "2009-03-09", "financial crisis: -57%"),
    RegimePeriod("high_vol", "2008-09-01", "2009-06-30", "Lehman to recovery: volatility 49%"),
    RegimePeriod("sideways", "2011-01-03", "2011-12-30", "-1% over the year, range 19%"),
    RegimePeriod("sideways", "2015-01-02", "2015-12-31", "-1% over the year, range 12%"),
)
REGIMES: tuple[str, ...] = ("bull", "bear", "high_vol", "sideways")


@dataclass(frozen=True)
class ValidationConfig:
    """Pass criteria (Sharpe > 0.3, drawdown < 35%, >= 2 of 4 regimes, capacity > $50k),
    the account, broker costs, regime periods and the impact model of the capacity scan.

    Capacity is the capital at which the Sharpe after square-root impact
    (``impact_coef x sigma x sqrt(shares / average volume)``) falls to ``capacity_keep``
    of the impact-free Sharpe, scanned over ``capacity_grid`` (dollars).
    """

    min_sharpe: float = 0.3
    max_drawdown: float = 0.35
    min_positive_regimes: int = 2
    min_capacity: float = 50_000.0
    cash: float = 100_000.0
    costs: BrokerCosts = field(default_factory=BrokerCosts)
    regimes: tuple[RegimePeriod, ...] = SP500_REGIMES
    min_regime_bars: int = 60
    impact_coef: float = 1.0
    impact_window: int = 20
    capacity_keep: float = 0.5
    capacity_grid: tuple[float, ...] = tuple(float(10**k) for k in range(4, 11))

    def __post_init__(self) -> None:
        if not 0.0 < self.max_drawdown <= 1.0:
            raise ValueError(f"validation max_drawdown must lie in (0, 1], got {self.max_drawdown}")
        names = sorted({p.regime for p in self.regimes})
        if not 0 <= self.min_positive_regimes <= len(names):
            raise ValueError(
                f"validation min_positive_regimes must lie in [0, {len(names)}] (regimes "
                f"{names}), got {self.min_positive_regimes}"
            )
        if self.cash <= 0 or self.min_capacity < 0:
            raise ValueError("validation cash must be positive and min_capacity >= 0")
        if self.min_regime_bars < 2 or self.impact_coef < 0 or self.impact_window < 2:
            raise ValueError(
                "validation min_regime_bars >= 2, impact_coef >= 0 and impact_window >= 2 needed"
            )
        if not 0.0 < self.capacity_keep < 1.0:
            raise ValueError(
                f"validation capacity_keep must lie in (0, 1), got {self.capacity_keep}"
            )
        grid = self.capacity_grid
        if not grid or any(c <= 0 for c in grid) or list(grid) != sorted(set(grid)):
            raise ValueError(f"validation capacity_grid must increase and be positive, got {grid}")
        for period in self.regimes:
            if pd.Timestamp(period.start) >= pd.Timestamp(period.end):
                raise ValueError(f"regime period {period} must start before it ends")

    @property
    def regime_names(self) -> list[str]:
        return list(dict.fromkeys(p.regime for p in self.regimes))

    def failures(
        self, summary: Mapping[str, float], positive: Sequence[str], capacity: float
    ) -> list[str]:
        """The pass criteria missed, each as '<what> <value> <limit>'."""
        failed = []
        sharpe, drawdown = summary["sharpe"], abs(summary["max_drawdown"])
        if not sharpe > self.min_sharpe:
            relation = "<" if sharpe < self.min_sharpe else "="
            failed.append(f"held-out Sharpe {sharpe:.2f} {relation} {self.min_sharpe:g}")
        if not drawdown < self.max_drawdown:
            failed.append(f"held-out max drawdown {drawdown:.1%} >= {self.max_drawdown:.0%}")
        if len(positive) < self.min_positive_regimes:
            failed.append(
                f"positive in {len(positive)} of {len(self.regime_names)} regimes, "
                f"need {self.min_positive_regimes}"
            )
        if not capacity > self.min_capacity:
            failed.append(f"capacity ${capacity:,.0f} <= ${self.min_capacity:,.0f}")
        return failed


def run_nautilus(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    costs: BrokerCosts | None = None,
    cash: float = 1_000_000.0,
) -> SpecRun:
    """Run ``spec`` in NautilusTrader, one backtest per leg, after ``costs``.

    Same arguments and result as ``run_engine`` and ``run_backtesting`` (with broker costs
    in place of an execution model), so the three compare directly. Whole shares only.
    """
    costs = costs or BrokerCosts()
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


def _run_leg(costs: BrokerCosts, leg: Leg, first: int, cash: float) -> LegRun:
    """One leg in Nautilus: its targets from bar ``first`` on (the last bar only marks, so
    no decision fills there), slippage charged as a fee."""
    done = run_targets(
        leg.bars, leg.targets[:-1], leg.symbol, costs, cash, first=first, slippage="fee"
    )
    return _leg_run(leg, first, done, costs, cash)


def _leg_run(leg: Leg, first: int, done: TargetFills, costs: BrokerCosts, cash: float) -> LegRun:
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
