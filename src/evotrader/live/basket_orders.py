"""From a target-weight vector to per-symbol orders: one pure function, no broker in it.

``net_orders`` is what the basket bot (``evotrader.live.basket_runner``) sends on a decision:

- one net order per symbol, ``target x equity / price`` less what is held (whole lots where
  the instrument trades in lots, truncated toward zero as the single-symbol runner does, so
  rounding never buys more than the target);
- a difference at or below ``DUST`` of equity needs no order (the risk engine's threshold);
- sells (every order that brings cash in) before buys, so a broker that fills them in the
  order sent has the sale proceeds before it spends them;
- when the buys cost more than the buying power left after the sells (cash plus the sells'
  proceeds, plus any margin the caller allows), every buy is scaled down by the same factor
  and rounded down to its lot again: the plan says so (``cash_bound``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from evotrader.risk.risk_engine import DUST

TOLERANCE = 1e-9  # relative slack: buys costing exactly the buying power do not bind


class BasketError(ValueError):
    """Targets, holdings or prices handed to ``net_orders`` do not describe one basket."""


@dataclass(frozen=True)
class BasketOrder:
    """One symbol's net order: signed units (positive buys) and the weight it trades to."""

    symbol: str
    quantity: float
    target_weight: float

    @property
    def is_sell(self) -> bool:
        return self.quantity < 0


@dataclass(frozen=True)
class BasketPlan:
    """The orders in sending order (sells, then buys), and whether cash scaled the buys
    (``scale`` is the factor, 1.0 when cash did not bind)."""

    orders: tuple[BasketOrder, ...]
    cash_bound: bool = False
    scale: float = 1.0


def net_orders(
    targets: Mapping[str, float],
    held: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    cash: float,
    *,
    lot_sizes: Mapping[str, float] | None = None,
    margin: float = 0.0,
) -> BasketPlan:
    """The orders that move ``held`` units to ``targets`` (weights of ``equity``) at
    ``prices``. ``lot_sizes`` (0 or absent: fractional units) rounds each order's target
    position toward zero; ``margin`` is buying power beyond ``cash`` (0: a cash account).
    Symbols held but not in ``targets`` are not this basket's and are left alone."""
    if not math.isfinite(equity) or equity <= 0:
        raise BasketError(f"basket equity must be positive and finite, got {equity}")
    lots = lot_sizes or {}
    orders = []
    for symbol, target in targets.items():
        price = prices.get(symbol)
        if price is None or not math.isfinite(price) or price <= 0:
            raise BasketError(f"basket target for {symbol}: no valid price ({price})")
        if not math.isfinite(target):
            raise BasketError(f"basket target for {symbol} is {target}")
        wanted = _in_lots(target * equity / price, lots.get(symbol, 0.0))
        delta = wanted - held.get(symbol, 0.0)
        if abs(delta) * price > DUST * equity:
            orders.append(BasketOrder(symbol, delta, float(target)))
    sells = [order for order in orders if order.is_sell]
    buys = [order for order in orders if not order.is_sell]
    proceeds = sum(-order.quantity * prices[order.symbol] for order in sells)
    spend = sum(order.quantity * prices[order.symbol] for order in buys)
    power = cash + proceeds + margin
    if spend <= power + TOLERANCE * equity:
        return BasketPlan((*sells, *buys))
    scale = max(power, 0.0) / spend
    scaled = []
    for order in buys:
        lot = lots.get(order.symbol, 0.0)
        quantity = _in_lots(order.quantity * scale, lot)
        if quantity * prices[order.symbol] > DUST * equity:
            scaled.append(BasketOrder(order.symbol, quantity, order.target_weight))
    return BasketPlan((*sells, *scaled), cash_bound=True, scale=scale)


def _in_lots(units: float, lot: float) -> float:
    """``units`` rounded toward zero to whole ``lot``s (``lot`` 0: unchanged)."""
    return math.trunc(units / lot) * lot if lot else units
