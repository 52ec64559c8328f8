from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from evotrader.data import generate_synthetic
from evotrader.strategies.auditor import check_look_ahead
from evotrader.strategies.signals import apply_exits, spec_targets
from evotrader.strategies.spec import RiskParams, StrategySpec

ALWAYS_LONG = {"entry_month": 1, "exit_month": 12}  # Halloween window January..November


def _bars(close: np.ndarray) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.bdate_range("2021-01-04", periods=len(close)), name="timestamp")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=index
    )


def _targets(close: np.ndarray, risk: RiskParams) -> np.ndarray:
    spec = StrategySpec.build("seasonal/halloween", ["X"], ALWAYS_LONG, risk=risk)
    return spec_targets(spec, [_bars(close)])[:, 0]


def test_sizing_and_no_shorting_rules() -> None:
    bars = generate_synthetic(400, seed=2, kind="regimes").bars
    spec = StrategySpec.build(
        "trend-following/moving-average-crossover", ["X"], {"fast": 5, "slow": 20}
    )
    raw = spec_targets(spec, [bars])[:, 0]
    assert set(np.unique(raw)) == {-1.0, 0.0, 1.0}
    half = spec_targets(
        StrategySpec.build(spec.template, ["X"], spec.parameters, risk=RiskParams(0.5)), [bars]
    )
    assert np.array_equal(half[:, 0], raw * 0.5)
    long_only = RiskParams(allow_short=False)
    flat_shorts = spec_targets(
        StrategySpec.build(spec.template, ["X"], spec.parameters, risk=long_only), [bars]
    )
    assert np.array_equal(flat_shorts[:, 0], np.maximum(raw, 0.0))


def test_stop_loss_exits_at_the_first_close_past_the_stop_and_stays_out() -> None:
    close = 100 * 0.99 ** np.arange(30)  # -4.9% after 5 bars, -5.9% after 6
    targets = _targets(close, RiskParams(stop_loss=0.05))
    assert (targets[:6] == 1).all()
    assert (targets[6:] == 0).all()  # the signal never changed side: no re-entry


def test_take_profit_and_maximum_holding_time() -> None:
    close = 100 * 1.02 ** np.arange(30)
    profit = _targets(close, RiskParams(take_profit=0.1))  # 1.02^5 = +10.4%
    assert (profit[:5] == 1).all() and (profit[5:] == 0).all()
    held = _targets(close, RiskParams(max_holding_bars=7))
    assert (held[:7] == 1).all() and (held[7:] == 0).all()


def test_an_exit_lifts_once_the_signal_changes_side() -> None:
    targets = np.array([1, 1, 1, 1, 0, 1, 1, -1, -1.0])[:, None]
    closes = np.array([100, 90, 80, 80, 80, 80, 70, 70, 81.0])[:, None]
    out = apply_exits(targets, closes, RiskParams(stop_loss=0.15))
    # long stopped at 80 (-20%); blocked while the signal stays long; flat bar 4 lifts the
    # block; the new long from 80 loses 12.5% at 70 (kept); the short from 70 loses 15.7% at 81
    assert out[:, 0].tolist() == [1, 1, 0, 0, 0, 1, 1, -1, 0]


def test_pair_exits_read_the_spread_return() -> None:
    targets = np.tile([[1.0, -1.0]], (4, 1))
    closes = np.array([[100, 100], [101, 95], [102, 108], [103, 110.0]])
    out = apply_exits(targets, closes, RiskParams(stop_loss=0.04))
    # spread return: (rA - rB) / 2 = 3%, then (2% - 8%) / 2 = -3%, then (3% - 10%) / 2 = -3.5%
    assert out.tolist() == [[1, -1], [1, -1], [1, -1], [1, -1]]
    out = apply_exits(targets, closes, RiskParams(stop_loss=0.03))
    assert out.tolist() == [[1, -1], [1, -1], [0, 0], [0, 0]]


def test_exits_stay_causal() -> None:
    bars = generate_synthetic(600, seed=5, kind="regimes").bars
    risk = RiskParams(stop_loss=0.02, take_profit=0.04, max_holding_bars=15)
    spec = StrategySpec.build(
        "breakout/keltner-channel", ["X"], {"window": 10, "multiplier": 1.0}, risk=risk
    )
    assert check_look_ahead(
        lambda frames: spec_targets(spec, frames), [bars], cuts=4, seed=3
    ).passed


def test_trailing_stop_exits_after_a_fall_from_the_best_close() -> None:
    close = np.array([100, 105, 110, 120, 115, 110, 108, 100, 130.0])
    targets = _targets(close, RiskParams(trailing_stop=0.08))
    # best close 120 (+20%); 110 is 8.3% below it: flat from there, no re-entry on 130
    assert targets.tolist() == [1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert (_targets(close, RiskParams(trailing_stop=0.2)) == 1).all()


def test_max_positions_keeps_the_strongest_legs_lower_column_first() -> None:
    from evotrader.strategies.signals import strongest

    targets = np.array([[1.0, -1.0, 0.5, 1.0], [0.25, 0.0, 0.0, -0.5]])
    assert strongest(targets, 2).tolist() == [[1, -1, 0, 0], [0.25, 0, 0, -0.5]]
    assert strongest(targets, 4) is targets


def _sized(close: np.ndarray, **risk) -> np.ndarray:
    return _targets(close, RiskParams(**risk))


def test_volatility_target_sizes_down_in_turbulence_in_quarter_steps() -> None:
    rng = np.random.default_rng(0)
    calm, wild = rng.normal(0, 0.004, 200), rng.normal(0, 0.04, 200)
    close = 100 * np.exp(np.cumsum(np.concatenate([calm, wild])))
    sizes = _sized(close, sizing="volatility_target", target_vol=0.15, sizing_window=20)
    assert (sizes[:20] == 0).all()  # no volatility known yet: nothing held
    assert sizes[100:200].min() == 1.0  # 6% a year realised: capped at the full target
    assert sizes[250:].max() <= 0.25  # ~63% a year realised: a quarter at most
    assert set(np.unique(sizes)) <= {0.0, 0.25, 0.5, 0.75, 1.0}


def test_kelly_sizing_is_capped_and_zero_without_an_edge() -> None:
    rng = np.random.default_rng(1)
    drift = 100 * np.exp(np.cumsum(rng.normal(0.003, 0.01, 300)))  # mean/var = 30 >> cap
    sizes = _sized(drift, sizing="kelly", kelly_cap=0.5, sizing_window=60)
    assert (sizes[:59] == 0).all() and sizes[59:230].min() == 0.5  # December: flat
    losing = 100 * np.exp(np.cumsum(rng.normal(-0.006, 0.01, 300)))
    assert (_sized(losing, sizing="kelly", sizing_window=60)[61:] == 0).all()


def test_sizing_and_trailing_stops_stay_causal() -> None:
    bars = generate_synthetic(600, seed=5, kind="regimes").bars
    for risk in (
        RiskParams(sizing="volatility_target", sizing_window=20, trailing_stop=0.03),
        RiskParams(sizing="kelly", sizing_window=30, kelly_cap=0.75),
    ):
        spec = StrategySpec.build(
            "trend-following/moving-average-crossover", ["X"], {"fast": 5, "slow": 20}, risk=risk
        )
        check = check_look_ahead(lambda frames, s=spec: spec_targets(s, frames), [bars], cuts=4)
        assert check.passed, risk


def test_new_risk_fields_leave_old_spec_ids_alone_and_round_trip() -> None:
    spec = StrategySpec.build("seasonal/halloween", ["X"], ALWAYS_LONG)
    assert set(spec.to_dict()["risk"]) == {
        "position_size",
        "allow_short",
        "stop_loss",
        "take_profit",
        "max_holding_bars",
    }
    risky = StrategySpec.build(
        "seasonal/halloween", ["X"], ALWAYS_LONG, risk=RiskParams(sizing="kelly", max_positions=1)
    )
    assert risky.spec_id != spec.spec_id
    assert StrategySpec.from_json(risky.to_json()).risk == risky.risk


def test_combinations_average_rank_or_intersect_the_templates_targets() -> None:
    from evotrader.strategies.signals import combined

    a = np.array([[1.0, 0.0, -1.0, 0.5], [1.0, 1.0, 0.0, 0.0]])
    b = np.array([[1.0, -1.0, -0.5, 0.0], [0.0, 1.0, 0.0, -1.0]])
    assert combined("equal_weight", [a, b]).tolist() == [[1, -0.5, -0.75, 0.25], [0.5, 1, 0, -0.5]]
    assert combined("intersection", [a, b]).tolist() == [[1, 0, -0.5, 0], [0, 1, 0, 0]]
    # scores [2, -1, -1.5, 0.5] and [1, 2, 0, -1]; the most invested template holds 3 and 2
    # legs: the 3 and 2 largest |scores| (legs 0 and 3 tie at 1: the lower column wins)
    assert combined("score_rank", [a, b]).tolist() == [[1, -1, -1, 0], [1, 1, 0, 0]]


def test_a_combined_spec_trades_its_members_and_round_trips() -> None:
    from evotrader.strategies.spec import Member

    bars = generate_synthetic(500, seed=4, kind="regimes").bars
    trend = StrategySpec.build(
        "trend-following/moving-average-crossover", ["X"], {"fast": 5, "slow": 30}
    )
    momentum = Member.build("momentum/time-series-momentum", {"lookback": 20})
    both = replace(trend, members=(momentum,), combine="intersection")
    alone = spec_targets(trend, [bars])
    member = spec_targets(StrategySpec.build(momentum.template, ["X"], momentum.parameters), [bars])
    expected = np.where(np.sign(alone) == np.sign(member), alone, 0.0)
    np.testing.assert_array_equal(spec_targets(both, [bars]), expected)
    assert 0 < np.count_nonzero(expected) < np.count_nonzero(alone)
    assert StrategySpec.from_json(both.to_json()) == both and both.spec_id != trend.spec_id
    assert "members" not in trend.to_dict()  # ids of specs without members are unchanged
    check = check_look_ahead(lambda frames: spec_targets(both, frames), [bars], cuts=3)
    assert check.passed
