"""SimBroker: the backtest's fills through a broker interface, and every injected fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.engine import simulate
from evotrader.core.trading import Instrument, OrderRequest, OrderStatus, OrderType, Side
from evotrader.env import ExecutionModel
from evotrader.live.broker import BrokerDisconnected, BrokerError, FeedEnded, UnknownInstrument
from evotrader.live.sim_broker import Faults, SimBroker

SYN = Instrument("SYN")
START = 100
COSTS = ExecutionModel(commission_bps=2.0, half_spread_bps=1.0, slippage_bps=3.0, impact_coef=0.1)


def broker(bars: pd.DataFrame, **kwargs) -> SimBroker:
    sim = SimBroker(bars, SYN, start=bars.index[START], **kwargs)
    sim.connect()
    return sim


def target_order(ref: str, target: float, units: float, price: float, equity: float):
    delta = target * equity / price - units
    side = Side.BUY if delta > 0 else Side.SELL
    return OrderRequest(ref, SYN, side, abs(delta), target_weight=target)


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_fills_and_equity_equal_the_backtest_arithmetic(bars: pd.DataFrame, fill: str) -> None:
    execution = ExecutionModel(**{**COSTS.__dict__, "fill": fill})
    sim = broker(bars, execution=execution, initial_cash=50_000.0)
    rng = np.random.default_rng(3)
    targets = rng.choice([-1.0, 0.0, 0.5, 1.0], size=200)
    held, equity = 0.0, []
    for i, target in enumerate(targets):
        bar = sim.next_bar(1.0)
        equity.append(sim.account().equity)
        if target != held:
            units = sim.positions().get("SYN")
            request = target_order(
                f"o{i}", target, units.quantity if units else 0.0, bar.close, equity[-1]
            )
            assert sim.place_order(request).status is not OrderStatus.REJECTED
            held = target
    sim.next_bar(1.0)
    equity.append(sim.account().equity)

    expected = simulate(targets, execution.prices(bars), START, execution.linear_rate, 50_000.0)
    fills = sim.fills()
    assert len(fills) == len(expected.fill_prices) > 50
    np.testing.assert_array_equal([f.price for f in fills], expected.fill_prices)
    np.testing.assert_array_equal([f.signed_quantity for f in fills], expected.fill_units)
    np.testing.assert_array_equal([f.cost for f in fills], expected.fill_costs)
    np.testing.assert_array_equal(equity, expected.equity)


def test_a_known_client_reference_is_never_sent_twice(bars: pd.DataFrame) -> None:
    sim = broker(bars)
    bar = sim.next_bar(1.0)
    request = target_order("same-ref", 1.0, 0.0, bar.close, 100_000.0)
    first = sim.place_order(request)
    again = sim.place_order(request)
    assert again == first
    sim.next_bar(1.0)
    assert sim.place_order(request).status is OrderStatus.FILLED
    assert len(sim.fills()) == 1 and sim.order_state("same-ref").status is OrderStatus.FILLED
    assert sim.order_state("other-ref") is None


def test_injected_reject_and_partial_fill(bars: pd.DataFrame) -> None:
    sim = broker(bars, faults=Faults(reject_orders=frozenset({0}), partial_fills={1: 0.25}))
    bar = sim.next_bar(1.0)
    rejected = sim.place_order(target_order("a", 1.0, 0.0, bar.close, 100_000.0))
    assert rejected.status is OrderStatus.REJECTED and "injected" in rejected.reason
    partial = target_order("b", 1.0, 0.0, bar.close, 100_000.0)
    sim.place_order(partial)
    sim.next_bar(1.0)
    state = sim.order_state("b")
    assert state.status is OrderStatus.PARTIALLY_FILLED
    held = sim.positions()["SYN"].quantity
    assert state.filled_quantity == pytest.approx(held)
    assert state.remaining_quantity == pytest.approx(3 * held)
    assert sim.open_orders() == [state]
    sim.next_bar(1.0)
    done = sim.order_state("b")
    assert done.status is OrderStatus.FILLED and done.remaining_quantity == 0.0
    assert sim.positions()["SYN"].quantity == pytest.approx(4 * held)
    assert len(sim.fills()) == 2 and sim.open_orders() == []


def test_cancel_stops_the_remainder(bars: pd.DataFrame) -> None:
    sim = broker(bars, faults=Faults(partial_fills={0: 0.5}))
    bar = sim.next_bar(1.0)
    sim.place_order(target_order("p", -1.0, 0.0, bar.close, 100_000.0))
    sim.next_bar(1.0)
    assert sim.cancel_order("p").status is OrderStatus.CANCELLED
    sim.next_bar(1.0)
    assert len(sim.fills()) == 1 and sim.open_orders() == []
    with pytest.raises(BrokerError, match="unknown order"):
        sim.cancel_order("nope")


def test_bad_bars_are_delivered_as_a_broker_would(bars: pd.DataFrame) -> None:
    faults = Faults(
        duplicate_bars=frozenset({2}),
        out_of_order_bars=frozenset({3}),
        bad_bars=frozenset({4}),
        stalls={5: 7200.0},
    )
    sim = broker(bars, faults=faults)
    seen = [sim.next_bar(1.0) for _ in range(9)]
    stamps = [b.timestamp if b else None for b in seen]
    index = bars.index
    assert stamps[:3] == [index[START], index[START + 1], index[START + 1]]  # duplicate
    assert stamps[3:5] == [index[START + 2], index[START + 1]]  # then an old one
    assert stamps[5] == index[START + 3]
    assert seen[6].timestamp == index[START + 4] and seen[6].problem() is not None  # NaN close
    assert stamps[7:] == [index[START + 4], None]  # the good bar, then a stall
    assert sim.now() == seen[7].end + pd.Timedelta(hours=2)


def test_disconnects_and_failed_reconnects(bars: pd.DataFrame) -> None:
    sim = broker(bars, faults=Faults(disconnects=frozenset({1}), failed_reconnects=2))
    sim.next_bar(1.0)
    with pytest.raises(BrokerDisconnected, match="dropped"):
        sim.next_bar(1.0)
    with pytest.raises(BrokerDisconnected):
        sim.account()
    for _ in range(2):
        with pytest.raises(BrokerDisconnected, match="refused"):
            sim.connect()
    sim.connect()
    assert sim.next_bar(1.0).timestamp == bars.index[START + 1]  # nothing was lost


def test_limit_orders_fill_at_the_open_or_the_limit_or_not_at_all(bars: pd.DataFrame) -> None:
    sim = broker(
        bars, execution=ExecutionModel(commission_bps=0, half_spread_bps=0, slippage_bps=0)
    )
    bar = sim.next_bar(1.0)
    nxt = bars.iloc[START + 1]
    far = OrderRequest("far", SYN, Side.BUY, 10, OrderType.LIMIT, limit_price=nxt["low"] * 0.9)
    through = OrderRequest("in", SYN, Side.BUY, 10, OrderType.LIMIT, limit_price=nxt["low"] + 1e-6)
    above = OrderRequest("open", SYN, Side.SELL, 5, OrderType.LIMIT, limit_price=bar.close * 0.5)
    for request in (far, through, above):
        sim.place_order(request)
    sim.next_bar(1.0)
    assert sim.order_state("far").status is OrderStatus.SUBMITTED
    assert sim.order_state("in").avg_fill_price == pytest.approx(nxt["low"] + 1e-6)
    assert sim.order_state("open").avg_fill_price == pytest.approx(nxt["open"])
    assert sim.positions()["SYN"].quantity == pytest.approx(5.0)


def test_quantity_sizing_trades_what_was_asked(bars: pd.DataFrame) -> None:
    sim = broker(bars, sizing="quantity")
    bar = sim.next_bar(1.0)
    sim.place_order(OrderRequest("q", SYN, Side.SELL, 12.5, target_weight=-1.0))
    sim.next_bar(1.0)
    assert sim.positions()["SYN"].quantity == pytest.approx(-12.5)
    assert bar.close > 0


def test_replay_history_clock_and_end(bars: pd.DataFrame) -> None:
    short = bars.iloc[: START + 3]
    sim = broker(short)
    history = sim.history(SYN, 50)
    assert len(history) == 50 and history.index[-1] == bars.index[START - 1]
    assert sim.qualify(SYN).broker_id == "SIM:SYN"
    with pytest.raises(UnknownInstrument):
        sim.qualify(Instrument("OTHER"))
    for _ in range(3):
        sim.next_bar(1.0)
    assert sim.history(SYN, 5).index[-1] == bars.index[START + 2]
    with pytest.raises(FeedEnded):
        sim.next_bar(1.0)
    before = sim.now()
    sim.wait(30.0)
    assert sim.now() == before + pd.Timedelta(seconds=30)


def test_a_replay_needs_history_before_its_start(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="no bar of history"):
        SimBroker(bars, SYN, start=bars.index[0])
    with pytest.raises(ValueError, match="after the last bar"):
        SimBroker(bars, SYN, start=bars.index[-1] + pd.Timedelta(days=1))
