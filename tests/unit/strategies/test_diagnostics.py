from __future__ import annotations

import numpy as np
import pandas as pd

from evotrader.data import generate_synthetic
from evotrader.strategies import diagnostics
from evotrader.strategies.spec import StrategyResult, StrategySpec

INDEX = pd.DatetimeIndex(pd.bdate_range("2020-01-01", periods=120), name="timestamp")


def _trades(exits: list[str], pnl: list[float]) -> pd.DataFrame:
    exit_times = pd.to_datetime(exits)
    return pd.DataFrame(
        {"entry_time": exit_times - pd.Timedelta(days=3), "exit_time": exit_times, "pnl": pnl}
    )


def test_losses_clustered_in_a_sell_off_are_named_with_dates() -> None:
    benchmark = pd.Series(100.0, index=INDEX)
    benchmark["2020-02-20":"2020-03-23"] = np.linspace(
        100, 67, len(benchmark["2020-02-20":"2020-03-23"])
    )
    benchmark["2020-03-24":] = np.linspace(68, 90, len(benchmark["2020-03-24":]))
    trades = _trades(
        ["2020-01-15", "2020-02-25", "2020-03-02", "2020-03-10", "2020-03-20", "2020-05-01"],
        [50.0, -10.0, -20.0, -30.0, -40.0, -5.0],
    )
    notes = diagnostics._loss_clusters(trades, benchmark)
    assert notes == [
        "4 of 5 losing trades came in the 2020-02-20..2020-03-23 sell-off (buy & hold -33.0%)"
    ]


def test_losses_clustered_in_one_year_are_named() -> None:
    benchmark = pd.Series(
        np.linspace(100, 120, 3), index=pd.to_datetime(["2018-01-02", "2019-06-03", "2020-12-31"])
    )
    trades = _trades(
        ["2018-03-01", "2019-02-01", "2019-05-01", "2019-07-01", "2020-01-03"],
        [-1.0, -2, -3, -4, -5],
    )
    assert diagnostics._loss_clusters(trades, benchmark) == ["3 of 5 losing trades came in 2019"]


def test_regime_results_split_returns_and_trades_by_regime() -> None:
    index = INDEX[:6]
    equity = pd.Series([100, 110, 99, 99, 108.9, 108.9], index=index)
    benchmark = pd.Series([100, 100, 100, 100, 100, 120.0], index=index)
    labels = pd.Series(["bull", "bull", "bear", "bear", "bull", "bear"], index=index)
    trades = _trades([str(index[2].date()), str(index[4].date())], [-11.0, 9.9])
    results = diagnostics.regime_results(equity, benchmark, trades, labels)
    assert (
        results["bull"]["return"] == 0.21000000000000019
        or abs(results["bull"]["return"] - 0.21) < 1e-12
    )
    assert abs(results["bear"]["return"] - (-0.1)) < 1e-12
    assert abs(results["bear"]["benchmark_return"] - 0.2) < 1e-12
    assert (results["bear"]["trades"], results["bear"]["losing_trades"]) == (1.0, 1.0)
    assert (results["bull"]["trades"], results["bull"]["losing_trades"]) == (1.0, 0.0)
    assert results["bull"]["bars"] + results["bear"]["bars"] == 6


def test_regime_labels_track_the_generating_regimes() -> None:
    synthetic = generate_synthetic(3000, seed=1, kind="regimes", vol=0.01)
    labels = diagnostics.label_regimes(synthetic.bars["close"])
    truth = synthetic.regimes.to_numpy()
    flagged = labels.to_numpy() == "high_vol"
    assert (truth[flagged] == "high_vol").mean() > 0.6
    bull, bear = labels.to_numpy() == "bull", labels.to_numpy() == "bear"
    assert (truth[bull] == "bull").mean() > (truth[bull] == "bear").mean()
    assert (truth[bear] == "bear").mean() > (truth[bear] == "bull").mean()


def test_findings_name_costs_overfitting_instability_and_exposure() -> None:
    trades = _trades(["2020-01-10", "2020-02-10", "2020-03-10"], [30.0, -10.0, 20.0])
    summary = {"sharpe": 0.2, "exposure": 0.05}
    notes = diagnostics.findings(
        summary,
        {"sharpe": 0.6},
        trades,
        pd.Series(100.0, index=INDEX),
        {},
        fees=20.0,
        slippage=10.0,
        in_sample_sharpe=1.9,
        fold_sharpes=[1.1, -0.35],
    )
    assert notes == [
        "costs (fees 20, slippage 10) took 43% of the gross profit",
        "in-sample Sharpe 1.90 vs walk-forward 0.20: the optimised parameters did not carry over",
        "walk-forward Sharpe by fold 1.10, -0.35: the edge is not stable",
        "in the market only 5% of the time",
        "buy & hold made Sharpe 0.60 on the same bars",
    ]


# --- the generator's diagnosis ----------------------------------------------------------------

SPEC = StrategySpec.build("momentum/time-series-momentum", ["X"])
CLEAN = {
    "sharpe": 1.2,
    "max_drawdown": -0.1,
    "n_trades": 40.0,
    "profit_factor": 1.6,
    "total_return": 0.3,
    "exposure": 0.5,
    "turnover": 4.0,
}
BULL_BEAR = {
    "bull": {"bars": 120.0, "return": 0.1, "benchmark_return": 0.2, "sharpe": 0.9,
             "trades": 10.0, "losing_trades": 3.0},
    "bear": {"bars": 80.0, "return": -0.15, "benchmark_return": -0.3, "sharpe": -1.0,
             "trades": 12.0, "losing_trades": 9.0},
}  # fmt: skip


def result(
    passed: bool = False,
    pnl: tuple[float, ...] = (500.0, -100.0, 400.0),
    fees: float = 50.0,
    slippage: float = 50.0,
    regimes: dict | None = None,
    extra: dict | None = None,
    **metrics: float,
) -> StrategyResult:
    return StrategyResult(
        spec_id=SPEC.spec_id,
        phase="screen",
        passed=passed,
        metrics=CLEAN | metrics,
        benchmark={"sharpe": 0.5, "total_return": 0.2},
        parameters=dict(SPEC.parameters),
        equity=pd.Series([1.0, 1.1], index=INDEX[:2]),
        trades=pd.DataFrame({"pnl": list(pnl)}),
        regimes=regimes or {},
        fees=fees,
        slippage=slippage,
        diagnostics=extra or {},
    )


def problems(res: StrategyResult) -> list[str]:
    return [d.problem for d in diagnostics.diagnose(res, min_trades=20, max_drawdown=0.3)]


def test_a_clean_pass_has_nothing_to_diagnose() -> None:
    assert diagnostics.diagnose(result(passed=True), 20, 0.3) == []


def test_a_failure_with_no_rule_still_gets_a_direction() -> None:
    found = diagnostics.diagnose(result(), 20, 0.3)
    assert [d.problem for d in found] == [
        "no single cause stands out: Sharpe 1.20, profit factor 1.60"
    ]
    assert found[0].directions == ("another template family on the same universe",)


def test_few_trades_rare_exposure_and_a_deep_drawdown() -> None:
    found = problems(result(n_trades=6.0, exposure=0.04, max_drawdown=-0.42))
    assert found == [
        "too few trades: 6, fewer than the 20 a Sharpe needs to mean anything",
        "rarely in the market: 4% of the bars",
        "drawdown 42.0% beyond the 30% limit",
    ]


def test_costs_that_ate_the_edge_and_no_edge_before_costs() -> None:
    # net 800 + costs 1,200 = gross 2,000: costs took 60%
    ate = problems(result(fees=900.0, slippage=300.0))
    assert ate == [
        "costs ate the edge: fees 900 and slippage 300 took 60% of the gross profit 2,000 "
        "(turnover 4.0x a year)"
    ]
    assert problems(result(pnl=(-300.0, 100.0))) == ["no edge before costs: gross P&L -100"]
    assert problems(result(fees=100.0, slippage=100.0)) == [  # 20%: not the cause
        "no single cause stands out: Sharpe 1.20, profit factor 1.60"
    ]


def test_the_drift_of_buy_and_hold_and_one_regimes_drawdown() -> None:
    found = problems(result(exposure=0.95, sharpe=0.55, regimes=BULL_BEAR))
    assert found == [
        "the edge is the drift of buy-and-hold: in the market 95% of the time, Sharpe 0.55 vs "
        "buy & hold 0.50",
        "the drawdown comes from one regime: -15.0% in bear, 1 of 2 regimes positive",
    ]
    both_lose = {k: v | {"return": -0.1} for k, v in BULL_BEAR.items()}
    assert problems(result(regimes=both_lose))[0].startswith("no single cause")


def test_instability_overfitting_partial_fills_and_slippage() -> None:
    extra = {
        "folds": [{"oos_sharpe": 1.4}, {"oos_sharpe": -0.6}],
        "in_sample_sharpe": 2.1,
        "partial_fill_share": 0.3,
        "annual_slippage_bps": 75.0,
    }
    found = diagnostics.diagnose(result(extra=extra), 20, 0.3)
    assert [d.problem for d in found] == [
        "the edge is not stable: walk-forward Sharpe by fold 1.40, -0.60",
        "overfitted: in-sample Sharpe 2.10 vs walk-forward 1.20",
        "30% of orders filled only in part: orders too large for the bars' volume",
        "slippage costs 75 bps a year",
    ]
    directions = diagnostics.suggested_directions(found)
    assert directions[:2] == [
        "a longer lookback and fewer tuned parameters",
        "a more robust template of the same idea",
    ]
    assert len(directions) == len(set(directions)) and "a smaller position size" in directions


def test_regime_table_and_cost_figures_lay_out_the_evidence() -> None:
    table = diagnostics.regime_table(BULL_BEAR)
    assert table == [
        "regime      bars   return      B&H  Sharpe trades",
        "bull         120    10.0%    20.0%    0.90  10 (3 lost)",
        "bear          80   -15.0%   -30.0%   -1.00  12 (9 lost)",
    ]
    assert diagnostics.regime_table({}) == []
    assert diagnostics.cost_figures(result()) == (
        "fees 50, slippage 50 (11% of the gross profit 900); turnover 4.0x a year"
    )
    fills = {"partial_fill_share": 0.25, "annual_slippage": 4_321.0, "annual_slippage_bps": 12.0}
    assert diagnostics.cost_figures(result(extra=fills)).endswith(
        "; partial fills 25% of orders; annual slippage 4,321 (12 bps)"
    )
