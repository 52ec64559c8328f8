"""What the single-symbol and the basket runner do alike with their broker and journal.

``BrokerSync`` is a mixin: the runner that takes it in holds ``broker``, ``journal``,
``risk``, ``config``, ``events``, ``report``, ``summary`` and ``console``, and answers
``_latest`` (the newest bar its windows hold). It opens the run (connect, refuse real
money without the flags, journal the run, clear a halt on request), records the broker's
order states, pulls order states, fills, positions and the account into the journal,
reconciles the journal with the broker on start and after a reconnect (the rules:
``evotrader.live.reconcile``), cancels working orders, trips breakers, reconnects with
the one backoff policy (``evotrader.live.retry``) and stops without flattening.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import pandas as pd

from evotrader.core.trading import (
    Account,
    Bar,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    Position,
)
from evotrader.live import reconcile, retry
from evotrader.live.broker import Broker, BrokerDisconnected, BrokerError, FeedEnded
from evotrader.live.journal import Journal
from evotrader.live.telemetry import EventLog, Reporter, RunSummary
from evotrader.risk.circuit_breakers import BreakerKind
from evotrader.risk.kill_switch import KillSwitch
from evotrader.risk.risk_engine import RiskEngine, RiskState

if TYPE_CHECKING:
    from evotrader.live.runner import RunnerConfig


def client_ref(session_id: str, symbol: str, bar: pd.Timestamp, purpose: str) -> str:
    """An order's client reference: the journal's session, the symbol, the bar and the
    purpose, so a restart recognises (and never re-sends) an order it already sent."""
    clean = re.sub(r"[^A-Za-z0-9]", "_", symbol)
    return f"{session_id}-{clean}-{bar:%Y%m%dT%H%M%S}-{purpose}"


class PolicyError(ValueError):
    """The policy answered something that is not one valid action; nothing is traded."""


class BrokerSync:
    """Broker and journal bookkeeping shared by ``LiveRunner`` and ``BasketRunner``."""

    broker: Broker
    journal: Journal
    risk: RiskEngine
    config: RunnerConfig
    events: EventLog
    report: Reporter
    summary: RunSummary
    console: Callable[[str], None]
    real_money: bool
    kill_switch: KillSwitch
    _account: Account | None
    _fill_ids: set[str]
    _live_bars: int

    @property
    def _latest(self) -> pd.Timestamp:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def _sync(self) -> None:
        raise NotImplementedError

    def _on_bar(self, bar: Bar) -> None:
        raise NotImplementedError

    def _flatten_and_stop(self) -> None:
        raise NotImplementedError

    def _save_state(self) -> None:
        raise NotImplementedError

    def _reconnect(self, error: BrokerDisconnected) -> None:
        raise NotImplementedError

    def _idle(self) -> None:
        """No bar came within one poll."""

    def run(self) -> RunSummary:
        """Start (connect, warm up, reconcile), then trade bar by bar until the feed ends,
        ``max_bars`` pass, or a breaker or the kill switch flattens and stops the bot."""
        try:
            self.start()
            while not self.summary.stopped:
                self.step()
        finally:
            self._save_state()
            self.events.emit("stop", **self.summary.counts())
        return self.summary

    def step(self) -> None:
        """One wait for a bar: a bar is traded, a breaker or the kill switch flattens."""
        reason = self.kill_switch.reason()
        if reason and self.risk.halt is None:
            self._trip(BreakerKind.KILL_SWITCH, reason)
        if self.risk.halt is not None:
            self._flatten_and_stop()
            return
        try:
            bar = self.broker.next_bar(self.config.poll_seconds)
            if bar is None:
                self._idle()
            else:
                self._on_bar(bar)
        except FeedEnded as ended:
            self._finish(f"feed ended: {ended}")
        except BrokerDisconnected as error:
            self._reconnect(error)
        except BrokerError as error:
            self.report.error("broker", str(error))
        except PolicyError as error:
            self.report.error("policy", str(error))

    def _open_run(self, name: str, info: dict[str, Any]) -> None:
        """Restore the risk state, connect, refuse real money without the flags, journal
        the run's start under ``info`` and clear a halt when the config asks."""
        state = self.journal.get_state("risk")
        if state:
            self.risk.state = RiskState.from_dict(state)
        self._connect()
        if not self.broker.is_paper and not self.real_money:
            self.broker.disconnect()
            raise BrokerError(
                f"{self.broker.name}: the account is not a paper account; refusing to trade "
                "real money without --live and its confirmation flag"
            )
        prefs = self.risk.preferences
        info = info | {
            "broker": self.broker.name,
            "paper": self.broker.is_paper,
            "preferences_sha256": prefs.sha256,
            "config": self.config.to_dict(),
        }
        self.journal.start_run(self.broker.now(), info)
        self.events.emit("start", preferences=prefs.to_dict(), **info)
        self.console(
            f"[{self.broker.name}] {name}: preferences sha256 {prefs.sha256}, "
            f"{'paper' if self.broker.is_paper else 'LIVE MONEY'}, journal {self.journal.path}"
        )
        if self.risk.halt and self.config.clear_halt:
            cleared = self.risk.clear_halt()
            self.report.risk_event(
                "halt_cleared", {"cleared": cleared.to_dict() if cleared else None}
            )

    def _marked(
        self,
        stamp: pd.Timestamp,
        now: pd.Timestamp,
        equity: float,
        expected: float,
        divergence: float,
    ) -> bool:
        """Count a live bar, mark live and expected equity, check the equity breakers and
        the divergence from the backtest's expectation; False when one tripped."""
        self.summary.equity[stamp] = equity
        self.summary.expected[stamp] = expected
        self.summary.bars += 1
        self._live_bars += 1
        trip = self.risk.on_equity(now, equity)
        if trip is None and divergence > self.config.max_divergence_pct:
            trip = self.risk.trip(
                BreakerKind.DIVERGENCE,
                f"live equity {equity:,.2f} is {divergence:.2f}% from the backtest's "
                f"expectation {expected:,.2f} (limit {self.config.max_divergence_pct:g}%)",
                now,
            )
        if trip:
            self.report.tripped(trip)
        return trip is None

    def _stop_at_max_bars(self) -> None:
        if self.config.max_bars is not None and self._live_bars >= self.config.max_bars:
            self._finish(f"max_bars {self.config.max_bars} reached")

    def _place(self, request: OrderRequest) -> OrderState:
        """Send an order already journaled as PENDING; journal the broker's answer."""
        self.summary.orders += 1
        self.events.emit(
            "order",
            client_ref=request.client_ref,
            symbol=request.instrument.symbol,
            side=request.side,
            quantity=request.quantity,
            target=request.target_weight,
        )
        state = self.broker.place_order(request)
        self._record_state(state)
        return state

    def _record_state(self, state: OrderState) -> None:
        """Journal an order state the broker reported; a rejection is an error."""
        self.journal.update_order(state, self.broker.now())
        self.events.emit(
            "order_state",
            client_ref=state.client_ref,
            status=state.status,
            filled=state.filled_quantity,
            remaining=state.remaining_quantity,
            reason=state.reason,
        )
        if state.status is OrderStatus.REJECTED:
            self.report.error(
                "order_rejected", f"{state.client_ref}: {state.reason or 'no reason'}"
            )
        elif state.status is OrderStatus.PARTIALLY_FILLED:
            self.events.emit("partial_fill", client_ref=state.client_ref)

    def _cancel_open_orders(self) -> None:
        for order in self.journal.open_orders():
            if order.state.status is OrderStatus.PENDING:
                continue  # not at the broker (yet): reconcile decides its fate
            self._record_state(self.broker.cancel_order(order.request.client_ref))

    def _pull_broker(self) -> tuple[list[Fill], dict[str, Position]]:
        """Journal the open orders' changed states, the fills not seen yet and the
        positions; fetch the account. Returns the new fills and the positions."""
        open_orders = self.journal.open_orders()
        refs = [order.request.client_ref for order in open_orders]
        at_broker = {ref: self.broker.order_state(ref) for ref in refs}
        for state in reconcile.changed_states(open_orders, at_broker):
            self._record_state(state)
        now, new = self.broker.now(), []
        for fill in reconcile.unseen_fills(self.broker.fills(), self._fill_ids):
            if self.journal.record_fill(fill, now):
                self._fill_ids.add(fill.exec_id)
                self.summary.fills += 1
                self.events.emit("fill", **asdict(fill))
                new.append(fill)
        positions = self.broker.positions()
        if positions != self.journal.positions():
            self.journal.set_positions(positions, now)
        self._account = self.broker.account()
        return new, positions

    def _reconcile(self) -> None:
        """Match the journal with the broker (``evotrader.live.reconcile`` decides: record
        the broker's state, re-send the same reference, or drop), then fills and
        positions, the broker's kept."""
        latest = self._latest.isoformat()
        resent, dropped, now = [], [], self.broker.now()
        for order in self.journal.open_orders():
            ref = order.request.client_ref
            at_broker = self.broker.order_state(ref)
            step = reconcile.order_step(order, at_broker, latest, self.risk.halt is not None)
            if step.action == "resend":
                self._record_state(self.broker.place_order(order.request))
                resent.append(ref)
            elif step.action == "record":
                self._record_state(step.state)
            else:
                self.journal.update_order(step.state, now)
                dropped.append(ref)
        journaled = {order.request.client_ref for order in self.journal.orders()}
        for ref in reconcile.foreign_orders(journaled, self.broker.open_orders()):
            self.report.risk_event("foreign_open_order", {"client_ref": ref})
        before = self.journal.positions()
        self._sync()
        after = self.journal.positions()
        mismatch = reconcile.position_mismatch(before, after)
        if mismatch:
            self.report.risk_event("position_mismatch", mismatch)
        self.events.emit(
            "reconciled",
            resent=resent,
            dropped=dropped,
            open_orders=[o.client_ref for o in self.broker.open_orders()],
            positions=reconcile.quantities(after),
        )

    def _account_now(self) -> Account:
        if self._account is None:
            self._account = self.broker.account()
        return self._account

    def _equity(self) -> float:
        return self._account_now().equity

    def _trip(self, kind: BreakerKind, reason: str) -> None:
        trip = self.risk.trip(kind, reason, self.broker.now())
        if trip:
            self.report.tripped(trip)

    def _reconnected(self, error: BrokerDisconnected) -> bool:
        """Journal the lost connection, reconnect and reconcile; False (and the bot
        stopped) when the retries run out."""
        self.journal.record_health(self.broker.now(), "disconnected", {"error": str(error)})
        self.events.emit("disconnected", error=str(error))
        self.console(f"  disconnected: {error}; reconnecting")
        self.report.count_error("disconnect", str(error))
        try:
            self._connect()
        except BrokerDisconnected as final:
            self._finish(f"connection lost: {final}; positions are left as they are")
            return False
        self._reconcile()
        return True

    def _connect(self) -> None:
        def failed(attempt: int, error: BrokerDisconnected) -> None:
            self.events.emit("connect_failed", attempt=attempt, error=str(error))

        retry.connect(self.broker, self.config.backoff, failed)

    def _finish(self, reason: str) -> None:
        """Stop without flattening: working orders are cancelled, positions are kept."""
        try:
            if self.broker.is_connected():
                self._cancel_open_orders()
                self._sync()
        except BrokerError as error:
            self.events.emit("error", kind="shutdown", detail=str(error))
        self.summary.stopped = reason
        self.console(f"[{self.broker.name}] stopped: {reason}")
