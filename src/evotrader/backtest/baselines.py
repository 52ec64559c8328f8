"""Classic portfolio baselines, each just a weights policy run through the portfolio engine.

Equal weight, buy-and-hold of the universe, and skfolio's optimisers (minimum variance,
maximum Sharpe, hierarchical risk parity, risk parity). skfolio is the library because it is
scikit-learn style (fit on returns, read ``weights_``), maintained, and ships the S&P 500
closes we use offline. Optimisers are re-fitted walk-forward at each rebalance date on the
returns up to that bar only (a trailing or expanding window), so the first fit sees the
training window alone and no test return is used before it happened. Every baseline goes
through the same engine as the policy it is compared with, so costs are charged identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from skfolio.optimization import (
    BaseOptimization,
    HierarchicalRiskParity,
    MeanRisk,
    ObjectiveFunction,
    RiskBudgeting,
)
from sklearn.base import clone

from evotrader.backtest import significance
from evotrader.backtest.portfolio import (
    History,
    PortfolioError,
    PortfolioResult,
    PortfolioSettings,
    WeightsPolicy,
    run_portfolio,
)
from evotrader.backtest.report import format_columns
from evotrader.risk.portfolio import PortfolioRisk

EQUAL_WEIGHT, BUY_AND_HOLD = "equal weight", "buy & hold"
MIN_VARIANCE, MAX_SHARPE, HRP, RISK_PARITY = "min variance", "max Sharpe", "HRP", "risk parity"


def equal_weight(history: History) -> np.ndarray:
    """1/n in every asset, at every rebalance date."""
    count = history.closes.shape[1]
    return np.full(count, 1.0 / count)


def buy_and_hold(history: History) -> np.ndarray | None:
    """Equal weights bought once, when nothing is held yet, then never traded again."""
    if history.weights.abs().sum() > 0:
        return None
    return equal_weight(history)


@dataclass(frozen=True)
class WalkForward:
    """A skfolio optimiser re-fitted on past returns only, at every call.

    ``window`` is the number of trailing returns fitted (None: all returns so far, an
    expanding window); fewer than ``min_history`` returns is an error, not a guess, so a run
    must start after a training window long enough for the first fit. ``cash_when_no_gain``
    holds cash when no asset's mean return in the window is positive: the maximum Sharpe
    portfolio is undefined there (skfolio refuses to fit) and cash is the tangency answer.
    """

    name: str
    estimator: BaseOptimization
    window: int | None = 252
    min_history: int = 60
    cash_when_no_gain: bool = False

    def __post_init__(self) -> None:
        if self.min_history < 2:
            raise PortfolioError(f"{self.name} min_history must be >= 2, got {self.min_history}")
        if self.window is not None and self.window < self.min_history:
            raise PortfolioError(
                f"{self.name} window ({self.window}) must be >= min_history ({self.min_history})"
            )

    def __call__(self, history: History) -> np.ndarray:
        returns = history.closes.pct_change().iloc[1:]
        if self.window is not None:
            returns = returns.iloc[-self.window :]
        if len(returns) < self.min_history:
            raise PortfolioError(
                f"{self.name} at {history.timestamp:%Y-%m-%d}: {len(returns)} returns of history, "
                f"needs {self.min_history}; start the run after a longer training window"
            )
        if self.cash_when_no_gain and not (returns.mean() > 0).any():
            return np.zeros(returns.shape[1])
        model = clone(self.estimator).fit(returns)
        # solver round-off can leave weights a hair below 0 or their sum a hair above 1
        weights = np.clip(np.asarray(model.weights_, dtype=np.float64), 0.0, None)
        fitted: np.ndarray = weights / max(1.0, float(weights.sum()))
        return fitted


def default_baselines(window: int | None = 252, min_history: int = 60) -> dict[str, WeightsPolicy]:
    """Equal weight, buy-and-hold and four long-only, fully invested optimisers."""

    def fitted(name: str, estimator: BaseOptimization, cash: bool = False) -> WalkForward:
        return WalkForward(name, estimator, window, min_history, cash_when_no_gain=cash)

    max_sharpe = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO)
    return {
        EQUAL_WEIGHT: equal_weight,
        BUY_AND_HOLD: buy_and_hold,
        MIN_VARIANCE: fitted(MIN_VARIANCE, MeanRisk()),  # minimises variance by default
        MAX_SHARPE: fitted(MAX_SHARPE, max_sharpe, cash=True),
        HRP: fitted(HRP, HierarchicalRiskParity()),
        RISK_PARITY: fitted(RISK_PARITY, RiskBudgeting()),
    }


@dataclass(frozen=True)
class Comparison:
    """A policy and its baselines on the same bars, after costs, named by their split."""

    split: str
    policy: str
    results: dict[str, PortfolioResult]

    @property
    def table(self) -> pd.DataFrame:
        """Metrics (rows) per run (columns)."""
        return pd.DataFrame({name: result.metrics for name, result in self.results.items()})

    def text(self) -> str:
        columns = {name: result.metrics for name, result in self.results.items()}
        return format_columns(columns, f"Portfolio vs baselines ({self.split} split, after costs)")

    def edge(self, against: str = EQUAL_WEIGHT) -> significance.EdgeTest:
        """Probabilistic Sharpe of the policy's per-bar excess over one baseline."""
        if against not in self.results or against == self.policy:
            raise PortfolioError(f"no baseline named {against!r}; have {sorted(self.results)}")
        return significance.edge_on_test(
            significance.excess_returns(
                self.results[self.policy].equity, self.results[against].equity
            )
        )


def compare_with_baselines(
    policy: WeightsPolicy,
    data: Mapping[str, pd.DataFrame] | pd.DataFrame,
    settings: PortfolioSettings | None = None,
    *,
    name: str = "policy",
    split: str = "test",
    start: str | pd.Timestamp | None = None,
    close_only: bool = False,
    baselines: Mapping[str, WeightsPolicy] | None = None,
    risk: PortfolioRisk | None = None,
) -> Comparison:
    """Run ``policy`` and every baseline (``default_baselines()`` unless given) over the same
    bars from ``start`` with the same settings; the bars before ``start`` are history only.
    ``risk`` checks every run's targets under the same limits, so a policy is never compared
    with baselines that were allowed more."""
    runs: dict[str, WeightsPolicy] = {name: policy}
    for baseline, run in (baselines if baselines is not None else default_baselines()).items():
        if baseline in runs:
            raise PortfolioError(f"baseline name {baseline!r} is also the policy's name")
        runs[baseline] = run
    results = {
        label: run_portfolio(run, data, settings, close_only=close_only, start=start, risk=risk)
        for label, run in runs.items()
    }
    return Comparison(split, name, results)
