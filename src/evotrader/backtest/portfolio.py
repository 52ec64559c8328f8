"""Portfolio backtest: a causal weights policy over aligned bars, with per-asset costs.

A policy is called at each rebalance date with only the history up to that bar's close
(sliced frames, so it cannot read later bars) and returns target weights per asset; the
rest is cash. Targets fill at the next bar's open (OHLCV) or the next bar's close
(close-only data, or ``close_only=True``), through ``rebalance_portfolio``: the same
per-asset cost arithmetic as every other account in the project. A decision at bar t
changes holdings from mark t + 1 on, as in the single-asset engine. With ``risk`` (a
``PortfolioRisk``, the checker a basket bot calls too) every target is checked against the
portfolio limits, on returns up to its decision bar only, before it fills; the result lists
each adjustment and counts them per limit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np
import pandas as pd

from evotrader.backtest import metrics
from evotrader.core.checks import require_positive
from evotrader.data.errors import DataError
from evotrader.data.validation import validate_ohlcv
from evotrader.env.execution import ExecutionModel, rebalance_portfolio
from evotrader.env.portfolio_data import aligned_frames
from evotrader.risk.portfolio import LIMITS, Adjustment, PortfolioRisk

REBALANCE_FREQUENCIES = ("bar", "weekly", "monthly")
_PERIOD_CODES = {"weekly": "W", "monthly": "M"}
_TOLERANCE = 1e-9  # weights summing to the gross limit in floating point are not over it


class PortfolioError(ValueError):
    """A portfolio backtest's settings or a policy's weights break the rules."""


@dataclass(frozen=True)
class PortfolioSettings:
    """How the portfolio trades: long-only or long-short with a gross-exposure limit
    (sum of |weights|), how often it rebalances, its cash and its execution costs."""

    rebalance: str = "monthly"
    long_only: bool = True
    max_gross: float = 1.0
    initial_cash: float = 100_000.0
    execution: ExecutionModel = field(default_factory=ExecutionModel)

    def __post_init__(self) -> None:
        if self.rebalance not in REBALANCE_FREQUENCIES:
            raise PortfolioError(
                f"portfolio rebalance must be one of {REBALANCE_FREQUENCIES}, "
                f"got {self.rebalance!r}"
            )
        require_positive(
            "portfolio ", self, "max_gross", "initial_cash", finite=True, error=PortfolioError
        )


@dataclass(frozen=True)
class History:
    """What a policy may read at a decision: bars up to and including that bar's close.

    ``bars`` has (symbol, field) columns, so ``bars["AAPL"]`` is that symbol's OHLCV frame
    (one slice per decision however many symbols); None for close-only data. ``weights`` are
    the held weights at this close (drifted since the last fill), indexed by symbol.
    """

    closes: pd.DataFrame
    bars: pd.DataFrame | None
    weights: pd.Series

    @property
    def timestamp(self) -> pd.Timestamp:
        return pd.Timestamp(self.closes.index[-1])


Weights: TypeAlias = np.ndarray | pd.Series | Mapping[str, float]
# None means "hold what you have": no trade at this rebalance date.
WeightsPolicy: TypeAlias = Callable[[History], Weights | None]


@dataclass(frozen=True)
class PortfolioResult:
    """One portfolio run, marked at each close from the first decision on.

    ``weights``: held weights per mark; ``targets``: the weights decided per rebalance date;
    ``fills``: one row per asset traded (fill bar, symbol, units, price, notional, cost);
    ``attribution``: cumulative P&L per asset per mark (position value less cash spent on it,
    costs included), whose row sums equal equity less initial cash (after a ruin, where equity
    is floored at 0, they show the unfloored loss); ``per_asset``: totals; ``risk``: one row
    per risk adjustment (decision timestamp, limit, symbols, value, cap, reason), empty
    without a risk check. ``targets`` are the weights that traded (after the risk check).
    """

    equity: pd.Series
    weights: pd.DataFrame
    targets: pd.DataFrame
    fills: pd.DataFrame
    attribution: pd.DataFrame
    per_asset: pd.DataFrame
    metrics: dict[str, float]
    notes: tuple[str, ...]
    risk: pd.DataFrame = field(default_factory=lambda: _risk_frame([]))

    @property
    def symbols(self) -> list[str]:
        return list(self.weights.columns)


@dataclass(frozen=True)
class _Market:
    closes: pd.DataFrame
    panel: pd.DataFrame | None  # every symbol's bars side by side, (symbol, field) columns
    fill: np.ndarray  # (bars, assets): where a decision at bar t executes
    impact: np.ndarray  # (bars, assets): trailing impact scale
    fill_offset: int  # bars from a decision to its fill: 1, or 0 for same-close fills
    note: str


def run_portfolio(
    policy: WeightsPolicy,
    data: Mapping[str, pd.DataFrame] | pd.DataFrame,
    settings: PortfolioSettings | None = None,
    *,
    close_only: bool = False,
    start: str | pd.Timestamp | None = None,
    periods_per_year: float | None = None,
    risk: PortfolioRisk | None = None,
) -> PortfolioResult:
    """Run ``policy`` over ``data`` after costs.

    ``data`` is either OHLCV frames per symbol on one DatetimeIndex, or a DataFrame of closes
    (one column per symbol: close-only, fills at the next close). ``start`` makes earlier bars
    history only (an optimiser's training window): the first decision is at the first bar at
    or after it, and every reported number begins there. ``risk`` checks every target against
    the portfolio limits before it fills (see ``evotrader.risk.portfolio``).
    """
    settings = settings or PortfolioSettings()
    market = _market(data, settings.execution, close_only)
    first = _first_decision(market.closes.index, start)
    book = _simulate(policy, market, settings, first, risk)
    marks = pd.DatetimeIndex(market.closes.index[first:], name="timestamp")
    symbols = list(market.closes.columns)
    return _result(
        marks,
        symbols,
        book,
        _fills(symbols, market, first, book.traded, book.costs),
        settings,
        periods_per_year or metrics.periods_per_year(marks),
        market.note,
        risk,
    )


@dataclass(frozen=True)
class _Book:
    """The account per mark (rows) and asset (columns), and what each decision did."""

    equity: np.ndarray
    held: np.ndarray  # weights at each close
    pnl: np.ndarray  # cumulative P&L per asset: value less cash paid into it, costs included
    decided: np.ndarray  # did the policy set targets at this mark
    targets: np.ndarray
    traded: np.ndarray  # units traded at the fill of the decision at this mark
    costs: np.ndarray
    adjustments: list[tuple[pd.Timestamp, Adjustment]]  # the risk check's, per decision


def _simulate(
    policy: WeightsPolicy,
    market: _Market,
    settings: PortfolioSettings,
    first: int,
    risk: PortfolioRisk | None,
) -> _Book:
    """Mark every close from ``first``; at each rebalance date ask the policy (history up to
    that close only), pass its targets through the risk check if any, and trade to them at
    the decision's fill prices."""
    index, symbols = market.closes.index, list(market.closes.columns)
    close = market.closes.to_numpy(np.float64)
    last = len(index) - 2  # the last decision still has a next bar to fill on
    rebalance_at = _rebalance_dates(index, first, last, settings.rebalance)
    rate = settings.execution.linear_rate
    shape = (len(index) - first, len(symbols))
    cash, units = settings.initial_cash, np.zeros(shape[1])
    spent = np.zeros(shape[1])  # cash paid into each asset so far, costs included
    equity, decided = np.zeros(shape[0]), np.zeros(shape[0], dtype=bool)
    held, value, spent_at, targets, traded, costs = (np.zeros(shape) for _ in range(6))
    ruined = False
    returns = market.closes.pct_change().iloc[1:]  # return at bar t is known at t's close
    adjustments: list[tuple[pd.Timestamp, Adjustment]] = []
    for k, t in enumerate(range(first, len(index))):
        value[k] = units * close[t]
        equity[k] = 0.0 if ruined else max(0.0, cash + value[k].sum())  # ruin: 0 for good
        ruined = ruined or equity[k] <= 0.0
        held[k] = value[k] / equity[k] if equity[k] > 0 else 0.0
        spent_at[k] = spent
        if ruined or t > last or not rebalance_at[t]:
            continue
        history = History(
            closes=market.closes.iloc[: t + 1],
            bars=None if market.panel is None else market.panel.iloc[: t + 1],
            weights=pd.Series(held[k], index=symbols, name="weight"),
        )
        weights = policy(history)
        if weights is None:
            continue
        decided[k] = True
        targets[k] = _checked_weights(weights, symbols, settings, index[t])
        if risk is not None:
            check = risk.check(pd.Series(targets[k], index=symbols), returns, index[t])
            targets[k] = check.approved.to_numpy(np.float64)
            adjustments += [(pd.Timestamp(index[t]), note) for note in check.adjustments]
        price, impact = market.fill[t], market.impact[t]
        new_cash, new_units, costs[k] = rebalance_portfolio(
            cash, units, targets[k], price, rate, impact
        )
        traded[k] = new_units - units
        spent += traded[k] * price + costs[k]
        cash, units = new_cash, new_units
    return _Book(equity, held, value - spent_at, decided, targets, traded, costs, adjustments)


def _result(
    index: pd.DatetimeIndex,
    symbols: list[str],
    book: _Book,
    fills: pd.DataFrame,
    settings: PortfolioSettings,
    ppy: float,
    note: str,
    risk: PortfolioRisk | None,
) -> PortfolioResult:
    """Frames, per-asset totals, metrics and notes of one simulated book."""
    equity_series = pd.Series(book.equity, index=index, name="equity")
    by_asset = fills.groupby("symbol")[["notional", "cost"]].sum().reindex(symbols, fill_value=0.0)
    counts = fills.groupby("symbol").size().reindex(symbols, fill_value=0)
    mean_equity = float(equity_series.mean())
    attribution = pd.DataFrame(book.pnl, index=index, columns=symbols)
    per_asset = pd.DataFrame(
        {
            "fills": counts.astype(float),
            "traded_notional": by_asset["notional"],
            "turnover": by_asset["notional"] / mean_equity * ppy / len(index),
            "costs": by_asset["cost"],
            "pnl": attribution.iloc[-1],
            "mean_weight": pd.Series(book.held.mean(axis=0), index=symbols),
        }
    )
    per_asset.index.name = "symbol"
    summary = metrics.performance_metrics(equity_series, ppy)
    # exposure, fees, turnover and final_equity as metrics.summarize defines them, with
    # exposure the mean gross weight (a portfolio has no single position to count)
    summary["exposure"] = float(np.abs(book.held).sum(axis=1).mean())
    summary["fees"] = float(per_asset["costs"].sum())
    summary["turnover"] = float(per_asset["traded_notional"].sum() / mean_equity * ppy / len(index))
    summary["final_equity"] = float(book.equity[-1])
    risk_frame = _risk_frame(book.adjustments)
    if risk is not None:
        summary |= _risk_counts(risk_frame, int(book.decided.sum()))
    notes: tuple[str, ...] = (
        note,
        f"rebalanced {settings.rebalance}, "
        + ("long-only" if settings.long_only else "long-short")
        + f", gross exposure <= {settings.max_gross:g}; costs per asset after "
        f"{settings.execution.linear_rate * 1e4:g} bps of traded notional"
        + (" plus square-root impact" if settings.execution.impact_coef > 0 else ""),
    )
    if risk is not None:
        notes += (_risk_note(summary),)
    return PortfolioResult(
        equity=equity_series,
        weights=pd.DataFrame(book.held, index=index, columns=symbols),
        targets=pd.DataFrame(
            book.targets[book.decided], index=index[book.decided], columns=symbols
        ),
        fills=fills,
        attribution=attribution,
        per_asset=per_asset,
        metrics=summary,
        notes=notes,
        risk=risk_frame,
    )


def _risk_frame(adjustments: Sequence[tuple[pd.Timestamp, Adjustment]]) -> pd.DataFrame:
    """One row per adjustment the risk check made, in decision order."""
    columns = ["timestamp", "limit", "symbols", "value", "cap", "reason"]
    rows = [
        (when, a.limit, ",".join(a.symbols), a.value, a.cap, a.reason) for when, a in adjustments
    ]
    return pd.DataFrame(rows, columns=columns)


def _risk_counts(frame: pd.DataFrame, decisions: int) -> dict[str, float]:
    """Decisions the risk check changed, and adjustments per limit (every limit, zeros too)."""
    counts = frame["limit"].value_counts()
    figures = {f"risk_{limit}": float(counts.get(limit, 0)) for limit in LIMITS}
    figures["risk_adjusted_decisions"] = float(frame["timestamp"].nunique())
    figures["risk_decisions"] = float(decisions)
    return figures


def _risk_note(summary: Mapping[str, float]) -> str:
    binding = [f"{limit} {summary[f'risk_{limit}']:g}" for limit in LIMITS]
    binding = [text for text in binding if not text.endswith(" 0")]
    return (
        f"risk: {summary['risk_adjusted_decisions']:g} of {summary['risk_decisions']:g} targets "
        "adjusted by the portfolio limits before filling"
        + (f" ({', '.join(binding)})" if binding else "")
    )


def _fills(
    symbols: list[str],
    market: _Market,
    first: int,
    traded: np.ndarray,
    costs: np.ndarray,
) -> pd.DataFrame:
    """One row per asset traded, at its fill bar, in time then symbol order."""
    k, asset = np.nonzero(traded)
    units = traded[k, asset]
    price = market.fill[first + k, asset]
    return pd.DataFrame(
        {
            "timestamp": market.closes.index[first + k + market.fill_offset],
            "symbol": np.asarray(symbols, dtype=object)[asset],
            "units": units,
            "price": price,
            "notional": np.abs(units) * price,
            "cost": costs[k, asset],
        }
    )


def _market(
    data: Mapping[str, pd.DataFrame] | pd.DataFrame, execution: ExecutionModel, close_only: bool
) -> _Market:
    """Aligned closes, per-asset fill prices and impact scales; close-only fills next close."""
    if isinstance(data, pd.DataFrame):
        closes = _checked_closes(data)
        bars = None
        close_only = True
    else:
        bars = _checked_bars(data)
        closes = pd.DataFrame({symbol: frame["close"] for symbol, frame in bars.items()})
    if close_only:
        if execution.impact_coef > 0:
            raise PortfolioError(
                "close-only data has no volume, so execution impact_coef must be 0, "
                f"got {execution.impact_coef}"
            )
        values = closes.to_numpy(np.float64)
        fill = np.vstack([values[1:], np.full((1, values.shape[1]), np.nan)])
        note = "close-only: a decision at bar t's close fills at bar t+1's close"
        panel = None if bars is None else pd.concat(bars, axis=1)
        return _Market(closes, panel, fill, np.zeros_like(values), 1, note)
    assert bars is not None  # close_only is False only for OHLCV input
    prices = [execution.prices(frame) for frame in bars.values()]
    fill = np.column_stack([p.fill for p in prices])
    impact = np.column_stack([p.impact for p in prices])
    next_open = execution.fill == "next_open"
    when = "bar t+1's open" if next_open else "bar t's close"
    note = f"a decision at bar t's close fills at {when}"
    return _Market(closes, pd.concat(bars, axis=1), fill, impact, int(next_open), note)


def _checked_bars(data: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Each symbol's bars validated, then on one calendar (the portfolio env's own check)."""
    if isinstance(data, Mapping):
        data = {
            str(symbol): validate_ohlcv(frame, str(symbol), 2) for symbol, frame in data.items()
        }
    symbols, frames = aligned_frames(data)
    return dict(zip(symbols, frames, strict=True))


def _checked_closes(closes: pd.DataFrame) -> pd.DataFrame:
    """Each column checked as bars (open = high = low = close): the same rules and messages."""
    if closes.shape[1] == 0:
        raise DataError("portfolio closes need at least one symbol column")
    checked = {}
    for symbol in closes.columns:
        column = closes[symbol]
        frame = pd.DataFrame({name: column for name in ("open", "high", "low", "close")})
        checked[str(symbol)] = validate_ohlcv(frame.assign(volume=0.0), str(symbol), 2)["close"]
    return pd.DataFrame(checked)


def _first_decision(index: pd.DatetimeIndex, start: str | pd.Timestamp | None) -> int:
    if start is None:
        return 0
    first = int(index.searchsorted(pd.Timestamp(start)))
    if first > len(index) - 2:
        raise DataError(f"portfolio start {start} leaves no bar to decide on and fill at")
    return first


def _rebalance_dates(index: pd.DatetimeIndex, first: int, last: int, frequency: str) -> np.ndarray:
    """True at the first decision and, after it, at the first bar of each new period (known
    from that bar's own timestamp, never from the next one's)."""
    if frequency == "bar":
        due = np.ones(len(index), dtype=bool)
    else:
        period = index.to_period(_PERIOD_CODES[frequency]).asi8
        due = np.concatenate(([True], period[1:] != period[:-1]))
    due[:first] = False
    due[last + 1 :] = False
    due[first] = True
    return due


def _checked_weights(
    weights: Weights, symbols: Sequence[str], settings: PortfolioSettings, when: pd.Timestamp
) -> np.ndarray:
    """The policy's weights as one float per symbol, or a PortfolioError naming the date."""
    where = f"policy weights at {when:%Y-%m-%d %H:%M}"
    if isinstance(weights, pd.Series | Mapping):
        given = pd.Series(weights, dtype=np.float64)
        unknown = sorted(set(map(str, given.index)) - set(symbols))
        missing = [symbol for symbol in symbols if symbol not in given.index]
        if unknown or missing:
            raise PortfolioError(f"{where}: unknown symbols {unknown}, missing {missing}")
        values = given.reindex(symbols).to_numpy(np.float64)
    else:
        values = np.asarray(weights, dtype=np.float64).reshape(-1)
        if len(values) != len(symbols):
            raise PortfolioError(f"{where}: {len(values)} weights for {len(symbols)} symbols")
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise PortfolioError(f"{where}: {symbols[bad[0]]} is {values[bad[0]]}")
    if settings.long_only and (values < 0).any():
        i = int(np.argmin(values))
        raise PortfolioError(
            f"{where}: {symbols[i]} is {values[i]:g} but the portfolio is long-only"
        )
    gross = float(np.abs(values).sum())
    if gross > settings.max_gross + _TOLERANCE:
        raise PortfolioError(
            f"{where}: gross exposure {gross:g} is over the limit {settings.max_gross:g}"
        )
    checked: np.ndarray = values
    return checked
