"""Portfolio risk: each limit binds when it should and only then, approved weights never break
an enabled limit, and VaR/CVaR read returns up to the decision bar only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from evotrader.risk import PortfolioRisk, PortfolioRiskError, Preferences
from evotrader.risk.portfolio import correlation_clusters, tail_losses

REPO = Path(__file__).resolve().parents[3]
RAW = yaml.safe_load((REPO / "configs" / "preferences.yaml").read_text())
SYMBOLS = ["A", "B", "C", "D"]


def _prefs(**changes: Any) -> Preferences:
    return Preferences.from_dict(RAW | {"allowed_instruments": SYMBOLS} | changes)


def _returns(n: int = 300, seed: int = 0, clustered: bool = True) -> pd.DataFrame:
    """A and B share one factor (a planted cluster, correlation about 0.96) unless
    ``clustered`` is False (the control: four independent assets)."""
    rng = np.random.default_rng(seed)
    factor = rng.normal(0.0, 0.01, n) if clustered else np.zeros(n)
    noise = rng.normal(0.0, 0.002 if clustered else 0.01, (n, 4))
    values = noise + np.column_stack([factor, factor, np.zeros(n), np.zeros(n)])
    values[:, 2:] = rng.normal(0.0, 0.01, (n, 2))
    return pd.DataFrame(values, columns=SYMBOLS, index=pd.bdate_range("2020-01-01", periods=n))


def _targets(*weights: float) -> pd.Series:
    return pd.Series(weights, index=SYMBOLS, dtype=float)


def _check(prefs: Preferences, targets: pd.Series, returns: pd.DataFrame | None = None) -> Any:
    returns = _returns() if returns is None else returns
    return PortfolioRisk(prefs).check(targets, returns, returns.index[-1])


def test_the_shipped_limits_leave_a_fully_invested_long_book_untouched() -> None:
    targets = _targets(0.4, 0.3, 0.2, 0.1)
    check = _check(_prefs(), targets)
    assert not check.adjusted
    pd.testing.assert_series_equal(check.approved, targets, check_names=False)
    assert check.var_pct is None  # no history limit on: nothing measured


def test_each_asset_is_clipped_to_its_cap_keeping_its_sign() -> None:
    prefs = _prefs(max_position_pct=30.0, max_leverage=2.0)
    check = _check(prefs, _targets(0.5, -0.45, 0.3, 0.1))
    assert check.approved.tolist() == pytest.approx([0.3, -0.3, 0.3, 0.1])
    assert [(a.limit, a.symbols, a.value) for a in check.adjustments] == [
        ("asset_weight", ("A",), 0.5),
        ("asset_weight", ("B",), -0.45),
    ]
    assert not _check(prefs, _targets(0.3, -0.3, 0.3, 0.1)).adjusted  # at the cap is within


def test_beyond_max_positions_the_smallest_targets_are_dropped() -> None:
    prefs = _prefs(max_positions=2)
    check = _check(prefs, _targets(0.1, 0.4, 0.05, 0.3))
    assert check.approved.tolist() == [0.0, 0.4, 0.0, 0.3]
    (note,) = check.adjustments
    assert (note.limit, note.symbols, note.value, note.cap) == ("positions", ("A", "C"), 4, 2)
    assert not _check(prefs, _targets(0.0, 0.4, 0.0, 0.3)).adjusted


def test_gross_and_net_exposure_scale_the_whole_book_by_the_binding_limit() -> None:
    targets = _targets(0.6, -0.5, 0.3, 0.2)  # gross 1.6, net 0.6
    gross_only = _check(_prefs(max_leverage=1.0), targets)
    assert gross_only.approved.tolist() == pytest.approx((targets / 1.6).tolist())
    assert [a.limit for a in gross_only.adjustments] == ["gross"]
    both = _check(_prefs(max_leverage=1.0, max_net_exposure=0.3), targets)
    assert both.approved.tolist() == pytest.approx((targets * 0.5).tolist())  # net binds
    assert [a.limit for a in both.adjustments] == ["gross", "net"]
    assert not _check(_prefs(max_leverage=2.0, max_net_exposure=0.6), targets).adjusted


def test_a_planted_correlation_cluster_is_found_and_an_independent_universe_has_none() -> None:
    history = _returns().to_numpy()
    labels = correlation_clusters(history, 0.7)
    assert labels[0] == labels[1] and len(set(labels)) == 3
    control = correlation_clusters(_returns(clustered=False).to_numpy(), 0.7)
    assert len(set(control)) == 4
    coarser = correlation_clusters(history, 0.01)  # a lower threshold only merges clusters
    assert len(set(coarser)) <= len(set(labels))


def test_an_over_weight_cluster_is_scaled_down_alone() -> None:
    prefs = _prefs(max_cluster_weight=0.5, risk_lookback=250)
    targets = _targets(0.4, 0.3, 0.2, 0.1)
    check = _check(prefs, targets)
    assert check.approved.tolist() == pytest.approx([0.5 * 4 / 7, 0.5 * 3 / 7, 0.2, 0.1])
    (note,) = check.adjustments
    assert (note.limit, note.symbols) == ("cluster", ("A", "B"))
    assert note.value == pytest.approx(0.7)
    assert not _check(prefs, targets, _returns(clustered=False)).adjusted  # the control
    assert not _check(_prefs(max_cluster_weight=0.5, cluster_correlation=0.999), targets).adjusted


def test_tail_losses_follow_their_definition() -> None:
    pnl = np.array([0.01] * 16 + [-0.01, -0.02, -0.03, -0.05])
    var, cvar = tail_losses(pnl, 0.9)  # worst ceil(0.1 * 20) = 2 losses: 0.05 and 0.03
    assert (var, cvar) == pytest.approx((0.03, 0.04))
    assert tail_losses(pnl * 2, 0.9) == pytest.approx((0.06, 0.08))  # linear in the book
    assert tail_losses(pnl, 0.95) == pytest.approx((0.05, 0.05))
    assert tail_losses(np.full(20, 0.01), 0.95)[0] < 0  # a tail of gains is no loss


@pytest.mark.parametrize("limit", ["max_var_pct", "max_cvar_pct"])
def test_var_and_cvar_limits_scale_the_book_to_exactly_their_cap(limit: str) -> None:
    targets = _targets(0.4, 0.3, 0.2, 0.1)
    measured = _check(_prefs(max_var_pct=100.0, max_cvar_pct=100.0), targets)
    figure = measured.var_pct if limit == "max_var_pct" else measured.cvar_pct
    assert figure is not None and figure > 0
    check = _check(_prefs(**{limit: figure / 2}), targets)
    assert check.approved.tolist() == pytest.approx((targets / 2).tolist())
    after = check.var_pct if limit == "max_var_pct" else check.cvar_pct
    assert after == pytest.approx(figure / 2)
    assert [a.limit for a in check.adjustments] == [limit[4:-4]]
    assert not _check(_prefs(**{limit: figure * 1.01}), targets).adjusted


def test_without_enough_history_a_history_limit_sends_the_target_to_cash() -> None:
    returns = _returns(n=100)
    check = _check(_prefs(max_var_pct=5.0), _targets(0.4, 0.3, 0.2, 0.1), returns)
    assert check.approved.tolist() == [0.0] * 4
    assert [(a.limit, a.value, a.cap) for a in check.adjustments] == [("history", 100, 250)]
    enough = _check(_prefs(max_var_pct=5.0, risk_lookback=100), _targets(0.1, 0, 0, 0), returns)
    assert not enough.adjusted and enough.approved["A"] == 0.1
    assert not _check(_prefs(max_var_pct=5.0), _targets(0, 0, 0, 0), returns).adjusted


def test_only_returns_up_to_the_decision_bar_are_read() -> None:
    returns = _returns(n=400)
    at = returns.index[299]
    prefs = _prefs(max_var_pct=0.5, max_cvar_pct=0.7, max_cluster_weight=0.5)
    targets = _targets(0.5, 0.3, 0.3, -0.2)
    risk = PortfolioRisk(prefs)
    decided = risk.check(targets, returns, at)
    future = returns.copy()
    future.iloc[300:] = -0.5 * np.sign(future.iloc[300:])  # a crash after the decision
    again = risk.check(targets, future, at)
    pd.testing.assert_series_equal(decided.approved, again.approved)
    assert (decided.var_pct, decided.adjustments) == (again.var_pct, again.adjustments)
    past = returns.copy()
    past.iloc[290] = -0.2  # a crash inside the window does change it
    assert risk.check(targets, past, at).var_pct != decided.var_pct


def test_symbols_outside_the_allowed_instruments_are_refused() -> None:
    prefs = _prefs(allowed_instruments=["A", "B", "C"])
    check = _check(prefs, _targets(0.3, 0.3, 0.2, 0.2))
    assert check.approved.tolist() == [0.3, 0.3, 0.2, 0.0]
    assert [(a.limit, a.symbols) for a in check.adjustments] == [("instrument", ("D",))]


def _limits(rng: np.random.Generator) -> dict[str, Any]:
    """A random subset of the portfolio limits switched on, at random levels."""
    options = {
        "max_position_pct": float(rng.uniform(10, 80)),
        "max_leverage": float(rng.uniform(0.3, 2.0)),
        "max_net_exposure": float(rng.uniform(0.05, 1.0)),
        "max_positions": int(rng.integers(1, 4)),
        "max_cluster_weight": float(rng.uniform(0.1, 0.8)),
        "cluster_correlation": float(rng.uniform(0.3, 0.95)),
        "max_var_pct": float(rng.uniform(0.1, 2.0)),
        "max_cvar_pct": float(rng.uniform(0.1, 2.0)),
        "var_confidence": float(rng.uniform(0.9, 0.99)),
        "risk_lookback": int(rng.integers(50, 300)),
    }
    return {name: value for name, value in options.items() if rng.random() < 0.6}


def test_approved_weights_never_break_an_enabled_limit() -> None:
    rng = np.random.default_rng(7)
    returns, slack = _returns(n=300, seed=3), 1 + 1e-7
    adjusted = 0
    for _ in range(300):
        prefs = _prefs(**_limits(rng))
        size = rng.uniform(0, 1.5, 4) * (rng.random(4) < 0.8)
        targets = _targets(*(size * rng.choice([-1.0, 1.0], 4)))
        check = PortfolioRisk(prefs).check(targets, returns, returns.index[-1])
        w = check.approved.to_numpy()
        adjusted += check.adjusted
        assert np.all(np.abs(w) <= np.abs(targets.to_numpy()) + 1e-12)  # only ever shrinks
        assert np.all(w * targets.to_numpy() >= 0)  # never flips a side
        assert np.abs(w).max() <= prefs.max_position_pct / 100 * slack
        assert np.abs(w).sum() <= prefs.max_leverage * slack
        if prefs.max_net_exposure is not None:
            assert abs(w.sum()) <= prefs.max_net_exposure * slack
        if prefs.max_positions is not None:
            assert np.count_nonzero(w) <= prefs.max_positions
        window = returns.to_numpy()[-prefs.risk_lookback :]
        if prefs.max_cluster_weight is not None:
            labels = correlation_clusters(window, prefs.cluster_correlation)
            for label in set(labels):
                assert np.abs(w[labels == label]).sum() <= prefs.max_cluster_weight * slack
        var, cvar = tail_losses(window @ w, prefs.var_confidence)
        if prefs.max_var_pct is not None:
            assert 100 * var <= prefs.max_var_pct * slack
        if prefs.max_cvar_pct is not None:
            assert 100 * cvar <= prefs.max_cvar_pct * slack
    assert 100 < adjusted < 300  # the limits bound often, but not always


def test_bad_input_gets_one_clear_error() -> None:
    risk = PortfolioRisk(_prefs(max_var_pct=1.0))
    returns = _returns()
    at = returns.index[-1]
    with pytest.raises(PortfolioRiskError, match="target for B is nan"):
        risk.check(_targets(0.1, np.nan, 0, 0), returns, at)
    with pytest.raises(PortfolioRiskError, match=r"no returns for \['D'\]"):
        risk.check(_targets(0.1, 0, 0, 0), returns.drop(columns="D"), at)
    broken = returns.copy()
    broken.iloc[-3, 2] = np.inf
    with pytest.raises(PortfolioRiskError, match=f"return of C at {broken.index[-3]} is inf"):
        risk.check(_targets(0.1, 0, 0, 0), broken, at)
    with pytest.raises(PortfolioRiskError, match="must be a Series by symbol"):
        risk.check([0.1, 0, 0, 0], returns, at)
