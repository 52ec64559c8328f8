"""The risk engine: every order is checked before it leaves, and breakers halt trading.

One engine serves the live runner and the backtest (``run_backtest(risk=...)``), so a
backtest shows what the bot would really have done. Orders that only reduce a position
always pass (a halted bot must still be able to flatten, at any hour, over any limit);
every other order must be within the instrument, hours, rate, position and leverage
limits. An order decided on a bar's close counts as placed at that close for up to
``DECISION_DELAY`` after it, so a daily bar that closes at the session end can still be
traded a moment later by the wall clock (it fills at the next open, as the execution
model assumes). Breakers (daily loss, drawdown, error bursts, stale data, the kill
switch, live vs expected divergence) set a halt that only a human clears, and the state
survives restarts through ``RiskState.to_dict`` in the journal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from evotrader.core.trading import OrderRequest
from evotrader.risk import circuit_breakers as breakers
from evotrader.risk.circuit_breakers import BreakerKind, Trip
from evotrader.risk.preferences import Preferences

RATE_WINDOW_SECONDS = 60.0
TOLERANCE = 1e-9  # relative slack so a target of exactly the limit is not refused by rounding
DUST = 1e-9  # a trade below this fraction of equity needs no order (runner and backtest alike)
# How long after its bar closed a decision still counts as taken at that close (the runner
# sees a closed bar a poll or two later); a code constant, so no run-time setting widens it.
DECISION_DELAY = pd.Timedelta(minutes=5)


@dataclass(frozen=True)
class Book:
    """The account as the check sees it: equity, signed units and a price per symbol."""

    equity: float
    units: Mapping[str, float]
    prices: Mapping[str, float]


@dataclass(frozen=True)
class RiskVerdict:
    approved: bool
    reason: str = ""


@dataclass
class RiskState:
    """What the breakers remember; plain JSON through ``to_dict`` for the journal."""

    peak_equity: float | None = None
    day: str | None = None
    day_start_equity: float | None = None
    last_equity: float | None = None
    order_times: list[float] = field(default_factory=list)
    error_times: list[float] = field(default_factory=list)
    halt: Trip | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "peak_equity": self.peak_equity,
            "day": self.day,
            "day_start_equity": self.day_start_equity,
            "last_equity": self.last_equity,
            "order_times": list(self.order_times),
            "error_times": list(self.error_times),
            "halt": self.halt.to_dict() if self.halt else None,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RiskState:
        halt = raw.get("halt")
        return cls(
            peak_equity=raw.get("peak_equity"),
            day=raw.get("day"),
            day_start_equity=raw.get("day_start_equity"),
            last_equity=raw.get("last_equity"),
            order_times=list(raw.get("order_times", [])),
            error_times=list(raw.get("error_times", [])),
            halt=Trip.from_dict(halt) if halt else None,
        )


class RiskEngine:
    """Checks orders against frozen ``Preferences`` and trips breakers."""

    def __init__(self, preferences: Preferences, state: RiskState | None = None) -> None:
        self._preferences = preferences
        self.state = state or RiskState()

    @property
    def preferences(self) -> Preferences:
        return self._preferences

    @property
    def halt(self) -> Trip | None:
        return self.state.halt

    def check_order(
        self,
        order: OrderRequest,
        book: Book,
        now: pd.Timestamp,
        bar_end: pd.Timestamp | None = None,
    ) -> RiskVerdict:
        """Approve or reject ``order`` given the account before it; approvals are counted
        toward the order-rate limit. ``bar_end`` is when the bar the order was decided on
        closed: inside the trading hours and at most ``DECISION_DELAY`` before ``now``, it
        makes the order count as placed at that close."""
        symbol = order.instrument.symbol
        price = book.prices.get(symbol)
        if price is None or not math.isfinite(price) or price <= 0:
            return RiskVerdict(False, f"no valid price for {symbol} to size the order against")
        before = book.units.get(symbol, 0.0)
        after = before + order.signed_quantity
        reduces = abs(after) <= abs(before) * (1 + TOLERANCE) and after * before >= 0
        if reduces:
            verdict = RiskVerdict(True)
        else:
            verdict = self._opening_verdict(order, book, after, now, bar_end)
        if verdict.approved:
            seconds = now.timestamp()
            self.state.order_times = [
                t for t in self.state.order_times if seconds - t < RATE_WINDOW_SECONDS
            ] + [seconds]
        return verdict

    def _opening_verdict(
        self,
        order: OrderRequest,
        book: Book,
        after: float,
        now: pd.Timestamp,
        bar_end: pd.Timestamp | None,
    ) -> RiskVerdict:
        prefs, instrument = self._preferences, order.instrument
        if self.state.halt is not None:
            halt = self.state.halt
            return RiskVerdict(False, f"trading halted by {halt.kind}: {halt.reason}")
        if instrument.symbol not in prefs.allowed_instruments:
            return RiskVerdict(False, f"{instrument.symbol} is not an allowed instrument")
        if instrument.asset_class not in prefs.allowed_asset_classes:
            return RiskVerdict(False, f"asset class {instrument.asset_class} is not allowed")
        if not self._in_hours(now, bar_end):
            decided = f" (decided on a bar that closed at {bar_end.isoformat()})" if bar_end else ""
            return RiskVerdict(False, f"{now.isoformat()} is outside trading hours{decided}")
        seconds = now.timestamp()
        recent = sum(1 for t in self.state.order_times if seconds - t < RATE_WINDOW_SECONDS)
        if recent >= prefs.max_orders_per_minute:
            return RiskVerdict(
                False, f"{recent} orders in the last minute (limit {prefs.max_orders_per_minute})"
            )
        if not book.equity > 0:
            return RiskVerdict(False, f"equity {book.equity:,.2f} is not positive")
        price = book.prices[instrument.symbol]
        position_pct = 100.0 * abs(after) * price / book.equity
        if position_pct > prefs.max_position_pct * (1 + TOLERANCE):
            return RiskVerdict(
                False,
                f"position {position_pct:.2f}% of equity exceeds {prefs.max_position_pct:g}%",
            )
        units = dict(book.units) | {instrument.symbol: after}
        gross = sum(abs(q) * book.prices.get(s, 0.0) for s, q in units.items())
        missing = [s for s, q in units.items() if q and s not in book.prices]
        if missing:
            return RiskVerdict(False, f"no price for held {missing} to measure leverage")
        leverage = gross / book.equity
        if leverage > prefs.max_leverage * (1 + TOLERANCE):
            return RiskVerdict(
                False, f"gross leverage {leverage:.3f} exceeds {prefs.max_leverage:g}"
            )
        return RiskVerdict(True)

    def _in_hours(self, now: pd.Timestamp, bar_end: pd.Timestamp | None) -> bool:
        hours = self._preferences.trading_hours
        if hours.contains(now):
            return True
        if bar_end is None:
            return False
        return hours.contains(bar_end) and pd.Timedelta(0) <= now - bar_end <= DECISION_DELAY

    def on_equity(self, now: pd.Timestamp, equity: float) -> Trip | None:
        """Record an equity mark; trips the daily-loss or drawdown breaker."""
        state, prefs = self.state, self._preferences
        day = now.tz_convert(prefs.trading_hours.timezone).date().isoformat()
        if day != state.day:
            state.day = day
            state.day_start_equity = state.last_equity if state.last_equity else equity
        state.last_equity = equity
        state.peak_equity = max(state.peak_equity or equity, equity)
        if not equity > 0:
            return self.trip(BreakerKind.DRAWDOWN, f"equity {equity:,.2f} is not positive", now)
        assert state.day_start_equity is not None  # set whenever state.day is (above)
        reason = breakers.daily_loss(state.day_start_equity, equity, prefs.max_daily_loss_pct)
        if reason:
            return self.trip(BreakerKind.DAILY_LOSS, reason, now)
        reason = breakers.drawdown(state.peak_equity, equity, prefs.max_drawdown_pct)
        if reason:
            return self.trip(BreakerKind.DRAWDOWN, reason, now)
        return None

    def on_error(self, now: pd.Timestamp, what: str) -> Trip | None:
        """Count a broker or data error; trips the error-burst breaker."""
        prefs, seconds = self._preferences, now.timestamp()
        self.state.error_times = [
            t for t in self.state.error_times if seconds - t <= prefs.error_burst_seconds
        ] + [seconds]
        reason = breakers.error_burst(
            self.state.error_times, seconds, prefs.error_burst_count, prefs.error_burst_seconds
        )
        if reason is None:
            return None
        return self.trip(BreakerKind.ERROR_BURST, f"{reason}; last: {what}", now)

    def check_feed(self, now: pd.Timestamp, last_bar_end: pd.Timestamp) -> Trip | None:
        """Trips the stale-data breaker when, inside trading hours, the newest bar is older
        than the limit (outside hours no bars are expected)."""
        if not self._preferences.trading_hours.contains(now):
            return None
        age = (now - last_bar_end).total_seconds()
        reason = breakers.stale_data(age, self._preferences.stale_data_seconds)
        return self.trip(BreakerKind.STALE_DATA, reason, now) if reason else None

    def trip(self, kind: BreakerKind, reason: str, now: pd.Timestamp) -> Trip | None:
        """Halt (the first trip wins); returns the trip, or None when already halted."""
        if self.state.halt is not None:
            return None
        self.state.halt = Trip(kind, reason, now.isoformat())
        return self.state.halt

    def clear_halt(self) -> Trip | None:
        """A human's decision to resume (``--clear-halt``); returns the halt it cleared."""
        halt, self.state.halt = self.state.halt, None
        return halt
