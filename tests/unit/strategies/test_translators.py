"""Our engine and backtesting.py trade the same targets: same trades, near-equal returns.

Tolerances, and why: backtesting.py trades whole units and sizes an order with its price
raised by the commission, while our engine holds fractional units and pays costs from cash.
So the two accounts hold slightly different quantities: at most one unit (price / leg equity
of the account) plus, with costs, about 2 x commission rate of the position. The gap in
equity can grow by at most that fraction of each bar's return, which gives the bound
``(max price / min equity + 2 x rate) x sum |bar returns|`` asserted below. Resizing a
position (fractional targets) adds the overnight gap: backtesting.py aims at the target at
the decision close, our engine at the fill.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from tests.unit.strategies.synthetic_pairs import template_case

from evotrader.backtest.costs import IBCosts
from evotrader.backtest.engine import run_backtest
from evotrader.data import FeaturePipeline
from evotrader.env import EnvSpec, ExecutionModel
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.runs import SpecRun
from evotrader.strategies.screening import run_backtesting
from evotrader.strategies.spec import Member, RiskParams, StrategySpec, UniverseSpec
from evotrader.strategies.templates import SIGNALS
from evotrader.strategies.validation import run_nautilus

CASH = 10_000_000.0
TRADE_KEYS = ["book", "symbol", "entry_time", "exit_time", "direction", "open_at_end"]
FREE = ExecutionModel(commission_bps=0, half_spread_bps=0, slippage_bps=0)
COSTLY = ExecutionModel(commission_bps=5, half_spread_bps=2, slippage_bps=3)


def _holding_bound(
    data: dict[str, pd.DataFrame], ours: SpecRun, execution: ExecutionModel
) -> float:
    """Largest relative equity gap the unit rounding and commission sizing can explain."""
    legs = ours.units.shape[1]
    bound = 0.0
    for bars in data.values():
        closes = bars["close"].loc[ours.equity.index]
        unit = closes.max() / (ours.equity.min() / legs)
        bound += (unit + 2 * execution.linear_rate) * closes.pct_change().abs().sum()
    return bound


def _assert_same_trades(ours: SpecRun, theirs: SpecRun, at_least: int = 10) -> None:
    assert len(ours.trades) == len(theirs.trades) >= at_least
    pd.testing.assert_frame_equal(ours.trades[TRADE_KEYS], theirs.trades[TRADE_KEYS])
    np.testing.assert_allclose(ours.trades["entry_price"], theirs.trades["entry_price"], rtol=1e-12)
    np.testing.assert_allclose(ours.trades["exit_price"], theirs.trades["exit_price"], rtol=1e-12)
    assert np.array_equal(np.sign(ours.units.to_numpy()), np.sign(theirs.units.to_numpy()))


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_same_trades_and_returns_on_goog_without_costs(goog, fill) -> None:
    spec = StrategySpec.build(
        "trend-following/moving-average-crossover", ["GOOG"], {"fast": 10, "slow": 50}
    )
    execution = ExecutionModel(0, 0, 0, fill=fill)
    ours = run_engine(spec, goog, execution=execution, cash=CASH)
    theirs = run_backtesting(spec, goog, execution=execution, cash=CASH)
    _assert_same_trades(ours, theirs)
    gap = np.abs(ours.equity / theirs.equity - 1).max()
    assert gap <= _holding_bound(goog, ours, execution)
    assert gap < 1e-4  # measured 2.8e-5: one GOOG share in ~$10M
    assert ours.metrics["sharpe"] == pytest.approx(theirs.metrics["sharpe"], abs=1e-4)
    assert ours.fees == theirs.fees == 0.0


def test_same_trades_and_returns_on_goog_with_costs(goog) -> None:
    spec = StrategySpec.build("mean-reversion/rsi-reversion", ["GOOG"])
    ours = run_engine(spec, goog, execution=COSTLY, cash=CASH)
    theirs = run_backtesting(spec, goog, execution=COSTLY, cash=CASH)
    _assert_same_trades(ours, theirs)
    gap = np.abs(ours.equity / theirs.equity - 1).max()
    assert gap <= _holding_bound(goog, ours, COSTLY)
    assert gap < 5e-3  # measured 1.3e-3 over 235 trades
    assert ours.fees == pytest.approx(theirs.fees, rel=5e-3)
    assert ours.fees == pytest.approx(ours.traded_notional * 5e-4)
    assert ours.slippage == pytest.approx(ours.traded_notional * 5e-4)


def test_same_trades_and_returns_for_a_cointegrated_pair(pair_data) -> None:
    universe = UniverseSpec(("A", "B", "C"), kind="cointegrated_pairs")
    spec = StrategySpec.build("pairs/distance-zscore", universe, {"window": 40})
    ours = run_engine(spec, pair_data, execution=COSTLY, cash=CASH)
    theirs = run_backtesting(spec, pair_data, execution=COSTLY, cash=CASH)
    assert ours.books == theirs.books == [("A", "B")]
    _assert_same_trades(ours, theirs)
    assert set(ours.trades["symbol"]) == {"A", "B"}
    pair = {s: pair_data[s] for s in ("A", "B")}
    assert np.abs(ours.equity / theirs.equity - 1).max() <= _holding_bound(pair, ours, COSTLY)


def test_resized_positions_agree_within_the_overnight_gap(goog) -> None:
    spec = StrategySpec.build("volatility/volatility-targeting", ["GOOG"])
    ours = run_engine(spec, goog, execution=FREE, cash=CASH)
    theirs = run_backtesting(spec, goog, execution=FREE, cash=CASH)
    _assert_same_trades(ours, theirs, at_least=5)
    bars = goog["GOOG"]
    targets = ours.units.iloc[:, 0] * bars["close"].loc[ours.equity.index] / ours.equity
    resized = targets.diff().abs().fillna(0.0)
    overnight = (bars["open"].shift(-1) / bars["close"] - 1).abs().loc[ours.equity.index]
    bound = _holding_bound(goog, ours, FREE) + float((resized * overnight).sum())
    gap = np.abs(ours.equity / theirs.equity - 1).max()
    assert gap <= bound
    assert gap < 5e-3  # measured 1.3e-3


def test_bridge_matches_the_engines_run_backtest(goog) -> None:
    """Our bridge and run_backtest (the RL policies' engine) give identical equity."""
    bars = goog["GOOG"]
    spec = StrategySpec.build(
        "breakout/donchian-channel", ["GOOG"], {"entry_window": 20, "exit_window": 10}
    )
    pipeline = FeaturePipeline(features=("log_return",)).fit(bars)
    start = bars.index[pipeline.warmup]
    ours = run_engine(spec, goog, start=start, execution=COSTLY)
    targets = ours.units.iloc[:, 0].to_numpy()  # held per mark: decisions are the next mark's
    positions = (-1.0, 0.0, 1.0)
    decided = np.sign(targets[1:]).astype(int) + 1

    class Replay:
        def __init__(self) -> None:
            self.cursor = 0

        def act(self, observations: np.ndarray) -> np.ndarray:
            batch = decided[self.cursor : self.cursor + len(observations)]
            self.cursor += len(observations)
            return batch

    result = run_backtest(
        Replay(),
        bars,
        pipeline=pipeline,
        start=start,
        spec=EnvSpec(
            window=1,
            positions=positions,
            execution=COSTLY,
            initial_cash=1_000_000.0,
            agent_state=False,
        ),
    )
    np.testing.assert_allclose(result.equity.to_numpy(), ours.equity.to_numpy(), rtol=1e-12)
    assert result.metrics["n_trades"] == ours.metrics["n_trades"]
    np.testing.assert_allclose(result.benchmark_equity, ours.benchmark_equity, rtol=1e-12)
    # run_backtest annualises with bars/year over all bars (history too), we over the traded
    # marks: the same curve, a slightly different periods-per-year
    assert ours.benchmark["sharpe"] == pytest.approx(result.benchmark["sharpe"], rel=1e-4)
    assert ours.metrics["sharpe"] == pytest.approx(result.metrics["sharpe"], rel=1e-4)


@pytest.mark.parametrize("template_id", sorted(SIGNALS))
def test_every_template_trades_identically_in_both_translators(template_id) -> None:
    """Synthetic opens equal the previous close, so only whole-unit rounding separates them."""
    data, symbols = template_case(template_id)
    spec = StrategySpec.build(template_id, symbols)
    ours = run_engine(spec, data, execution=FREE, cash=CASH)
    theirs = run_backtesting(spec, data, execution=FREE, cash=CASH)
    _assert_same_trades(ours, theirs, at_least=1)
    assert np.abs(ours.equity / theirs.equity - 1).max() < 5e-4  # measured <= 1.3e-4


CROSS = "momentum/cross-sectional-momentum"
SLOW_RANKS = Member.build(CROSS, {"lookback": 120, "skip": 10, "top_n": 2, "bottom_n": 1})


@pytest.mark.parametrize(
    "rules",
    [
        {"risk": RiskParams(max_positions=2, trailing_stop=0.03)},
        {"risk": RiskParams(sizing="volatility_target", target_vol=0.1, sizing_window=20)},
        {"risk": RiskParams(sizing="kelly", kelly_cap=0.75, sizing_window=40, stop_loss=0.05)},
        {"members": (SLOW_RANKS,), "combine": "score_rank"},
        {"members": (SLOW_RANKS,), "combine": "equal_weight"},
    ],
    ids=["max-positions-trailing", "volatility-target", "kelly", "score-rank", "equal-weight"],
)
def test_risk_rules_and_combinations_trade_identically_in_all_three_translators(rules) -> None:
    """Risk rules and combinations live in ``spec_targets``, so Nautilus (closes),
    backtesting.py and our engine hold the same sides on a cross-section; sizes differ only
    by whole-unit rounding."""
    data, symbols = template_case(CROSS)
    spec = replace(
        StrategySpec.build(
            CROSS, symbols, {"lookback": 40, "skip": 2, "top_n": 2, "bottom_n": 2, "rebalance": 5}
        ),
        **rules,
    )
    close_fill = ExecutionModel(commission_bps=0, half_spread_bps=0, slippage_bps=0, fill="close")
    ours = run_engine(spec, data, execution=close_fill, cash=CASH)
    theirs = run_backtesting(spec, data, execution=close_fill, cash=CASH)
    nautilus = run_nautilus(spec, data, costs=IBCosts.linear(close_fill), cash=CASH)
    _assert_same_trades(ours, theirs, at_least=5)
    pd.testing.assert_frame_equal(ours.trades[TRADE_KEYS], nautilus.trades[TRADE_KEYS])
    assert np.abs(ours.equity / theirs.equity - 1).max() < 5e-4
    assert np.abs(ours.equity / nautilus.equity - 1).max() < 5e-4
