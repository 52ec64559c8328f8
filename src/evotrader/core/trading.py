"""The trading vocabulary every layer shares: sides, order types and states, instruments, bars,
order requests, order states, fills, positions and accounts.

The broker interface (``evotrader.live.broker``) speaks these values; the risk engine, the guard
and the backtest engine use them too, so they live here, below all of them, and import nothing
from the package.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

CLIENT_REF_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MKT"
    LIMIT = "LMT"


class OrderStatus(StrEnum):
    """Life of an order. ``PENDING`` is journal-only: written, not yet acknowledged."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"

    @property
    def is_terminal(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)


@dataclass(frozen=True)
class Instrument:
    """What to trade. ``asset_class`` uses IB's security types (STK, CASH, FUT, ...)."""

    symbol: str
    asset_class: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    broker_id: str | None = None  # the broker's own id once qualified (IB's conId)

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.strip():
            raise ValueError("instrument symbol must be non-empty")
        if not self.asset_class:
            raise ValueError(f"instrument {self.symbol}: asset_class must be non-empty")


@dataclass(frozen=True)
class Bar:
    """One closed bar. ``timestamp`` is its label as in the bars contract (tz-naive, UTC
    for intraday bars, the date for daily bars); ``end`` is when it closed (tz-aware UTC),
    which is what stale-data checks and trading hours compare against the clock."""

    symbol: str
    timestamp: pd.Timestamp
    end: pd.Timestamp
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        if self.end.tzinfo is None:
            raise ValueError(f"bar {self.symbol} {self.timestamp}: end must be tz-aware")
        if self.timestamp.tzinfo is not None:
            raise ValueError(f"bar {self.symbol} {self.timestamp}: timestamp must be tz-naive")

    def problem(self) -> str | None:
        """What is wrong with the bar's values, or None; the runner skips and logs bad bars
        instead of letting one bad print reach the features."""
        values = (self.open, self.high, self.low, self.close)
        if not all(math.isfinite(v) and v > 0 for v in values):
            return f"prices must be finite and > 0, got {values}"
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            return f"low {self.low} / high {self.high} do not bracket open and close"
        if not math.isfinite(self.volume) or self.volume < 0:
            return f"volume must be finite and >= 0, got {self.volume}"
        return None


@dataclass(frozen=True)
class OrderRequest:
    """An order as the runner wants it sent.

    ``quantity`` is positive (units: shares, or base currency for CASH); ``side`` gives the
    direction. ``target_weight`` is the position, as a fraction of equity, this order is
    meant to reach: a broker that sizes at the fill price (the sim, like the backtest)
    rebalances to it; a real broker trades ``quantity``.
    """

    client_ref: str
    instrument: Instrument
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    target_weight: float | None = None

    def __post_init__(self) -> None:
        where = f"order {self.client_ref!r} ({self.instrument.symbol})"
        if not CLIENT_REF_PATTERN.match(self.client_ref):
            raise ValueError(f"{where}: client_ref must match {CLIENT_REF_PATTERN.pattern}")
        if not math.isfinite(self.quantity) or self.quantity <= 0:
            raise ValueError(f"{where}: quantity must be finite > 0, got {self.quantity}")
        if self.order_type is OrderType.LIMIT:
            if self.limit_price is None or not math.isfinite(self.limit_price):
                raise ValueError(f"{where}: a limit order needs a finite limit_price")
            if self.limit_price <= 0:
                raise ValueError(f"{where}: limit_price must be > 0, got {self.limit_price}")
        elif self.limit_price is not None:
            raise ValueError(f"{where}: a market order takes no limit_price")
        if self.target_weight is not None and not math.isfinite(self.target_weight):
            raise ValueError(f"{where}: target_weight must be finite")

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity


@dataclass(frozen=True)
class OrderState:
    """The broker's view of one order, found by its client reference id."""

    client_ref: str
    status: OrderStatus
    broker_order_id: str | None = None
    filled_quantity: float = 0.0
    remaining_quantity: float = 0.0
    avg_fill_price: float | None = None
    reason: str = ""  # why it was rejected or cancelled
    updated_at: pd.Timestamp | None = None


@dataclass(frozen=True)
class Fill:
    """One execution. ``exec_id`` is unique per broker, so fills are recorded once."""

    exec_id: str
    client_ref: str
    broker_order_id: str | None
    symbol: str
    side: Side
    quantity: float
    price: float
    cost: float  # commission and other charges, in account currency
    timestamp: pd.Timestamp  # tz-aware UTC

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity


@dataclass(frozen=True)
class Position:
    symbol: str
    quantity: float  # signed: negative is short
    avg_cost: float = 0.0


@dataclass(frozen=True)
class Account:
    """Account values in its base currency; ``equity`` is the net liquidation value."""

    account_id: str
    cash: float
    equity: float
    currency: str = "USD"
    updated_at: pd.Timestamp | None = None
