"""BasketSimBroker: aligned bars only, its own symbols only, one rebalance per decision."""

import numpy as np
import pandas as pd
import pytest

from evotrader.core.trading import Instrument, OrderRequest, OrderStatus, OrderType, Side
from evotrader.data import DataError
from evotrader.env.execution import ExecutionModel, rebalance_portfolio
from evotrader.live.basket_sim import BasketSimBroker
from evotrader.live.broker import FeedEnded


def bars(seed: int, n: int = 6) -> pd.DataFrame:
    close = 100.0 * np.cumprod(1 + np.random.default_rng(seed).normal(0, 0.01, n))
    index = pd.bdate_range("2024-01-01", periods=n, name="timestamp")
    return pd.DataFrame(
        {"open": close * 0.999, "high": close * 1.01, "low": close * 0.99, "close": close,
         "volume": 1e6},
        index=index,
    )  # fmt: skip


def order(ref: str, symbol: str, target: float, **extra: object) -> OrderRequest:
    return OrderRequest(ref, Instrument(symbol), Side.BUY, 1.0, target_weight=target, **extra)  # type: ignore[arg-type]


def test_one_decisions_orders_settle_as_one_rebalance_at_the_next_open() -> None:
    data = {"A": bars(0), "B": bars(1)}
    execution = ExecutionModel(commission_bps=5.0)
    broker = BasketSimBroker(data, start=data["A"].index[2], execution=execution)
    broker.connect()
    seen = [broker.next_bar(0).symbol, broker.next_bar(0).symbol]
    assert seen == ["A", "B"]  # one closed bar per symbol per timestamp
    for ref, symbol, target in (("a", "A", 0.3), ("b", "B", 0.6)):
        assert broker.place_order(order(ref, symbol, target)).status is OrderStatus.SUBMITTED
    broker.next_bar(0)  # bar 3 opens: both fill at its open
    opens = np.array([data["A"]["open"].iloc[3], data["B"]["open"].iloc[3]])
    cash, units, costs = rebalance_portfolio(
        100_000.0, np.zeros(2), np.array([0.3, 0.6]), opens, execution.linear_rate, np.zeros(2)
    )
    assert [broker.positions()[s].quantity for s in "AB"] == pytest.approx(units, rel=1e-12)
    assert broker.account().cash == pytest.approx(cash, rel=1e-12)
    assert [f.cost for f in broker.fills()] == pytest.approx(costs, rel=1e-12)
    assert broker.place_order(order("a", "A", 0.9)).status is OrderStatus.FILLED  # known ref


def test_orders_it_cannot_fill_are_rejected_naming_why() -> None:
    data = {"A": bars(0), "B": bars(1)}
    broker = BasketSimBroker(data, start=data["A"].index[2])
    broker.connect()
    rejected = broker.place_order(order("z", "Z", 0.1))
    assert rejected.status is OrderStatus.REJECTED and rejected.reason == "sim replays A, B, not Z"
    limit = order("l", "A", 0.1, order_type=OrderType.LIMIT, limit_price=1.0)
    assert broker.place_order(limit).reason == "the basket sim fills market orders only"


def test_bars_off_one_calendar_are_refused_naming_the_symbol() -> None:
    data = {"A": bars(0), "B": bars(1).iloc[1:]}
    with pytest.raises(DataError, match="B"):
        BasketSimBroker(data, start=data["A"].index[2])


def test_the_feed_ends_after_the_last_bar_of_every_symbol() -> None:
    data = {"A": bars(0, 4), "B": bars(1, 4)}
    broker = BasketSimBroker(data, start=data["A"].index[3])
    broker.connect()
    assert [broker.next_bar(0).symbol for _ in range(2)] == ["A", "B"]
    with pytest.raises(FeedEnded, match="replay of A\\+B ended"):
        broker.next_bar(0)


def test_close_only_bars_fill_at_the_next_close() -> None:
    data = {s: bars(k).assign(open=lambda f: f["close"], high=lambda f: f["close"],
                              low=lambda f: f["close"], volume=0.0)
            for k, s in enumerate("AB")}  # fmt: skip
    broker = BasketSimBroker(data, start=data["A"].index[2], close_only=True)
    broker.connect()
    broker.next_bar(0), broker.next_bar(0)  # bar 2 closes
    broker.place_order(order("a", "A", 0.5))
    broker.next_bar(0)  # bar 3 closes: the order fills at its close, when it closes
    [fill] = broker.fills()
    assert fill.price == data["A"]["close"].iloc[3] and fill.cost > 0
    assert fill.timestamp == broker.now()
    with pytest.raises(ValueError, match="close-only bars have no volume"):
        BasketSimBroker(data, start=data["A"].index[2], close_only=True,
                        execution=ExecutionModel(impact_coef=0.1))  # fmt: skip
