"""The live runner's risk steps replayed inside a backtest, so it shows what the bot would do.

For each decision bar the guard does what ``LiveRunner`` does on that bar's close: mark
equity (daily-loss and drawdown breakers), then turn a target change into an order and
put it through the same ``RiskEngine.check_order``. A refused change keeps the old
target; a tripped breaker flattens and holds flat for the rest of the backtest. Its
account steps with the shared ``rebalance`` at the execution model's fill prices, so it
holds exactly what the backtest engine and the sim broker hold.
"""

from __future__ import annotations

import pandas as pd

from evotrader.core.trading import Instrument, OrderRequest, Side
from evotrader.env.execution import ExecutionModel, ExecutionPrices, SimAccount
from evotrader.risk.preferences import bar_end_times
from evotrader.risk.risk_engine import DUST, Book, RiskEngine


class RiskGuard:
    """Filters decided targets bar by bar; ``events`` lists refusals and the halt."""

    def __init__(
        self,
        risk: RiskEngine,
        instrument: Instrument,
        timestamps: pd.DatetimeIndex,
        prices: ExecutionPrices,
        execution: ExecutionModel,
        initial_cash: float,
    ) -> None:
        self.risk, self.instrument = risk, instrument
        self.ends = bar_end_times(timestamps, risk.preferences.trading_hours)
        self.timestamps, self.prices = timestamps, prices
        self.rate = execution.linear_rate
        self.account = SimAccount(float(initial_cash))
        self.target = 0.0
        self.events: list[dict[str, object]] = []

    def step(self, t: int, wanted: float) -> float:
        """The target held after the decision on bar ``t`` when the policy wants ``wanted``."""
        now, close = self.ends[t], float(self.prices.mark[t])
        equity = self.account.equity(close)
        trip = self.risk.on_equity(now, equity)
        if trip:
            self._event(t, str(trip.kind), trip.reason)
        if self.risk.halt is not None:
            wanted = 0.0
        if wanted != self.target and self._allowed(t, wanted, equity, close, now):
            self.target = wanted
            self.account.rebalance_to(
                wanted, float(self.prices.fill[t]), self.rate, float(self.prices.impact[t])
            )
        return self.target

    def _allowed(
        self, t: int, wanted: float, equity: float, close: float, now: pd.Timestamp
    ) -> bool:
        delta = wanted * equity / close - self.account.units
        if abs(delta) * close <= DUST * equity:
            return True
        order = OrderRequest(
            client_ref=f"backtest-{t}",
            instrument=self.instrument,
            side=Side.BUY if delta > 0 else Side.SELL,
            quantity=abs(delta),
            target_weight=wanted,
        )
        symbol = self.instrument.symbol
        book = Book(equity, {symbol: self.account.units}, {symbol: close})
        verdict = self.risk.check_order(order, book, now)
        if not verdict.approved:
            self._event(t, "order_refused", verdict.reason)
        return verdict.approved

    def _event(self, t: int, kind: str, reason: str) -> None:
        self.events.append({"timestamp": self.timestamps[t], "kind": kind, "reason": reason})

    def events_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.events, columns=["timestamp", "kind", "reason"])
        return frame.set_index("timestamp")
