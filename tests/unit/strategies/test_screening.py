from __future__ import annotations

import itertools

import pandas as pd
import pytest

from evotrader.data import generate_synthetic
from evotrader.data.sources.synthetic_universe import generate_universe
from evotrader.strategies.screening import (
    optimize,
    parameter_grid,
    run_backtesting,
    screen,
    walk_forward,
)
from evotrader.strategies.settings import ScreeningConfig
from evotrader.strategies.spec import RiskParams, StrategySpec, UniverseSpec

FAST = ScreeningConfig(n_folds=3, grid_points=3)
TSMOM = "momentum/time-series-momentum"


@pytest.fixture(scope="module")
def planted() -> dict[str, pd.DataFrame]:
    return {"X": generate_synthetic(1200, seed=3, kind="ar1").bars}


@pytest.fixture(scope="module")
def random_walk() -> dict[str, pd.DataFrame]:
    return {"X": generate_synthetic(1200, seed=3, kind="random_walk").bars}


def test_planted_signal_passes_the_screen(planted) -> None:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 20})
    result = screen(spec, planted, FAST)
    assert result.passed, result.diagnostics["summary"]
    assert result.parameters["lookback"] == 1  # the AR(1) edge lives in the last bar's move
    assert result.metrics["sharpe"] > 2.0
    assert result.failure_reason == "" and result.diagnostics["summary"].startswith("Passed")
    assert result.metrics["sharpe"] > result.benchmark["sharpe"]
    assert set(result.regimes) <= {"bull", "bear", "sideways", "high_vol"}
    assert sum(r["bars"] for r in result.regimes.values()) == len(result.equity)


def test_random_walk_fails_with_an_analysts_reason(random_walk) -> None:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 20})
    result = screen(spec, random_walk, FAST)
    assert not result.passed
    sharpe = result.metrics["sharpe"]
    assert sharpe < 0.5
    assert result.failure_reason.startswith(f"Failed: walk-forward Sharpe {sharpe:.2f} < 0.5")
    assert result.failure_details[0] == f"walk-forward Sharpe {sharpe:.2f} < 0.5"
    assert result.failure_reason == "Failed: " + "; ".join(result.failure_details)
    in_sample = result.diagnostics["in_sample_sharpe"]
    assert in_sample - sharpe > 0.5  # the optimiser found noise in-sample (0.84 vs -0.10)
    assert f"in-sample Sharpe {in_sample:.2f} vs walk-forward {sharpe:.2f}" in result.failure_reason
    assert "lost money before costs too" in result.failure_reason


def test_criteria_are_applied_as_configured() -> None:
    good = {"sharpe": 0.8, "max_drawdown": -0.2, "n_trades": 30.0, "profit_factor": 1.5}
    assert ScreeningConfig().failures(good) == []
    assert ScreeningConfig(min_sharpe=1.0).failures(good) == ["walk-forward Sharpe 0.80 < 1"]
    assert ScreeningConfig(max_drawdown=0.15).failures(good) == ["max drawdown 20.0% >= 15%"]
    assert ScreeningConfig(min_trades=30).failures(good) == ["30 trades, need more than 30"]
    assert ScreeningConfig(min_profit_factor=1.5).failures(good) == ["profit factor 1.50 = 1.5"]
    bad = {"sharpe": 0.21, "max_drawdown": -0.35, "n_trades": 14.0, "profit_factor": 0.9}
    assert len(ScreeningConfig().failures(bad)) == 4
    drift = {"sharpe": 1.1}
    assert ScreeningConfig().failures(good, drift) == [
        "walk-forward Sharpe 0.80 does not beat buy-and-hold's 1.10 on the same bars"
    ]
    assert ScreeningConfig(beat_benchmark=False).failures(good, drift) == []


def test_a_stricter_config_fails_what_the_default_passes(planted) -> None:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 1})
    strict = ScreeningConfig(n_folds=2, grid_points=2, min_sharpe=50.0)
    result = screen(spec, planted, strict)
    assert not result.passed
    assert (
        result.failure_details
        == (f"walk-forward Sharpe {result.metrics['sharpe']:.2f} < 50",)[:1]
        + result.failure_details[1:]
    )
    assert result.diagnostics["config"]["min_sharpe"] == 50.0


@pytest.mark.parametrize(
    "bad", [{"n_folds": 0}, {"max_drawdown": 0.0}, {"min_train_fraction": 1.0}, {"cash": -1.0}]
)
def test_invalid_screening_config_is_rejected(bad) -> None:
    with pytest.raises(ValueError, match="screening"):
        ScreeningConfig(**bad)


def test_grid_stays_in_bounds_and_keeps_the_specs_value() -> None:
    spec = StrategySpec.build(
        "trend-following/moving-average-crossover", ["X"], {"fast": 7, "slow": 30}
    )
    grid = parameter_grid(spec, 3)
    assert grid == {"fast": [2, 7, 51, 100], "slow": [10, 30, 205, 400]}


def test_optimize_respects_constraints_and_returns_the_best_admissible(planted) -> None:
    spec = StrategySpec.build(
        "trend-following/moving-average-crossover", ["X"], {"fast": 7, "slow": 30}
    )
    config = ScreeningConfig(grid_points=3, maximize="Return [%]")
    train = {"X": planted["X"].iloc[:600]}
    best, objective = optimize(spec, train, [("X",)], config)
    assert best["fast"] < best["slow"]
    grid = parameter_grid(spec, 3)
    returns = {
        (fast, slow): run_backtesting(
            spec, train, parameters={"fast": fast, "slow": slow}, cash=config.cash
        ).metrics["total_return"]
        for fast in grid["fast"]
        for slow in grid["slow"]
        if fast < slow
    }
    assert (best["fast"], best["slow"]) == max(returns, key=returns.get)
    assert objective == pytest.approx(100 * max(returns.values()), rel=1e-3)


def test_walk_forward_never_trains_on_its_test_fold(planted) -> None:
    spec = StrategySpec.build(TSMOM, ["X"], {"lookback": 5})
    config = ScreeningConfig(n_folds=3, grid_points=2, embargo=5)
    folds = walk_forward(spec, planted, config)
    index = planted["X"].index
    for fold in folds:
        assert fold.in_sample.equity.index[-1] == fold.train_end
        assert index.get_loc(fold.test_start) - index.get_loc(fold.train_end) == 6  # 5 embargoed
        assert fold.out_of_sample.equity.index[0] == fold.test_start
        assert fold.out_of_sample.equity.index[-1] == fold.test_end
    for earlier, later in itertools.pairwise(folds):
        assert earlier.test_end < later.test_start


def test_pairs_screen_resolves_cointegration_per_fold(pair_data) -> None:
    universe = UniverseSpec(("A", "B", "C"), kind="cointegrated_pairs")
    spec = StrategySpec.build("pairs/distance-zscore", universe)
    # 720 out-of-sample bars of a spread with a ~7-bar half-life: about 8 round trips per leg
    config = ScreeningConfig(n_folds=2, grid_points=2, max_combinations=8, min_trades=10)
    result = screen(spec, pair_data, config)
    assert [fold["books"] for fold in result.diagnostics["folds"]] == [[["A", "B"]], [["A", "B"]]]
    assert set(result.trades["symbol"]) == {"A", "B"}
    assert result.passed, result.diagnostics["summary"]
    assert result.metrics["sharpe"] > 1.0


def test_an_empty_universe_fails_and_says_so(pair_data) -> None:
    universe = UniverseSpec(("A", "C"), kind="cointegrated_pairs")  # two unrelated walks
    spec = StrategySpec.build("pairs/distance-zscore", universe)
    result = screen(spec, pair_data, ScreeningConfig(n_folds=2, grid_points=2))
    assert not result.passed
    assert result.metrics["n_trades"] == 0 and (result.equity == result.equity.iloc[0]).all()
    assert "the universe resolved to no instrument in 2 of 2 folds" in result.failure_details


def test_same_seed_same_screen() -> None:
    data = {"X": generate_synthetic(900, seed=1, kind="regimes").bars}
    spec = StrategySpec.build("factor/multi-factor-composite", ["X"])
    config = ScreeningConfig(n_folds=2, grid_points=2, max_combinations=10)
    assert (
        screen(spec, data, config, seed=4).to_json() == screen(spec, data, config, seed=4).to_json()
    )


CROSS_SECTION = {"lookback": 20, "skip": 0, "top_n": 2, "bottom_n": 2, "rebalance": 5}
CROSS_FAST = ScreeningConfig(n_folds=2, grid_points=2, max_combinations=6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "drift", "parameters", "passes"),
    [
        ("rotation", 0.0, CROSS_SECTION, True),
        ("noise", 0.0, CROSS_SECTION, False),
        ("noise", 0.0008, CROSS_SECTION | {"top_n": 3, "bottom_n": 0}, False),
    ],
    ids=["planted-rotation", "random", "drift-without-timing"],
)
def test_a_planted_cross_sectional_signal_is_found_and_controls_pass_nothing(
    kind, drift, parameters, passes
) -> None:
    """Leaders that persist for a quarter (``rotation``) reward ranking the universe on
    recent returns; independent walks do not, with or without a common drift (a long-only
    top-3 there earns the market's drift, which buy-and-hold earns too)."""
    universe = generate_universe(8, 1000, seed=4, kind=kind, strength=0.2, drift=drift)
    risk = RiskParams(allow_short=parameters["bottom_n"] > 0)
    spec = StrategySpec.build(
        "momentum/cross-sectional-momentum", list(universe.bars), parameters, risk=risk
    )
    result = screen(spec, universe.bars, CROSS_FAST)
    assert result.passed is passes, result.diagnostics["summary"]
    if passes:
        assert result.metrics["sharpe"] > max(3.0, result.benchmark["sharpe"])  # 4.0 vs 2.6
    if drift:  # it may well make money: but no more, per unit of risk, than holding
        assert any("does not beat buy-and-hold" in d for d in result.failure_details)
