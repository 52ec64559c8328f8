"""Reconciliation rules as plain functions: journal state in, decisions out, no broker."""

from __future__ import annotations

import pandas as pd

from evotrader.core.trading import (
    Fill,
    Instrument,
    OrderRequest,
    OrderState,
    OrderStatus,
    Position,
    Side,
)
from evotrader.live.journal import JournalOrder
from evotrader.live.reconcile import (
    adopted_target,
    changed_states,
    foreign_orders,
    order_step,
    position_mismatch,
    unseen_fills,
)

LATEST, OLDER = "2024-01-09T00:00:00", "2024-01-08T00:00:00"
GOOG = Instrument("GOOG")


def journaled(ref: str, status: OrderStatus = OrderStatus.PENDING, bar: str = LATEST):
    request = OrderRequest(ref, GOOG, Side.BUY, 10.0, target_weight=1.0)
    return JournalOrder(request, bar, OrderState(ref, status))


def fill(exec_id: str) -> Fill:
    at = pd.Timestamp("2024-01-09 14:31", tz="UTC")
    return Fill(exec_id, "s-1", "7", "GOOG", Side.BUY, 10.0, 100.0, 1.0, at)


def test_an_order_the_broker_knows_takes_the_brokers_state() -> None:
    filled = OrderState("s-1", OrderStatus.FILLED, "7", 10.0, 0.0, 100.0)
    for status in (OrderStatus.PENDING, OrderStatus.SUBMITTED):
        step = order_step(journaled("s-1", status), filled, LATEST, halted=False)
        assert (step.action, step.state) == ("record", filled)


def test_a_pending_order_on_the_latest_bar_is_resent_unless_halted() -> None:
    order = journaled("s-1")
    step = order_step(order, None, LATEST, halted=False)
    assert (step.action, step.state) == ("resend", order.state)
    step = order_step(order, None, LATEST, halted=True)
    assert step.action == "drop"
    assert (step.state.status, step.state.reason) == (OrderStatus.CANCELLED, "halted")


def test_orders_the_broker_never_saw_are_dropped_with_the_reason() -> None:
    stale = order_step(journaled("s-1", bar=OLDER), None, LATEST, halted=False)
    assert stale.action == "drop" and "superseded by a newer bar" in stale.state.reason
    lost = order_step(journaled("s-2", OrderStatus.SUBMITTED), None, LATEST, halted=False)
    assert lost.action == "drop" and "unknown to the broker" in lost.state.reason
    assert lost.state.client_ref == "s-2" and lost.state.status is OrderStatus.CANCELLED


def test_only_changed_order_states_are_recorded() -> None:
    same, moved = journaled("s-1", OrderStatus.SUBMITTED), journaled("s-2", OrderStatus.SUBMITTED)
    partial = OrderState("s-2", OrderStatus.PARTIALLY_FILLED, filled_quantity=4.0)
    at_broker = {"s-1": same.state, "s-2": partial, "s-3": None}
    assert changed_states([same, moved, journaled("s-3")], at_broker) == [partial]


def test_fills_already_journaled_are_skipped() -> None:
    assert unseen_fills([fill("e1"), fill("e2")], {"e1"}) == [fill("e2")]
    assert unseen_fills([fill("e1")], {"e1"}) == []


def test_working_orders_the_journal_never_wrote_are_foreign() -> None:
    working = [
        OrderState("s-1", OrderStatus.SUBMITTED),
        OrderState("manual", OrderStatus.SUBMITTED),
    ]
    assert foreign_orders({"s-1", "s-0"}, working) == ["manual"]
    assert foreign_orders({"s-1", "manual"}, working) == []


def test_positions_that_disagree_are_reported_and_the_brokers_kept() -> None:
    journal = {"GOOG": Position("GOOG", 10.0, 100.0)}
    assert position_mismatch(journal, {"GOOG": Position("GOOG", 10.0, 100.0)}) is None
    assert position_mismatch({}, {"GOOG": Position("GOOG", 3.0)}) is None  # a new journal
    assert position_mismatch(journal, {}) == {
        "journal": {"GOOG": 10.0},
        "broker": {},
        "kept": "broker",
    }


def test_a_position_that_does_not_match_the_target_is_adopted() -> None:
    targets = (-1.0, 0.0, 1.0)
    assert adopted_target(0.0, 100.0, 1_000.0, targets, 0.0) is None  # flat and meant to be
    assert adopted_target(10.0, 100.0, 1_000.0, targets, 1.0) is None  # long as meant
    adopted = adopted_target(9.0, 100.0, 1_000.0, targets, 0.0)  # bought by hand
    assert adopted == {"units": 9.0, "weight": 0.9, "was": 0.0, "now": 1.0}
    assert adopted_target(0.0, 100.0, 1_000.0, targets, -1.0) == {
        "units": 0.0, "weight": 0.0, "was": -1.0, "now": 0.0
    }  # fmt: skip
