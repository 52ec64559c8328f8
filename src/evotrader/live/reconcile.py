"""Reconciliation: the journal's memory against the broker's truth, as plain functions.

After a restart or a reconnect the runner asks the broker about every order the journal still
holds open, then applies what these functions decide. They read values and return values, so
each rule is tested without a broker: an order the broker knows takes the broker's state; a
PENDING order that never reached the broker is re-sent (same reference, so never twice) only
while its bar is still the latest and no breaker has tripped; anything else the broker does not
know is journaled as cancelled. Positions always come from the broker; a journal that
disagreed is reported, and the bot adopts the position the broker holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evotrader.core.trading import Fill, OrderState, OrderStatus, Position
from evotrader.live.journal import JournalOrder


@dataclass(frozen=True)
class Step:
    """What to do with one order the journal holds open: ``record`` the broker's ``state``,
    ``resend`` the journaled request, or ``drop`` it (journal ``state``, a cancellation)."""

    action: Literal["record", "resend", "drop"]
    state: OrderState


def order_step(
    order: JournalOrder, at_broker: OrderState | None, latest_bar: str, halted: bool
) -> Step:
    """The step for one journaled open order, given the broker's state of it (None: the
    broker has never seen it), the latest bar (ISO format) and whether trading is halted."""
    ref = order.request.client_ref
    if at_broker is not None:
        return Step("record", at_broker)
    pending = order.state.status is OrderStatus.PENDING
    if pending and order.bar == latest_bar:
        if halted:
            return Step("drop", OrderState(ref, OrderStatus.CANCELLED, reason="halted"))
        return Step("resend", order.state)
    reason = (
        "never reached the broker; superseded by a newer bar"
        if pending
        else "unknown to the broker after the restart"
    )
    return Step("drop", OrderState(ref, OrderStatus.CANCELLED, reason=reason))


def changed_states(
    open_orders: Iterable[JournalOrder], at_broker: Mapping[str, OrderState | None]
) -> list[OrderState]:
    """The broker's states of journaled open orders that differ from the journal's."""
    changed = []
    for order in open_orders:
        state = at_broker.get(order.request.client_ref)
        if state is not None and state != order.state:
            changed.append(state)
    return changed


def unseen_fills(fills: Iterable[Fill], seen: Collection[str]) -> list[Fill]:
    """The broker's fills whose execution ids are not journaled yet (brokers re-report)."""
    return [fill for fill in fills if fill.exec_id not in seen]


def foreign_orders(journaled: Collection[str], working: Iterable[OrderState]) -> list[str]:
    """References of orders working at the broker that the journal never wrote: placed by
    hand, or by another program on the same account."""
    return [state.client_ref for state in working if state.client_ref not in journaled]


def position_mismatch(
    journal: Mapping[str, Position], broker: Mapping[str, Position]
) -> dict[str, Any] | None:
    """What to report when a non-empty journal held other positions than the broker does
    (the broker's are kept); None when they agree or the journal is new."""
    if not journal or journal == broker:
        return None
    return {"journal": quantities(journal), "broker": quantities(broker), "kept": "broker"}


def adopted_target(
    units: float, price: float, equity: float, targets: Sequence[float], target: float
) -> dict[str, float] | None:
    """With nothing working at the broker, the target must match the position held; when it
    does not (a manual trade, an order lost in a crash) the bot adopts the nearest target.
    Returns what to report (``now`` is the adopted target), or None when they match."""
    weight = units * price / equity if equity > 0 else 0.0
    nearest = min(targets, key=lambda p: abs(p - weight))
    if nearest == target or (not units and not target):
        return None
    return {"units": units, "weight": weight, "was": target, "now": nearest}


def quantities(positions: Mapping[str, Position]) -> dict[str, float]:
    return {symbol: position.quantity for symbol, position in positions.items()}
