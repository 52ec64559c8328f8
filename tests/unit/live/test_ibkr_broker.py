"""IBKRBroker with the real ib_async client against the local TWS API stand-in.

Every test talks over a loopback socket to tests/support/tws_server.py, which lays out each
message as ib_async's decoder reads it; the autouse fixture fails any test in which
ib_async could not decode one of them.
"""

import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pandas as pd
import pytest
from tests.support.tws_server import SERVER_VERSION, HistoricalBar, Stock, TwsServer

from evotrader.core.trading import Instrument, OrderRequest, OrderStatus, OrderType, Position, Side
from evotrader.live.broker import BrokerDisconnected, BrokerError, UnknownInstrument
from evotrader.live.ib.bars import ib_duration
from evotrader.live.ib.broker import IBKRBroker
from evotrader.live.ib.config import IBKRConfig, mask_account
from evotrader.live.retry import Backoff, connect

pytestmark = pytest.mark.timeout(60)  # the stand-in also stops itself after 30 s
T = TypeVar("T")
GOOG = Stock("GOOG", 208813720, long_name="ALPHABET INC-CL C")
MSFT = Stock("MSFT", 272093, primary_exchange="NASDAQ")
T0 = int(pd.Timestamp("2024-03-04 15:00", tz="UTC").timestamp())  # start of the forming bar
MINUTE = 60
FAST_BACKOFF = Backoff(attempts=6, initial_s=0.05, max_s=0.2)  # the runner's policy, quick


class Clock:
    """The broker's clock, moved by the test: bars close when the test says so."""

    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


def minute_bar(start: int, close: float, volume: float = 1_000.0) -> HistoricalBar:
    return HistoricalBar(start, close - 0.5, close + 1.0, close - 1.0, close, volume)


def closed_history(n: int = 30) -> list[HistoricalBar]:
    """``n`` closed one-minute bars ending at T0, then the bar forming at T0."""
    starts = [T0 - MINUTE * (n - i) for i in range(n + 1)]
    return [minute_bar(s, 100.0 + i) for i, s in enumerate(starts)]


def naive(epoch: int) -> pd.Timestamp:
    return pd.Timestamp(epoch, unit="s")


def eventually(call: Callable[[], T], ok: Callable[[T], bool], timeout: float = 3.0) -> T:
    """Poll a broker pull until its answer is ``ok`` (the runner polls the same way)."""
    deadline = time.monotonic() + timeout
    while True:
        result = call()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def no_undecodable_messages(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    bad = [r.getMessage() for r in caplog.records if r.name == "ib_async.Decoder"]
    assert not bad, f"ib_async could not decode the stand-in's messages: {bad}"


@pytest.fixture
def tws() -> Iterator[TwsServer]:
    with TwsServer([GOOG, MSFT], lifetime_s=30.0) as server:
        server.set_history("GOOG", closed_history())
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock(pd.Timestamp(T0 + 30, unit="s", tz="UTC"))


def make_broker(tws: TwsServer, clock: Clock, client_id: int = 7, **settings) -> IBKRBroker:
    fast = {
        "bar_size": "1 min",
        "connect_timeout_s": 3.0,
        "request_timeout_s": 3.0,
        "order_ack_timeout_s": 2.0,
        "commission_wait_s": 1.0,
    }
    config = IBKRConfig(port=tws.port, client_id=client_id, **{**fast, **settings})
    return IBKRBroker(config, clock=clock)


@pytest.fixture
def broker(tws: TwsServer, clock: Clock) -> Iterator[IBKRBroker]:
    broker = make_broker(tws, clock)
    broker.connect()
    yield broker
    broker.disconnect()


@pytest.fixture
def streaming(broker: IBKRBroker) -> IBKRBroker:
    """The connected broker, warmed up on GOOG's history and subscribed to its bars."""
    broker.history(Instrument("GOOG"), 10)
    broker.subscribe(Instrument("GOOG"))
    return broker


def orders_sent(tws: TwsServer, client_ref: str) -> int:
    return sum(1 for fields in tws.messages(3) if fields[26] == client_ref)


# ----- configuration ----------------------------------------------------------------------


def test_config_is_paper_by_default_and_reads_env() -> None:
    assert IBKRConfig.from_env({}).port == 7497
    assert IBKRConfig.from_env({}, live=True).port == 7496
    config = IBKRConfig.from_env(
        {"IBKR_HOST": "10.0.0.5", "IBKR_PORT": "4002", "IBKR_CLIENT_ID": "9"}, client_id=3
    )
    assert (config.host, config.port, config.client_id) == ("10.0.0.5", 4002, 3)
    with pytest.raises(ValueError, match="live-trading port"):
        IBKRConfig(port=7496)
    with pytest.raises(ValueError, match="live-trading port"):
        IBKRConfig.from_env({"IBKR_PORT": "4001"})
    assert IBKRConfig(port=4001, live=True).port == 4001
    with pytest.raises(ValueError, match="IBKR_CLIENT_ID"):
        IBKRConfig.from_env({"IBKR_CLIENT_ID": "seven"})
    with pytest.raises(ValueError, match="bar_size"):
        IBKRConfig(bar_size="1 fortnight")
    assert mask_account("DU1234567") == "DU***67"
    assert ib_duration(30, 60, use_rth=True) == "4 D"
    assert ib_duration(250, 86_400, use_rth=True) == "360 D"
    assert ib_duration(400, 86_400, use_rth=True) == "2 Y"


# ----- connection -------------------------------------------------------------------------


def test_connect_handshakes_and_syncs_positions_and_account(tws: TwsServer, clock: Clock) -> None:
    tws.set_position("GOOG", 10.0, 95.0)
    tws.set_price("GOOG", 101.0)
    broker = make_broker(tws, clock)
    assert broker.is_paper and not broker.is_connected()
    broker.connect()
    try:
        assert broker.is_connected()
        assert broker.connection.ib.client.serverVersion() == SERVER_VERSION
        assert tws.messages(71)[0][2] == "7"  # startApi carried our client id
        assert broker.positions() == {"GOOG": Position("GOOG", 10.0, 95.0)}
        account = broker.account()
        assert account.account_id == "DU1234567"
        assert account.cash == pytest.approx(100_000.0)
        assert account.equity == pytest.approx(100_000.0 + 10 * 101.0)
        broker.connect()  # idempotent
        assert tws.connections_accepted == 1
    finally:
        broker.disconnect()
    assert not broker.is_connected()
    with pytest.raises(BrokerDisconnected, match="not connected"):
        broker.positions()


def test_connect_refuses_an_account_that_is_not_paper(clock: Clock) -> None:
    with TwsServer([GOOG], account="U7654321", lifetime_s=10.0) as live_tws:
        broker = make_broker(live_tws, clock)
        with pytest.raises(BrokerError, match="not a paper account"):
            broker.connect()
        assert not broker.is_connected()


def test_connect_tries_once_and_only_the_runners_policy_retries(clock: Clock) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    broker = IBKRBroker(IBKRConfig(port=port), clock=clock)
    started = time.monotonic()
    with pytest.raises(BrokerDisconnected, match=f"cannot connect to 127.0.0.1:{port}"):
        broker.connect()
    assert time.monotonic() - started < 0.05 * 3  # no waiting of its own
    failed: list[int] = []
    with pytest.raises(BrokerDisconnected):
        connect(broker, Backoff(3, 0.05, 1.0), lambda attempt, _: failed.append(attempt))
    assert failed == [1, 2, 3]
    assert time.monotonic() - started >= 0.05 + 0.1


# ----- contracts and bars -----------------------------------------------------------------


def test_qualify_resolves_the_contract_and_rejects_unknown_ones(broker: IBKRBroker) -> None:
    qualified = broker.qualify(Instrument("GOOG"))
    assert qualified.broker_id == str(GOOG.con_id)
    assert qualified.symbol == "GOOG" and qualified.exchange == "SMART"
    with pytest.raises(UnknownInstrument, match="NOPE"):
        broker.qualify(Instrument("NOPE"))
    with pytest.raises(UnknownInstrument, match="GOOG"):
        broker.qualify(Instrument("GOOG", currency="EUR"))


def test_qualify_refuses_an_ambiguous_symbol_until_given_the_conid(clock: Clock) -> None:
    listings = [Stock("SHOP", 195014116, "NYSE"), Stock("SHOP", 195014081, "TSE", "CAD")]
    with TwsServer(listings, lifetime_s=10.0) as tws:
        broker = make_broker(tws, clock)
        broker.connect()
        try:
            with pytest.raises(UnknownInstrument, match=r"matches 2 contracts.*195014081"):
                broker.qualify(Instrument("SHOP", currency=""))
            assert broker.qualify(Instrument("SHOP", currency="CAD")).broker_id == "195014081"
            chosen = broker.qualify(Instrument("SHOP", currency="", broker_id="195014116"))
            assert chosen.broker_id == "195014116"
        finally:
            broker.disconnect()


def test_history_returns_the_last_closed_bars(tws: TwsServer, broker: IBKRBroker) -> None:
    frame = broker.history(Instrument("GOOG"), 20)
    expected = closed_history()[-21:-1]  # the forming bar at T0 is left out
    assert len(frame) == 20
    assert frame.index[-1] == naive(T0 - MINUTE) and frame.index.tz is None
    assert list(frame.index) == [naive(b.start) for b in expected]
    assert list(frame["close"]) == [b.close for b in expected]
    assert list(frame["open"]) == [b.open for b in expected]
    request = tws.messages(20)[-1]
    assert (request[16], request[17], request[21]) == ("1 min", "4 D", "0")


def test_daily_history_is_labelled_by_date(tws: TwsServer) -> None:
    days = pd.date_range("2024-02-26", periods=6, freq="B", tz="UTC")  # the last is today
    tws.set_history("GOOG", [minute_bar(int(d.timestamp()), 50.0 + i) for i, d in enumerate(days)])
    clock = Clock(days[-1] + pd.Timedelta(hours=16))  # 11:00 in New York: today is open
    broker = make_broker(tws, clock, bar_size="1 day")
    broker.connect()
    try:
        frame = broker.history(Instrument("GOOG"), 10)
        assert list(frame.index) == list(days[:-1].tz_localize(None))
        assert list(frame["close"]) == [50.0, 51.0, 52.0, 53.0, 54.0]
        clock.now = pd.Timestamp("2024-03-04 16:00", tz="America/New_York")  # session end
        assert broker.history(Instrument("GOOG"), 10).index[-1] == days[-1].tz_localize(None)
    finally:
        broker.disconnect()


def test_history_skips_and_logs_bad_bars(
    tws: TwsServer, broker: IBKRBroker, caplog: pytest.LogCaptureFixture
) -> None:
    bars = closed_history(5)
    bad = HistoricalBar(bars[2].start, 100.0, 99.0, 98.0, 101.0, 10.0)  # high below close
    tws.set_history("GOOG", [*bars[:2], bad, *bars[3:]])
    frame = broker.history(Instrument("GOOG"), 10)
    assert naive(bad.start) not in frame.index
    assert list(frame.index) == [naive(b.start) for b in bars[:-1] if b is not bars[2]]
    assert any("skipping bar" in r.getMessage() for r in caplog.records)


def test_history_errors_from_ib_become_broker_errors(tws: TwsServer, broker: IBKRBroker) -> None:
    tws.fail_history("GOOG", 162, "Historical Market Data Service error message:No permissions")
    with pytest.raises(BrokerError, match=r"IB error 162: .*No permissions"):
        broker.history(Instrument("GOOG"), 5)


def test_stream_emits_only_closed_bars_in_order(
    tws: TwsServer, streaming: IBKRBroker, clock: Clock
) -> None:
    broker = streaming
    assert broker.next_bar(0.1) is None  # warm-up bars are not replayed
    for close in (130.2, 130.9, 131.4):  # the bar at T0 is still forming
        assert tws.stream_bar("GOOG", minute_bar(T0, close)) == 1
    assert broker.next_bar(0.2) is None
    tws.stream_bar("GOOG", minute_bar(T0 + MINUTE, 132.0))  # a new bar: T0 has closed
    bar = broker.next_bar(2.0)
    assert bar is not None
    assert (bar.timestamp, bar.close) == (naive(T0), 131.4)  # its final values
    assert bar.end == pd.Timestamp(T0 + MINUTE, unit="s", tz="UTC")
    tws.stream_bar("GOOG", minute_bar(T0 - MINUTE, 99.0))  # out of order: never emitted
    tws.stream_bar("GOOG", minute_bar(T0 + 2 * MINUTE, 133.0))
    bar = broker.next_bar(2.0)
    assert bar is not None and bar.timestamp == naive(T0 + MINUTE)
    assert broker.next_bar(0.2) is None
    clock.now = pd.Timestamp(T0 + 3 * MINUTE + 1, unit="s", tz="UTC")  # its end has passed
    bar = broker.next_bar(1.0)
    assert bar is not None and (bar.timestamp, bar.close) == (naive(T0 + 2 * MINUTE), 133.0)
    tws.stream_bar("GOOG", minute_bar(T0 + 2 * MINUTE, 140.0))  # late update of a closed bar
    assert broker.next_bar(0.2) is None


def test_stream_error_is_surfaced_and_the_stream_restarts(
    tws: TwsServer, streaming: IBKRBroker
) -> None:
    broker = streaming
    requests = len(tws.messages(20))
    assert tws.break_stream("GOOG", 162, "Historical data query cancelled") == 1
    with pytest.raises(BrokerError, match="GOOG: IB error 162"):
        broker.next_bar(2.0)
    assert broker.next_bar(0.1) is None  # re-subscribed
    assert len(tws.messages(20)) == requests + 1
    tws.stream_bar("GOOG", minute_bar(T0 + MINUTE, 132.0))
    bar = broker.next_bar(2.0)
    assert bar is not None and bar.timestamp == naive(T0)


def test_reconnect_after_server_disconnect_resumes_the_stream(
    tws: TwsServer, streaming: IBKRBroker, clock: Clock
) -> None:
    broker = streaming
    tws.stream_bar("GOOG", minute_bar(T0 + MINUTE, 131.0))
    first = broker.next_bar(2.0)
    assert first is not None and first.timestamp == naive(T0)
    tws.drop_connections(refuse_for_s=0.5)
    with pytest.raises(BrokerDisconnected):
        broker.next_bar(2.0)
    assert not broker.is_connected()
    for k in (2, 3):  # bars go on while the bot is away
        assert tws.stream_bar("GOOG", minute_bar(T0 + k * MINUTE, 131.0 + k)) == 0
    clock.now = pd.Timestamp(T0 + 3 * MINUTE + 30, unit="s", tz="UTC")
    failed: list[int] = []
    connect(broker, FAST_BACKOFF, lambda attempt, _: failed.append(attempt))
    assert failed  # refused at first, then backed off
    caught_up = [broker.next_bar(2.0), broker.next_bar(2.0)]
    assert [b.timestamp for b in caught_up if b] == [naive(T0 + MINUTE), naive(T0 + 2 * MINUTE)]
    assert broker.next_bar(0.2) is None  # T0+3min is still forming
    tws.stream_bar("GOOG", minute_bar(T0 + 4 * MINUTE, 140.0))
    bar = broker.next_bar(2.0)
    assert bar is not None and (bar.timestamp, bar.close) == (naive(T0 + 3 * MINUTE), 134.0)


def test_back_fill_through_history_is_not_streamed_again(
    tws: TwsServer, streaming: IBKRBroker, clock: Clock
) -> None:
    """The runner's reconnect: history() back-fills the gap, then subscribe() resumes."""
    broker = streaming
    tws.drop_connections()
    with pytest.raises(BrokerDisconnected):
        broker.next_bar(2.0)
    for k in (1, 2):
        tws.stream_bar("GOOG", minute_bar(T0 + k * MINUTE, 131.0 + k))
    clock.now = pd.Timestamp(T0 + 2 * MINUTE + 30, unit="s", tz="UTC")
    broker.wait(0.01)
    broker.connect()
    frame = broker.history(Instrument("GOOG"), 10)
    assert list(frame.index[-2:]) == [naive(T0), naive(T0 + MINUTE)]
    broker.subscribe(Instrument("GOOG"))
    assert broker.next_bar(0.2) is None  # T0 and T0+1min came through history already
    tws.stream_bar("GOOG", minute_bar(T0 + 3 * MINUTE, 140.0))
    bar = broker.next_bar(2.0)
    assert bar is not None and bar.timestamp == naive(T0 + 2 * MINUTE)


# ----- orders, fills, positions -----------------------------------------------------------


def test_market_order_fills_with_commission_and_moves_the_position(
    tws: TwsServer, broker: IBKRBroker, caplog: pytest.LogCaptureFixture
) -> None:
    tws.set_price("GOOG", 101.5)
    request = OrderRequest("run1-0001", Instrument("GOOG"), Side.BUY, 300.0)
    state = broker.place_order(request)
    assert state.status is OrderStatus.FILLED
    assert (state.filled_quantity, state.remaining_quantity) == (300.0, 0.0)
    assert state.avg_fill_price == pytest.approx(101.5)
    assert state.broker_order_id == str(tws.orders()[0].perm_id)
    sent = tws.messages(3)
    assert len(sent) == 1
    assert (sent[0][16], sent[0][17], sent[0][18], sent[0][26]) == (
        "BUY",
        "300.0",
        "MKT",
        "run1-0001",
    )
    fills = eventually(broker.fills, lambda f: len(f) == 1)
    assert len(fills) == 1
    fill = fills[0]
    assert (fill.client_ref, fill.symbol, fill.side, fill.quantity) == (
        "run1-0001",
        "GOOG",
        Side.BUY,
        300.0,
    )
    assert fill.price == pytest.approx(101.5) and fill.cost == pytest.approx(1.5)
    assert fill.timestamp.tzinfo is not None
    assert broker.positions()["GOOG"].quantity == 300.0
    assert broker.place_order(request).status is OrderStatus.FILLED  # known: not resent
    changed = dataclasses.replace(request, quantity=5.0)
    assert broker.place_order(changed).filled_quantity == 300.0
    assert len(tws.messages(3)) == 1
    assert any("differs from the known one" in r.getMessage() for r in caplog.records)


def test_limit_order_partial_fills_then_cancel(tws: TwsServer, broker: IBKRBroker) -> None:
    tws.set_price("GOOG", 101.5)
    request = OrderRequest(
        "run1-0002", Instrument("GOOG"), Side.BUY, 10.0, OrderType.LIMIT, limit_price=90.0
    )
    state = broker.place_order(request)
    assert state.status is OrderStatus.SUBMITTED and state.remaining_quantity == 10.0
    assert tws.messages(3)[0][19] == "90.0"
    assert [s.client_ref for s in broker.open_orders()] == ["run1-0002"]
    tws.fill("run1-0002", 4.0, 90.0)
    state = eventually(lambda: broker.order_state("run1-0002"), lambda s: s.filled_quantity == 4.0)
    assert state.status is OrderStatus.PARTIALLY_FILLED
    assert (state.filled_quantity, state.remaining_quantity) == (4.0, 6.0)
    assert state.avg_fill_price == pytest.approx(90.0)
    assert [f.quantity for f in eventually(broker.fills, lambda f: len(f) == 1)] == [4.0]
    state = broker.cancel_order("run1-0002")
    assert state.status is OrderStatus.CANCELLED and state.filled_quantity == 4.0
    assert broker.open_orders() == []
    assert broker.positions()["GOOG"].quantity == 4.0
    assert broker.cancel_order("run1-0002").status is OrderStatus.CANCELLED  # unchanged
    with pytest.raises(BrokerError, match="no order with client_ref"):
        broker.cancel_order("never-sent")


def test_rejects_are_surfaced_and_not_resent(tws: TwsServer, broker: IBKRBroker) -> None:
    tws.set_price("GOOG", 101.5)
    tws.reject_next_order(201, "Order rejected - reason:Insufficient buying power")
    request = OrderRequest("run1-0003", Instrument("GOOG"), Side.SELL, 5.0)
    state = broker.place_order(request)
    assert state.status is OrderStatus.REJECTED
    assert "201" in state.reason and "Insufficient buying power" in state.reason
    assert broker.place_order(request).status is OrderStatus.REJECTED
    assert orders_sent(tws, "run1-0003") == 1
    assert broker.positions() == {}
    with pytest.raises(ValueError, match="not a multiple of IB's size increment"):
        broker.place_order(OrderRequest("run1-0004", Instrument("GOOG"), Side.BUY, 2.5))
    assert orders_sent(tws, "run1-0004") == 0


@pytest.mark.parametrize("restart_client_id", [7, 8], ids=["same-client-id", "new-client-id"])
def test_restart_reconciles_without_duplicating_orders(
    tws: TwsServer, clock: Clock, restart_client_id: int
) -> None:
    tws.set_price("GOOG", 101.5)
    goog = Instrument("GOOG")
    filled = OrderRequest("run1-0010", goog, Side.BUY, 10.0)
    resting = OrderRequest("run1-0011", goog, Side.BUY, 5.0, OrderType.LIMIT, limit_price=90.0)
    first = make_broker(tws, clock)
    first.connect()
    assert first.place_order(filled).status is OrderStatus.FILLED
    assert first.place_order(resting).status is OrderStatus.SUBMITTED
    first.disconnect()  # the bot stops; the exchange does not
    tws.fill("run1-0011", 3.0, 90.0)

    second = make_broker(tws, clock, client_id=restart_client_id)
    second.connect()
    try:
        assert second.positions() == {
            "GOOG": Position("GOOG", 13.0, pytest.approx((10 * 101.5 + 3 * 90.0) / 13))
        }
        working = second.open_orders()
        assert [(s.client_ref, s.status, s.filled_quantity) for s in working] == [
            ("run1-0011", OrderStatus.PARTIALLY_FILLED, 3.0)
        ]
        assert second.place_order(resting).status is OrderStatus.PARTIALLY_FILLED
        again = second.place_order(filled)
        assert again.status is OrderStatus.FILLED and again.filled_quantity == 10.0
        assert orders_sent(tws, "run1-0010") == orders_sent(tws, "run1-0011") == 1
        fills = eventually(second.fills, lambda f: len(f) == 2)
        assert sorted((f.client_ref, f.quantity, f.cost) for f in fills) == [
            ("run1-0010", 10.0, 1.0),
            ("run1-0011", 3.0, 1.0),
        ]
    finally:
        second.disconnect()


def test_interface_calls_raise_broker_disconnected_when_the_socket_drops(
    tws: TwsServer, broker: IBKRBroker
) -> None:
    tws.set_price("GOOG", 101.5)
    tws.drop_connections()
    with pytest.raises(BrokerDisconnected):
        eventually(broker.positions, lambda _: False, timeout=2.0)
    with pytest.raises(BrokerDisconnected):
        broker.place_order(OrderRequest("run1-0020", Instrument("GOOG"), Side.BUY, 1.0))
    assert orders_sent(tws, "run1-0020") == 0
    broker.connect()
    assert (
        broker.place_order(OrderRequest("run1-0020", Instrument("GOOG"), Side.BUY, 1.0)).status
        is OrderStatus.FILLED
    )
