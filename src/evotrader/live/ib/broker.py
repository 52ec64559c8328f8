"""``IBKRBroker``: the ``Broker`` interface on TWS or IB Gateway through ib_async.

ib_async is the maintained successor of ib_insync with the same API; when only ib_insync
is installed the same code runs on it. The broker is synchronous like the interface: it
pumps ib_async's event loop only while a call waits, so the runner stays single-threaded.

Safety rules it enforces rather than trusts:

- Paper by default. Without ``live=True`` it refuses IB's live ports (7496, 4001) and any
  account that is not a paper account (paper ids start with "D").
- No duplicate orders. Every order carries the runner's client reference as IB's
  ``orderRef``. Connecting syncs open orders (of every client id), completed orders,
  today's executions and positions before returning, and ``place_order`` looks the
  reference up in all of them first, so a restart or reconnect never sends it twice.
- Closed bars only. Bars stream through a keepUpToDate historical request; a bar is closed
  once a newer bar has started or its end has passed on the broker clock (daily bars end at
  the session end of their date, as in the sim), and reaches the runner once, in order,
  through ``history`` or ``next_bar``. A re-subscription after a reconnect back-fills the
  bars that closed while the connection was down, unless ``history`` already did.
- Bounded reconnects. ``connect`` retries with exponential backoff and gives up with
  ``BrokerDisconnected`` after ``max_connect_attempts``.
- IB errors become the interface's errors (``UnknownInstrument``, ``BrokerError``,
  ``BrokerDisconnected``) with IB's code and message; the IB API has no credentials, and
  account ids are masked in logs.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from evotrader.core.trading import (
    Account,
    Bar,
    Fill,
    Instrument,
    OrderRequest,
    OrderState,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from evotrader.data.errors import DataError
from evotrader.live.broker import (
    Broker,
    BrokerDisconnected,
    BrokerError,
    UnknownInstrument,
    bars_to_frame,
)
from evotrader.risk.preferences import TradingHours

try:
    import ib_async as ib
except ImportError:  # pragma: no cover - the older name of the same API
    import ib_insync as ib  # type: ignore[no-redef]

log = logging.getLogger(__name__)
T = TypeVar("T")

PAPER_PORTS = {"tws": 7497, "gateway": 4002}
LIVE_PORTS = {"tws": 7496, "gateway": 4001}
BAR_UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86_400}
WHAT_TO_SHOW = ("TRADES", "MIDPOINT", "BID", "ASK", "ADJUSTED_LAST")
TIME_IN_FORCE = ("DAY", "GTC", "IOC")
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
CANCEL_CODES = frozenset({202, 10147, 10148})  # a cancel, or a cancel that found nothing
NOTICE_CODES = frozenset({1102, 2104, 2106, 2107, 2108, 2119, 2158})
DATA_LOST_CODE = 1101  # connectivity restored, market data subscriptions lost
UNKNOWN_CONTRACT_CODE = 200
UNSET_DOUBLE = 1.7976931348623157e308
MAX_BACKFILL_BARS = 2000


@dataclass(frozen=True)
class IBKRConfig:
    """Where TWS / IB Gateway listens and how the broker uses it.

    ``from_env`` fills host, port, client id and account from ``IBKR_HOST``,
    ``IBKR_PORT``, ``IBKR_CLIENT_ID`` and ``IBKR_ACCOUNT`` when not given. The port defaults
    to TWS's paper port; ``live=True`` is the only way to reach a live port or account.
    """

    host: str = "127.0.0.1"
    port: int = PAPER_PORTS["tws"]
    client_id: int = 1
    account: str = ""  # empty: the only account the login manages
    live: bool = False
    bar_size: str = "1 day"
    what_to_show: str = "TRADES"
    use_rth: bool = True
    tif: str = "DAY"
    outside_rth: bool = False
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    max_connect_attempts: int = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    order_ack_timeout_s: float = 5.0
    commission_wait_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("ibkr host must be non-empty")
        if not 0 < self.port < 65536:
            raise ValueError(f"ibkr port must be in 1..65535, got {self.port}")
        if not self.live and self.port in LIVE_PORTS.values():
            raise ValueError(
                f"ibkr port {self.port} is IB's live-trading port; use the paper port "
                f"{PAPER_PORTS['tws']} (TWS) or {PAPER_PORTS['gateway']} (Gateway), or pass "
                "live=True to trade real money"
            )
        if self.client_id < 0:
            raise ValueError(f"ibkr client_id must be >= 0, got {self.client_id}")
        bar_seconds(self.bar_size)
        if self.what_to_show not in WHAT_TO_SHOW:
            raise ValueError(f"ibkr what_to_show must be one of {WHAT_TO_SHOW}")
        if self.tif not in TIME_IN_FORCE:
            raise ValueError(f"ibkr tif must be one of {TIME_IN_FORCE}, got {self.tif!r}")
        for name in (
            "connect_timeout_s",
            "request_timeout_s",
            "backoff_initial_s",
            "order_ack_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"ibkr {name} must be > 0, got {getattr(self, name)}")
        if self.commission_wait_s < 0:
            raise ValueError(f"ibkr commission_wait_s must be >= 0, got {self.commission_wait_s}")
        if self.max_connect_attempts < 1:
            raise ValueError(
                f"ibkr max_connect_attempts must be >= 1, got {self.max_connect_attempts}"
            )
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("ibkr backoff_max_s must be >= backoff_initial_s")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> IBKRConfig:
        """Settings from arguments, then ``IBKR_*`` environment variables, then defaults."""
        env = os.environ if env is None else env
        live = bool(overrides.get("live", False))
        default_port = (LIVE_PORTS if live else PAPER_PORTS)["tws"]
        settings: dict[str, Any] = {
            "host": env.get("IBKR_HOST") or "127.0.0.1",
            "port": _env_int(env, "IBKR_PORT", default_port),
            "client_id": _env_int(env, "IBKR_CLIENT_ID", 1),
            "account": env.get("IBKR_ACCOUNT", ""),
        }
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    def backoff_delays(self) -> list[float]:
        """Seconds to wait after each failed attempt: doubling, capped at ``backoff_max_s``."""
        return [
            min(self.backoff_initial_s * 2**k, self.backoff_max_s)
            for k in range(self.max_connect_attempts - 1)
        ]


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def bar_seconds(bar_size: str) -> int:
    """Length of an IB bar size ("5 secs", "1 min", "15 mins", "1 hour", "1 day")."""
    try:
        number, unit = bar_size.split()
        return int(number) * BAR_UNIT_SECONDS[unit.rstrip("s")]
    except (ValueError, KeyError):
        raise ValueError(
            f"ibkr bar_size {bar_size!r} is not an IB bar size like '1 min', '1 hour', '1 day'"
        ) from None


def ib_duration(count: int, seconds: int, use_rth: bool) -> str:
    """An IB duration string that covers at least ``count`` bars of ``seconds`` each,
    allowing for weekends, holidays and (with ``use_rth``) 6.5-hour sessions."""
    if seconds >= 86_400:
        days = math.ceil(count * seconds / 86_400 * 7 / 5) + 10
    else:
        session = 23_400 if use_rth else 57_600
        days = math.ceil(count / max(1, session // seconds) * 7 / 5) + 3
    return f"{math.ceil(days / 365)} Y" if days > 365 else f"{days} D"


def mask_account(account: str) -> str:
    """Enough of an account id to tell accounts apart in logs, not enough to reuse it."""
    return account[:2] + "***" + account[-2:] if len(account) > 4 else "***"


@dataclass
class _Stream:
    """One instrument's keepUpToDate bar subscription and what it has handed out."""

    instrument: Instrument
    bars: Any = None  # ib.BarDataList of the current connection
    last_emitted: pd.Timestamp | None = None
    restart: bool = False


class IBKRBroker(Broker):
    """Interactive Brokers through TWS / IB Gateway. See the module docstring for the rules."""

    name = "ibkr"

    def __init__(
        self,
        config: IBKRConfig | None = None,
        *,
        clock: Callable[[], pd.Timestamp] | None = None,
        hours: TradingHours | None = None,
    ) -> None:
        self.config = config or IBKRConfig.from_env()
        self._clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.hours = hours or TradingHours()
        self._bar_seconds = bar_seconds(self.config.bar_size)
        self._ib = ib.IB()
        self._ib.RaiseRequestErrors = True
        self._ib.RequestTimeout = self.config.request_timeout_s
        self._ib.errorEvent += self._on_error
        self._ib.disconnectedEvent += self._on_disconnected
        self._account_id = ""
        self._contracts: dict[str, Any] = {}
        self._size_increments: dict[str, float] = {}
        self._streams: dict[str, _Stream] = {}
        self._delivered: dict[str, pd.Timestamp] = {}
        self._queue: deque[Bar] = deque()
        self._stream_errors: list[str] = []
        self._first_seen: dict[str, float] = {}
        self._closing = False
        self.connect_attempts = 0

    @property
    def is_paper(self) -> bool:
        return not self.config.live

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port} (client id {self.config.client_id})"

    # ----- connection --------------------------------------------------------------------

    def connect(self) -> None:
        if self.is_connected():
            return
        delays = self.config.backoff_delays()
        for attempt in range(1, self.config.max_connect_attempts + 1):
            self.connect_attempts += 1
            try:
                self._ib.connect(
                    self.config.host,
                    self.config.port,
                    clientId=self.config.client_id,
                    timeout=self.config.connect_timeout_s,
                    account=self.config.account,
                )
                break
            except OSError as exc:  # refused, timed out, or dropped during the sync
                if attempt == self.config.max_connect_attempts:
                    raise BrokerDisconnected(
                        f"IBKR: cannot connect to {self.where} after {attempt} attempts "
                        f"({exc!r}); is TWS / IB Gateway running with the API enabled on "
                        "that port, and is the client id free?"
                    ) from exc
                delay = delays[attempt - 1]
                log.warning(
                    "IBKR: connect to %s failed (%r), retry %d in %.2fs",
                    self.where,
                    exc,
                    attempt,
                    delay,
                )
                time.sleep(delay)
        self._after_connect()

    def _after_connect(self) -> None:
        try:
            self._account_id = self._choose_account(self._ib.managedAccounts())
            # Orders placed under another client id are not in the startup sync.
            self._call("connect", self._ib.reqAllOpenOrders)
        except BaseException:
            self.disconnect()
            raise
        positions = self.positions()
        log.info(
            "IBKR: connected to %s, %s account %s; synced %d positions (%s), %d open orders, "
            "%d executions",
            self.where,
            "paper" if self.is_paper else "LIVE",
            mask_account(self._account_id),
            len(positions),
            ", ".join(f"{p.symbol} {p.quantity:g}" for p in positions.values()) or "flat",
            len(self.open_orders()),
            len(self._ib.fills()),
        )

    def _choose_account(self, accounts: list[str]) -> str:
        if self.config.account:
            if self.config.account not in accounts:
                raise BrokerError(
                    f"IBKR: account {mask_account(self.config.account)} is not managed by "
                    f"this login ({len(accounts)} accounts are)"
                )
            account = self.config.account
        elif len(accounts) == 1:
            account = accounts[0]
        else:
            raise BrokerError(
                f"IBKR: the login manages {len(accounts)} accounts; set IBKR_ACCOUNT to one"
            )
        if not self.config.live and not account.startswith("D"):
            raise BrokerError(
                f"IBKR: account {mask_account(account)} is not a paper account (paper ids "
                "start with 'D'); pass live=True only if you mean to trade real money"
            )
        return account

    def disconnect(self) -> None:
        self._closing = True
        try:
            self._ib.disconnect()
        finally:
            self._closing = False

    def is_connected(self) -> bool:
        return self._ib.isConnected()

    def now(self) -> pd.Timestamp:
        return self._clock()

    def wait(self, seconds: float) -> None:
        """Pause with the event loop running, so IB's messages keep being processed; a
        disconnect during the pause surfaces on the next call."""
        if not self.is_connected():
            time.sleep(seconds)
            return
        try:
            self._ib.sleep(seconds)
        except ConnectionError:
            log.warning("IBKR: connection to %s lost while waiting", self.where)

    def _require_connection(self, call: str) -> None:
        if not self.is_connected():
            raise BrokerDisconnected(f"IBKR {call}: not connected to {self.where}")

    def _call(self, call: str, request: Callable[[], T]) -> T:
        """Run one blocking ib_async request, translating its failures."""
        self._require_connection(call)
        try:
            return request()
        except ib.RequestError as exc:
            raise BrokerError(f"IBKR {call}: IB error {exc.code}: {exc.message}") from exc
        except ConnectionError as exc:
            raise BrokerDisconnected(f"IBKR {call}: connection to {self.where} lost") from exc
        except TimeoutError as exc:
            raise BrokerError(
                f"IBKR {call}: no reply within {self.config.request_timeout_s}s"
            ) from exc

    def _pump(self, seconds: float) -> None:
        """Let ib_async process network messages for up to ``seconds``."""
        self._require_connection("wait")
        try:
            self._ib.waitOnUpdate(timeout=seconds)
        except ConnectionError as exc:
            raise BrokerDisconnected(f"IBKR: connection to {self.where} lost") from exc

    def _refresh(self, call: str) -> None:
        """Process whatever IB has already sent, without waiting, before answering a pull."""
        self._require_connection(call)
        try:
            self._ib.sleep(0)
        except ConnectionError as exc:
            raise BrokerDisconnected(f"IBKR {call}: connection to {self.where} lost") from exc

    def _wait_until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._pump(min(remaining, 0.25))
        return True

    def _on_error(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if code in NOTICE_CODES or 2100 <= code < 2200:
            log.info("IBKR notice %d: %s", code, message)
            return
        log.warning("IBKR error %d (request %d): %s", code, req_id, message)
        if code == DATA_LOST_CODE:
            for stream in self._streams.values():
                stream.restart = True
        for symbol, stream in self._streams.items():
            if stream.bars is not None and stream.bars.reqId == req_id:
                stream.restart = True
                self._stream_errors.append(f"IBKR bar stream {symbol}: IB error {code}: {message}")

    def _on_disconnected(self) -> None:
        if self._closing:
            log.info("IBKR: disconnected from %s", self.where)
        else:
            log.warning("IBKR: connection to %s lost", self.where)
        for stream in self._streams.values():  # their subscriptions died with the socket
            stream.bars, stream.restart = None, True

    # ----- instruments and bars ---------------------------------------------------------

    def qualify(self, instrument: Instrument) -> Instrument:
        contract = ib.Contract(
            secType=instrument.asset_class,
            symbol=instrument.symbol,
            exchange=instrument.exchange,
            currency=instrument.currency,
            conId=int(instrument.broker_id) if instrument.broker_id else 0,
        )
        try:
            details = self._call("qualify", lambda: self._ib.reqContractDetails(contract))
        except BrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, ib.RequestError) and cause.code == UNKNOWN_CONTRACT_CODE:
                raise UnknownInstrument(
                    f"IBKR qualify: no {instrument.asset_class} contract {instrument.symbol} "
                    f"on {instrument.exchange} in {instrument.currency} (IB error 200)"
                ) from exc
            raise
        contracts = [_contract_of(d) for d in details]
        if len(contracts) != 1:
            found = ", ".join(f"{c.symbol}@{c.primaryExchange} conId {c.conId}" for c in contracts)
            raise UnknownInstrument(
                f"IBKR qualify: {instrument.symbol} matches {len(details)} contracts"
                + (f" ({found}); set broker_id to the conId to pick one" if details else "")
            )
        qualified = contracts[0]
        if instrument.exchange == "SMART":
            qualified.exchange = "SMART"
        self._contracts[instrument.symbol] = qualified
        self._size_increments[instrument.symbol] = details[0].sizeIncrement or 1.0
        return dataclasses.replace(instrument, broker_id=str(qualified.conId))

    def _contract(self, instrument: Instrument) -> Any:
        if instrument.symbol not in self._contracts:
            self.qualify(instrument)
        return self._contracts[instrument.symbol]

    def _request_bars(self, instrument: Instrument, count: int, keep_up_to_date: bool) -> Any:
        contract = self._contract(instrument)
        duration = ib_duration(count, self._bar_seconds, self.config.use_rth)
        return self._call(
            "subscribe" if keep_up_to_date else "history",
            lambda: self._ib.reqHistoricalData(
                contract,
                "",
                duration,
                self.config.bar_size,
                self.config.what_to_show,
                self.config.use_rth,
                formatDate=2,
                keepUpToDate=keep_up_to_date,
                timeout=0,  # the broker's request timeout applies instead
            ),
        )

    def _to_bar(self, symbol: str, bar: Any) -> Bar:
        """An IB bar as a ``Bar``: labelled by its start, ``end`` when it closes.

        Daily bars are labelled by their date and close at the session end of that date
        (``hours``, the preferences' trading hours), the clock the sim and the backtest
        use (``risk.preferences.bar_end_times``)."""
        stamp: date | datetime = bar.date
        if isinstance(stamp, datetime):
            start = pd.Timestamp(stamp)
            start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
            timestamp = start.tz_localize(None)
            end = start + pd.Timedelta(seconds=self._bar_seconds)
        else:
            timestamp = pd.Timestamp(stamp)
            end = self.hours.session_end(timestamp)
        return Bar(
            symbol,
            timestamp,
            end,
            float(bar.open),
            float(bar.high),
            float(bar.low),
            float(bar.close),
            max(float(bar.volume), 0.0),  # IB sends -1 where it has no volume (MIDPOINT)
        )

    def _closed_bars(self, symbol: str, bars: Iterable[Any]) -> list[Bar]:
        """The bars that have closed: all but the last, and the last once its end passed."""
        converted = [self._to_bar(symbol, b) for b in bars]
        if converted and converted[-1].end > self.now():
            converted.pop()
        return converted

    def history(self, instrument: Instrument, count: int) -> pd.DataFrame:
        if count < 1:
            raise ValueError(f"IBKR history {instrument.symbol}: count must be >= 1, got {count}")
        bars = self._closed_bars(
            instrument.symbol, self._request_bars(instrument, count, keep_up_to_date=False)
        )
        good = []
        for bar in bars:
            problem = bar.problem()
            if problem is None:
                good.append(bar)
            else:
                log.warning(
                    "IBKR history %s: skipping bar %s: %s", bar.symbol, bar.timestamp, problem
                )
        good = good[-count:]
        try:
            frame = bars_to_frame(good, instrument.symbol)
        except DataError as exc:
            raise BrokerError(f"IBKR history {instrument.symbol}: bad bars from IB: {exc}") from exc
        if good:
            self._handed_out(instrument.symbol, good[-1].timestamp)
        return frame

    def _handed_out(self, symbol: str, last: pd.Timestamp) -> None:
        """Bars up to ``last`` reached the runner through ``history`` (a warm-up or a
        back-fill after a reconnect); the stream must not hand them out again."""
        self._delivered[symbol] = last
        stream = self._streams.get(symbol)
        if stream is not None and (stream.last_emitted is None or stream.last_emitted < last):
            stream.last_emitted = last
        self._queue = deque(b for b in self._queue if b.symbol != symbol or b.timestamp > last)

    def subscribe(self, instrument: Instrument) -> None:
        stream = self._streams.get(instrument.symbol)
        if stream is None:
            stream = _Stream(instrument, last_emitted=self._delivered.get(instrument.symbol))
            self._streams[instrument.symbol] = stream
        if stream.bars is None or stream.restart:
            self._start_stream(stream)

    def _start_stream(self, stream: _Stream) -> None:
        """(Re)start the keepUpToDate request, asking for enough bars to cover the gap
        since the last bar handed out, so bars that closed while down are back-filled."""
        if stream.bars is not None and self.is_connected():
            self._ib.cancelHistoricalData(stream.bars)
        stream.bars = None
        count = 3
        if stream.last_emitted is not None and stream.last_emitted > pd.Timestamp.min:
            gap = (self.now().tz_localize(None) - stream.last_emitted).total_seconds()
            count = min(max(count, math.ceil(gap / self._bar_seconds) + 2), MAX_BACKFILL_BARS)
        bars = self._request_bars(stream.instrument, count, keep_up_to_date=True)
        bars.updateEvent += partial(self._on_bar_update, stream)
        stream.bars, stream.restart = bars, False
        if stream.last_emitted is None:  # nothing handed out yet: these bars are warm-up
            closed = self._closed_bars(stream.instrument.symbol, bars)
            stream.last_emitted = closed[-1].timestamp if closed else pd.Timestamp.min
        self._emit_closed(stream)

    def _on_bar_update(self, stream: _Stream, bars: Any, has_new_bar: bool) -> None:
        if bars is stream.bars:
            self._emit_closed(stream)

    def _emit_closed(self, stream: _Stream) -> None:
        """Queue, in order, the stream's closed bars newer than the last one handed out.
        Only the newest bar can still be forming; it closes when its end has passed."""
        if stream.bars is None:
            return
        now, fresh = self.now(), []
        for position, raw in enumerate(reversed(stream.bars)):
            bar = self._to_bar(stream.instrument.symbol, raw)
            if stream.last_emitted is not None and bar.timestamp <= stream.last_emitted:
                break
            if position > 0 or bar.end <= now:
                fresh.append(bar)
        for bar in reversed(fresh):
            self._queue.append(bar)
            stream.last_emitted = bar.timestamp

    def next_bar(self, timeout: float) -> Bar | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._stream_errors:
                raise BrokerError(self._stream_errors.pop(0))
            for stream in self._streams.values():
                if stream.restart and self.is_connected():
                    self._start_stream(stream)
                self._emit_closed(stream)
            if self._queue:
                return self._queue.popleft()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._require_connection("next_bar")
                return None
            self._pump(min(remaining, 0.25))

    # ----- orders -----------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderState:
        self._require_connection("place_order")
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
        contract = self._contract(request.instrument)
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
        order.account = self._account_id
        try:
            trade = self._ib.placeOrder(contract, order)
        except ConnectionError as exc:
            raise BrokerDisconnected(f"IBKR place_order: connection to {self.where} lost") from exc
        log.info(
            "IBKR: sent %s %s %g %s (%s)",
            request.client_ref,
            request.side,
            quantity,
            request.instrument.symbol,
            request.order_type,
        )
        self._wait_until(
            lambda: trade.orderStatus.status != "PendingSubmit", self.config.order_ack_timeout_s
        )
        return self._state(trade)

    def _checked_quantity(self, request: OrderRequest) -> float:
        increment = self._size_increments.get(request.instrument.symbol, 1.0)
        units = request.quantity / increment
        if abs(units - round(units)) > 1e-9:
            raise ValueError(
                f"order {request.client_ref!r} ({request.instrument.symbol}): quantity "
                f"{request.quantity} is not a multiple of IB's size increment {increment}"
            )
        return round(units) * increment

    def cancel_order(self, client_ref: str) -> OrderState:
        self._require_connection("cancel_order")
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
            self._ib.cancelOrder(trade.order)
        except ConnectionError as exc:
            raise BrokerDisconnected(f"IBKR cancel_order: connection to {self.where} lost") from exc
        self._wait_until(
            lambda: trade.orderStatus.status in DONE_STATES, self.config.order_ack_timeout_s
        )
        return self._state(trade)

    def order_state(self, client_ref: str) -> OrderState | None:
        self._refresh("order_state")
        return self._find(client_ref)

    def open_orders(self) -> list[OrderState]:
        self._refresh("open_orders")
        return [
            self._state(t)
            for t in self._ib.openTrades()
            if t.order.orderRef and t.order.account in ("", self._account_id)
        ]

    def _trade(self, client_ref: str) -> ib.Trade | None:
        """The newest ib_async trade with this orderRef, preferring one still working."""
        trades = [t for t in self._ib.trades() if t.order.orderRef == client_ref]
        working = [t for t in trades if t.orderStatus.status not in DONE_STATES]
        newest = working or trades
        return newest[-1] if newest else None

    def _find(self, client_ref: str) -> OrderState | None:
        trade = self._trade(client_ref)
        if trade is not None:
            return self._state(trade)
        fills = [f for f in self._ib.fills() if f.execution.orderRef == client_ref]
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
            _utc(fills[-1].execution.time),
        )

    def _state(self, trade: Any) -> OrderState:
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
            updated_at=_utc(trade.log[-1].time) if trade.log else None,
        )

    # ----- fills, positions, account ----------------------------------------------------

    def fills(self) -> list[Fill]:
        """Executions IB reports for today, each once its commission report is in (or
        ``commission_wait_s`` after it was first seen, with cost 0 and a warning)."""
        self._refresh("fills")
        now = time.monotonic()
        result = []
        for fill in self._ib.fills():
            ex = fill.execution
            if self._other_contract(fill.contract):
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
                    timestamp=_utc(ex.time),
                )
            )
        return sorted(result, key=lambda f: f.timestamp)

    def positions(self) -> dict[str, Position]:
        self._refresh("positions")
        result: dict[str, Position] = {}
        for p in self._ib.positions(self._account_id):
            symbol = p.contract.symbol
            if p.position == 0 or self._other_contract(p.contract):
                continue
            if symbol in result:
                log.warning("IBKR positions: several contracts named %s; reporting one", symbol)
                continue
            result[symbol] = Position(symbol, float(p.position), float(p.avgCost))
        return result

    def _other_contract(self, contract: Any) -> bool:
        """True for, say, an option on a symbol we trade: same name, another contract."""
        ours = self._contracts.get(contract.symbol)
        return ours is not None and contract.conId != ours.conId

    def account(self) -> Account:
        self._refresh("account")
        values: dict[str, tuple[str, str]] = {}
        for value in self._ib.accountValues(self._account_id):
            wanted = value.tag in ("NetLiquidation", "TotalCashValue") and value.currency
            if wanted and (value.tag not in values or value.currency == "BASE"):
                values[value.tag] = (value.value, value.currency)
        missing = {"NetLiquidation", "TotalCashValue"} - values.keys()
        if missing:
            raise BrokerError(
                f"IBKR account: no {', '.join(sorted(missing))} received for account "
                f"{mask_account(self._account_id)}"
            )
        try:
            equity, cash = (float(values[t][0]) for t in ("NetLiquidation", "TotalCashValue"))
        except ValueError as exc:
            raise BrokerError(f"IBKR account: unreadable account value ({exc})") from exc
        currency = values["NetLiquidation"][1]
        return Account(
            self._account_id,
            cash,
            equity,
            currency if currency != "BASE" else "USD",
            self.now(),
        )


def _contract_of(details: ib.ContractDetails) -> ib.Contract:
    """The contract of IB's contract details: ib_async types it optional, IB always sends it."""
    if details.contract is None:
        raise BrokerError("IBKR qualify: contract details came without a contract")
    return details.contract


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
