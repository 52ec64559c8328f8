from __future__ import annotations

import numpy as np
import pandas as pd

from evotrader.data import generate_synthetic
from evotrader.strategies import diagnostics

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
