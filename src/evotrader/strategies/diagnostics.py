"""Reading a result like an analyst: per-regime results and plain-language findings.

Regime labels here are for reporting only (they use the whole evaluated period's volatility
distribution) and never feed a decision. Findings are short sentences with numbers, meant to
be fed back to the strategy generator and read by people.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from evotrader.backtest import metrics

REGIME_WINDOW = 63  # bars of trailing return and volatility behind each label
TREND_THRESHOLD = 0.05  # trailing log return beyond which a period is a bull / bear market
HIGH_VOL_QUANTILE = 0.8
MIN_REGIME_BARS = 20


def label_regimes(reference: pd.Series, window: int = REGIME_WINDOW) -> pd.Series:
    """bull / bear / sideways / high_vol per bar of a price or equity series.

    high_vol: trailing volatility in the top fifth of this series' own volatility; else
    bull / bear when the trailing ``window``-bar log return is beyond +/- 5%; else sideways.
    """
    log_price = np.log(reference.astype(np.float64))
    volatility = log_price.diff().rolling(window, min_periods=2).std()
    trend = log_price.diff(window).fillna(log_price - log_price.iloc[0])
    high_vol = volatility > volatility.quantile(HIGH_VOL_QUANTILE)
    labels = np.where(
        high_vol,
        "high_vol",
        np.where(
            trend > TREND_THRESHOLD, "bull", np.where(trend < -TREND_THRESHOLD, "bear", "sideways")
        ),
    )
    return pd.Series(labels, index=reference.index, name="regime")


def regime_results(
    equity: pd.Series, benchmark: pd.Series, trades: pd.DataFrame, labels: pd.Series
) -> dict[str, dict[str, float]]:
    """Per regime: bars, compounded strategy and buy-and-hold return over its bars, Sharpe,
    and trades (and losing trades) by the regime of their exit bar."""
    ppy = metrics.periods_per_year(pd.DatetimeIndex(equity.index))
    returns = equity.pct_change().fillna(0.0)
    benchmark_returns = benchmark.pct_change().fillna(0.0)
    exit_regime = labels.reindex(pd.DatetimeIndex(trades["exit_time"])).to_numpy()
    results = {}
    for regime in sorted(set(labels)):
        mask = (labels == regime).to_numpy()
        picked = returns[mask]
        std = float(picked.std(ddof=1)) if mask.sum() > 1 else 0.0
        in_regime = exit_regime == regime
        results[regime] = {
            "bars": float(mask.sum()),
            "return": float((1.0 + picked).prod() - 1.0),
            "benchmark_return": float((1.0 + benchmark_returns[mask]).prod() - 1.0),
            "sharpe": float(picked.mean() / std * math.sqrt(ppy)) if std > 1e-12 else 0.0,
            "trades": float(in_regime.sum()),
            "losing_trades": float((in_regime & (trades["pnl"].to_numpy() < 0)).sum()),
        }
    return results


def findings(
    summary: Mapping[str, float],
    benchmark: Mapping[str, float],
    trades: pd.DataFrame,
    benchmark_equity: pd.Series,
    regimes: Mapping[str, Mapping[str, float]],
    fees: float,
    slippage: float,
    in_sample_sharpe: float | None = None,
    fold_sharpes: Sequence[float] = (),
) -> list[str]:
    """Plain sentences on why a result looks the way it does, most telling first."""
    notes = []
    notes += _loss_clusters(trades, benchmark_equity)
    notes += _regime_notes(regimes)
    notes += _cost_notes(trades, fees, slippage)
    sharpe = summary["sharpe"]
    if in_sample_sharpe is not None and in_sample_sharpe - sharpe > 0.5:
        notes.append(
            f"in-sample Sharpe {in_sample_sharpe:.2f} vs walk-forward {sharpe:.2f}: the "
            "optimised parameters did not carry over"
        )
    if len(fold_sharpes) > 1 and min(fold_sharpes) < 0 < max(fold_sharpes):
        listed = ", ".join(f"{s:.2f}" for s in fold_sharpes)
        notes.append(f"walk-forward Sharpe by fold {listed}: the edge is not stable")
    if summary["exposure"] < 0.1:
        notes.append(f"in the market only {summary['exposure']:.0%} of the time")
    if benchmark["sharpe"] > sharpe:
        notes.append(f"buy & hold made Sharpe {benchmark['sharpe']:.2f} on the same bars")
    return notes


def _loss_clusters(trades: pd.DataFrame, benchmark_equity: pd.Series) -> list[str]:
    losing = trades[trades["pnl"] < 0]
    if len(losing) < 3:
        return []
    exits = pd.DatetimeIndex(losing["exit_time"])
    drawdown = benchmark_equity / benchmark_equity.cummax() - 1.0
    trough = drawdown.idxmin()
    peak = benchmark_equity.loc[:trough].iloc[::-1].idxmax()  # the last high before the fall
    inside = int(((exits >= peak) & (exits <= trough)).sum())
    if drawdown.min() < -0.1 and inside >= max(2, len(losing) / 3):
        return [
            f"{inside} of {len(losing)} losing trades came in the "
            f"{peak:%Y-%m-%d}..{trough:%Y-%m-%d} sell-off (buy & hold {drawdown.min():.1%})"
        ]
    years = pd.Series(exits.year).value_counts()
    if years.iloc[0] >= 0.4 * len(losing) and len(years) > 1:
        return [f"{years.iloc[0]} of {len(losing)} losing trades came in {years.index[0]}"]
    return []


def _regime_notes(regimes: Mapping[str, Mapping[str, float]]) -> list[str]:
    enough = {k: v for k, v in regimes.items() if v["bars"] >= MIN_REGIME_BARS}
    lost = [f"{-v['return']:.1%} in {k}" for k, v in enough.items() if v["return"] < 0]
    made = [f"{v['return']:.1%} in {k}" for k, v in enough.items() if v["return"] > 0]
    if not lost:
        return []
    note = f"lost {_listing(lost)} bars"
    return [note + (f", made {_listing(made)} bars" if made else "")]


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cost_notes(trades: pd.DataFrame, fees: float, slippage: float) -> list[str]:
    costs = fees + slippage
    net = float(trades["pnl"].sum())
    gross = net + costs
    if costs <= 0 or trades.empty:
        return []
    if gross <= 0:
        return [f"lost money before costs too (gross P&L {gross:,.0f}, costs {costs:,.0f})"]
    if costs / gross >= 0.25:
        return [
            f"costs (fees {fees:,.0f}, slippage {slippage:,.0f}) took {costs / gross:.0%} of "
            "the gross profit"
        ]
    return []
