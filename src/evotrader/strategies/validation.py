"""Validation with NautilusTrader: a spec under broker-like fills, by regime, and its capacity.

Translator: each leg of a spec becomes one NautilusTrader backtest through the one
integration in ``backtest/nautilus_replay.py`` (``run_targets``: a margin account, one
equity instrument, the bars as given, the replay strategy trading the shared
``spec_targets`` with market orders in whole shares). Nautilus fills a market order sent
from ``on_bar`` at that bar's close, so it matches our engine with
``ExecutionModel(fill="close")``, not the default next-open fill. Costs are the IB cost
model (``backtest/costs.IBCosts``): $0.005 per share, $1 minimum, at most 1% of the
trade's value, plus half-spread and slippage in basis points of notional. Metrics are ours,
from a daily mark-to-market equity curve rebuilt from Nautilus's fills (its own statistics
count closed positions only).

``run_nautilus`` alone is the translator the other two are checked against: by default it
charges slippage as a fee (fill prices stay the closes) and fills every order in full, so
the three agree trade for trade. ``validate`` fills like a broker instead
(``ValidationConfig.slippage_in_price`` and ``participation``, see ``nautilus_replay``):
buys fill above the close and sells below it by the slippage (and the impact of their
size); an order takes at most ``participation`` x its bar's volume and Nautilus cancels the
rest, which the replay sends again on the following bars, so a large order builds its
position over several bars. The result reports how often that happened
(``partial_fill_share``, ``late_notional_share``, ``unfilled_notional_share``) and what
slippage cost a year (``annual_slippage`` in dollars, ``annual_slippage_bps`` of capital).
Bars without any volume (close-only sources) cannot be limited: the result names them.

Validation (``validate``) judges a spec on a held-out window, never seen by screening:
Sharpe and drawdown there; returns by market regime, labelled on that same window
(``regime_labels``: ``diagnostics.label_regimes`` on the universe's buy-and-hold, its
trailing windows warmed on the history before it), positive in at least
``min_positive_regimes`` of the regimes present there; and capacity: the capital at which
the held-out Sharpe under the fill model falls to half its value with unlimited liquidity,
scanned in NautilusTrader too. The calendar S&P 500 periods (``SP500_REGIMES``) are only
reported, as an in-sample robustness table over all the data, and judge nothing. Its
settings (``ValidationConfig``) live in ``settings.py``, which the run's schema nests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import pandas as pd

from evotrader.backtest import metrics
from evotrader.backtest.costs import IBCosts, Liquidity
from evotrader.backtest.nautilus_replay import Slippage, TargetFills, run_targets
from evotrader.data.features import has_volume
from evotrader.env.execution import ExecutionModel
from evotrader.strategies import diagnostics
from evotrader.strategies.runs import Leg, LegRun, SpecRun, run_legs
from evotrader.strategies.settings import ValidationConfig
from evotrader.strategies.spec import StrategyResult, StrategySpec
from evotrader.strategies.universe import Book, align

RegimeTable = dict[str, dict[str, float]]


@dataclass(frozen=True)
class FillReport:
    """How the fill model treated a run's orders (an order: one decision that traded).

    ``partial_fill_share``: orders filled in more than one piece (over several bars);
    ``late_notional_share``: filled notional that came after its decision's bar;
    ``unfilled_notional_share``: notional wanted (at the decision's close) never filled,
    because a new decision replaced the order or the window ended; ``no_volume``: legs
    whose bars carry no volume, so nothing limited their fills.
    """

    orders: int
    partial_fill_share: float
    late_notional_share: float
    unfilled_notional_share: float
    no_volume: tuple[str, ...]


def run_nautilus(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    costs: IBCosts | None = None,
    cash: float = 1_000_000.0,
    slippage: Slippage = "fee",
    liquidity: Liquidity | None = None,
) -> SpecRun:
    """Run ``spec`` in NautilusTrader, one backtest per leg, after ``costs``.

    Same arguments and result as ``run_engine`` and ``run_backtesting`` (with broker costs
    in place of an execution model), so the three compare directly. Whole shares only.
    ``slippage="price"`` moves fill prices instead of charging a fee; ``liquidity`` limits
    each bar's fills (partial fills) and adds impact.
    """
    return run_filled(
        spec,
        data,
        parameters=parameters,
        start=start,
        books=books,
        costs=costs,
        cash=cash,
        slippage=slippage,
        liquidity=liquidity,
    )[0]


def run_filled(
    spec: StrategySpec,
    data: Mapping[str, pd.DataFrame],
    *,
    parameters: Mapping[str, int | float] | None = None,
    start: str | pd.Timestamp | None = None,
    books: list[Book] | None = None,
    costs: IBCosts | None = None,
    cash: float = 1_000_000.0,
    slippage: Slippage = "fee",
    liquidity: Liquidity | None = None,
) -> tuple[SpecRun, FillReport]:
    """``run_nautilus``, and how its fill model treated the orders."""
    costs = costs or IBCosts()
    done: list[tuple[Leg, TargetFills]] = []
    run = run_legs(
        spec,
        data,
        partial(_run_leg, costs, slippage, liquidity, done),
        ExecutionModel(0.0, 0.0, costs.slippage_bps, fill="close"),
        parameters=parameters,
        start=start,
        books=books,
        cash=cash,
    )
    return run, fill_report(done)


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
    Fills follow ``config``'s fill model. Regimes are labelled on the window itself; the
    calendar S&P 500 periods are measured on one run over all of ``data`` (in sample where
    a period lies before ``start``) and only reported.
    """
    config = config or ValidationConfig()
    tuned = spec.with_parameters(parameters) if parameters else spec
    run = partial(
        run_filled,
        tuned,
        data,
        parameters=tuned.parameters,
        costs=config.costs,
        cash=config.cash,
        slippage=config.slippage,
        liquidity=config.liquidity,
    )
    held, fills = run(start=start)
    labels = regime_labels(pd.DatetimeIndex(held.equity.index), data, tuned)
    regimes = diagnostics.regime_results(held.equity, held.benchmark_equity, held.trades, labels)
    judged = [name for name, r in regimes.items() if r["bars"] >= config.min_regime_bars]
    positive = [name for name in judged if regimes[name]["return"] > 0]
    capacity, curve = capacity_scan(
        tuned, data, start, held.books, config, at_cash=held.metrics["sharpe"]
    )
    failed = config.failures(held.metrics, positive, len(judged), capacity, held.benchmark)
    calendar: RegimeTable = {}
    uncovered = list(config.regime_names)
    if config.regimes:
        calendar, uncovered = calendar_regimes(run(books=held.books)[0], config)
    years = (len(held.equity) - 1) / metrics.periods_per_year(pd.DatetimeIndex(held.equity.index))
    annual_slippage = held.slippage / years if years > 0 else 0.0
    notes = diagnostics.findings(
        held.metrics,
        held.benchmark,
        held.trades,
        held.benchmark_equity,
        regimes,
        held.fees,
        held.slippage,
    )
    notes += _fill_sentences(fills, config, annual_slippage)
    notes.append(_window_regime_sentence(regimes, judged, config.min_regime_bars))
    if calendar or uncovered:
        notes.append(_calendar_sentence(calendar, uncovered))
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
            "fill_model": {
                "slippage": config.slippage,
                "participation": config.participation,
                "impact_coef": config.impact_coef,
                "no_volume": list(fills.no_volume),  # no participation limit or impact there
            },
            "orders": fills.orders,
            "partial_fill_share": fills.partial_fill_share,
            "late_notional_share": fills.late_notional_share,
            "unfilled_notional_share": fills.unfilled_notional_share,
            "annual_slippage": annual_slippage,
            "annual_slippage_bps": 1e4 * annual_slippage / config.cash,
            "regime_source": "held-out validation window (never seen by screening)",
            "regime_spans": regime_spans(labels),
            "judged_regimes": judged,
            "positive_regimes": positive,
            "calendar_regimes_in_sample": calendar,
            "calendar_regimes_without_data": uncovered,
            "calendar_regime_periods": [asdict(p) for p in config.regimes],
            "costs": asdict(config.costs),
        },
    )


def regime_labels(
    index: pd.DatetimeIndex, data: Mapping[str, pd.DataFrame], spec: StrategySpec
) -> pd.Series:
    """The market regime of each bar of ``index`` (a window of ``data``), labelled by
    ``diagnostics.label_regimes`` on the universe's equal-capital buy-and-hold over all of
    ``data``: its trailing windows are warm from the bars before the window."""
    frames = align(data, spec.universe.symbols)
    closes = pd.DataFrame({s: f["close"] for s, f in frames.items()})
    reference = (closes / closes.iloc[0]).mean(axis=1)
    return diagnostics.label_regimes(reference).reindex(index)


def regime_spans(labels: pd.Series) -> dict[str, list[list[str]]]:
    """Which bars each regime covers: its runs of consecutive bars, as [first, last] dates."""
    values = labels.to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    ends = np.r_[starts[1:] - 1, len(values) - 1]
    spans: dict[str, list[list[str]]] = {}
    for first, last in zip(starts, ends, strict=True):
        span = [labels.index[first].isoformat(), labels.index[last].isoformat()]
        spans.setdefault(str(values[first]), []).append(span)
    return spans


def calendar_regimes(run: SpecRun, config: ValidationConfig) -> tuple[RegimeTable, list[str]]:
    """Per calendar regime (``config.regimes``, the S&P 500's) with at least
    ``min_regime_bars`` bars in ``run``: its results (see ``diagnostics.regime_results``);
    and the regimes the run does not cover. In sample where a period precedes validation."""
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
    at_cash: float | None = None,
) -> tuple[float, dict[str, float]]:
    """Capital at which the fill model (participation limit and impact) cuts the held-out
    Sharpe to ``capacity_keep`` of its value with unlimited liquidity, and the Sharpe at
    each scanned capital ("0": unlimited liquidity, at ``config.cash``).

    Every point is a NautilusTrader run of the held-out window with the validation's costs
    and slippage. The scan starts at the validated account (``config.cash``) and goes up
    ``capacity_grid``: below the account the $1 minimum commission, not liquidity, would
    decide. The Sharpe is interpolated linearly in sqrt(capital) between scanned points
    (impact grows with sqrt(shares)). No edge (Sharpe <= 0) means no capacity; a Sharpe that
    survives the whole grid, or legs without volume (nothing to limit), give infinity.
    ``at_cash``: the held-out Sharpe at ``config.cash`` under the fill model, when known.
    """
    run = partial(
        run_nautilus,
        spec,
        data,
        parameters=spec.parameters,
        start=start,
        books=books,
        costs=config.costs,
        slippage=config.slippage,
    )
    base = run(cash=config.cash).metrics["sharpe"]
    curve = {"0": base}
    if not base > 0:
        return 0.0, curve
    end = pd.Timestamp(min(data[s].index[-1] for book in books for s in book))
    if not config.liquidity.limits or not any(
        has_volume(data[s].loc[:end]) for book in books for s in book
    ):
        return math.inf, curve
    floor = config.capacity_keep * base
    previous = (0.0, base)
    for capital in (config.cash, *(c for c in config.capacity_grid if c > config.cash)):
        if capital == config.cash and at_cash is not None:
            sharpe = at_cash
        else:
            sharpe = run(cash=capital, liquidity=config.liquidity).metrics["sharpe"]
        curve[f"{capital:g}"] = sharpe
        if sharpe < floor:
            (low, above), high = previous, math.sqrt(capital)
            root = low + (above - floor) / (above - sharpe) * (high - low)
            return root**2, curve
        previous = (math.sqrt(capital), sharpe)
    return math.inf, curve


def fill_report(done: list[tuple[Leg, TargetFills]]) -> FillReport:
    """Partial, late and unfilled shares of the orders Nautilus filled (see ``FillReport``)."""
    pieces: list[np.ndarray] = []
    filled = late = wanted = unfilled = 0.0
    for leg, result in done:
        fills, orders = result.fills, result.orders
        close = leg.bars["close"].to_numpy(np.float64)
        notional = (fills["units"].abs() * fills["price"]).to_numpy(np.float64)
        filled += float(notional.sum())
        late += float(notional[(fills["bar"] > fills["decided"]).to_numpy()].sum())
        pieces.append(fills.groupby("order")["bar"].nunique().to_numpy())
        got = fills.groupby("order")["units"].sum().reindex(range(len(orders)), fill_value=0.0)
        at_decision = close[orders["decided"].to_numpy(np.int64)]
        asked = orders["wanted"].abs().to_numpy(np.float64)
        wanted += float((asked * at_decision).sum())
        unfilled += float(((asked - got.abs().to_numpy()) * at_decision).sum())
    counts = np.concatenate(pieces) if pieces else np.zeros(0)
    return FillReport(
        orders=int(counts.size),
        partial_fill_share=float((counts > 1).mean()) if counts.size else 0.0,
        late_notional_share=late / filled if filled > 0 else 0.0,
        unfilled_notional_share=unfilled / wanted if wanted > 0 else 0.0,
        no_volume=tuple(leg.symbol for leg, _ in done if not has_volume(leg.bars)),
    )


def _fill_sentences(fills: FillReport, config: ValidationConfig, annual: float) -> list[str]:
    notes = []
    if config.participation is not None and fills.partial_fill_share > 0:
        notes.append(
            f"{fills.partial_fill_share:.0%} of {fills.orders} orders filled over several bars "
            f"at {config.participation:.0%} of bar volume ({fills.late_notional_share:.0%} of "
            f"the notional late, {fills.unfilled_notional_share:.0%} never filled)"
        )
    if fills.no_volume:
        notes.append(
            f"no volume data for {', '.join(fills.no_volume)}: fills there were not limited "
            "by participation nor charged impact"
        )
    if annual > 0:
        notes.append(
            f"slippage cost ${annual:,.0f} a year ({1e4 * annual / config.cash:.0f} bp of capital)"
        )
    return notes


def _window_regime_sentence(regimes: RegimeTable, judged: list[str], min_bars: int) -> str:
    parts = [
        f"{name} {r['return']:+.1%} (buy & hold {r['benchmark_return']:+.1%}, {r['bars']:.0f} bars)"
        for name, r in regimes.items()
        if name in judged
    ]
    short = [f"{name} {r['bars']:.0f}" for name, r in regimes.items() if name not in judged]
    if short:
        parts.append(f"too few bars to judge (< {min_bars}): {', '.join(short)}")
    return "held-out regimes (labelled on the validation window): " + ", ".join(parts)


def _calendar_sentence(regimes: RegimeTable, uncovered: list[str]) -> str:
    parts = [
        f"{name} {r['return']:+.1%} (buy & hold {r['benchmark_return']:+.1%})"
        for name, r in regimes.items()
    ]
    parts += [f"{name}: no data" for name in uncovered]
    return "S&P 500 calendar regimes, in sample, not judged: " + ", ".join(parts)


# --- the NautilusTrader side -----------------------------------------------------------------


def _run_leg(
    costs: IBCosts,
    slippage: Slippage,
    liquidity: Liquidity | None,
    done: list[tuple[Leg, TargetFills]],
    leg: Leg,
    first: int,
    cash: float,
) -> LegRun:
    """One leg in Nautilus: its targets from bar ``first`` on (the last bar only marks, so
    no decision fills there); what Nautilus did is appended to ``done``.

    Nautilus sees the bars from ``first`` on, plus the impact window before them (the
    trailing volatility and volume of the first fills): the history is flat and only slows
    it down. Fill bars are numbered in ``leg.bars``.
    """
    skip = max(0, first - (liquidity.impact_window if liquidity else 1))
    result = run_targets(
        leg.bars.iloc[skip:],
        leg.targets[skip:-1],
        leg.symbol,
        costs,
        cash,
        first=first - skip,
        slippage=slippage,
        liquidity=liquidity,
        sub_penny=slippage == "price",
    )
    fills, orders = result.fills, result.orders
    result = replace(
        result,
        fills=fills.assign(bar=fills["bar"] + skip, decided=fills["decided"] + skip),
        orders=orders.assign(decided=orders["decided"] + skip),
    )
    done.append((leg, result))
    return _leg_run(leg, first, result, costs, cash)


def _leg_run(leg: Leg, first: int, done: TargetFills, costs: IBCosts, cash: float) -> LegRun:
    """Daily mark-to-market account from Nautilus's fills, in the convention of our engine:
    a fill at bar b's close changes the held units from mark b - first + 1 on. Costs are
    the fees Nautilus charged plus what fill prices paid beyond the closes (slippage and
    impact in the price)."""
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
    in_price = float((signed * (prices - close[at])).sum())
    return LegRun(
        leg=leg,
        equity=equity,
        units=units,
        fill_prices=fill_prices,
        traded_notional=float(np.abs(signed * prices).sum()),
        costs=float(paid.sum()) + in_price,
        commission=float(sum(costs.commission(s, p) for s, p in zip(shares, prices, strict=True))),
    )
