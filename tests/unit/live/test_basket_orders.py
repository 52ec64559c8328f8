"""net_orders: netting against holdings, whole lots, sells before buys, cash binding."""

import pytest

from evotrader.live.basket_orders import BasketError, BasketOrder, net_orders

PRICES = {"A": 100.0, "B": 50.0, "C": 20.0}


def test_orders_are_the_difference_to_the_targets_sells_first() -> None:
    held = {"A": 500.0, "B": 0.0, "C": 1000.0}  # 50k + 0 + 20k of 100k equity
    plan = net_orders({"A": 0.2, "B": 0.5, "C": 0.2}, held, PRICES, 100_000.0, 30_000.0)
    assert plan.orders == (
        BasketOrder("A", -300.0, 0.2),
        BasketOrder("B", 1000.0, 0.5),
    )  # C already at 20k: no order
    assert not plan.cash_bound and plan.scale == 1.0


def test_sells_come_first_whatever_the_target_order() -> None:
    held = {"A": 0.0, "B": 0.0, "C": 2500.0}
    plan = net_orders({"A": 0.5, "B": 0.0, "C": 0.0}, held, PRICES, 100_000.0, 50_000.0)
    assert [o.symbol for o in plan.orders] == ["C", "A"]
    assert [o.is_sell for o in plan.orders] == [True, False]


def test_whole_lots_round_toward_zero_never_above_the_target() -> None:
    prices = {"A": 300.0, "B": 70.0}
    plan = net_orders(
        {"A": 0.5, "B": -0.3}, {}, prices, 10_000.0, 10_000.0, lot_sizes={"A": 1.0, "B": 10.0}
    )
    # A: 16.67 shares -> 16; B: -42.86 -> -40 (lots of 10, toward zero)
    assert {o.symbol: o.quantity for o in plan.orders} == {"A": 16.0, "B": -40.0}
    fractional = net_orders({"A": 0.5}, {}, prices, 10_000.0, 10_000.0)
    assert fractional.orders[0].quantity == pytest.approx(10_000.0 * 0.5 / 300.0)


def test_dust_needs_no_order() -> None:
    held = {"A": 500.0 + 1e-9}
    assert net_orders({"A": 0.5}, held, PRICES, 100_000.0, 50_000.0).orders == ()


def test_cash_binding_scales_the_buys_after_the_sells() -> None:
    # 10k cash; selling 50 A brings 5k; the buys want 20k: scaled by 15k / 20k
    held = {"A": 150.0, "B": 0.0, "C": 0.0}
    plan = net_orders(
        {"A": 0.1, "B": 0.1, "C": 0.1}, held, PRICES, 100_000.0, 10_000.0, lot_sizes={"B": 1.0}
    )
    assert plan.cash_bound and plan.scale == pytest.approx(0.75)
    by_symbol = {o.symbol: o.quantity for o in plan.orders}
    assert by_symbol["A"] == -50.0  # the sell is never scaled
    assert by_symbol["B"] == 150.0  # 200 x 0.75, whole shares
    assert by_symbol["C"] == pytest.approx(375.0)  # 500 x 0.75, fractional
    spent = by_symbol["B"] * 50.0 + by_symbol["C"] * 20.0
    assert spent <= 10_000.0 + 50 * 100.0 + 1e-9
    assert plan.orders[0].symbol == "A"


def test_margin_is_buying_power_beyond_cash() -> None:
    plan = net_orders({"A": 1.5}, {}, PRICES, 10_000.0, 10_000.0, margin=5_000.0)
    assert not plan.cash_bound and plan.orders[0].quantity == pytest.approx(150.0)
    bound = net_orders({"A": 1.5}, {}, PRICES, 10_000.0, 10_000.0)
    assert bound.cash_bound and bound.orders[0].quantity == pytest.approx(100.0)


def test_symbols_held_outside_the_basket_are_left_alone() -> None:
    plan = net_orders({"A": 0.1}, {"Z": 10.0}, PRICES, 10_000.0, 10_000.0)
    assert [o.symbol for o in plan.orders] == ["A"]


@pytest.mark.parametrize(
    ("targets", "prices", "equity", "message"),
    [
        ({"D": 0.1}, PRICES, 1e4, r"target for D: no valid price \(None\)"),
        ({"A": float("nan")}, PRICES, 1e4, "target for A is nan"),
        ({"A": 0.1}, {"A": 0.0}, 1e4, r"target for A: no valid price \(0\.0\)"),
        ({"A": 0.1}, PRICES, 0.0, "equity must be positive"),
    ],
)
def test_bad_input_is_one_clear_error(targets, prices, equity, message) -> None:
    with pytest.raises(BasketError, match=message):
        net_orders(targets, {}, prices, equity, equity)
