"""Reading a result like an analyst: per-regime results, plain-language findings, and for
the generator a rule-based diagnosis with suggested directions.

Regime labels here are for reporting only (they use the whole evaluated period's volatility
distribution) and never feed a decision. Findings are short sentences with numbers, meant to
be fed back to the strategy generator and read by people. ``diagnose`` turns a result's
numbers into reasons (too few trades, costs ate the edge, the drift of buy-and-hold, one
regime's drawdown...) each with the concrete moves it calls for; ``regime_table`` and
``cost_figures`` lay the evidence out for a prompt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evotrader.backtest import metrics
from evotrader.strategies.spec import StrategyResult

REGIME_WINDOW = 63  # bars of trailing return and volatility behind each label
TREND_THRESHOLD = 0.05  # trailing log return beyond which a period is a bull / bear market
HIGH_VOL_QUANTILE = 0.8
MIN_REGIME_BARS = 20


def label_regimes(reference: pd.Series, window: int = REGIME_WINDOW) -> pd.Series:
    """bull / bear / sideways / high_vol per bar of a price or equity series.

    high_vol: trailing volatility in the top fifth of this series' volatility so far (an
    expanding quantile, so a label never reads a later bar); else bull / bear when the
    trailing ``window``-bar log return is beyond +/- 5%; else sideways.
    """
    log_price = np.log(reference.astype(np.float64))
    volatility = log_price.diff().rolling(window, min_periods=2).std()
    trend = log_price.diff(window).fillna(log_price - log_price.iloc[0])
    so_far = volatility.expanding(min_periods=window).quantile(HIGH_VOL_QUANTILE)
    high_vol = volatility > so_far
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


# --- for the generator: why a result failed and what to try next ------------------------------

COSTS_ATE_THE_EDGE = 0.5  # costs at least this share of the gross profit
DRIFT_EXPOSURE = 0.8  # in the market at least this share of bars...
DRIFT_SHARPE_MARGIN = 0.1  # ...and no more than this above buy-and-hold's Sharpe
OVERFIT_GAP = 0.5  # in-sample Sharpe this far above the walk-forward one
RARE_EXPOSURE = 0.1
PARTIAL_FILL_SHARE = 0.2  # orders filled in part, of all orders
HIGH_ANNUAL_SLIPPAGE_BPS = 50.0


@dataclass(frozen=True)
class Diagnosis:
    """One reason a result looks weak, with its numbers, and the concrete moves it calls for."""

    problem: str
    directions: tuple[str, ...]


def diagnose(result: StrategyResult, min_trades: int, max_drawdown: float) -> list[Diagnosis]:
    """Rule-based reasons from a result's numbers, most fundamental first.

    ``min_trades`` and ``max_drawdown`` are the screen's limits. Reads the metrics, costs,
    regimes and, when the phase recorded them, fold Sharpes, the in-sample Sharpe and the
    validation fill figures (``partial_fill_share``, ``annual_slippage_bps``).
    """
    m, b, extra = result.metrics, result.benchmark, result.diagnostics
    found: list[Diagnosis] = []
    trades = m.get("n_trades", 0.0)
    if min_trades > 0 and trades < min_trades:
        found.append(
            Diagnosis(
                f"too few trades: {trades:.0f}, fewer than the {min_trades} a Sharpe needs to "
                "mean anything",
                (
                    "trade more often: a shorter lookback or a lower entry threshold",
                    "a wider universe or a cross-sectional template (more independent bets)",
                ),
            )
        )
    exposure = m.get("exposure", 1.0)
    if exposure < RARE_EXPOSURE:
        found.append(
            Diagnosis(
                f"rarely in the market: {exposure:.0%} of the bars",
                ("a lower entry threshold or a looser filter",),
            )
        )
    found += _cost_diagnosis(result)
    if (
        exposure >= DRIFT_EXPOSURE
        and m.get("total_return", 0.0) > 0
        and m["sharpe"] <= b["sharpe"] + DRIFT_SHARPE_MARGIN
    ):
        found.append(
            Diagnosis(
                f"the edge is the drift of buy-and-hold: in the market {exposure:.0%} of the "
                f"time, Sharpe {m['sharpe']:.2f} vs buy & hold {b['sharpe']:.2f}",
                (
                    "add a trend or volatility filter that steps aside in falls",
                    "a long-short or cross-sectional template (relative, not absolute, returns)",
                ),
            )
        )
    found += _regime_diagnosis(result.regimes)
    drawdown = abs(m.get("max_drawdown", 0.0))
    if drawdown >= max_drawdown:
        found.append(
            Diagnosis(
                f"drawdown {drawdown:.1%} beyond the {max_drawdown:.0%} limit",
                (
                    "a smaller position size or volatility-target sizing",
                    "a stop loss or trailing stop",
                ),
            )
        )
    found += _robustness_diagnosis(m["sharpe"], extra)
    found += _fill_diagnosis(extra)
    if not result.passed and not found:
        found.append(
            Diagnosis(
                f"no single cause stands out: Sharpe {m['sharpe']:.2f}, profit factor "
                f"{m.get('profit_factor', math.nan):.2f}",
                ("another template family on the same universe",),
            )
        )
    return found


def suggested_directions(diagnoses: Sequence[Diagnosis]) -> list[str]:
    """Every diagnosis's moves, first mention first, each once."""
    return list(dict.fromkeys(d for diagnosis in diagnoses for d in diagnosis.directions))


def _gross(result: StrategyResult) -> tuple[float, float]:
    """Gross P&L (before costs) and the costs, from the trades and the result's cost totals."""
    costs = result.fees + result.slippage
    net = float(result.trades["pnl"].sum()) if "pnl" in result.trades else 0.0
    return net + costs, costs


def _cost_diagnosis(result: StrategyResult) -> list[Diagnosis]:
    if result.trades.empty:
        return []
    gross, costs = _gross(result)
    if gross <= 0:
        return [
            Diagnosis(
                f"no edge before costs: gross P&L {gross:,.0f}",
                (
                    "another signal family: this one has no edge on these bars",
                    "add a trend filter (trade only with the long-term trend)",
                ),
            )
        ]
    if costs / gross >= COSTS_ATE_THE_EDGE:
        turnover = result.metrics.get("turnover", math.nan)
        return [
            Diagnosis(
                f"costs ate the edge: fees {result.fees:,.0f} and slippage "
                f"{result.slippage:,.0f} took {costs / gross:.0%} of the gross profit "
                f"{gross:,.0f} (turnover {turnover:.1f}x a year)",
                (
                    "lower turnover: a longer lookback, a wider entry band or a minimum "
                    "holding period",
                    "fewer, larger bets: a higher entry threshold",
                ),
            )
        ]
    return []


def _regime_diagnosis(regimes: Mapping[str, Mapping[str, float]]) -> list[Diagnosis]:
    judged = {k: v for k, v in regimes.items() if v["bars"] >= MIN_REGIME_BARS}
    losers = {k: v["return"] for k, v in judged.items() if v["return"] < 0}
    if not losers or len(losers) == len(judged):
        return []
    worst = min(losers, key=lambda k: losers[k])
    others = sum(-r for k, r in losers.items() if k != worst)
    if -losers[worst] < 2 * others:
        return []
    return [
        Diagnosis(
            f"the drawdown comes from one regime: {losers[worst]:.1%} in {worst}, "
            f"{len(judged) - len(losers)} of {len(judged)} regimes positive",
            (
                f"a regime filter that stands aside in {worst} markets (price below its "
                "200-day average, or volatility in its top fifth)",
                "a stop loss or trailing stop to cut losses there",
            ),
        )
    ]


def _robustness_diagnosis(sharpe: float, extra: Mapping[str, Any]) -> list[Diagnosis]:
    found = []
    folds = [float(f["oos_sharpe"]) for f in extra.get("folds", ())]
    if len(folds) > 1 and min(folds) < 0 < max(folds):
        listed = ", ".join(f"{s:.2f}" for s in folds)
        found.append(
            Diagnosis(
                f"the edge is not stable: walk-forward Sharpe by fold {listed}",
                (
                    "a longer lookback and fewer tuned parameters",
                    "a more robust template of the same idea",
                ),
            )
        )
    in_sample = extra.get("in_sample_sharpe")
    if in_sample is not None and in_sample - sharpe > OVERFIT_GAP:
        found.append(
            Diagnosis(
                f"overfitted: in-sample Sharpe {in_sample:.2f} vs walk-forward {sharpe:.2f}",
                ("coarser parameters or the template's defaults", "a simpler rule"),
            )
        )
    return found


def _fill_diagnosis(extra: Mapping[str, Any]) -> list[Diagnosis]:
    found = []
    partial = extra.get("partial_fill_share")
    if partial is not None and partial >= PARTIAL_FILL_SHARE:
        found.append(
            Diagnosis(
                f"{partial:.0%} of orders filled only in part: orders too large for the "
                "bars' volume",
                ("a smaller position size", "more liquid symbols"),
            )
        )
    bps = extra.get("annual_slippage_bps")
    if bps is not None and bps >= HIGH_ANNUAL_SLIPPAGE_BPS:
        found.append(
            Diagnosis(
                f"slippage costs {bps:.0f} bps a year",
                ("lower turnover: a longer lookback or a minimum holding period",),
            )
        )
    return found


def regime_table(regimes: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The per-regime results as aligned text rows (a header first); empty without regimes."""
    if not regimes:
        return []
    rows = [f"{'regime':<10} {'bars':>5} {'return':>8} {'B&H':>8} {'Sharpe':>7} {'trades':>6}"]
    for name, r in regimes.items():
        rows.append(
            f"{name:<10} {r['bars']:>5.0f} {r['return']:>8.1%} {r['benchmark_return']:>8.1%} "
            f"{r['sharpe']:>7.2f} {r['trades']:>3.0f} ({r['losing_trades']:.0f} lost)"
        )
    return rows


def cost_figures(result: StrategyResult) -> str:
    """Fees, slippage, their share of the gross profit, turnover and, when the phase
    measured them, partial fills, late notional and annual slippage."""
    gross, costs = _gross(result)
    share = f" ({costs / gross:.0%} of the gross profit {gross:,.0f})" if gross > 0 else ""
    parts = [
        f"fees {result.fees:,.0f}, slippage {result.slippage:,.0f}{share}",
        f"turnover {result.metrics.get('turnover', math.nan):.1f}x a year",
    ]
    extra = result.diagnostics
    if "partial_fill_share" in extra:
        parts.append(f"partial fills {extra['partial_fill_share']:.0%} of orders")
    if "late_notional_share" in extra:
        parts.append(f"late notional {extra['late_notional_share']:.0%}")
    if "annual_slippage" in extra:
        bps = extra.get("annual_slippage_bps")
        parts.append(
            f"annual slippage {extra['annual_slippage']:,.0f}"
            + (f" ({bps:.0f} bps)" if bps is not None else "")
        )
    return "; ".join(parts)
