"""The order bookkeeping ``SimBroker`` and ``BasketSimBroker`` share.

A replay broker numbers its orders from 0 (the broker order id is the number plus one),
answers a client reference it already knows with the order's state instead of a second
order, cancels what is still working, keeps its fills, runs on the replay's clock and
refuses every call while disconnected. ``resume`` rebuilds its orders from a journal with
``restore_orders``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from evotrader.core.trading import Bar, Fill, Instrument, OrderRequest, OrderState, OrderStatus
from evotrader.live.broker import Broker, BrokerDisconnected, BrokerError
from evotrader.live.journal import Journal, JournalOrder


@dataclass
class SimOrder:
    """An order the replay holds: the request, its placement number, its state."""

    request: OrderRequest
    number: int
    state: OrderState


OrderT = TypeVar("OrderT", bound=SimOrder)


class ReplayBroker(Broker, Generic[OrderT]):
    """What every replay broker does alike; always a paper account."""

    name = "sim"
    _clock: pd.Timestamp
    _connected: bool
    _orders: dict[str, OrderT]
    _fills: list[Fill]
    _numbers: itertools.count[int]
    _last: int  # the last bar delivered; history is the bars up to it

    def _frame(self, symbol: str) -> pd.DataFrame:
        """The bars of ``symbol``; one this replay does not hold is an UnknownInstrument."""
        raise NotImplementedError

    @property
    def is_paper(self) -> bool:
        return True

    def disconnect(self) -> None:
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    def now(self) -> pd.Timestamp:
        return self._clock

    def wait(self, seconds: float) -> None:
        self._clock += pd.Timedelta(seconds=seconds)

    def qualify(self, instrument: Instrument) -> Instrument:
        self._check_connected("qualify")
        self._frame(instrument.symbol)
        return replace(instrument, broker_id=f"SIM:{instrument.symbol}")

    def history(self, instrument: Instrument, count: int) -> pd.DataFrame:
        self._check_connected("history")
        frame = self._frame(instrument.symbol)
        return frame.iloc[max(0, self._last + 1 - count) : self._last + 1].copy()

    def subscribe(self, instrument: Instrument) -> None:
        self._check_connected("subscribe")
        self._frame(instrument.symbol)

    def cancel_order(self, client_ref: str) -> OrderState:
        self._check_connected("cancel_order")
        order = self._orders.get(client_ref)
        if order is None:
            raise BrokerError(f"sim: cannot cancel unknown order {client_ref!r}")
        if not order.state.status.is_terminal:
            order.state = replace(
                order.state,
                status=OrderStatus.CANCELLED,
                reason="cancelled",
                updated_at=self._clock,
            )
        return order.state

    def order_state(self, client_ref: str) -> OrderState | None:
        self._check_connected("order_state")
        order = self._orders.get(client_ref)
        return order.state if order else None

    def open_orders(self) -> list[OrderState]:
        self._check_connected("open_orders")
        return [o.state for o in self._working()]

    def fills(self) -> list[Fill]:
        self._check_connected("fills")
        return list(self._fills)

    def _submitted(self, request: OrderRequest) -> tuple[int, OrderState]:
        """The next order number and the SUBMITTED state of ``request`` under it."""
        number = next(self._numbers)
        state = OrderState(
            client_ref=request.client_ref,
            status=OrderStatus.SUBMITTED,
            broker_order_id=str(number + 1),
            remaining_quantity=request.quantity,
            updated_at=self._clock,
        )
        return number, state

    def _restore_orders(
        self, journal: Journal, order: Callable[[JournalOrder, int], OrderT]
    ) -> None:
        """The orders ``journal`` holds that had reached the broker (a PENDING one never
        did: the runner's reconcile re-sends or drops it), built by ``order`` from the
        journaled order and its number; numbering continues after them."""
        for known in journal.orders():
            if known.state.broker_order_id is None:
                continue
            number = int(known.state.broker_order_id) - 1
            self._orders[known.request.client_ref] = order(known, number)
        self._numbers = itertools.count(
            max((o.number + 1 for o in self._orders.values()), default=0)
        )

    def _working(self) -> list[OrderT]:
        return [o for o in self._orders.values() if not o.state.status.is_terminal]

    def _check_connected(self, call: str) -> None:
        if not self._connected:
            raise BrokerDisconnected(f"sim: {call} while disconnected")


def first_live_bar(index: pd.Index, start: str | pd.Timestamp) -> int:
    """Where a replay of bars on ``index`` starts trading: the first bar at or after
    ``start``, with at least one bar of history before it."""
    first = int(index.searchsorted(pd.Timestamp(start)))
    if first >= len(index):
        raise ValueError(f"sim start {start} is after the last bar {index[-1]}")
    if first < 1:
        raise ValueError(f"sim start {start} leaves no bar of history before it")
    return first


def bar_at(frame: pd.DataFrame, symbol: str, t: int, end: pd.Timestamp) -> Bar:
    """Row ``t`` of an OHLCV frame as the closed bar ending at ``end``."""
    row = frame.iloc[t]
    return Bar(
        symbol=symbol,
        timestamp=frame.index[t],
        end=end,
        open=float(row["open"]),
        high=float(row["high"]),
        low=float(row["low"]),
        close=float(row["close"]),
        volume=float(row["volume"]),
    )


def moved_avg_cost(avg_cost: float, before: float, traded: float, price: float) -> float:
    """A position's average cost after ``traded`` units at ``price``: reset when it goes
    flat or flips, blended when it grows, kept when it shrinks."""
    after = before + traded
    if after == 0:
        return 0.0
    if before == 0 or np.sign(before) != np.sign(after):
        return price
    if abs(after) > abs(before):
        return float((avg_cost * abs(before) + price * abs(traded)) / abs(after))
    return avg_cost
