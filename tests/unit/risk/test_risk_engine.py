"""Every limit refuses what it should, every breaker halts when it should, and no sooner."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from evotrader.core.trading import Instrument, OrderRequest, Side
from evotrader.risk import (
    Book,
    BreakerKind,
    KillSwitch,
    Preferences,
    RiskEngine,
    RiskState,
    risk_engine,
)

RAW = {
    "max_position_pct": 50.0,
    "max_leverage": 1.0,
    "max_daily_loss_pct": 2.0,
    "max_drawdown_pct": 10.0,
    "max_orders_per_minute": 3,
    "allowed_instruments": ["GOOG", "EURUSD", "AAPL"],
    "allowed_asset_classes": ["STK"],
    "trading_hours": {
        "timezone": "America/New_York",
        "days": [0, 1, 2, 3, 4],
        "start": "09:30",
        "end": "16:00",
    },
    "stale_data_seconds": 600,
    "error_burst_count": 3,
    "error_burst_seconds": 60,
}
OPEN = pd.Timestamp("2024-01-08 15:00", tz="UTC")  # Monday 10:00 in New York
GOOG = Instrument("GOOG")


def engine(**changes) -> RiskEngine:
    return RiskEngine(Preferences.from_dict(RAW | changes))


def order(quantity: float, side: Side = Side.BUY, instrument: Instrument = GOOG) -> OrderRequest:
    return OrderRequest(f"r{abs(hash((quantity, side)))}", instrument, side, quantity)


def book(units: float = 0.0, equity: float = 100_000.0, price: float = 100.0) -> Book:
    return Book(equity, {"GOOG": units}, {"GOOG": price, "TSLA": price, "EURUSD": price})


def test_an_order_inside_every_limit_is_approved() -> None:
    assert engine().check_order(order(500), book(), OPEN).approved  # 50% of equity


@pytest.mark.parametrize(
    ("request_", "book_", "now", "reason"),
    [
        (order(501), book(), OPEN, "position 50.10% of equity exceeds 50%"),
        (order(10, instrument=Instrument("TSLA")), book(), OPEN, "TSLA is not an allowed"),
        (order(10, instrument=Instrument("EURUSD", "CASH")), book(), OPEN, "asset class CASH"),
        (order(10), book(), pd.Timestamp("2024-01-08 21:30", tz="UTC"), "outside trading hours"),
        (order(10), book(), pd.Timestamp("2024-01-06 15:00", tz="UTC"), "outside trading hours"),
        (order(10), book(equity=-5.0), OPEN, "equity -5.00 is not positive"),
        (order(1, Side.SELL), book(units=600), OPEN, None),  # reducing always passes
    ],
)
def test_each_order_limit_refuses_with_its_reason(request_, book_, now, reason) -> None:
    verdict = engine().check_order(request_, book_, now)
    assert verdict.approved is (reason is None)
    if reason:
        assert reason in verdict.reason


SESSION_END = pd.Timestamp("2024-01-08 21:00", tz="UTC")  # Monday 16:00 in New York


@pytest.mark.parametrize(
    ("bar_end", "delay", "approved"),
    [
        (None, pd.Timedelta(milliseconds=300), False),  # by the wall clock alone: outside
        (SESSION_END, pd.Timedelta(milliseconds=300), True),  # a daily bar, decided at once
        (SESSION_END, risk_engine.DECISION_DELAY, True),
        (SESSION_END, risk_engine.DECISION_DELAY + pd.Timedelta(seconds=1), False),  # too late
        (SESSION_END + pd.Timedelta(hours=1), pd.Timedelta(seconds=1), False),  # 17:00 bar
        (SESSION_END + pd.Timedelta(minutes=1), pd.Timedelta(0), False),  # a bar after hours
    ],
)
def test_a_decision_counts_at_its_bars_close_for_a_short_while(bar_end, delay, approved) -> None:
    """Daily bars close at 16:00, and the bot decides a moment later by the wall clock; the
    order opens a position only if that close was inside hours and the decision prompt."""
    now = (bar_end if bar_end is not None else SESSION_END) + delay
    verdict = engine().check_order(order(10), book(), now, bar_end)
    assert verdict.approved is approved
    if not approved:
        assert "outside trading hours" in verdict.reason


def test_a_future_bar_close_does_not_open_the_hours() -> None:
    night = pd.Timestamp("2024-01-08 03:00", tz="UTC")  # 22:00 the evening before
    assert not engine().check_order(order(10), book(), night, SESSION_END).approved


def test_leverage_counts_every_position() -> None:
    risk = engine(max_position_pct=100.0)
    held = Book(100_000.0, {"GOOG": 0.0, "AAPL": 600.0}, {"GOOG": 100.0, "AAPL": 100.0})
    assert risk.check_order(order(400), held, OPEN).approved  # gross 100%
    verdict = risk.check_order(order(401), held, OPEN)
    assert not verdict.approved and "gross leverage 1.001 exceeds 1" in verdict.reason
    unpriced = Book(100_000.0, {"GOOG": 0.0, "MSFT": 5.0}, {"GOOG": 100.0})
    assert "no price for held ['MSFT']" in risk.check_order(order(1), unpriced, OPEN).reason


def test_order_rate_limit_counts_the_last_minute_only() -> None:
    risk = engine()
    for second in range(3):
        assert risk.check_order(order(1), book(), OPEN + pd.Timedelta(seconds=second)).approved
    refused = risk.check_order(order(1), book(), OPEN + pd.Timedelta(seconds=30))
    assert not refused.approved and "3 orders in the last minute" in refused.reason
    assert risk.check_order(order(1), book(), OPEN + pd.Timedelta(seconds=61)).approved


def test_a_halt_refuses_new_exposure_but_lets_positions_close() -> None:
    risk = engine()
    risk.trip(BreakerKind.DRAWDOWN, "test", OPEN)
    refused = risk.check_order(order(10), book(), OPEN)
    assert not refused.approved and "halted by drawdown" in refused.reason
    night = pd.Timestamp("2024-01-08 23:00", tz="UTC")
    assert risk.check_order(order(600, Side.SELL), book(units=600), night).approved
    flip = risk.check_order(order(700, Side.SELL), book(units=600), OPEN)  # through zero
    assert not flip.approved


def test_daily_loss_breaker_measures_from_the_previous_close() -> None:
    risk = engine(max_drawdown_pct=50.0)
    monday, tuesday = OPEN, OPEN + pd.Timedelta(days=1)
    assert risk.on_equity(monday, 100_000.0) is None
    assert risk.on_equity(monday + pd.Timedelta(hours=5), 99_000.0) is None  # still Monday
    assert risk.on_equity(tuesday, 97_100.0) is None  # 1.92% below Monday's last mark
    trip = risk.on_equity(tuesday + pd.Timedelta(hours=1), 96_900.0)
    assert trip is not None and trip.kind is BreakerKind.DAILY_LOSS
    assert "daily loss 2.12% exceeds 2%" in trip.reason
    assert risk.halt == trip
    assert risk.on_equity(tuesday + pd.Timedelta(hours=2), 90_000.0) is None  # first trip wins


def test_drawdown_breaker_measures_from_the_peak() -> None:
    risk = engine(max_daily_loss_pct=100.0)
    for day, equity in enumerate([100_000.0, 120_000.0, 110_000.0, 108_500.0]):
        assert risk.on_equity(OPEN + pd.Timedelta(days=day), equity) is None
    trip = risk.on_equity(OPEN + pd.Timedelta(days=5), 107_900.0)
    assert trip is not None and trip.kind is BreakerKind.DRAWDOWN
    assert "drawdown 10.08%" in trip.reason


def test_error_burst_trips_only_when_errors_bunch_up() -> None:
    risk = engine()
    for minute in range(4):  # spread out: 2 minutes apart
        assert risk.on_error(OPEN + pd.Timedelta(minutes=2 * minute), "bad bar") is None
    assert risk.on_error(OPEN + pd.Timedelta(minutes=8), "reject") is None
    assert risk.on_error(OPEN + pd.Timedelta(minutes=8, seconds=10), "reject") is None
    trip = risk.on_error(OPEN + pd.Timedelta(minutes=8, seconds=20), "reject")
    assert trip is not None and trip.kind is BreakerKind.ERROR_BURST
    assert "3 errors within 60s" in trip.reason and "last: reject" in trip.reason


def test_stale_data_trips_inside_trading_hours_only() -> None:
    risk = engine()
    last_bar = pd.Timestamp("2024-01-08 16:00", tz="UTC")
    assert risk.check_feed(last_bar + pd.Timedelta(seconds=600), last_bar) is None
    night_gap = pd.Timestamp("2024-01-09 02:00", tz="UTC")  # hours old, but markets closed
    assert risk.check_feed(night_gap, last_bar) is None
    trip = risk.check_feed(last_bar + pd.Timedelta(seconds=601), last_bar)
    assert trip is not None and trip.kind is BreakerKind.STALE_DATA


def test_state_survives_a_round_trip_and_only_a_human_clears_a_halt() -> None:
    risk = engine()
    risk.on_equity(OPEN, 100_000.0)
    risk.check_order(order(1), book(), OPEN)
    risk.trip(BreakerKind.KILL_SWITCH, "kill file", OPEN)
    restored = RiskEngine(risk.preferences, RiskState.from_dict(risk.state.to_dict()))
    assert restored.state == risk.state
    assert restored.halt is not None and restored.halt.kind is BreakerKind.KILL_SWITCH
    assert restored.clear_halt() == risk.halt
    assert restored.halt is None


def test_kill_switch_file_and_signals(tmp_path: Path) -> None:
    kill_file = tmp_path / "KILL"
    switch = KillSwitch(kill_file)
    assert switch.reason() is None
    kill_file.touch()
    assert switch.reason() == f"kill file {kill_file} exists"
    kill_file.unlink()
    previous = signal.getsignal(signal.SIGTERM)
    with switch:
        os.kill(os.getpid(), signal.SIGTERM)
        assert switch.reason() == "received SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == previous
