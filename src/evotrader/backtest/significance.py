"""Is a champion's edge over buy-and-hold real? Two figures, each named by its split.

An edge is judged against buy-and-hold on the same bars after costs, never against zero: a
strategy that holds long through a rising market has a high Sharpe and no edge. The test
statistic is the Sharpe ratio of the per-bar excess returns (strategy minus buy-and-hold).

- Validation split (used for selection): the Deflated Sharpe Ratio of the champion's excess,
  deflated for every candidate the run scored on that split. The variance of the candidates'
  excess Sharpes is floored at 1 / (T - 1), the sampling variance of a zero-edge Sharpe
  estimate over T bars: near-identical candidates (all holding long, say) have almost no
  cross-sectional spread, and without the floor the deflation would vanish just when the
  search found nothing. With the floor every trial counts as if independent, which
  overstates the deflation for correlated candidates: the conservative side.
- Test split (touched once): the one champion is one trial, so its figure is the plain
  Probabilistic Sharpe Ratio of the excess against 0, and p = 1 - PSR. This is the figure
  the verdict is drawn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd

from evotrader.backtest.overfitting import SharpeEstimate, expected_max_sharpe

ALPHA = 0.05
VALIDATION = "validation split (used for selection)"
TEST = "test split (touched once)"


def bar_returns(equity: pd.Series | np.ndarray) -> np.ndarray:
    """Simple per-bar returns of an equity curve; after ruin (equity 0) returns are 0."""
    values = np.asarray(equity, dtype=np.float64)
    previous, current = values[:-1], values[1:]
    alive = previous > 0
    return np.where(alive, current / np.where(alive, previous, 1.0) - 1.0, 0.0)


def excess_returns(equity: pd.Series, benchmark_equity: pd.Series) -> np.ndarray:
    """Per-bar strategy returns less buy-and-hold's, over the same bars."""
    if not equity.index.equals(benchmark_equity.index):
        raise ValueError(
            f"strategy ({len(equity)} marks) and benchmark ({len(benchmark_equity)} marks) "
            "equity are marked on different bars"
        )
    return cast(np.ndarray, bar_returns(equity) - bar_returns(benchmark_equity))


@dataclass(frozen=True)
class EdgeTest:
    """P(true per-bar Sharpe of the excess over buy-and-hold > ``threshold``) on one split.

    ``threshold`` is 0 for a single trial, and the expected best excess Sharpe of ``trials``
    zero-edge candidates otherwise (``probability`` is then the Deflated Sharpe Ratio).
    An excess without dispersion (the strategy is buy-and-hold) has Sharpe 0 and probability 0.
    """

    split: str
    sharpe: float  # per bar, not annualised
    threshold: float
    trials: int
    observations: int
    probability: float
    alpha: float = ALPHA

    @property
    def p_value(self) -> float:
        return 1.0 - self.probability

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def edge_on_validation(
    champion_excess: np.ndarray,
    candidates_excess: Sequence[np.ndarray],
    alpha: float = ALPHA,
) -> EdgeTest:
    """The champion's Deflated Sharpe on the selection split, over every candidate scored.

    ``candidates_excess`` holds every trial's excess returns on that split, the champion's
    included; each counts as one trial, duplicates too (they were all tried).
    """
    if not candidates_excess:
        raise ValueError("the champion was selected from no candidates")
    estimate = SharpeEstimate.of(champion_excess)
    sharpes = [_sharpe_or_zero(excess) for excess in candidates_excess]
    trials = len(sharpes)
    observations = len(champion_excess)
    spread = float(np.var(sharpes, ddof=1)) if trials > 1 else 0.0
    threshold = expected_max_sharpe(max(spread, 1.0 / (observations - 1)), trials)
    return _edge(VALIDATION, estimate, threshold, trials, observations, alpha)


def edge_on_test(excess: np.ndarray, alpha: float = ALPHA) -> EdgeTest:
    """The one champion on the untouched test split: PSR of its excess against 0."""
    return _edge(TEST, SharpeEstimate.of(excess), 0.0, 1, len(excess), alpha)


def describe_test_edge(
    test: EdgeTest, periods_per_year: float, benchmark: str = "buy-and-hold"
) -> str:
    """The test-split line behind the verdict: the excess over the benchmark (buy-and-hold;
    equal weight for a portfolio) and its PSR."""
    return (
        f"excess over {benchmark} on the {TEST}: Sharpe "
        f"{test.sharpe * np.sqrt(periods_per_year):.2f} (annualised), probabilistic Sharpe "
        f"{test.probability:.3f} (one trial)"
    )


def verdict(
    test: EdgeTest, trials_behind_selection: int | None, benchmark: str = "buy-and-hold"
) -> str:
    """The one line a user reads: is there an edge over the benchmark (buy-and-hold; equal
    weight for a portfolio), with its evidence.

    ``trials_behind_selection`` is None when the record of the selection is not at hand
    (a checkpoint moved out of its run folder); the line says so rather than guess.
    """
    if test.split != TEST:
        raise ValueError(f"the verdict comes from the test split, not {test.split}")
    word = "significant" if test.significant else "not significant"
    trials = "unknown" if trials_behind_selection is None else str(trials_behind_selection)
    return (
        f"edge over {benchmark}: {word} (p={test.p_value:.3f}, test split, "
        f"{trials} trials behind selection)"
    )


def _edge(
    split: str,
    estimate: SharpeEstimate | None,
    threshold: float,
    trials: int,
    observations: int,
    alpha: float,
) -> EdgeTest:
    if estimate is None:
        return EdgeTest(split, 0.0, threshold, trials, observations, 0.0, alpha)
    probability = estimate.probability_above(threshold)
    return EdgeTest(split, estimate.sharpe, threshold, trials, observations, probability, alpha)


def _sharpe_or_zero(returns: np.ndarray) -> float:
    estimate = SharpeEstimate.of(returns)
    return 0.0 if estimate is None else estimate.sharpe
