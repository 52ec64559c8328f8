"""Orders at IB, and what they left behind: fills, positions and the account.

Every order carries the runner's client reference as IB's ``orderRef``. ``place_order``
looks the reference up first, in the orders and executions synced at connect (of every
client id), so a restart or a reconnect never sends an order twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from evotrader.core.trading import (
    Account,
    Fill,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from evotrader.live.broker import BrokerError
from evotrader.live.ib.config import mask_account
from evotrader.live.ib.connection import Connection, Contracts, ib, utc

log = logging.getLogger(__name__)

DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
CANCEL_CODES = frozenset({202, 10147, 10148})  # a cancel, or a cancel that found nothing
UNSET_DOUBLE = 1.7976931348623157e308


class OrderDesk:
    """Places, cancels and reads orders; reads fills, positions and the account."""

    def __init__(
        self, connection: Connection, contracts: Contracts, clock: Callable[[], pd.Timestamp]
    ) -> None:
        self.connection, self.contracts, self.config = connection, contracts, connection.config
        self.now, self.ib = clock, connection.ib
        self._first_seen: dict[str, float] = {}

    # ----- orders -----------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderState:
        self.connection.require("place_order")
        known = self._find(request.client_ref)
        if known is not None:
            log.info(
                "IBKR: order %s already known to IB (%s); not sending it again",
                request.client_ref,
                known.status,
            )
            trade = self._trade(request.client_ref)
            if trade is not None and (
                trade.order.action != request.side
                or abs(trade.order.totalQuantity - request.quantity) > 1e-9
            ):
                log.warning(
                    "IBKR: order %s differs from the known one (%s %g); the known one stands",
                    request.client_ref,
                    trade.order.action,
                    trade.order.totalQuantity,
                )
            return known
        contract = self.contracts.of(request.instrument)
        quantity = self._checked_quantity(request)
        order: ib.Order
        if request.order_type is OrderType.LIMIT:
            assert request.limit_price is not None  # OrderRequest checks limit orders have one
            order = ib.LimitOrder(str(request.side), quantity, request.limit_price)
        else:
            order = ib.MarketOrder(str(request.side), quantity)
        order.orderRef = request.client_ref
        order.tif = self.config.tif
        order.outsideRth = self.config.outside_rth
        order.account = self.connection.account_id
        try:
            trade = self.ib.placeOrder(contract, order)
        except ConnectionError as exc:
            raise self.connection.lost("place_order") from exc
        log.info(
            "IBKR: sent %s %s %g %s (%s)",
            request.client_ref,
            request.side,
            quantity,
            request.instrument.symbol,
            request.order_type,
        )
        self.connection.wait_until(
            lambda: trade.orderStatus.status != "PendingSubmit", self.config.order_ack_timeout_s
        )
        return self._state(trade)

    def _checked_quantity(self, request: OrderRequest) -> float:
        increment = self.contracts.size_increment(request.instrument.symbol)
        units = request.quantity / increment
        if abs(units - round(units)) > 1e-9:
            raise ValueError(
                f"order {request.client_ref!r} ({request.instrument.symbol}): quantity "
                f"{request.quantity} is not a multiple of IB's size increment {increment}"
            )
        return round(units) * increment

    def cancel_order(self, client_ref: str) -> OrderState:
        self.connection.require("cancel_order")
        trade = self._trade(client_ref)
        if trade is None:
            state = self.order_state(client_ref)
            if state is None:
                raise BrokerError(f"IBKR cancel_order: no order with client_ref {client_ref!r}")
            return state
        state = self._state(trade)
        if state.status.is_terminal:
            return state
        try:
            self.ib.cancelOrder(trade.order)
        except ConnectionError as exc:
            raise self.connection.lost("cancel_order") from exc
        self.connection.wait_until(
            lambda: trade.orderStatus.status in DONE_STATES, self.config.order_ack_timeout_s
        )
        return self._state(trade)

    def order_state(self, client_ref: str) -> OrderState | None:
        self.connection.refresh("order_state")
        return self._find(client_ref)

    def open_orders(self) -> list[OrderState]:
        self.connection.refresh("open_orders")
        return [
            self._state(t)
            for t in self.ib.openTrades()
            if t.order.orderRef and t.order.account in ("", self.connection.account_id)
        ]

    def _trade(self, client_ref: str) -> ib.Trade | None:
        """The newest ib_async trade with this orderRef, preferring one still working."""
        trades = [t for t in self.ib.trades() if t.order.orderRef == client_ref]
        working = [t for t in trades if t.orderStatus.status not in DONE_STATES]
        newest = working or trades
        return newest[-1] if newest else None

    def _find(self, client_ref: str) -> OrderState | None:
        trade = self._trade(client_ref)
        if trade is not None:
            return self._state(trade)
        fills = [f for f in self.ib.fills() if f.execution.orderRef == client_ref]
        if not fills:
            return None
        # IB no longer lists the order itself; its executions prove it was sent.
        filled = sum(f.execution.shares for f in fills)
        paid = sum(f.execution.shares * f.execution.price for f in fills)
        return OrderState(
            client_ref,
            OrderStatus.FILLED,
            str(fills[-1].execution.permId),
            filled,
            0.0,
            paid / filled,
            "order no longer listed by IB; state rebuilt from its executions",
            utc(fills[-1].execution.time),
        )

    @staticmethod
    def _state(trade: Any) -> OrderState:
        order, status = trade.order, trade.orderStatus
        executed = sum(f.execution.shares for f in trade.fills)
        reported = order.filledQuantity if order.filledQuantity != UNSET_DOUBLE else 0.0
        filled = max(status.filled, executed, reported)
        total = order.totalQuantity
        errors = [e for e in trade.log if e.errorCode]
        reason = errors[-1].message if errors else ""
        # ib_async logs an error that ends a live order with the order's final status.
        rejected = any(e.status in DONE_STATES and e.errorCode not in CANCEL_CODES for e in errors)
        ib_status = status.status
        if ib_status == "Filled" or (total > 0 and filled >= total - 1e-9):
            state = OrderStatus.FILLED
        elif ib_status == "Inactive" or (ib_status in DONE_STATES and rejected):
            state = OrderStatus.REJECTED
        elif ib_status in DONE_STATES:
            state = OrderStatus.CANCELLED
        else:
            state = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.SUBMITTED
        avg = status.avgFillPrice if status.avgFillPrice > 0 else None
        if avg is None and executed > 0:
            avg = sum(f.execution.shares * f.execution.price for f in trade.fills) / executed
        return OrderState(
            client_ref=order.orderRef,
            status=state,
            broker_order_id=str(order.permId) if order.permId else None,
            filled_quantity=filled,
            remaining_quantity=0.0 if state.is_terminal else max(total - filled, 0.0),
            avg_fill_price=avg,
            reason=reason,
            updated_at=utc(trade.log[-1].time) if trade.log else None,
        )

    # ----- fills, positions, account ----------------------------------------------------

    def fills(self) -> list[Fill]:
        """Executions IB reports for today, each once its commission report is in (or
        ``commission_wait_s`` after it was first seen, with cost 0 and a warning)."""
        self.connection.refresh("fills")
        now = time.monotonic()
        result = []
        for fill in self.ib.fills():
            ex = fill.execution
            if self.contracts.is_other(fill.contract):
                continue
            first_seen = self._first_seen.setdefault(ex.execId, now)
            has_cost = fill.commissionReport.execId == ex.execId
            if not has_cost:
                if now - first_seen < self.config.commission_wait_s:
                    continue
                log.warning("IBKR: no commission report for execution %s; cost 0", ex.execId)
            result.append(
                Fill(
                    exec_id=ex.execId,
                    client_ref=ex.orderRef,
                    broker_order_id=str(ex.permId) if ex.permId else None,
                    symbol=fill.contract.symbol,
                    side=Side.BUY if ex.side == "BOT" else Side.SELL,
                    quantity=float(ex.shares),
                    price=float(ex.price),
                    cost=float(fill.commissionReport.commission) if has_cost else 0.0,
                    timestamp=utc(ex.time),
                )
            )
        return sorted(result, key=lambda f: f.timestamp)

    def positions(self) -> dict[str, Position]:
        self.connection.refresh("positions")
        result: dict[str, Position] = {}
        for p in self.ib.positions(self.connection.account_id):
            symbol = p.contract.symbol
            if p.position == 0 or self.contracts.is_other(p.contract):
                continue
            if symbol in result:
                log.warning("IBKR positions: several contracts named %s; reporting one", symbol)
                continue
            result[symbol] = Position(symbol, float(p.position), float(p.avgCost))
        return result

    def account(self) -> Account:
        self.connection.refresh("account")
        account_id = self.connection.account_id
        values: dict[str, tuple[str, str]] = {}
        for value in self.ib.accountValues(account_id):
            wanted = value.tag in ("NetLiquidation", "TotalCashValue") and value.currency
            if wanted and (value.tag not in values or value.currency == "BASE"):
                values[value.tag] = (value.value, value.currency)
        missing = {"NetLiquidation", "TotalCashValue"} - values.keys()
        if missing:
            raise BrokerError(
                f"IBKR account: no {', '.join(sorted(missing))} received for account "
                f"{mask_account(account_id)}"
            )
        try:
            equity, cash = (float(values[t][0]) for t in ("NetLiquidation", "TotalCashValue"))
        except ValueError as exc:
            raise BrokerError(f"IBKR account: unreadable account value ({exc})") from exc
        currency = values["NetLiquidation"][1]
        return Account(
            account_id, cash, equity, currency if currency != "BASE" else "USD", self.now()
        )
