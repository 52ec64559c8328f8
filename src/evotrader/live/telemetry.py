"""Telemetry: structured event logs, and the backtest's expectation to hold live results to.

``Expectation`` is the account the backtest would have: it takes the runner's approved
targets and fills them at the shared execution model's ideal prices (the next bar's open
by default) with ``rebalance``. Live equity that drifts from it by more than the
configured limit means fills, data or sizing are not what the backtest assumed; the
runner flags that and halts.
"""

from __future__ import annotations

import json
import math
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from evotrader.core.trading import Bar
from evotrader.env.execution import ExecutionModel, SimAccount


class Expectation:
    """The backtest's account, stepped bar by bar alongside the live one."""

    def __init__(self, execution: ExecutionModel, cash: float, units: float = 0.0) -> None:
        self.execution = execution
        self.account = SimAccount(cash, units)
        self.pending: tuple[float, float] | None = None  # (target, impact) for the next open

    def decide(self, target: float, price: float, impact: float) -> None:
        """An approved target change on the bar that closed at ``price``."""
        if self.execution.fill == "close":
            self.account.rebalance_to(target, price, self.execution.linear_rate, impact)
        else:
            self.pending = (target, impact)

    def on_bar(self, bar: Bar) -> None:
        """A new bar: a pending change fills at its open."""
        if self.pending is not None:
            target, impact = self.pending
            self.account.rebalance_to(target, bar.open, self.execution.linear_rate, impact)
            self.pending = None

    def equity(self, price: float) -> float:
        return self.account.equity(price)

    def divergence_pct(self, live_equity: float, price: float) -> float:
        expected = self.equity(price)
        if expected <= 0:
            return math.inf
        return 100.0 * abs(live_equity / expected - 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"cash": self.account.cash, "units": self.account.units, "pending": self.pending}

    @classmethod
    def from_dict(cls, execution: ExecutionModel, raw: dict[str, Any]) -> Expectation:
        expectation = cls(execution, float(raw["cash"]), float(raw["units"]))
        pending = raw.get("pending")
        expectation.pending = (float(pending[0]), float(pending[1])) if pending else None
        return expectation


class EventLog:
    """JSON lines, one event per line, flushed at once so a crash keeps the tail."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self.events: deque[dict[str, Any]] = deque(maxlen=10_000)  # the recent tail

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record |= fields
        self.events.append(record)
        if self._file is not None:
            self._file.write(json.dumps(record, default=str) + "\n")
            self._file.flush()
        return record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
