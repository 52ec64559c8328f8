"""A local stand-in for TWS / IB Gateway speaking the TWS API socket protocol.

No IB Gateway can run in tests, so the real ib_async client connects over loopback to this
server, which answers the subset of the protocol IBKRBroker uses: the handshake, startApi,
next valid id, managed accounts, contract details, historical bars with keepUpToDate
streaming, orders (place, cancel, open, completed, status), executions with commission
reports, positions, account values, and server-side disconnects.

Every message is laid out exactly as ib_async's decoder reads it at ``SERVER_VERSION``
(a version ib_async negotiates, 157..178); where a layout depends on the version the
branches follow ``ib_async/decoder.py``. The server binds 127.0.0.1 on an ephemeral port,
runs on daemon threads, and stops by itself after ``lifetime_s`` seconds.

Tests drive the market and the exchange from outside: ``set_history`` and ``stream_bar``
feed bars, ``set_price`` makes market orders fill at once, ``fill`` fills resting orders
(partially if asked), ``reject_next_order`` and ``fail_history`` inject IB errors, and
``drop_connections`` closes every client socket (optionally refusing new ones a while).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

SERVER_VERSION = 176
OPEN_STATUSES = ("PreSubmitted", "Submitted")
DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)


@dataclass(frozen=True)
class Stock:
    """A stock the server can describe, quote and trade."""

    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"
    long_name: str = ""
    min_tick: float = 0.01


@dataclass(frozen=True)
class HistoricalBar:
    """One bar as the server stores it; ``start`` is epoch seconds (UTC)."""

    start: int
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass
class ServerOrder:
    """An order as the exchange side sees it."""

    order_id: int
    client_id: int
    perm_id: int
    stock: Stock
    action: str
    quantity: float
    order_type: str
    limit_price: float | None
    tif: str
    account: str
    order_ref: str
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    last_price: float = 0.0
    reason: str = ""

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Execution:
    """One fill of a server order, with its commission."""

    exec_id: str
    order: ServerOrder
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    time: str
    commission: float


@dataclass(frozen=True)
class _BarSubscription:
    symbol: str
    format_date: str
    daily: bool


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _encode(fields: Sequence[object]) -> bytes:
    return _frame("".join(_text(f) + "\0" for f in fields).encode())


def _bar_date(start: int, format_date: str, daily: bool) -> str:
    moment = datetime.fromtimestamp(start, UTC)
    if daily:
        return moment.strftime("%Y%m%d")
    if format_date == "2":
        return str(start)
    return moment.strftime("%Y%m%d %H:%M:%S UTC")


def _duration_seconds(duration: str) -> int:
    number, unit = duration.split()
    return int(number) * DURATION_UNITS[unit]


def _contract_fields(stock: Stock, exchange: str = "SMART") -> list[object]:
    """conId .. tradingClass, the 11-field contract block of orders, executions, positions."""
    symbol = stock.symbol
    return [stock.con_id, symbol, "STK", "", 0, "", "", exchange, stock.currency, symbol, "NMS"]


class _Client:
    """One accepted socket; sends are serialised so test and server threads can both write."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.client_id: int | None = None
        self.wants_positions = False
        self.account_updates = False
        self.bars: dict[int, _BarSubscription] = {}
        self._lock = threading.Lock()
        self._batch: list[bytes] | None = None
        self.closed = False

    def send(self, *fields: object) -> None:
        with self._lock:
            if self._batch is not None:
                self._batch.append(_encode(fields))
                return
            self._write(_encode(fields))

    def _write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Send everything inside as one write, as TWS does for an order that fills at once
        (the client then reads its acknowledgement and its fill in the same read)."""
        with self._lock:
            self._batch = []
        try:
            yield
        finally:
            with self._lock:
                data, self._batch = b"".join(self._batch or []), None
                if data:
                    self._write(data)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self.sock.close()


class TwsServer:
    """The stand-in itself; use as a context manager (``with TwsServer(...) as tws``)."""

    def __init__(
        self,
        stocks: Sequence[Stock],
        *,
        account: str = "DU1234567",
        cash: float = 100_000.0,
        commission_per_share: float = 0.005,
        lifetime_s: float = 30.0,
        server_version: int = SERVER_VERSION,
    ) -> None:
        self.listings = list(stocks)  # contract details describe every listing
        self.stocks = {s.symbol: s for s in reversed(self.listings)}  # trading: the first
        self.account = account
        self.cash = cash
        self.commission_per_share = commission_per_share
        self.lifetime_s = lifetime_s
        self.server_version = server_version
        self.auto_fill = True
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._clients: list[_Client] = []
        self._threads: list[threading.Thread] = []
        self._history: dict[str, list[HistoricalBar]] = {}
        self._history_errors: dict[str, tuple[int, str]] = {}
        self._prices: dict[str, float] = {}
        self._positions: dict[str, tuple[float, float]] = {}
        self._orders: dict[tuple[int, int], ServerOrder] = {}
        self._executions: list[Execution] = []
        self._rejections: list[tuple[int, str]] = []
        self._received: list[tuple[int | None, list[str]]] = []
        self.unhandled: list[list[str]] = []
        self._next_order_id = 1
        self._next_perm_id = 900_000_001
        self._refuse_until = 0.0
        self.connections_accepted = 0
        self.port = 0
        self._listener: socket.socket | None = None
        self._handlers: dict[str, Callable[[_Client, list[str]], object]] = {
            "71": self._start_api,
            "8": lambda c, _: c.send(9, 1, self._next_order_id),
            "17": lambda c, _: c.send(15, 1, self.account),
            "49": lambda c, _: c.send(49, 1, int(time.time())),
            "61": self._req_positions,
            "64": self._cancel_positions,
            "6": self._req_account_updates,
            "76": self._req_account_updates_multi,
            "5": self._req_open_orders,
            "16": self._req_open_orders,
            "15": lambda c, _: None,
            "59": lambda c, _: None,
            "99": self._req_completed_orders,
            "7": self._req_executions,
            "9": self._req_contract_details,
            "20": self._req_historical_data,
            "25": lambda c, f: c.bars.pop(int(f[2]), None),
            "3": self._place_order,
            "4": self._cancel_order,
        }

    # ----- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> TwsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._listener = self._listen(0)
        self.port = self._listener.getsockname()[1]
        self._spawn(self._accept_loop)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="tws-stand-in")
        self._threads.append(thread)
        thread.start()

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(8)
        listener.settimeout(0.05)
        self._listening.set()
        return listener

    def _accept_loop(self) -> None:
        deadline = time.monotonic() + self.lifetime_s
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if time.monotonic() < self._refuse_until:
                    if self._listener is not None:
                        self._listener.close()
                        self._listener = None
                        self._listening.clear()
                    time.sleep(0.01)
                    continue
                if self._listener is None:
                    self._listener = self._listen(self.port)
                try:
                    sock, _ = self._listener.accept()
                except TimeoutError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                client = _Client(sock)
                with self._lock:
                    self._clients.append(client)
                    self.connections_accepted += 1
                self._spawn(self._serve, client)
        finally:
            self._stop.set()
            if self._listener is not None:
                self._listener.close()
            self._listening.clear()
            for client in self._clients:
                client.close()

    # ----- scenario controls (called from the test thread) -----------------------------

    def set_history(self, symbol: str, bars: Sequence[HistoricalBar]) -> None:
        with self._lock:
            self._history[symbol] = list(bars)

    def set_price(self, symbol: str, price: float) -> None:
        """Market orders (and marketable limits) fill at once at this price."""
        with self._lock:
            self._prices[symbol] = price

    def set_position(self, symbol: str, quantity: float, avg_cost: float) -> None:
        with self._lock:
            self._positions[symbol] = (quantity, avg_cost)

    def fail_history(self, symbol: str, code: int, message: str) -> None:
        with self._lock:
            self._history_errors[symbol] = (code, message)

    def reject_next_order(self, code: int = 201, message: str = "") -> None:
        message = message or "Order rejected - reason:Insufficient buying power"
        with self._lock:
            self._rejections.append((code, message))

    def stream_bar(self, symbol: str, bar: HistoricalBar) -> int:
        """Send a keepUpToDate update (a forming or a new bar); returns how many got it."""
        sent = 0
        with self._lock:
            history = self._history.setdefault(symbol, [])
            if history and history[-1].start == bar.start:
                history[-1] = bar
            elif not history or history[-1].start < bar.start:
                history.append(bar)
            for client in self._live_clients():
                for req_id, sub in client.bars.items():
                    if sub.symbol == symbol:
                        date = _bar_date(bar.start, sub.format_date, sub.daily)
                        client.send(
                            90, req_id, 1, date, bar.open, bar.close, bar.high, bar.low,
                            bar.close, bar.volume,
                        )  # fmt: skip
                        sent += 1
        return sent

    def break_stream(self, symbol: str, code: int, message: str) -> int:
        """End every bar subscription of the symbol with an IB error; returns how many."""
        broken = 0
        with self._lock:
            for client in self._live_clients():
                for req_id in [r for r, sub in client.bars.items() if sub.symbol == symbol]:
                    del client.bars[req_id]
                    self._error(client, req_id, code, message)
                    broken += 1
        return broken

    def fill(self, order_ref: str, shares: float, price: float) -> Execution:
        """Fill (part of) the open order with this orderRef, as the exchange would."""
        with self._lock:
            matches = [o for o in self._orders.values() if o.order_ref == order_ref and o.is_open]
            if len(matches) != 1:
                raise LookupError(f"{len(matches)} open orders have orderRef {order_ref!r}")
            return self._execute(matches[0], shares, price)

    def drop_connections(self, refuse_for_s: float = 0.0) -> None:
        """Close every client socket; with ``refuse_for_s`` also stop listening that long."""
        if refuse_for_s > 0:
            self._refuse_until = time.monotonic() + refuse_for_s
            deadline = time.monotonic() + 2.0
            while self._listening.is_set() and time.monotonic() < deadline:
                time.sleep(0.005)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    # ----- inspection ------------------------------------------------------------------

    def messages(self, msg_id: int) -> list[list[str]]:
        """Every message with this id the server received, in order."""
        with self._lock:
            return [fields for _, fields in self._received if fields[0] == str(msg_id)]

    def orders(self) -> list[ServerOrder]:
        with self._lock:
            return [replace(o) for o in self._orders.values()]

    def executions(self) -> list[Execution]:
        with self._lock:
            return list(self._executions)

    def position(self, symbol: str) -> float:
        with self._lock:
            return self._positions.get(symbol, (0.0, 0.0))[0]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()

    # ----- the protocol ----------------------------------------------------------------

    def _live_clients(self) -> list[_Client]:
        return [c for c in self._clients if not c.closed and c.client_id is not None]

    def _serve(self, client: _Client) -> None:
        reader = _FrameReader(client.sock, self._stop)
        try:
            if reader.read_exact(4) != b"API\0":
                return
            versions = reader.read_frame()
            if versions is None:
                return
            low, high = versions.decode().lstrip("v").split()[0].split("..")
            if not int(low) <= self.server_version <= int(high):
                return
            now = datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC")
            client.send(self.server_version, now)
            while (payload := reader.read_frame()) is not None:
                fields = payload.decode().split("\0")[:-1]
                with self._lock:
                    self._received.append((client.client_id, fields))
                    self._handle(client, fields)
        except (OSError, ValueError):
            pass
        finally:
            client.close()

    def _handle(self, client: _Client, f: list[str]) -> None:
        handler = self._handlers.get(f[0])
        if handler is None:
            self.unhandled.append(f)
        else:
            handler(client, f)

    def _error(self, client: _Client, req_id: int, code: int, message: str) -> None:
        client.send(4, 2, req_id, code, message, "")

    def _start_api(self, client: _Client, f: list[str]) -> None:
        client_id = int(f[2])
        if any(c.client_id == client_id for c in self._live_clients()):
            self._error(client, -1, 326, "Unable to connect as the client id is already in use.")
            client.close()
            return
        client.client_id = client_id
        client.send(15, 1, self.account)
        client.send(9, 1, self._next_order_id)
        for code, message in FARM_NOTICES:
            self._error(client, -1, code, message)

    def _stock(self, con_id: str, symbol: str) -> Stock | None:
        for stock in self.stocks.values():
            if (con_id and con_id != "0" and int(con_id) == stock.con_id) or (
                (not con_id or con_id == "0") and stock.symbol == symbol
            ):
                return stock
        return None

    # positions and account

    def _position_message(self, stock: Stock) -> list[object]:
        quantity, avg_cost = self._positions.get(stock.symbol, (0.0, 0.0))
        return [61, 3, self.account, *_contract_fields(stock, ""), quantity, avg_cost]

    def _req_positions(self, client: _Client, f: list[str]) -> None:
        client.wants_positions = True
        for symbol in self._positions:
            client.send(*self._position_message(self.stocks[symbol]))
        client.send(62, 1)

    def _cancel_positions(self, client: _Client, f: list[str]) -> None:
        client.wants_positions = False

    def _net_liquidation(self) -> float:
        return self.cash + sum(
            qty * self._prices.get(symbol, cost) for symbol, (qty, cost) in self._positions.items()
        )

    def _send_account(self, client: _Client) -> None:
        values = {
            "NetLiquidation": self._net_liquidation(),
            "TotalCashValue": self.cash,
            "AvailableFunds": self.cash,
        }
        for tag, value in values.items():
            client.send(6, 2, tag, f"{value:.2f}", "USD", self.account)
        for symbol, (qty, cost) in self._positions.items():
            stock = self.stocks[symbol]
            price = self._prices.get(symbol, cost)
            client.send(
                7, 8, stock.con_id, symbol, "STK", "", 0, "", "", stock.primary_exchange,
                stock.currency, symbol, "NMS", qty, price, qty * price, cost,
                qty * (price - cost), 0.0, self.account,
            )  # fmt: skip
        client.send(8, 1, datetime.now(UTC).strftime("%H:%M"))

    def _req_account_updates(self, client: _Client, f: list[str]) -> None:
        client.account_updates = f[2] == "1"
        if client.account_updates:
            self._send_account(client)
            client.send(54, 1, self.account)

    def _req_account_updates_multi(self, client: _Client, f: list[str]) -> None:
        req_id = int(f[2])
        value = self._net_liquidation()
        client.send(73, 1, req_id, self.account, "", "NetLiquidation", value, "USD")
        client.send(74, 1, req_id)

    # orders

    def _order_status(self, client: _Client, o: ServerOrder) -> None:
        client.send(
            3, o.order_id, o.status, o.filled, o.remaining, o.avg_price, o.perm_id, 0,
            o.last_price, o.client_id, "", 0.0,
        )  # fmt: skip

    def _open_order(self, client: _Client, o: ServerOrder) -> None:
        """openOrder (id 5) field by field, as ib_async's Decoder.openOrder reads it."""
        f: list[object] = [5, o.order_id, *_contract_fields(o.stock)]
        f += [o.action, o.quantity, o.order_type, o.limit_price, "", o.tif, "", o.account]
        f += ["", 0, o.order_ref, o.client_id, o.perm_id, 0, 0, 0, "", "", "", "", ""]
        if self.server_version < 177:
            f.append("")  # faProfile
        f += [""] * 29  # modelCode .. deltaNeutralAuxPrice (no delta-neutral block)
        f += [""] * 7  # continuousUpdate .. comboLegsDescrip
        f += [0, 0, 0]  # combo legs, order combo legs, smart combo routing params
        f += ["", "", ""]  # scale init/subs level sizes, price increment (unset)
        f += [""]  # hedgeType
        f += [0, "", "", 0, 0]  # optOutSmartRouting, clearing account/intent, notHeld, dnc
        f += [""]  # algoStrategy
        f += [0, 0, o.status] + [""] * 12 + ["", "", 0, 0]  # solicited .. randomizePrice
        f += [0]  # conditions
        f += [""] * 16  # adjustedOrderType .. usePriceMgmtAlgo
        if self.server_version >= 159:
            f.append("")  # duration
        if self.server_version >= 160:
            f.append("")  # postToAts
        if self.server_version >= 162:
            f.append(0)  # autoCancelParent
        if self.server_version >= 170:
            f += [""] * 5  # minTradeQty .. midOffsetAtHalf
        client.send(*f)

    def _completed_order(self, client: _Client, o: ServerOrder) -> None:
        """completedOrder (id 101), as ib_async's Decoder.completedOrder reads it."""
        f: list[object] = [101, *_contract_fields(o.stock)]
        f += [o.action, o.quantity, o.order_type, o.limit_price, "", o.tif, "", o.account]
        f += ["", 0, o.order_ref, o.perm_id, 0, 0, 0, "", "", "", ""]
        if self.server_version < 177:
            f.append("")  # faProfile
        f += [""] * 23  # modelCode .. deltaNeutralAuxPrice
        f += [""] * 5  # continuousUpdate .. comboLegsDescrip
        f += [0, 0, 0, "", "", "", ""]  # legs, order legs, params, scale sizes, hedgeType
        f += ["", "", 0, 0, ""]  # clearing account/intent, notHeld, dnc, algoStrategy
        f += [0, o.status, 0, 0, 0]  # solicited, status, randomize size/price, conditions
        f += ["", "", "", 0, 0, "", o.filled, 0, 0, "", 0, 0, 0]  # trailStopPrice .. parentPermId
        f += [datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC"), o.reason or o.status]
        if self.server_version >= 170:
            f += [""] * 5
        client.send(*f)

    def _req_open_orders(self, client: _Client, f: list[str]) -> None:
        every_client = f[0] == "16" or client.client_id == 0
        for order in self._orders.values():
            if order.is_open and (every_client or order.client_id == client.client_id):
                self._open_order(client, order)
                self._order_status(client, order)
        client.send(53, 1)

    def _req_completed_orders(self, client: _Client, f: list[str]) -> None:
        for order in self._orders.values():
            if not order.is_open:
                self._completed_order(client, order)
        client.send(102)

    def _place_order(self, client: _Client, f: list[str]) -> None:
        order_id, client_id = int(f[1]), client.client_id or 0
        existing = self._orders.get((client_id, order_id))
        if existing is not None and not existing.is_open:
            self._error(client, order_id, 103, "Duplicate order id")
            return
        stock = self._stock(f[2], f[3])
        if stock is None:
            self._error(client, order_id, 200, "No security definition has been found")
            return
        quantity, limit = float(f[17]), float(f[19]) if f[19] else None
        if existing is not None:  # a modification
            existing.quantity, existing.limit_price = quantity, limit
            order = existing
        else:
            order = ServerOrder(
                order_id, client_id, self._next_perm_id, stock, f[16], quantity, f[18], limit,
                f[21] or "DAY", f[23] or self.account, f[26],
            )  # fmt: skip
            self._next_perm_id += 1
            self._next_order_id = max(self._next_order_id, order_id + 1)
            self._orders[(client_id, order_id)] = order
            if self._rejections:
                code, message = self._rejections.pop(0)
                order.status, order.reason = "Inactive", message
                self._error(client, order_id, code, message)
                return
        with client.batched():
            self._open_order(client, order)
            self._order_status(client, order)
            price = self._prices.get(stock.symbol)
            if self.auto_fill and price is not None and self._marketable(order, price):
                self._execute(order, order.remaining, price)

    @staticmethod
    def _marketable(order: ServerOrder, price: float) -> bool:
        if order.order_type == "MKT" or order.limit_price is None:
            return True
        return price <= order.limit_price if order.action == "BUY" else price >= order.limit_price

    def _cancel_order(self, client: _Client, f: list[str]) -> None:
        order_id = int(f[2])
        order = self._orders.get((client.client_id or 0, order_id))
        if order is None or not order.is_open:
            self._error(client, order_id, 10147, f"OrderId {order_id} to cancel is not found.")
            return
        order.status = "Cancelled"
        self._order_status(client, order)
        self._error(client, order_id, 202, "Order Canceled - reason:")

    def _execute(self, order: ServerOrder, shares: float, price: float) -> Execution:
        shares = min(shares, order.remaining)
        if shares <= 0:
            raise ValueError(f"order {order.order_ref!r} has nothing left to fill")
        sign = 1.0 if order.action == "BUY" else -1.0
        paid = order.avg_price * order.filled + price * shares
        order.avg_price = paid / (order.filled + shares)
        order.filled += shares
        order.last_price = price
        order.status = "Filled" if order.remaining <= 1e-9 else "Submitted"
        commission = round(max(1.0, shares * self.commission_per_share), 2)
        self.cash -= sign * shares * price + commission
        quantity, cost = self._positions.get(order.stock.symbol, (0.0, 0.0))
        new_quantity = quantity + sign * shares
        if new_quantity == 0:
            cost = 0.0
        elif quantity == 0 or (quantity > 0) != (new_quantity > 0):
            cost = price
        elif abs(new_quantity) > abs(quantity):
            cost = (cost * abs(quantity) + price * shares) / abs(new_quantity)
        self._positions[order.stock.symbol] = (new_quantity, cost)
        execution = Execution(
            f"0000e0d5.{len(self._executions) + 1:08d}.01.01", order, shares, price,
            order.filled, order.avg_price, datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC"),
            commission,
        )  # fmt: skip
        self._executions.append(execution)
        for client in self._live_clients():
            if client.client_id == order.client_id:
                self._send_execution(client, execution, -1)
                self._order_status(client, order)
            if client.wants_positions:
                client.send(*self._position_message(order.stock))
            if client.account_updates:
                self._send_account(client)
        return execution

    def _send_execution(self, client: _Client, e: Execution, req_id: int) -> None:
        o = e.order
        side = "BOT" if o.action == "BUY" else "SLD"
        client.send(
            11, req_id, o.order_id, *_contract_fields(o.stock, o.stock.primary_exchange),
            e.exec_id, e.time, o.account, o.stock.primary_exchange, side, e.shares, e.price,
            o.perm_id, o.client_id, 0, e.cum_qty, e.avg_price, o.order_ref, "", "", "", 1,
            *([0] if self.server_version >= 178 else []),
        )  # fmt: skip
        client.send(59, 1, e.exec_id, e.commission, "USD", "", "", "")

    def _req_executions(self, client: _Client, f: list[str]) -> None:
        req_id, client_filter, symbol = int(f[2]), int(f[3] or 0), f[6]
        for execution in self._executions:
            order = execution.order
            if client_filter and order.client_id != client_filter:
                continue
            if symbol and order.stock.symbol != symbol:
                continue
            self._send_execution(client, execution, req_id)
        client.send(55, 1, req_id)

    # contracts and bars

    def _req_contract_details(self, client: _Client, f: list[str]) -> None:
        req_id, con_id, symbol, sec_type, currency = int(f[2]), int(f[3] or 0), f[4], f[5], f[12]
        matches = [
            s
            for s in self.listings
            if (s.con_id == con_id if con_id else s.symbol == symbol)
            and sec_type in ("", "STK")
            and currency in ("", s.currency)
        ]
        if not matches:
            self._error(client, req_id, 200, "No security definition has been found")
            return
        for stock in matches:
            client.send(
                10, req_id, stock.symbol, "STK", "", 0, "", f[10] or "SMART", stock.currency,
                stock.symbol, "NMS", "NMS", stock.con_id, stock.min_tick, "", "LMT,MKT",
                f"SMART,{stock.primary_exchange}", 1, 0, stock.long_name or stock.symbol,
                stock.primary_exchange, "", "", "", "", "US/Eastern", "", "", "", "", 0, 1, "",
                "", "26", "", "COMMON", 1, 1, 100,
            )  # fmt: skip
        client.send(52, 1, req_id)

    def _req_historical_data(self, client: _Client, f: list[str]) -> None:
        req_id, symbol = int(f[1]), f[3]
        end, bar_size, duration = f[15], f[16], f[17]
        format_date, keep_up_to_date = f[20], f[21] == "1"
        stock = self._stock(f[2], symbol)
        if stock is None:
            self._error(client, req_id, 200, "No security definition has been found")
            return
        if stock.symbol in self._history_errors:
            self._error(client, req_id, *self._history_errors[stock.symbol])
            return
        if keep_up_to_date and end:
            self._error(client, req_id, 321, "End date not supported with live updates")
            return
        bars = self._history.get(stock.symbol, [])
        if bars:
            earliest = bars[-1].start - _duration_seconds(duration)
            bars = [b for b in bars if b.start > earliest]
        daily = bar_size.strip() in ("1 day", "1 D")
        dates = [_bar_date(b.start, format_date, daily) for b in bars]
        fields: list[object] = [17, req_id, dates[0] if dates else "", end, len(bars)]
        for date, b in zip(dates, bars, strict=True):
            fields += [date, b.open, b.high, b.low, b.close, b.volume, b.close, 1]
        client.send(*fields)
        if keep_up_to_date:
            client.bars[req_id] = _BarSubscription(stock.symbol, format_date, daily)


class _FrameReader:
    """Reads length-prefixed TWS API frames, giving up when the server stops."""

    def __init__(self, sock: socket.socket, stop: threading.Event) -> None:
        self.sock, self.stop, self.buffer = sock, stop, b""
        sock.settimeout(0.05)

    def read_exact(self, n: int) -> bytes | None:
        while len(self.buffer) < n:
            if self.stop.is_set():
                return None
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return None
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_frame(self) -> bytes | None:
        header = self.read_exact(4)
        if header is None:
            return None
        return self.read_exact(struct.unpack(">I", header)[0])
