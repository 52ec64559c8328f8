"""Performance, trade and turnover metrics for backtest results.

Every number a user reads (after costs, next to buy-and-hold, under the name of its split)
comes from here, so each formula is written out in the docstring of the function that
computes it. Conventions: an equity curve is marked at each bar close and its first value is the
initial equity; per-bar simple returns are ``r_t = E_t / E_{t-1} - 1``; ``n`` is the
number of returns (``len(equity) - 1``); ``ppy`` is bars per year; the risk-free rate is 0.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import pandas as pd

_DAYS_PER_YEAR = 365.25
# Return dispersion below this is rounding noise (e.g. a constant-growth curve), not risk.
_ZERO_STD = 1e-12

TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "direction",
    "entry_price",
    "exit_price",
    "bars_held",
    "pnl",
    "return",
    "open_at_end",
)


def periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year implied by the data, so annualisation fits any bar frequency.

    ppy = (len(index) - 1) / years, years = (index[-1] - index[0]) / 365.25 days.
    Daily equity bars give ~252, business-day bars ~261, 24/5 hourly FX bars ~6000.
    """
    if len(index) < 2:
        raise ValueError(f"periods_per_year needs at least 2 timestamps, got {len(index)}")
    years = (index[-1] - index[0]) / pd.Timedelta(days=_DAYS_PER_YEAR)
    if years <= 0:
        raise ValueError("periods_per_year needs an increasing index (last timestamp > first)")
    return cast(float, (len(index) - 1) / years)


def performance_metrics(equity: pd.Series, periods_per_year: float) -> dict[str, float]:
    """Return and risk statistics of one equity curve.

    Equity at or below 0 is ruin: the curve stays at 0 from there on, the ruin bar's return
    is -1 and later returns are 0, so annual_return is -1 and max_drawdown is -1.

    - total_return       = E_end / E_0 - 1
    - annual_return      = (E_end / E_0) ** (ppy / n) - 1
    - annual_volatility  = std(r, ddof=1) * sqrt(ppy)                  (0.0 when n < 2)
    - sharpe             = mean(r) / std(r, ddof=1) * sqrt(ppy)        (0.0 when std == 0)
    - sortino            = mean(r) / downside_dev * sqrt(ppy)
      with downside_dev  = sqrt(mean(min(r, 0)^2)) over all n returns
      (downside_dev == 0: +inf when mean(r) > 0, else 0.0)
    - max_drawdown       = min(E / cummax(E) - 1)                      (<= 0)
    - max_drawdown_duration = longest run of consecutive bars with E < cummax(E)
    - calmar             = annual_return / abs(max_drawdown)           (0.0 when max_drawdown == 0)
    """
    values = _validated_equity(equity)
    _check_ppy(periods_per_year)
    returns = _simple_returns(values)
    n = returns.size
    growth = values[-1] / values[0]
    annual_return = growth ** (periods_per_year / n) - 1.0
    drawdown = values / np.maximum.accumulate(values) - 1.0
    max_drawdown = float(drawdown.min())
    return {
        "total_return": float(growth - 1.0),
        "annual_return": float(annual_return),
        "annual_volatility": _std(returns) * math.sqrt(periods_per_year),
        "sharpe": _sharpe(returns, periods_per_year),
        "sortino": _sortino(returns, periods_per_year),
        "max_drawdown": max_drawdown,
        "max_drawdown_duration": float(_longest_true_run(drawdown < 0.0)),
        "calmar": float(annual_return / abs(max_drawdown)) if max_drawdown < 0.0 else 0.0,
    }


def trade_metrics(trades: pd.DataFrame) -> dict[str, float]:
    """Round-trip statistics from the ``pnl`` column (currency, after costs).

    - n_trades      = number of rows
    - win_rate      = count(pnl > 0) / n_trades                       (0.0 when no trades)
    - profit_factor = sum(pnl > 0) / abs(sum(pnl < 0))
      (+inf when there are gains and no losses; 0.0 when there are no gains)
    - avg_trade_pnl = mean(pnl)                                       (0.0 when no trades)
    """
    if "pnl" not in trades.columns:
        raise ValueError("trades needs a 'pnl' column")
    pnl = trades["pnl"].to_numpy(dtype=float)
    if pnl.size == 0:
        return {"n_trades": 0.0, "win_rate": 0.0, "profit_factor": 0.0, "avg_trade_pnl": 0.0}
    return {
        "n_trades": float(pnl.size),
        "win_rate": float(np.mean(pnl > 0)),
        "profit_factor": _profit_factor(pnl),
        "avg_trade_pnl": float(pnl.mean()),
    }


def round_trips(
    timestamps: pd.DatetimeIndex,
    positions: np.ndarray,
    equity: np.ndarray,
    fill_prices: np.ndarray,
) -> pd.DataFrame:
    """Cut per-bar positions into round trips, one row per trade.

    ``positions[i]`` is the position held during bar i after any fill at bar i and
    ``equity[i]`` is marked at bar i's close. A trade opens at a bar where the position's sign
    becomes non-zero and different from the previous bar's, and exits at the first later bar
    where the sign changes (to 0 or the opposite sign); resizing without a sign change stays
    the same trade. A flip closes one trade and opens the next at the same bar. A trade still
    open after the last bar is closed there with ``open_at_end=True``.

    - entry/exit price = fill_prices at the entry/exit bar
    - bars_held = bars with the position on: exit - entry (exit - entry + 1 when open at end)
    - pnl = equity[exit] - base, base = equity[entry - 1], the close before the entry fill,
      so entry and exit costs are included. Exceptions, so that trade pnls never double count
      a bar and sum to the equity change while in the market: after a flip the new trade's
      base is equity[flip bar] (the flip bar's costs and P&L belong to the closing trade),
      and a trade entered at bar 0 has base equity[0] (no earlier mark exists).
    - return = pnl / base (NaN when base <= 0)
    """
    side = _validated_sides(timestamps, positions, equity, fill_prices)
    equity = np.asarray(equity, dtype=float)
    fill_prices = np.asarray(fill_prices, dtype=float)
    previous = np.concatenate(([0.0], side))[:-1]
    changed = side != previous
    entries = np.flatnonzero(changed & (side != 0))
    closed_exits = np.flatnonzero(changed & (previous != 0))
    open_at_end = np.arange(entries.size) >= closed_exits.size
    last = side.size - 1
    exits = np.concatenate((closed_exits, np.full(open_at_end.sum(), last)))

    is_flip = np.isin(entries, closed_exits)
    base = equity[np.where(is_flip, entries, np.maximum(entries - 1, 0))]
    pnl = equity[exits] - base
    with np.errstate(divide="ignore", invalid="ignore"):
        trade_return = np.where(base > 0, pnl / base, np.nan)
    return pd.DataFrame(
        {
            "entry_time": timestamps[entries],
            "exit_time": timestamps[exits],
            "direction": side[entries].astype(int),
            "entry_price": fill_prices[entries],
            "exit_price": fill_prices[exits],
            "bars_held": exits - entries + open_at_end,
            "pnl": pnl,
            "return": trade_return,
            "open_at_end": open_at_end,
        },
        columns=list(TRADE_COLUMNS),
    )


def summarize(
    equity: pd.Series,
    positions: np.ndarray,
    trades: pd.DataFrame,
    fees: float,
    traded_notional: float,
    periods_per_year: float,
) -> dict[str, float]:
    """All headline numbers of one backtest: performance, trades, exposure and costs.

    Adds to performance_metrics and trade_metrics:
    - exposure     = count(position != 0) / n_bars
    - fees         = total fees paid (currency)
    - turnover     = traded_notional / mean(E) * ppy / n_bars   (times equity traded per year)
    - final_equity = E_end
    with n_bars = len(positions) = len(equity).
    """
    positions = np.asarray(positions, dtype=float)
    if positions.shape != (len(equity),):
        raise ValueError(
            f"positions ({positions.shape}) must be 1-D with one entry per equity mark "
            f"({len(equity)})"
        )
    summary = performance_metrics(equity, periods_per_year)
    summary |= trade_metrics(trades)
    n_bars = positions.size
    summary["exposure"] = float(np.count_nonzero(positions) / n_bars)
    summary["fees"] = float(fees)
    summary["turnover"] = float(traded_notional / equity.mean() * periods_per_year / n_bars)
    summary["final_equity"] = float(equity.iloc[-1])
    return summary


# Display order, label and format of known metrics; unknown keys follow as plain numbers.
_PERCENT, _RATIO, _COUNT, _MONEY = "percent", "ratio", "count", "money"
_DISPLAY: dict[str, tuple[str, str]] = {
    "total_return": ("Total return", _PERCENT),
    "annual_return": ("Annual return (CAGR)", _PERCENT),
    "annual_volatility": ("Annual volatility", _PERCENT),
    "sharpe": ("Sharpe ratio", _RATIO),
    "sortino": ("Sortino ratio", _RATIO),
    "calmar": ("Calmar ratio", _RATIO),
    "max_drawdown": ("Max drawdown", _PERCENT),
    "max_drawdown_duration": ("Max drawdown duration (bars)", _COUNT),
    "n_trades": ("Trades", _COUNT),
    "win_rate": ("Win rate", _PERCENT),
    "profit_factor": ("Profit factor", _RATIO),
    "avg_trade_pnl": ("Avg trade P&L", _MONEY),
    "exposure": ("Exposure", _PERCENT),
    "turnover": ("Turnover (x equity / year)", _RATIO),
    "fees": ("Fees paid", _MONEY),
    "final_equity": ("Final equity", _MONEY),
}


def format_comparison(
    strategy: dict[str, float],
    benchmark: dict[str, float],
    title: str = "Strategy vs buy & hold (after costs)",
) -> str:
    """Plain-text table of strategy metrics next to buy-and-hold, one row per metric.

    Rows follow a fixed order (known metrics first, then any others by name); a metric
    missing from one side shows "-". Percentages print as %, ratios with 2 decimals.
    """
    known = [key for key in _DISPLAY if key in strategy or key in benchmark]
    extra = sorted((strategy.keys() | benchmark.keys()) - _DISPLAY.keys())
    rows = [("", "strategy", "buy & hold")]
    for key in known + extra:
        label, kind = _DISPLAY.get(key, (key, _RATIO))
        rows.append(
            (label, _format_value(strategy.get(key), kind), _format_value(benchmark.get(key), kind))
        )
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    lines = [
        f"{label:<{widths[0]}}  {left:>{widths[1]}}  {right:>{widths[2]}}"
        for label, left, right in rows
    ]
    rule = "-" * len(lines[0])
    return "\n".join([title, rule, lines[0], rule, *lines[1:], rule])


def _format_value(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if kind == _PERCENT:
        return f"{value:.2%}"
    if kind == _COUNT:
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _validated_equity(equity: pd.Series) -> np.ndarray:
    """Equity as floats, held at 0 from the first non-positive mark (ruin) onwards."""
    values = np.asarray(equity, dtype=float).copy()
    if values.ndim != 1 or values.size < 2:
        raise ValueError(f"equity needs at least 2 marks (initial + 1 bar), got {values.size}")
    if not np.all(np.isfinite(values)):
        raise ValueError("equity contains NaN or infinite values")
    if values[0] <= 0:
        raise ValueError(f"initial equity must be positive, got {values[0]}")
    ruined = np.flatnonzero(values <= 0)
    if ruined.size:
        values[ruined[0] :] = 0.0
    return values


def _check_ppy(periods_per_year: float) -> None:
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be positive and finite, got {periods_per_year}")


def _simple_returns(values: np.ndarray) -> np.ndarray:
    """r_t = E_t / E_{t-1} - 1, and 0 after ruin (E_{t-1} == 0)."""
    previous, current = values[:-1], values[1:]
    ratio = np.divide(current, previous, out=np.ones_like(current), where=previous > 0)
    return cast(np.ndarray, ratio - 1.0)


def _std(returns: np.ndarray) -> float:
    return float(returns.std(ddof=1)) if returns.size > 1 else 0.0


def _sharpe(returns: np.ndarray, ppy: float) -> float:
    std = _std(returns)
    return float(returns.mean() / std * math.sqrt(ppy)) if std > _ZERO_STD else 0.0


def _sortino(returns: np.ndarray, ppy: float) -> float:
    mean = float(returns.mean())
    downside_dev = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside_dev > 0:
        return mean / downside_dev * math.sqrt(ppy)
    return math.inf if mean > 0 else 0.0


def _profit_factor(pnl: np.ndarray) -> float:
    gains = float(pnl[pnl > 0].sum())
    losses = float(-pnl[pnl < 0].sum())
    if losses > 0:
        return gains / losses
    return math.inf if gains > 0 else 0.0


def _longest_true_run(mask: np.ndarray) -> int:
    """Length of the longest block of consecutive True values."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if starts.size else 0


def _validated_sides(
    timestamps: pd.DatetimeIndex,
    positions: np.ndarray,
    equity: np.ndarray,
    fill_prices: np.ndarray,
) -> np.ndarray:
    """Sign (-1, 0, +1) of each bar's position after checking the inputs line up."""
    positions = np.asarray(positions, dtype=float)
    n = len(timestamps)
    lengths = {"positions": len(positions), "equity": len(equity), "fill_prices": len(fill_prices)}
    if positions.ndim != 1 or any(length != n for length in lengths.values()):
        raise ValueError(f"round_trips inputs must be 1-D with {n} entries each, got {lengths}")
    if not np.all(np.isfinite(positions)):
        raise ValueError("positions contain NaN or infinite values")
    return cast(np.ndarray, np.sign(positions))
