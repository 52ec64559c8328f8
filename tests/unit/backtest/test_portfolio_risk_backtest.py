"""run_portfolio(risk=...): every target passes the same portfolio check a basket bot uses,
on returns up to its decision bar, before it fills; the adjustments are recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evotrader.backtest.baselines import compare_with_baselines
from evotrader.backtest.portfolio import History, PortfolioSettings, run_portfolio
from evotrader.data import generate_synthetic
from evotrader.risk import PortfolioRisk, Preferences
from evotrader.risk.portfolio import LIMITS

REPO = Path(__file__).resolve().parents[3]
RAW = yaml.safe_load((REPO / "configs" / "preferences.yaml").read_text())
SYMBOLS = ["S0", "S1", "S2", "S3"]


def _universe(n_bars: int = 260) -> dict[str, pd.DataFrame]:
    return {
        symbol: generate_synthetic(n_bars, seed=i, kind="random_walk", vol=0.01 * (i + 1)).bars
        for i, symbol in enumerate(SYMBOLS)
    }


def _risk(**changes: Any) -> PortfolioRisk:
    return PortfolioRisk(Preferences.from_dict(RAW | {"allowed_instruments": SYMBOLS} | changes))


def _all_in_first(history: History) -> np.ndarray:
    """Everything in S0: a concentrated book for the per-asset cap to clip."""
    return np.array([1.0, 0.0, 0.0, 0.0])


def _equal(history: History) -> np.ndarray:
    return np.full(4, 0.25)


def test_risk_clips_every_target_before_it_fills_and_counts_it() -> None:
    universe = _universe()
    result = run_portfolio(_all_in_first, universe, risk=_risk(max_position_pct=40.0))
    decisions = len(result.targets)
    assert decisions > 3
    assert np.allclose(result.targets["S0"], 0.4) and (result.weights["S0"] < 0.45).all()
    assert result.metrics["risk_asset_weight"] == decisions
    assert result.metrics["risk_adjusted_decisions"] == decisions
    assert all(result.metrics[f"risk_{limit}"] == 0 for limit in LIMITS if limit != "asset_weight")
    assert list(result.risk["limit"].unique()) == ["asset_weight"]
    assert list(result.risk["timestamp"]) == list(result.targets.index)
    assert any(
        note.startswith(f"risk: {decisions} of {decisions} targets") for note in result.notes
    )
    free = run_portfolio(_all_in_first, universe)
    assert free.metrics["exposure"] > result.metrics["exposure"] * 2


def test_without_risk_nothing_changes_and_nothing_is_recorded() -> None:
    universe = _universe()
    plain = run_portfolio(_equal, universe)
    lax = run_portfolio(_equal, universe, risk=_risk())  # the shipped limits: equal weight fits
    pd.testing.assert_series_equal(plain.equity, lax.equity)
    assert plain.risk.empty and lax.risk.empty
    assert not any(key.startswith("risk_") for key in plain.metrics)
    assert lax.metrics["risk_adjusted_decisions"] == 0


def test_the_backtest_applies_exactly_the_checker_on_history_up_to_each_decision() -> None:
    universe = _universe()
    risk = _risk(max_var_pct=1.0, max_cluster_weight=0.4, risk_lookback=60)
    result = run_portfolio(_equal, universe, PortfolioSettings(rebalance="weekly"), risk=risk)
    closes = pd.DataFrame({s: universe[s]["close"] for s in SYMBOLS})
    for when, approved in result.targets.iterrows():
        history = closes.loc[:when].pct_change().iloc[1:]  # only what was known at the close
        check = risk.check(pd.Series(0.25, index=SYMBOLS), history, when)
        assert np.allclose(approved.to_numpy(), check.approved.to_numpy())
    early = result.targets.index < closes.index[60]
    assert (result.targets[early] == 0).all().all()  # under 60 returns: not measurable, cash
    assert result.metrics["risk_history"] == early.sum() > 0
    assert result.metrics["risk_var"] + result.metrics["risk_cluster"] > 0


def test_risk_decisions_ignore_prices_after_the_decision() -> None:
    universe = _universe()
    risk = _risk(max_var_pct=0.8, max_cvar_pct=1.0, risk_lookback=60)
    settings = PortfolioSettings(rebalance="weekly")
    before = run_portfolio(_equal, universe, settings, risk=risk)
    cut = universe["S0"].index[200]
    crashed = {s: frame.copy() for s, frame in universe.items()}
    for frame in crashed.values():
        frame.loc[frame.index > cut, ["open", "high", "low", "close"]] *= 0.5
    after = run_portfolio(_equal, crashed, settings, risk=risk)
    known = before.targets.index <= cut
    pd.testing.assert_frame_equal(before.targets[known], after.targets[known])
    assert not before.targets[~known].equals(after.targets[~known])  # the check does read bars


def test_baselines_face_the_same_limits_as_the_policy() -> None:
    universe = _universe()
    baselines = {"equal weight": _equal}
    risk = _risk(max_position_pct=20.0)
    comparison = compare_with_baselines(
        _all_in_first, universe, start="2000-06-01", baselines=baselines, risk=risk
    )
    for result in comparison.results.values():
        assert (result.targets.abs() <= 0.2 + 1e-12).all().all()
    assert comparison.results["equal weight"].metrics["risk_asset_weight"] > 0
    assert "risk_asset_weight" in comparison.table.index
    free = compare_with_baselines(_all_in_first, universe, start="2000-06-01", baselines=baselines)
    assert (free.results["equal weight"].targets == 0.25).all().all()
