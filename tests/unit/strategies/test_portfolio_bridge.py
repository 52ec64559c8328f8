"""A cross-sectional spec through the portfolio engine: its targets as one account's weights."""

from __future__ import annotations

import numpy as np
import pytest

from evotrader.backtest.baselines import BUY_AND_HOLD, EQUAL_WEIGHT
from evotrader.data.sources.synthetic_universe import generate_universe
from evotrader.strategies.backtest_bridge import run_engine
from evotrader.strategies.portfolio_bridge import book_weights, compare_as_portfolio
from evotrader.strategies.runs import plan
from evotrader.strategies.spec import Filter, StrategySpec, UniverseSpec

RANKS = {"lookback": 20, "skip": 0, "top_n": 2, "bottom_n": 2, "rebalance": 5}
UNIVERSE = generate_universe(6, 800, seed=4, kind="rotation", strength=0.2).bars
START = UNIVERSE["A0"].index[400]


def _spec(**universe) -> StrategySpec:
    return StrategySpec.build(
        "momentum/cross-sectional-momentum", UniverseSpec(tuple(UNIVERSE), **universe), RANKS
    )


def test_weights_are_the_legs_targets_over_the_leg_count_from_the_start() -> None:
    spec = _spec(filters=(Filter("symbol", "!=", "A5"),))  # five legs of six symbols
    weights = book_weights(spec, UNIVERSE, start=START)
    legs = plan(spec, UNIVERSE, start=START).legs
    assert len(legs) == 5 and (weights["A5"] == 0).all()
    for leg in legs:
        np.testing.assert_array_equal(weights[leg.symbol].to_numpy(), leg.targets / 5)
    assert (weights.loc[: START - np.timedelta64(1, "D")] == 0).all().all()
    assert weights.abs().sum(axis=1).max() <= 1.0 and (weights < 0).any().any()


def test_one_account_tracks_the_sleeves_and_meets_the_same_baselines() -> None:
    spec = _spec()
    comparison = compare_as_portfolio(spec, UNIVERSE, start=START)
    assert set(comparison.results) == {"strategy", EQUAL_WEIGHT, BUY_AND_HOLD}
    portfolio = comparison.results["strategy"]
    sleeves = run_engine(spec, UNIVERSE, start=START, cash=1_000_000.0)
    assert portfolio.equity.index.equals(sleeves.equity.index)
    # the same sides in every symbol at every mark; only the reuse of freed capital differs
    units = sleeves.units.rename(columns=lambda leg: leg.split(":")[1])
    sides = np.sign(portfolio.weights[units.columns].to_numpy())
    assert np.array_equal(sides, np.sign(units.to_numpy())) and sides.any()
    gap = portfolio.metrics["total_return"] - sleeves.metrics["total_return"]
    assert abs(gap) < 0.1 * abs(sleeves.metrics["total_return"])
    assert portfolio.metrics["sharpe"] == pytest.approx(sleeves.metrics["sharpe"], rel=0.1)
    assert portfolio.metrics["sharpe"] > comparison.results[EQUAL_WEIGHT].metrics["sharpe"]


def test_run_backtest_strategy_shows_a_cross_section_as_one_account(tmp_path, caplog) -> None:
    """``run_backtest.py --strategy`` on a registered cross-sectional spec: the sleeve
    backtest against buy-and-hold, then the one-account run against equal weight."""
    from dataclasses import asdict

    import pandas as pd

    from evotrader.env import ExecutionModel
    from evotrader.strategies.registry import SEARCH_META, Registry
    from evotrader.strategies.spec import StrategyResult
    from evotrader.training.backtesting import backtest_strategy

    symbols = ("RANDOM_WALK", "REGIMES", "AR1", "MOMENTUM", "SIGN_SWITCH")
    spec = StrategySpec.build(
        "momentum/cross-sectional-momentum",
        UniverseSpec(symbols, source="synthetic"),
        RANKS | {"top_n": 1, "bottom_n": 1},
    )
    index = pd.bdate_range("2000-01-03", periods=900)
    windows = {"search_end": index[599], "validation_start": index[600]}
    windows |= {"validation_end": index[699], "test_start": index[700], "test_end": index[-1]}
    screened = StrategyResult(
        spec_id=spec.spec_id,
        phase="screen",
        passed=True,
        metrics={"sharpe": 1.0},
        benchmark={"sharpe": 0.5},
        parameters=dict(spec.parameters),
        equity=pd.Series(1.0, index=index[:10], name="equity"),
        trades=pd.DataFrame(),
    )
    with Registry(tmp_path / "strategies.sqlite") as registry:
        registry.set_meta(
            SEARCH_META,
            {
                "windows": {k: v.isoformat() for k, v in windows.items()},
                "data": {"source": "synthetic", "start": None, "options": {"n_bars": 900}},
                "execution": asdict(ExecutionModel()),
                "cash": 100_000.0,
            },
        )
        registry.add_spec(spec)
        registry.record(screened)
    caplog.set_level("INFO")
    written = backtest_strategy(spec.spec_id, tmp_path / "strategies.sqlite", tmp_path, tmp_path)
    names = {path.name for path in written}
    assert f"strategy_{spec.spec_id}_test.json" in names
    assert f"strategy_{spec.spec_id}_test_portfolio.html" in names
    text = caplog.text
    assert "as one account in the portfolio engine (test split, after costs)" in text
    assert "equal weight" in text and "buy & hold" in text
