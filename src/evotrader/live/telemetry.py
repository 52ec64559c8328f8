"""Telemetry: structured event logs, the runner's reports, and the backtest's expectation to
hold live results to.

``Reporter`` is where the runner says what happened: risk events and health rows in the
journal, the same in the event log, one line on the console, and the error count that feeds
the risk engine's error-burst breaker.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from evotrader.core.trading import Bar
from evotrader.env.execution import ExecutionModel, SimAccount
from evotrader.live.journal import Journal
from evotrader.risk.circuit_breakers import Trip
from evotrader.risk.risk_engine import RiskEngine


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


@dataclass
class RunSummary:
    """What a run did; ``equity`` and ``expected`` are marked at every live bar's close."""

    stopped: str = ""
    halt: Trip | None = None
    bars: int = 0
    decisions: int = 0
    orders: int = 0
    rejected: int = 0
    fills: int = 0
    errors: int = 0
    equity: dict[pd.Timestamp, float] = field(default_factory=dict)
    expected: dict[pd.Timestamp, float] = field(default_factory=dict)

    @property
    def equity_series(self) -> pd.Series:
        return pd.Series(self.equity, name="equity", dtype=np.float64)

    @property
    def connection_lost(self) -> bool:
        """Stopped because the broker could not be reached again (positions left as held)."""
        return self.stopped.startswith("connection lost")

    def counts(self) -> dict[str, Any]:
        """How the run ended and what it did: the stop event and the summary file."""
        return {
            "stopped": self.stopped,
            "halt": self.halt.to_dict() if self.halt else None,
            "bars": self.bars,
            "decisions": self.decisions,
            "orders": self.orders,
            "rejected": self.rejected,
            "fills": self.fills,
            "errors": self.errors,
        }


class Reporter:
    """Journal, event log and console, written alike; errors and halts land in ``summary``."""

    def __init__(
        self,
        journal: Journal,
        events: EventLog,
        console: Callable[[str], None],
        risk: RiskEngine,
        summary: RunSummary,
        clock: Callable[[], pd.Timestamp],
    ) -> None:
        self.journal, self.events, self.console = journal, events, console
        self.risk, self.summary, self.clock = risk, summary, clock
        self._last_heartbeat: pd.Timestamp | None = None

    def risk_event(self, kind: str, detail: dict[str, Any]) -> None:
        self.journal.record_risk_event(self.clock(), kind, detail)
        self.events.emit(f"risk.{kind}", **detail)

    def tripped(self, trip: Trip) -> None:
        self.summary.halt = trip
        self.risk_event("halt", trip.to_dict())
        self.console(f"  HALT {trip.kind}: {trip.reason} -> flattening")

    def error(self, kind: str, what: str) -> None:
        """An error the bot survives: logged, printed, and counted."""
        self.events.emit("error", kind=kind, detail=what)
        self.console(f"  error ({kind}): {what}")
        self.count_error(kind, what)

    def count_error(self, kind: str, what: str) -> None:
        """Counted towards the error-burst breaker, which may trip."""
        self.summary.errors += 1
        self.risk_event("error", {"kind": kind, "detail": what})
        trip = self.risk.on_error(self.clock(), f"{kind}: {what}")
        if trip:
            self.tripped(trip)

    def heartbeat(self, now: pd.Timestamp, every_s: float, detail: dict[str, Any]) -> None:
        """A health row at most every ``every_s`` seconds."""
        interval = pd.Timedelta(seconds=every_s)
        if self._last_heartbeat is not None and now - self._last_heartbeat < interval:
            return
        self._last_heartbeat = now
        halt = self.risk.halt
        detail = detail | {"halt": halt.to_dict() if halt else None}
        self.journal.record_health(now, "ok" if halt is None else "halted", detail)
