"""Validation's fill model in NautilusTrader: slippage in the fill price, partial fills under a
bar-volume participation limit, the verdicts they change, and regimes of the held-out window.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.backtest.costs import IBCosts, Liquidity
from evotrader.backtest.nautilus_replay import run_targets
from evotrader.data import generate_synthetic
from evotrader.strategies.settings import ValidationConfig
from evotrader.strategies.spec import StrategySpec
from evotrader.strategies.validation import run_filled, validate

TSMOM = "momentum/time-series-momentum"


def ramp(volume: float, close: list[float] | None = None) -> pd.DataFrame:
    """Eight bars closing at ``close`` (100, 101, ... 107 by default), open at the close."""
    close = np.asarray(close or [100.0 + k for k in range(8)], dtype=np.float64)
    n = close.size
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": volume},
        index=pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=n), name="timestamp"),
    )


# long from bar 1, flat from bar 5; bar 7 only marks
TARGETS = np.array([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])


def fill(bars: pd.DataFrame, liquidity: Liquidity | None, bps: float = 0.0, targets=TARGETS):
    costs = IBCosts(slippage_bps=bps)
    return run_targets(bars, targets, "SYN", costs, 1e5, liquidity=liquidity, sub_penny=True)


def test_a_low_participation_limit_splits_orders_over_the_following_bars() -> None:
    tight = fill(ramp(1000.0), Liquidity(participation=0.1))
    fills = tight.fills
    # 990 shares wanted at 101; 10% of 1000 shares a bar: 100 a bar on bars 1..4, then the
    # exit decided on bar 5 sells the 400 held, 100 a bar on bars 5 and 6; 200 never sell
    assert fills["bar"].tolist() == [1, 2, 3, 4, 5, 6]
    assert fills["units"].tolist() == [100.0, 100.0, 100.0, 100.0, -100.0, -100.0]
    assert fills["decided"].tolist() == [1, 1, 1, 1, 5, 5]
    assert tight.orders["wanted"].tolist() == [990.0, -400.0] and tight.limited
    ample = fill(ramp(1000.0), Liquidity(participation=1.0))
    assert ample.fills["bar"].tolist() == [1, 5]  # each order whole, on its decision's bar
    assert ample.fills["units"].tolist() == [990.0, -990.0]
    unknown = fill(ramp(0.0), Liquidity(participation=0.1))  # no volume: no limit
    assert unknown.fills["units"].tolist() == [990.0, -990.0] and not unknown.limited


def test_fill_prices_carry_the_slippage_on_the_trades_side() -> None:
    bars = ramp(1e6)
    later = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # impact needs 2 returns of history
    fills = fill(bars, None, bps=10.0, targets=later).fills
    close = bars["close"].to_numpy()[fills["bar"].to_numpy()]
    buy, sell = fills["units"].to_numpy() > 0, fills["units"].to_numpy() < 0
    assert buy.any() and sell.any()
    np.testing.assert_allclose(fills["price"][buy], close[buy] * 1.001, rtol=1e-9)
    np.testing.assert_allclose(fills["price"][sell], close[sell] * 0.999, rtol=1e-9)
    choppy = ramp(1e4, [100.0, 104, 99, 105, 100, 106, 101, 107])
    still = fill(choppy, None, 10.0, later).fills
    moved = fill(choppy, Liquidity(participation=1.0, impact_coef=1.0), 10.0, later).fills
    fills = still  # sigma ~5%, an order ~10% of the volume: impact ~1.5% of the price
    assert (moved["price"][buy] > fills["price"][buy]).all()  # impact: further from the close
    assert (moved["price"][sell] < fills["price"][sell]).all()


def test_slippage_in_the_price_costs_what_it_cost_as_a_fee() -> None:
    bars = generate_synthetic(400, seed=3, kind="ar1").bars
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 1})
    costs = IBCosts(slippage_bps=5.0)
    as_fee, _ = run_filled(spec, {"X": bars}, costs=costs, cash=1e5)
    in_price, report = run_filled(spec, {"X": bars}, costs=costs, cash=1e5, slippage="price")
    assert in_price.slippage == pytest.approx(as_fee.slippage, rel=0.02)
    assert in_price.fees == pytest.approx(as_fee.fees, rel=0.02)
    assert report.partial_fill_share == 0.0 and report.orders > 50


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    return generate_synthetic(1500, seed=3, kind="ar1").bars  # 1.2M shares a bar at ~$130


def test_partial_fills_change_the_verdict_the_way_they_should(planted) -> None:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 1})
    start = planted.index[1100]
    ample = validate(spec, {"X": planted}, start=start)
    assert ample.passed, ample.diagnostics["summary"]
    assert ample.diagnostics["partial_fill_share"] == 0.0
    thin = planted.assign(volume=5_000.0)  # 100 shares a bar at 2%: a $100k order takes ~8
    tight = validate(spec, {"X": thin}, start=start, config=ValidationConfig(participation=0.02))
    assert not tight.passed
    assert tight.metrics["sharpe"] < ample.metrics["sharpe"] - 1
    assert tight.diagnostics["capacity"] < ample.diagnostics["capacity"]
    assert "capacity $" in " ".join(tight.diagnostics["failed"])
    assert tight.diagnostics["partial_fill_share"] > 0.3
    assert 0.3 < tight.diagnostics["late_notional_share"] < 1
    assert tight.diagnostics["annual_slippage"] > 0
    assert tight.diagnostics["annual_slippage_bps"] == pytest.approx(
        1e4 * tight.diagnostics["annual_slippage"] / 100_000.0
    )
    assert "orders filled over several bars at 2% of bar volume" in tight.failure_reason
    unlimited = ValidationConfig(participation=None, impact_coef=0.0)
    free = validate(spec, {"X": thin}, start=start, config=unlimited)
    assert free.passed and free.diagnostics["capacity"] == float("inf")


def test_regimes_come_from_the_held_out_window() -> None:
    """A window that is one steady rise is one regime: only bull is judged, and alone it
    is enough; the calendar S&P 500 periods are reported, never judged."""
    rng = np.random.default_rng(0)
    noisy = rng.normal(0.0, 0.02, 600)  # history: a volatile random walk
    steady = np.full(300, 0.004) + rng.normal(0.0, 0.002, 300)  # window: +25% a quarter, calm
    close = 100.0 * np.exp(np.cumsum(np.r_[noisy[:500], np.full(100, 0.004), steady]))
    index = pd.bdate_range("2001-01-01", periods=close.size, name="timestamp")
    bars = pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=index
    )
    spec = StrategySpec.build("trend-following/price-above-moving-average", ["X"])
    result = validate(spec, {"X": bars}, start=index[600])
    window = result.diagnostics["window"]
    assert list(result.regimes) == ["bull"] and result.diagnostics["judged_regimes"] == ["bull"]
    assert result.diagnostics["regime_spans"] == {"bull": [[window["start"], window["end"]]]}
    assert result.regimes["bull"]["bars"] == len(result.equity) == 300
    assert result.diagnostics["positive_regimes"] == ["bull"]
    assert not any("regimes" in f for f in result.diagnostics["failed"])
    assert "in sample, not judged" in " ".join(result.failure_details)
