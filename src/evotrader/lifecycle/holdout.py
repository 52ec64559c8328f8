"""Challenger vs champion on a holdout: bars after both test splits, which neither was
selected on.

Each checkpoint's test split was touched once, to judge that checkpoint; picking the better
of two runs by their test figures would select on the test split and make it in-sample. So
the two are compared on the bars after the later of their test splits end, through the same
path ``run_backtest.py`` and the live bot trade by (``TradableCheckpoint``), after costs and
against buy-and-hold on the same bars. The rule, the figures and the verdict are stored as a
comparison in the model registry; a promotion to champion reads it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evotrader.backtest.engine import BacktestResult
from evotrader.backtest.metrics import periods_per_year
from evotrader.backtest.significance import bar_returns, edge_on_test, excess_returns
from evotrader.lifecycle.states import LifecycleError
from evotrader.lifecycle.store import HOLDOUT, Comparison, Entry, ModelRegistry
from evotrader.training.guards import TradableCheckpoint

log = logging.getLogger(__name__)

MIN_BARS = 20
RULE = (
    "holdout after both test splits, after costs: the challenger's excess over buy-and-hold "
    "(annualised Sharpe of the per-bar excess) must be positive and above the champion's"
)


@dataclass(frozen=True)
class Standing:
    """One checkpoint's figures on the holdout bars, next to buy-and-hold's."""

    sharpe: float
    total_return: float
    max_drawdown: float
    n_trades: float
    buy_hold_sharpe: float
    buy_hold_return: float
    excess_sharpe: float  # annualised Sharpe of the per-bar excess over buy-and-hold
    excess_psr: float  # P(excess Sharpe > 0) on these bars, one trial

    @classmethod
    def of(cls, result: BacktestResult, ppy: float) -> Standing:
        edge = edge_on_test(excess_returns(result.equity, result.benchmark_equity))
        return cls(
            sharpe=float(result.metrics["sharpe"]),
            total_return=float(result.metrics["total_return"]),
            max_drawdown=float(result.metrics["max_drawdown"]),
            n_trades=float(result.metrics["n_trades"]),
            buy_hold_sharpe=float(result.benchmark["sharpe"]),
            buy_hold_return=float(result.benchmark["total_return"]),
            excess_sharpe=float(edge.sharpe * np.sqrt(ppy)),
            excess_psr=float(edge.probability),
        )


def compare_on_holdout(
    registry: ModelRegistry,
    challenger_id: int,
    champion_id: int,
    bars: pd.DataFrame,
    start: str | pd.Timestamp | None = None,
    min_bars: int = MIN_BARS,
) -> Comparison:
    """Backtest both on ``bars`` from ``start`` (default: the first bar after both test
    splits) to their end, judge them by ``RULE`` and store the comparison. A start on or
    before either test split's end, or fewer than ``min_bars`` bars, is refused; earlier
    bars serve as history only (features, a MAML policy's adaptation)."""
    challenger, champion = registry.entry(challenger_id), registry.entry(champion_id)
    period = holdout_period(challenger, champion, bars, start, min_bars)
    ppy = periods_per_year(period.index)
    new, old = (_backtest(registry, entry, bars, period) for entry in (challenger, champion))
    ours, theirs = Standing.of(new, ppy), Standing.of(old, ppy)
    difference = bar_returns(new.equity) - bar_returns(old.equity)
    passed = ours.excess_sharpe > 0 and ours.excess_sharpe > theirs.excess_sharpe
    first, last = str(period.index[0]), str(period.index[-1])
    verdict = (
        f"entry {challenger.id} {'beats' if passed else 'does not beat'} champion entry "
        f"{champion.id} on the holdout {first} -> {last} ({len(period)} bars): excess over "
        f"buy-and-hold Sharpe {ours.excess_sharpe:.2f} vs {theirs.excess_sharpe:.2f}, after costs"
    )
    log.info(verdict)
    return registry.record_comparison(
        challenger.id,
        champion.id,
        basis=HOLDOUT,
        rule=RULE,
        period=(first, last),
        figures={
            "bars": len(period),
            "challenger": asdict(ours),
            "champion": asdict(theirs),
            "difference_psr": float(edge_on_test(difference).probability),
        },
        passed=passed,
        verdict=verdict,
    )


def holdout_period(
    challenger: Entry,
    champion: Entry,
    bars: pd.DataFrame,
    start: str | pd.Timestamp | None,
    min_bars: int,
) -> pd.DataFrame:
    """The bars after both test splits (from ``start`` when given), refused with the dates
    when they would overlap either test split or are too few."""
    ends = {entry.id: _at(_test_end(entry), bars.index) for entry in (challenger, champion)}
    last = max(ends.values())
    splits = (
        f"entry {challenger.id}'s test split ends {ends[challenger.id]}, "
        f"entry {champion.id}'s {ends[champion.id]}"
    )
    first = None if start is None else _at(pd.Timestamp(start), bars.index)
    if first is not None and first <= last:
        raise LifecycleError(
            f"a holdout must start after both test splits: {splits}, so {first} overlaps bars "
            "one of them was judged on"
        )
    period = bars.loc[bars.index > last] if first is None else bars.loc[first:]
    if len(period) < min_bars:
        raise LifecycleError(
            f"only {len(period)} bars after both test splits ({splits}; the bars end "
            f"{bars.index[-1]}): a holdout needs at least {min_bars}; wait for more bars or "
            "compare on a forward (paper) period"
        )
    return period


def _backtest(
    registry: ModelRegistry, entry: Entry, bars: pd.DataFrame, period: pd.DataFrame
) -> BacktestResult:
    path: Path = registry.verify(entry)
    return TradableCheckpoint.load(path).backtest(bars, period)


def _at(moment: pd.Timestamp, index: pd.Index) -> pd.Timestamp:
    """``moment`` comparable with ``index``: a date without a zone is read in the bars' zone."""
    zone = getattr(index, "tz", None)
    return moment.tz_localize(zone) if zone is not None and moment.tzinfo is None else moment


def _test_end(entry: Entry) -> pd.Timestamp:
    try:
        return pd.Timestamp(entry.data_range["test_end"])
    except (KeyError, ValueError) as error:
        raise LifecycleError(
            f"entry {entry.id} records no readable test split end ({error}); without it no "
            "holdout can be shown to lie after it"
        ) from error
