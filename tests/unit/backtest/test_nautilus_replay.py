"""Our decisions replayed through NautilusTrader's BacktestEngine: a hand-computed account,
IB-like fees, and the embedded-GOOG comparison with a small checkpoint."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.model.objects import Price, Quantity
from tests.support.threads import torch_threads
from tests.unit.live.helpers import make_checkpoint

from evotrader.backtest.costs import IBCosts
from evotrader.backtest.metrics import periods_per_year
from evotrader.backtest.nautilus_replay import (
    IBFeeModel,
    compare_engines,
    decisions,
    equity_instrument,
    price_decimals,
    replay_in_nautilus,
    replay_in_ours,
    run_targets,
    whole_shares,
)
from evotrader.core.checkpoint import load_checkpoint, save_checkpoint
from evotrader.env import EnvSpec
from evotrader.env.execution import ExecutionModel
from evotrader.training.backtesting import BacktestRequest, backtest
from evotrader.training.guards import TradableCheckpoint

# Nautilus vs our arithmetic, both filling at the close, on the GOOG replay below: the
# commission schedules differ (1 bp of notional vs $0.005 a share, $1 minimum), shares are
# whole in Nautilus. Stated tolerance on the total return, in return units:
CLOSE_FILL_TOLERANCE = 0.015
# ... and once each engine's own commissions are put back, only whole shares remain:
SAME_COSTS_TOLERANCE = 0.001


def small_bars(closes: list[float]) -> pd.DataFrame:
    close = np.asarray(closes, dtype=np.float64)
    return pd.DataFrame(
        {
            "open": close,
            "high": np.round(close * 1.01, 5),
            "low": np.round(close * 0.99, 5),
            "close": close,
            "volume": 1e6,
        },
        index=pd.DatetimeIndex(pd.bdate_range("2024-01-01", periods=len(close)), name="timestamp"),
    )


def test_a_hand_computed_account_in_nautilus() -> None:
    """$100k; long at 100, hold, flat at 120, short at 100, marked at 90. $0.01 a share."""
    bars = small_bars([100.0, 110.0, 120.0, 100.0, 90.0])
    costs = IBCosts(per_share=0.01, minimum=1.0, slippage_bps=0.0)
    run = replay_in_nautilus(
        bars,
        np.array([1.0, 1.0, 0.0, -1.0]),
        "SYN",
        initial_cash=100_000.0,
        periods_per_year=252.0,
        costs=costs,
    )
    # 1000 shares at 100 ($10); sold at 120 ($10); 1199 shares short at 100 ($11.99);
    # marked at each close before its fills, so a trade's costs show at the next mark
    expected = [100_000.0, 109_990.0, 119_990.0, 119_980.0, 131_958.01]
    np.testing.assert_allclose(run.equity.to_numpy(), expected, atol=1e-6)
    assert run.fills["units"].tolist() == [1000.0, -1000.0, -1199.0]
    assert run.fills["cost"].tolist() == pytest.approx([10.0, 10.0, 11.99])
    assert run.account_equity == pytest.approx(expected[-1], abs=1e-6)
    assert run.metrics["n_trades"] == 2 and run.metrics["total_return"] == pytest.approx(0.3195801)
    weights = [0.0, 1000 * 100 / 99_990, 1000 * 110 / 109_990, 0.0, -1199 * 100 / 119_968.01]
    np.testing.assert_allclose(run.positions.to_numpy(), weights)  # held over each bar

    ours = replay_in_ours(
        bars,
        np.array([1.0, 1.0, 0.0, -1.0]),
        ExecutionModel(commission_bps=0, half_spread_bps=0, slippage_bps=0, fill="close"),
        initial_cash=100_000.0,
        periods_per_year=252.0,
    )
    np.testing.assert_allclose(ours.equity, [100_000.0, 110_000.0, 120_000.0, 120_000.0, 132_000.0])
    assert ours.metrics["n_trades"] == run.metrics["n_trades"]


def test_prices_keep_their_decimals() -> None:
    """FX-like quotes are not rounded to cents: fills land exactly on the closes."""
    bars = small_bars([1.12345, 1.13012, 1.12871, 1.13555])
    assert price_decimals(bars) == 5 and price_decimals(small_bars([100.0, 101.0])) == 2
    run = replay_in_nautilus(
        bars,
        np.array([1.0, 0.0, 1.0]),
        "EURUSD",
        initial_cash=100_000.0,
        periods_per_year=252.0,
        costs=IBCosts(slippage_bps=0.0),
    )
    np.testing.assert_array_equal(run.fills["price"], bars["close"].iloc[[0, 1, 2]])


def test_ib_fees_have_a_minimum_and_a_cap() -> None:
    fees = IBFeeModel(IBCosts(per_share=0.005, minimum=1.0, maximum_rate=0.01))
    stock = equity_instrument("SYN")

    def fee(shares: int, price: str) -> float:
        return fees.get_commission(None, Quantity.from_int(shares), Price.from_str(price), stock)

    assert fee(100, "50.00").as_double() == 1.0  # $0.50 is below the minimum
    assert fee(1000, "50.00").as_double() == 5.0
    assert fee(10, "1.00").as_double() == 0.1  # capped at 1% of $10


def test_slippage_as_a_fee_is_charged_on_top_of_the_commission() -> None:
    """Validation's mode: fill prices stay the closes, 2 bp of notional join the fee."""
    fees = IBFeeModel(IBCosts(slippage_bps=2.0), slippage="fee")
    stock = equity_instrument("SYN")
    fee = fees.get_commission(None, Quantity.from_int(1000), Price.from_str("50.00"), stock)
    assert fee.as_double() == pytest.approx(5.0 + 10.0)


def test_one_share_rounding_rule_truncates_towards_zero() -> None:
    """Whole shares, never more exposure than the target, longs and shorts alike."""
    assert whole_shares(1.0, 119_980.0, 100.0) == 1199.0
    assert whole_shares(-1.0, 119_980.0, 100.0) == -1199.0
    assert whole_shares(0.5, 1000.0, 3.0) == 166.0  # 166.67: rounding would buy 167
    assert whole_shares(1.0, 99.0, 100.0) == 0.0


def test_replay_and_validation_share_one_engine_path(monkeypatch) -> None:
    """Both NautilusTrader users go through ``run_targets`` with the one cost model."""
    from evotrader.backtest import nautilus_replay
    from evotrader.strategies import validation
    from evotrader.strategies.spec import StrategySpec

    calls: list[str] = []

    def spy(*args, **kwargs):
        calls.append(kwargs.get("slippage", "price"))
        return run_targets(*args, **kwargs)

    monkeypatch.setattr(nautilus_replay, "run_targets", spy)
    monkeypatch.setattr(validation, "run_targets", spy)
    bars = small_bars([100.0, 110.0, 120.0, 100.0, 90.0])
    replay_in_nautilus(
        bars,
        np.array([1.0, 1.0, 0.0, -1.0]),
        "SYN",
        initial_cash=1e5,
        periods_per_year=252.0,
        costs=IBCosts(),
    )
    spec = StrategySpec.build("momentum/time-series-momentum", ["SYN"], {"lookback": 1})
    validation.run_nautilus(spec, {"SYN": small_bars([100.0 + k % 3 for k in range(30)])})
    assert calls == ["price", "fee"]


def test_bad_replays_are_refused() -> None:
    bars = small_bars([100.0, 101.0, 102.0])
    with pytest.raises(ValueError, match="one target per bar but the last \\(2\\), got 3"):
        replay_in_ours(bars, np.ones(3), ExecutionModel(), initial_cash=1e5, periods_per_year=252)
    with pytest.raises(ValueError, match="NaN or infinite"):
        replay_in_ours(
            bars, np.array([1.0, np.nan]), ExecutionModel(), initial_cash=1e5, periods_per_year=252
        )
    with pytest.raises(ValueError, match="minimum must be finite and >= 0"):
        IBCosts(minimum=-1.0)
    with pytest.raises(ValueError, match="slippage_bps must be finite and >= 0"):
        IBCosts(slippage_bps=-2.0)
    with pytest.raises(ValueError, match="slippage_bps must be in"):
        IBCosts(slippage_bps=1e4)


@pytest.fixture(scope="module")
def goog(tmp_path_factory):
    with torch_threads(1):  # a small policy, one observation a bar
        path = make_checkpoint(tmp_path_factory.mktemp("goog") / "GOOG_stage_1_ppo.pth", seed=3)
        checkpoint = load_checkpoint(path)
        tradable = TradableCheckpoint.of(checkpoint, "checkpoint")
        bars = tradable.bars()
        return checkpoint, bars, tradable.backtest(bars)


def test_goog_decisions_trade_alike_in_nautilus_and_ours(goog) -> None:
    checkpoint, bars, result = goog
    env = EnvSpec.from_dict(checkpoint.env)
    execution = env.execution
    ppy = periods_per_year(result.equity.index)  # the reported period, as the engine annualises
    random.seed(11)
    untouched = random.random()
    random.seed(11)
    runs = compare_engines(
        result, bars, "GOOG", execution, initial_cash=env.initial_cash, periods_per_year=ppy
    )
    assert random.random() == untouched  # no global RNG leaks from Nautilus's fill model
    ours, at_close, nautilus = (
        runs["ours (next open)"],
        runs["ours (close)"],
        runs["nautilus (close)"],
    )

    # Our replay of the decisions is the backtest itself.
    pd.testing.assert_series_equal(ours.equity, result.equity)
    assert ours.metrics == result.metrics

    # Same decisions, same trades, in every engine.
    trades = result.metrics["n_trades"]
    assert trades > 20
    assert at_close.metrics["n_trades"] == nautilus.metrics["n_trades"] == trades
    assert len(nautilus.fills) == len(at_close.fills) == len(ours.fills)
    sides = np.sign(nautilus.fills["units"].to_numpy())
    np.testing.assert_array_equal(sides, np.sign(ours.fills["units"].to_numpy()))

    # Nautilus fills at the decision bar's close, moved 2 bp (half-spread + slippage) against
    # the order, in whole shares, with IBKR Fixed commissions.
    close = bars.loc[nautilus.fills.index, "close"].to_numpy()
    slipped = close * (1 + 2e-4 * np.sign(nautilus.fills["units"].to_numpy()))
    np.testing.assert_allclose(nautilus.fills["price"], slipped, atol=0.005 + 1e-9)
    shares = nautilus.fills["units"].abs().to_numpy()
    assert (shares == np.round(shares)).all()
    np.testing.assert_allclose(nautilus.fills["cost"], np.maximum(0.005 * shares, 1.0), atol=0.005)
    assert nautilus.account_equity == pytest.approx(nautilus.equity.iloc[-1], abs=0.01)

    # Returns agree within the stated tolerances once fill timing is the same.
    gap = nautilus.metrics["total_return"] - at_close.metrics["total_return"]
    assert abs(gap) < CLOSE_FILL_TOLERANCE
    notional = (at_close.fills["units"].abs() * at_close.fills["price"]).sum()
    commissions = {
        "ours": execution.commission_bps / 1e4 * notional,
        "nautilus": nautilus.fills["cost"].sum(),
    }
    put_back = (nautilus.equity.iloc[-1] + commissions["nautilus"]) - (
        at_close.equity.iloc[-1] + commissions["ours"]
    )
    assert abs(put_back) / env.initial_cash < SAME_COSTS_TOLERANCE
    np.testing.assert_allclose(nautilus.positions != 0, at_close.positions != 0)


def test_decisions_are_what_was_held_over_the_next_bar(goog) -> None:
    _, _, result = goog
    targets = decisions(result)
    assert len(targets) == len(result.equity) - 1
    np.testing.assert_array_equal(targets, result.positions.to_numpy()[1:])
    assert set(np.unique(targets)) <= {-1.0, 0.0, 1.0}


def test_the_backtest_report_shows_the_engines_side_by_side(goog, tmp_path: Path, caplog) -> None:
    checkpoint, _, _ = goog
    path = save_checkpoint(checkpoint, tmp_path / "GOOG_stage_1_ppo.pth")
    caplog.set_level(logging.INFO, logger="evotrader")
    with torch_threads(1):
        backtest(BacktestRequest(checkpoint=path, engine="nautilus"))
    out = "\n".join(record.getMessage() for record in caplog.records)
    header = next(line for line in out.splitlines() if "nautilus (close)" in line)
    assert header.split() == [
        "ours",
        "(next",
        "open)",
        "ours",
        "(close)",
        "nautilus",
        "(close)",
        "buy",
        "&",
        "hold",
    ]
    assert "Fill timing" in out
    page = (tmp_path / "GOOG_stage_1_ppo_test_report.html").read_text()
    assert "nautilus (close)" in page and "ours (close)" in page
