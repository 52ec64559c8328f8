from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evotrader.data import generate_synthetic
from evotrader.strategies.auditor import AuditLimits, audit
from evotrader.strategies.spec import RiskParams, StrategyResult, StrategySpec, UniverseSpec
from evotrader.strategies.templates import SIGNALS, SignalCode

BARS = {"X": generate_synthetic(500, seed=9, kind="regimes").bars}
MA = "trend-following/moving-average-crossover"


def _result(spec: StrategySpec, pnl=(5.0, -2.0, 4.0, 3.0), **metrics) -> StrategyResult:
    index = BARS["X"].index
    values = {"sharpe": 1.0, "n_trades": 30.0, "max_drawdown": -0.1} | metrics
    return StrategyResult(
        spec_id=spec.spec_id,
        phase="screen",
        passed=True,
        metrics=values,
        benchmark={"sharpe": 0.3},
        parameters=dict(spec.parameters),
        equity=pd.Series(1e6, index=index),
        trades=pd.DataFrame({"pnl": list(pnl)}),
        diagnostics={"in_sample_sharpe": 1.4},
    )


def _checks(report) -> dict[str, bool]:
    return {check.name: check.passed for check in report.checks}


def test_a_sound_strategy_is_live_ready_with_a_survivorship_note() -> None:
    spec = StrategySpec.build(MA, ["X"], {"fast": 5, "slow": 30})
    report = audit(spec, _result(spec), BARS)
    assert report.passed, report.summary()
    assert set(_checks(report)) == {
        "look-ahead",
        "sharpe gap",
        "minimum trades",
        "drawdown",
        "position concentration",
        "profit concentration",
    }
    assert "survivorship bias" in report.notes[0] and "static universe [X]" in report.notes[0]
    assert report.to_dict()["passed"] is True
    assert report.summary().startswith(f"audit of {spec.spec_id}: live-ready")


def test_a_peeking_template_fails_the_look_ahead_check(monkeypatch) -> None:
    def peeking(bars, *, fast, slow):
        return np.sign(bars["close"].shift(-1) - bars["close"]).fillna(0.0).to_numpy()

    monkeypatch.setitem(SIGNALS, MA, SignalCode(peeking, 1))
    spec = StrategySpec.build(MA, ["X"], {"fast": 5, "slow": 30})
    report = audit(spec, _result(spec), BARS)
    assert not report.passed
    look_ahead = next(c for c in report.checks if c.name == "look-ahead")
    assert not look_ahead.passed and "reads the future" in look_ahead.detail
    assert report.summary().startswith(f"audit of {spec.spec_id}: NOT live-ready")


@pytest.mark.parametrize(
    ("metrics", "limits", "failing", "detail"),
    [
        (
            {"sharpe": 0.2},
            AuditLimits(),
            "sharpe gap",
            "in-sample 1.40 vs walk-forward 0.20 (gap 1.20, limit 1)",
        ),
        ({"n_trades": 12.0}, AuditLimits(), "minimum trades", "12 trades (minimum 20)"),
        ({"max_drawdown": -0.31}, AuditLimits(), "drawdown", "max drawdown 31.0% (limit 30%)"),
        ({}, AuditLimits(max_drawdown=0.05), "drawdown", "max drawdown 10.0% (limit 5%)"),
    ],
)
def test_result_checks_fail_against_their_limits(metrics, limits, failing, detail) -> None:
    spec = StrategySpec.build(MA, ["X"], {"fast": 5, "slow": 30})
    report = audit(spec, _result(spec, **metrics), BARS, limits)
    failed = [c for c in report.checks if not c.passed]
    assert [(c.name, c.detail) for c in failed] == [(failing, detail)]


def test_missing_in_sample_sharpe_fails_the_gap_check() -> None:
    spec = StrategySpec.build(MA, ["X"], {"fast": 5, "slow": 30})
    result = _result(spec)
    result.diagnostics.clear()
    assert not _checks(audit(spec, result, BARS))["sharpe gap"]


def test_concentration_in_one_symbol_and_one_trade() -> None:
    spec = StrategySpec.build(
        MA, ["X"], {"fast": 5, "slow": 30}, risk=RiskParams(position_size=0.5)
    )
    limits = AuditLimits(max_position=0.4, max_trade_share=0.6)
    report = audit(spec, _result(spec, pnl=(80.0, -10.0, 30.0)), BARS, limits)
    failed = {c.name: c.detail for c in report.checks if not c.passed}
    assert failed == {
        "position concentration": "largest position 50% of equity in X (limit 40%)",
        "profit concentration": "best trade made 80% of the net profit (limit 60%)",
    }


def test_pairs_split_capital_and_get_a_candidate_list_note(pair_data) -> None:
    universe = UniverseSpec(("A", "B", "C"), kind="cointegrated_pairs")
    spec = StrategySpec.build("pairs/distance-zscore", universe)
    report = audit(spec, _result(spec), pair_data, AuditLimits(max_position=0.5))
    assert report.passed, report.summary()
    concentration = next(c for c in report.checks if c.name == "position concentration")
    assert concentration.detail.startswith("largest position 50% of equity in")  # half per leg
    assert "fixed candidate list [A, B, C]" in report.notes[0]


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="audit max_drawdown must be positive"):
        AuditLimits(max_drawdown=0.0)
    with pytest.raises(ValueError, match="look_ahead_cuts"):
        AuditLimits(look_ahead_cuts=0)


def test_a_list_fixed_after_the_backtest_starts_fails_unless_accepted() -> None:
    from evotrader.data.sources.synthetic_universe import generate_universe

    bars = generate_universe(4, 1000, seed=1, kind="noise", start="2010-01-04").bars
    data = {"GOOG": bars["A0"], "AAPL": bars["A1"], "MSFT": bars["A2"], "IBM": bars["A3"]}
    spec = StrategySpec.build(
        "momentum/cross-sectional-momentum",
        UniverseSpec.named("embedded_stocks", source="synthetic"),
        {"lookback": 40, "skip": 2, "top_n": 1, "bottom_n": 1, "rebalance": 5},
    )
    failed = audit(spec, _result(spec), data)
    check = next(c for c in failed.checks if c.name == "survivorship")
    assert not check.passed and not failed.passed
    assert (
        "list embedded_stocks is as of 2013-03-01, the backtest starts 2010-01-04" in check.detail
    )
    assert "accept_survivorship=[embedded_stocks]" in check.detail
    accepted = audit(
        spec, _result(spec), data, AuditLimits(accept_survivorship=("embedded_stocks",))
    )
    assert _checks(accepted)["survivorship"] is True
    later = {s: b.loc["2013-06-01":] for s, b in data.items()}
    assert _checks(audit(spec, _result(spec), later))["survivorship"] is True
