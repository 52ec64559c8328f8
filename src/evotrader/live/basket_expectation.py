"""The portfolio backtest's account, stepped alongside the live basket.

``telemetry.Expectation`` for a universe: the basket runner's approved target vectors fill
at the execution model's ideal prices (every symbol's next open by default, the decision's
close with ``fill="close"``, the next close on close-only bars) through the portfolio
engine's ``rebalance_portfolio``, so the expected equity is what ``run_portfolio`` would
mark. Live equity that drifts from it by more than the runner's ``max_divergence_pct``
means fills, data or sizing are not what the backtest assumed: the runner halts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evotrader.core.trading import Bar
from evotrader.env.execution import ExecutionModel, rebalance_portfolio


class BasketExpectation:
    """Cash and units per symbol as the backtest would hold them; a decision waiting for
    its fill is ``pending`` (targets and impact per symbol)."""

    def __init__(
        self,
        execution: ExecutionModel,
        symbols: Sequence[str],
        cash: float,
        units: Sequence[float] | None = None,
        *,
        close_only: bool = False,
    ) -> None:
        self.execution, self.symbols, self.close_only = execution, list(symbols), close_only
        self.cash = float(cash)
        self.units = np.zeros(len(symbols)) if units is None else np.asarray(units, np.float64)
        self.pending: tuple[np.ndarray, np.ndarray] | None = None

    def decide(self, targets: np.ndarray, closes: np.ndarray, impact: np.ndarray) -> None:
        """An approved target vector on the timestamp that closed at ``closes``."""
        impact = np.zeros_like(impact) if self.close_only else impact
        if self.execution.fill == "close" and not self.close_only:
            self._rebalance(targets, closes, impact)
        else:
            self.pending = (np.asarray(targets, np.float64), impact)

    def on_bars(self, bars: Mapping[str, Bar]) -> None:
        """A new timestamp: a pending decision fills at its opens (closes on close-only
        bars)."""
        if self.pending is None:
            return
        field = "close" if self.close_only else "open"
        targets, impact = self.pending
        self._rebalance(targets, np.array([getattr(bars[s], field) for s in self.symbols]), impact)
        self.pending = None

    def equity(self, closes: np.ndarray) -> float:
        return float(self.cash + (self.units * closes).sum())

    def divergence_pct(self, live_equity: float, closes: np.ndarray) -> float:
        expected = self.equity(closes)
        return math.inf if expected <= 0 else 100.0 * abs(live_equity / expected - 1.0)

    def to_dict(self) -> dict[str, Any]:
        pending = None if self.pending is None else [p.tolist() for p in self.pending]
        return {"cash": self.cash, "units": self.units.tolist(), "pending": pending}

    @classmethod
    def from_dict(
        cls,
        execution: ExecutionModel,
        symbols: Sequence[str],
        raw: Mapping[str, Any],
        *,
        close_only: bool = False,
    ) -> BasketExpectation:
        expectation = cls(execution, symbols, raw["cash"], raw["units"], close_only=close_only)
        if raw.get("pending"):
            targets, impact = raw["pending"]
            expectation.pending = (np.asarray(targets, np.float64), np.asarray(impact, np.float64))
        return expectation

    def _rebalance(self, targets: np.ndarray, prices: np.ndarray, impact: np.ndarray) -> None:
        rate = self.execution.linear_rate
        self.cash, self.units, _ = rebalance_portfolio(
            self.cash, self.units, targets, prices, rate, impact
        )
